package ctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/transport/pki"
)

// Drill limits and timing.
const (
	drillMinDuration    = 6 * time.Second  // three phases of at least 2s
	drillMaxRate        = 10000            // canaries per second
	drillMaxCanaries    = 1_000_000        // rate × duration
	drillMaxInFlight    = 1024             // concurrent submits; the sender waits beyond
	drillRetryGrace     = 30 * time.Second // canaries are retried until the end of sending plus this
	drillSubmitTimeout  = 10 * time.Second // the daemon's timeout of one submit
	drillAttemptTimeout = 20 * time.Second // the client's bound on one submit attempt
	drillAdminTimeout   = 30 * time.Second // preflight, fault, restore and arrivals calls
	drillPollRun        = 2 * time.Second  // arrivals polling while sending
	drillPollDrain      = time.Second      // arrivals polling while draining
	drillPageMax        = 1000             // arrivals per page
)

type drillOpts struct {
	to, scenario, precedence, report string
	rate                             float64
	duration, drain                  time.Duration
	size                             int
	json                             bool
}

func newDrillCmd(e *env) *cobra.Command {
	var o drillOpts
	cmd := &cobra.Command{
		Use:   "drill --to SITE --scenario SCENARIO [flags]",
		Short: "Inject a fault under a canary stream and report what the link did (admin)",
		Long: `drill sends a stream of small canary messages from this site to --to at
--rate per second for --duration, injects a fault in the middle third and
undoes it at the end of that third, then waits up to --drain for every
acknowledged canary to arrive. Canaries are marked as drill traffic: they
are carried and acknowledged like any message but never reach the
destination's inbox.

Scenarios:
  cut-active-path              silently cut the path the leader uses to SITE,
                               on every node of this site
  cut-all-but-one              silently cut every WAN path except the least
                               preferred one, on every node of this site
  transfer-origin-leader       move this site's Raft leadership
  transfer-destination-leader  move SITE's leadership (SITE must set
                               allow_remote_drills)

It writes report.md, report.json and timeline.svg into --report (default
drill-SCENARIO-YYYYMMDDTHHMMSS in the current directory), prints a summary
(one JSON object with --json) and fails if any canary was lost or
duplicated, if fewer than 95% of rate × duration canaries could be sent
(the rate was not held), or if the fault could not be applied or undone.
Cut paths are always brought back up, also when the drill is interrupted.

Needs root or the daemon's admin group.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return e.drill(c.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "destination `SITE` (required)")
	f.StringVar(&o.scenario, "scenario", "", "`SCENARIO`: "+strings.Join(drillScenarios, ", ")+" (required)")
	f.Float64Var(&o.rate, "rate", 50, "`N` canaries per second")
	f.DurationVar(&o.duration, "duration", 30*time.Second, "send canaries for `DUR` (at least "+drillMinDuration.String()+")")
	f.DurationVar(&o.drain, "drain", time.Minute, "after the last canary, wait at most `DUR` for the rest to arrive")
	f.StringVar(&o.report, "report", "", "`DIR` for the report (default drill-SCENARIO-TIME in the current directory)")
	f.StringVar(&o.precedence, "precedence", "routine", "`LEVEL` of the canaries: flash, immediate, priority or routine")
	f.IntVar(&o.size, "size", 256, "canary payload size in `BYTES`")
	f.BoolVar(&o.json, "json", false, "print the summary as one JSON object")
	return cmd
}

func (o *drillOpts) validate() error {
	switch {
	case o.to == "":
		return usagef("drill: --to SITE is required")
	case o.scenario == "":
		return usagef("drill: --scenario is required (one of %s)", strings.Join(drillScenarios, ", "))
	case !slices.Contains(drillScenarios, o.scenario):
		return usagef("drill: --scenario %q is not one of %s", o.scenario, strings.Join(drillScenarios, ", "))
	case !(o.rate > 0) || o.rate > drillMaxRate:
		return usagef("drill: --rate %g is out of range (above 0, at most %d per second)", o.rate, drillMaxRate)
	case o.duration < drillMinDuration:
		return usagef("drill: --duration %s is too short (at least %s, three phases of 2s)", o.duration, drillMinDuration)
	case o.rate*o.duration.Seconds() < 3:
		return usagef("drill: --rate %g for %s is fewer than one canary per phase", o.rate, o.duration)
	case o.rate*o.duration.Seconds() > drillMaxCanaries:
		return usagef("drill: --rate %g for %s is more than %d canaries", o.rate, o.duration, drillMaxCanaries)
	case o.size < 1:
		return usagef("drill: --size %d must be at least 1", o.size)
	case o.drain <= 0:
		return usagef("drill: --drain %s must be positive", o.drain)
	}
	if err := pki.ValidName(o.to); err != nil {
		return usagef("drill: --to: %v", err)
	}
	if err := checkPrecedence(o.precedence); err != nil {
		return fmt.Errorf("drill: %w", err)
	}
	return nil
}

// defaultDrillDir is the default --report: drill-SCENARIO-UTCTIME.
func defaultDrillDir(scenario string, now time.Time) string {
	return "drill-" + scenario + "-" + now.UTC().Format("20060102T150405")
}

// checkReportDir refuses a --report that cannot hold a new report, so a
// drill does not run for nothing.
func checkReportDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("drill: --report: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("drill: --report %s exists and is not a directory", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "report.json")); err == nil {
		return fmt.Errorf("drill: --report %s already holds a report; choose another directory", dir)
	}
	return nil
}

// drill is one drill in progress.
type drill struct {
	e        *env
	c        *client.Client
	o        drillOpts
	plan     *drillPlan
	run      string
	start    time.Time // first canary due; set before any goroutine starts
	submitWG sync.WaitGroup

	mu        sync.Mutex
	canaries  []drillCanary  // guarded by mu; index = N
	events    []drillEvent   // guarded by mu
	notes     []string       // guarded by mu; found while running
	failures  map[string]int // guarded by mu; submit error text -> canaries given up
	acked     int            // guarded by mu
	maxSeq    uint64         // guarded by mu; highest origin sequence acknowledged
	arrivals  *arrivalLog    // guarded by mu
	faultAt   time.Time      // guarded by mu
	restoreAt time.Time      // guarded by mu
	end       time.Time      // guarded by mu; last canary sent
	draining  bool           // guarded by mu
	faultErrs []error        // guarded by mu; the fault or its restore failed
	abortErr  error          // guarded by mu; a submit failed for good: stop sending
}

func (e *env) drill(ctx context.Context, o drillOpts) error {
	if o.report == "" {
		o.report = defaultDrillDir(o.scenario, time.Now())
	}
	if err := checkReportDir(o.report); err != nil {
		return err
	}
	c := e.client()
	defer c.CloseIdleConnections()
	plan, version, baseline, err := preflightDrill(ctx, c, o)
	if err != nil {
		return err
	}
	run, err := newDrillRunID()
	if err != nil {
		return err
	}
	d := &drill{e: e, c: c, o: o, plan: plan, run: run,
		failures: make(map[string]int), arrivals: newArrivalLog(run, baseline)}
	d.notes = plan.notes(version, o)
	fmt.Fprintf(e.stderr, "drill: run %s: %s from %s to %s, %g canaries/s for %s, fault in the middle third\n",
		run, o.scenario, plan.From, plan.To, o.rate, o.duration)

	runErr := d.execute(ctx)

	in := d.input()
	report := buildDrillReport(in)
	werr := writeDrillReport(o.report, report, in)
	d.reportFailures()
	if perr := d.printSummary(report, werr, runErr); perr != nil {
		return fmt.Errorf("drill: write output: %w", perr)
	}

	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	d.mu.Lock()
	errs = append(errs, d.faultErrs...)
	d.mu.Unlock()
	switch {
	case errors.Is(runErr, errInterrupted):
		// Without the drain, "lost" only means "not seen yet".
		if report.Duplicated > 0 {
			errs = append(errs, fmt.Errorf("drill: %d duplicated", report.Duplicated))
		}
	case report.Lost > 0 || report.Duplicated > 0:
		errs = append(errs, fmt.Errorf("drill: %d lost, %d duplicated", report.Lost, report.Duplicated))
	}
	if !report.RateHeld && runErr == nil {
		errs = append(errs, errors.New("drill: "+report.rateFailure()))
	}
	if werr != nil {
		errs = append(errs, fmt.Errorf("drill: %w", werr))
	}
	return errors.Join(errs...)
}

// preflightDrill learns the topology through the socket and plans the
// drill; it also returns the socket node's version and the destination's
// last sequence on the canaries' channel.
func preflightDrill(ctx context.Context, c *client.Client, o drillOpts) (*drillPlan, string, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, drillAdminTimeout)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return nil, "", 0, fmt.Errorf("drill: status: %w", err)
	}
	if err := checkDrillSite(st, o.to); err != nil {
		return nil, "", 0, err
	}
	leader, err := c.Paths(ctx, nodeParam(st, st.Leader))
	if err != nil {
		return nil, "", 0, adminError("drill: paths of leader "+st.Leader, err)
	}
	admin := map[string][]client.PathAdmin{st.Leader: leader.Admin}
	if isCutScenario(o.scenario) {
		nodes := []string{st.Node}
		for _, p := range st.Peers {
			if p.Site == st.Site {
				nodes = append(nodes, p.Node)
			}
		}
		for _, n := range nodes {
			if _, ok := admin[n]; ok {
				continue
			}
			r, err := c.Paths(ctx, nodeParam(st, n))
			if err != nil {
				return nil, "", 0, adminError("drill: paths of "+n+" (every node of the site is cut, so every node must answer)", err)
			}
			admin[n] = r.Admin
		}
	}
	plan, err := planDrill(o.scenario, o.to, st, leader, admin)
	if err != nil {
		return nil, "", 0, err
	}
	a, err := c.Arrivals(ctx, o.to, o.precedence, 0, 0)
	if err != nil {
		return nil, "", 0, adminError("drill: arrivals baseline at "+o.to, err)
	}
	return plan, st.Version, a.Last, nil
}

// nodeParam is the node parameter that names node to the daemon serving
// the socket: "" for itself.
func nodeParam(st *client.Status, node string) string {
	if node == st.Node {
		return ""
	}
	return node
}

// execute runs the canary stream with the fault, then the drain. It
// returns an error when the drill was interrupted, a submit failed for
// good, or the arrivals could not be read; the fault's own failures are in
// d.faultErrs.
func (d *drill) execute(ctx context.Context) error {
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	d.start = time.Now()

	var progressWG, faultWG, pollWG sync.WaitGroup
	progressDone := make(chan struct{})
	progressWG.Go(func() { d.progress(progressDone) })
	faultWG.Go(func() { d.runFault(sendCtx) })
	pollCtx, stopPolling := context.WithCancel(sendCtx)
	defer stopPolling()
	pollWG.Go(func() { d.pollWhileSending(pollCtx) })

	d.send(sendCtx, ctx, stopSending)
	stopPolling() // the drain takes over; do not wait for a slow read
	pollWG.Wait()
	// runFault restores any cut before it returns: from here on the link
	// is repaired, whatever happened.
	faultWG.Wait()

	var err error
	if ctx.Err() == nil {
		d.mu.Lock()
		d.draining = true
		d.mu.Unlock()
		err = d.drain(ctx)
	}
	close(progressDone)
	progressWG.Wait()
	d.submitWG.Wait()

	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		d.notes = append(d.notes, "The drill was interrupted before its drain ended: canaries counted as lost may still have arrived.")
		return fmt.Errorf("drill: %w", errInterrupted)
	case d.abortErr != nil:
		d.notes = append(d.notes, "Sending stopped early: "+d.abortErr.Error())
		return d.abortErr
	}
	return err
}

// send submits canaries at o.rate until o.duration has passed since
// d.start or sendCtx ends: canary n is due at d.start + n/rate. Each
// canary is submitted on its own goroutine (at most drillMaxInFlight at
// once; the sender waits, it never skips); canaries that fell due while
// the sender waited (for a slot, or because this process was not
// scheduled) are sent at once, so a stall of the client costs no
// canaries, and only a daemon too slow to take them keeps the drill from
// holding its rate (it then fails: see DrillReport.RateHeld). Submits run
// under ctx, not sendCtx, so stopping early leaves no canary in an
// unknown state.
func (d *drill) send(sendCtx, ctx context.Context, stop context.CancelFunc) {
	period := float64(time.Second) / d.o.rate
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sem := make(chan struct{}, drillMaxInFlight)
	stopAt := d.start.Add(d.o.duration)
	deadline := stopAt.Add(drillRetryGrace)
	last := d.start
	for n := 0; ; n++ {
		due := d.start.Add(time.Duration(float64(n) * period))
		if !due.Before(stopAt) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-sendCtx.Done():
			}
		}
		select {
		case sem <- struct{}{}:
		case <-sendCtx.Done():
		}
		now := time.Now()
		if sendCtx.Err() != nil || !now.Before(stopAt) {
			break
		}
		key := drillKey(d.run, n)
		d.mu.Lock()
		d.canaries = append(d.canaries, drillCanary{N: n, Key: key, SentAt: now})
		d.mu.Unlock()
		last = now
		d.submitWG.Go(func() {
			defer func() { <-sem }()
			d.submit(ctx, n, key, deadline, stop)
		})
	}
	d.mu.Lock()
	d.end = last
	d.events = append(d.events, drillEvent{At: last, What: fmt.Sprintf("last canary sent (%d in all)", len(d.canaries))})
	d.mu.Unlock()
}

// submit submits canary n until the origin acknowledges it, retrying
// retryable errors with the same key until deadline. A non-retryable
// error stops the whole stream (stop): the drill cannot work.
func (d *drill) submit(ctx context.Context, n int, key string, deadline time.Time, stop context.CancelFunc) {
	req := client.SubmitRequest{
		To:         d.plan.To,
		Precedence: d.o.precedence,
		Key:        key,
		Timeout:    drillSubmitTimeout,
		Drill:      true,
		Payload:    drillPayload(key, d.o.size),
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, drillAttemptTimeout)
		m, err := d.c.Submit(actx, req)
		acancel()
		if err == nil {
			d.mu.Lock()
			d.canaries[n].ID = m.ID
			d.canaries[n].AckedAt = time.Now()
			d.acked++
			d.maxSeq = max(d.maxSeq, m.Seq)
			d.mu.Unlock()
			return
		}
		attemptTimedOut := ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded)
		if !client.Retryable(err) && !attemptTimedOut {
			if ctx.Err() != nil {
				d.giveUp(ctx, err)
				return
			}
			d.fail(err.Error())
			d.mu.Lock()
			if d.abortErr == nil {
				d.abortErr = fmt.Errorf("drill: submit canary %d: %w", n, err)
				d.events = append(d.events, drillEvent{At: time.Now(), What: "sending stopped: canary " + strconv.Itoa(n) + " refused: " + err.Error()})
			}
			d.mu.Unlock()
			stop()
			return
		}
		if sleepCtx(ctx, delay) != nil {
			d.giveUp(ctx, err)
			return
		}
		delay = min(2*delay, time.Second)
	}
}

// fail counts a canary the drill gave up on.
func (d *drill) fail(why string) {
	d.mu.Lock()
	d.failures[why]++
	d.mu.Unlock()
}

// giveUp counts a canary whose retries ended with ctx (ending with err).
func (d *drill) giveUp(ctx context.Context, err error) {
	if errors.Is(ctx.Err(), context.Canceled) {
		d.fail("interrupted")
		return
	}
	d.fail(fmt.Sprintf("not acknowledged by the end of sending + %s: %v", drillRetryGrace, err))
}

// pollWhileSending reads arrivals every drillPollRun until ctx ends, for
// the progress line (and so the drain has less to read).
func (d *drill) pollWhileSending(ctx context.Context) {
	tick := time.NewTicker(drillPollRun)
	defer tick.Stop()
	lastErr := ""
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		if err := d.fetchArrivals(ctx); err != nil && ctx.Err() == nil && err.Error() != lastErr {
			lastErr = err.Error()
			fmt.Fprintf(d.e.stderr, "drill: %v (will retry)\n", err)
		}
	}
}

// fetchArrivals reads every arrivals page after the log's cursor.
func (d *drill) fetchArrivals(ctx context.Context) error {
	for {
		d.mu.Lock()
		after := d.arrivals.cursor
		d.mu.Unlock()
		actx, cancel := context.WithTimeout(ctx, drillAdminTimeout)
		page, err := d.c.Arrivals(actx, d.plan.To, d.o.precedence, after, drillPageMax)
		cancel()
		if err != nil {
			return fmt.Errorf("read arrivals at %s after sequence %d: %w", d.plan.To, after, err)
		}
		d.mu.Lock()
		more := d.arrivals.add(page)
		d.mu.Unlock()
		if !more {
			return nil
		}
	}
}

// drain reads arrivals until every acknowledged canary arrived and the
// destination has applied up to the highest acknowledged sequence (so any
// second copy committed before it has arrived too), or until o.drain has
// passed since the last canary; it never stops before every submit
// finished. It returns the last read error if the arrivals could not be
// read at the end.
func (d *drill) drain(ctx context.Context) error {
	d.mu.Lock()
	end := d.end
	d.mu.Unlock()
	deadline := end.Add(d.o.drain)
	submitsDone := make(chan struct{})
	go func() { d.submitWG.Wait(); close(submitsDone) }()
	lastErr := ""
	for {
		err := d.fetchArrivals(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && err.Error() != lastErr {
			lastErr = err.Error()
			fmt.Fprintf(d.e.stderr, "drill: %v (will retry)\n", err)
		}
		done := false
		select {
		case <-submitsDone:
			done = true
		default:
		}
		if done {
			missing, complete := d.missing()
			switch {
			case err == nil && complete:
				d.event(fmt.Sprintf("every acknowledged canary arrived, %.1f s after the last was sent", time.Since(end).Seconds()))
				return nil
			case !time.Now().Before(deadline):
				if err != nil {
					d.event("drain ended unable to read the arrivals: " + err.Error())
					return fmt.Errorf("drill: %w (counts of lost canaries may be too high)", err)
				}
				if missing > 0 {
					d.event(fmt.Sprintf("drain gave up after %s: %d acknowledged canaries missing", d.o.drain, missing))
				} else {
					d.event(fmt.Sprintf("drain ended after %s: every acknowledged canary arrived, but %s reports sequences applied only up to %d of %d, so late copies may be missed",
						d.o.drain, d.plan.To, d.lastApplied(), d.maxSeqAcked()))
				}
				return nil
			}
		}
		sleepCtx(ctx, drillPollDrain)
	}
}

// missing counts acknowledged canaries that have not arrived; complete is
// true when there are none and the destination applied every acknowledged
// sequence.
func (d *drill) missing() (missing int, complete bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.canaries {
		if !c.AckedAt.IsZero() && len(d.arrivals.byKey[c.Key]) == 0 {
			missing++
		}
	}
	return missing, missing == 0 && d.arrivals.last >= d.maxSeq
}

// lastApplied is the destination's last applied sequence, as last read.
func (d *drill) lastApplied() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.arrivals.last
}

// maxSeqAcked is the highest origin sequence of an acknowledged canary.
func (d *drill) maxSeqAcked() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.maxSeq
}

// event records something that happened now.
func (d *drill) event(what string) {
	d.mu.Lock()
	d.events = append(d.events, drillEvent{At: time.Now(), What: what})
	d.mu.Unlock()
}

// progress prints a line to stderr every second until done is closed.
func (d *drill) progress(done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		elapsed := time.Since(d.start)
		d.mu.Lock()
		phase := d.phaseLocked(elapsed)
		sent, acked, arrived := len(d.canaries), d.acked, d.arrivals.arrived()
		d.mu.Unlock()
		fmt.Fprintf(d.e.stderr, "drill: %s/%s [%s] sent %d acked %d arrived %d\n",
			elapsed.Truncate(time.Second), d.o.duration, phase, sent, acked, arrived)
	}
}

// phaseLocked names the drill's phase elapsed after its start. d.mu must
// be held.
func (d *drill) phaseLocked(elapsed time.Duration) string {
	switch third := d.o.duration / 3; {
	case d.draining:
		return "drain"
	case elapsed < third:
		return "before"
	case elapsed < 2*third:
		return "during"
	default:
		return "after"
	}
}

// input is what the drill recorded, for the report.
func (d *drill) input() *drillInput {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := &drillInput{
		Scenario: d.o.scenario, From: d.plan.From, To: d.plan.To,
		Precedence: d.o.precedence, Rate: d.o.rate, Duration: d.o.duration, Size: d.o.size,
		Start: d.start, FaultAt: d.faultAt, RestoreAt: d.restoreAt, End: d.end,
		Events:   slices.Clone(d.events),
		Canaries: make([]drillCanary, len(d.canaries)),
		Notes:    slices.Clone(d.notes),
	}
	if in.End.IsZero() {
		in.End = d.start
	}
	stray := 0
	for k, times := range d.arrivals.byKey {
		if n, ok := drillKeyIndex(d.run, k); !ok || n >= len(d.canaries) {
			stray += len(times)
		}
	}
	for i, c := range d.canaries {
		c.Arrivals = slices.Clone(d.arrivals.byKey[c.Key])
		in.Canaries[i] = c
	}
	if stray > 0 {
		in.Notes = append(in.Notes, fmt.Sprintf("%d arrivals carried this run's key prefix but no canary's key.", stray))
	}
	return in
}

// reportFailures prints the distinct reasons canaries were given up on,
// most frequent first.
func (d *drill) reportFailures() {
	d.mu.Lock()
	defer d.mu.Unlock()
	msgs := make([]string, 0, len(d.failures))
	for m := range d.failures {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(a, b int) bool { return d.failures[msgs[a]] > d.failures[msgs[b]] })
	for k, m := range msgs {
		if k == 5 {
			fmt.Fprintf(d.e.stderr, "drill: ... and %d other submit errors\n", len(msgs)-k)
			break
		}
		fmt.Fprintf(d.e.stderr, "drill: %d canaries not acknowledged: %s\n", d.failures[m], m)
	}
}

// drillSummary is the --json output: report.json plus where it is and
// what went wrong.
type drillSummary struct {
	*DrillReport
	Run         string   `json:"run"`
	ReportDir   string   `json:"report_dir,omitempty"` // "" when the report could not be written
	ReportError string   `json:"report_error,omitempty"`
	Errors      []string `json:"errors,omitempty"`      // interruption, fault or restore failures
	Interrupted bool     `json:"interrupted,omitempty"` // no drain: "lost" canaries may still arrive
}

// printSummary writes the result to stdout.
func (d *drill) printSummary(r *DrillReport, writeErr, runErr error) error {
	s := drillSummary{DrillReport: r, Run: d.run, ReportDir: d.o.report}
	if writeErr != nil {
		s.ReportDir, s.ReportError = "", writeErr.Error()
	}
	if runErr != nil {
		s.Errors = append(s.Errors, runErr.Error())
		s.Interrupted = errors.Is(runErr, errInterrupted)
	}
	d.mu.Lock()
	for _, err := range d.faultErrs {
		s.Errors = append(s.Errors, err.Error())
	}
	d.mu.Unlock()
	if d.o.json {
		return writeJSON(d.e.stdout, s)
	}
	return writeKV(d.e.stdout, drillSummaryKV(&s))
}

// drillSummaryKV is the human summary of s.
func drillSummaryKV(s *drillSummary) [][2]string {
	r := s.DrillReport
	result := "PASS"
	if !r.Passed || len(s.Errors) > 0 {
		result = "FAIL"
	}
	ms := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " ms" }
	during := "no samples"
	if l := r.Latency.During; l.Count > 0 {
		during = "p50 " + ms(l.P50Ms) + ", p99 " + ms(l.P99Ms) + " (" + strconv.Itoa(l.Count) + " canaries)"
	}
	lost := strconv.Itoa(r.Lost)
	if s.Interrupted {
		lost += " (interrupted before the drain: may still arrive)"
	}
	kv := [][2]string{
		{"scenario", r.Scenario + " (" + r.From + " → " + r.To + ", " + r.Precedence + ")"},
		{"run", s.Run},
		{"result", result},
		{"canaries", fmt.Sprintf("%d submitted of %d planned, %d acknowledged, %d never acknowledged", r.Canaries, r.Planned, r.Sent, r.Unacked)},
		{"delivered", strconv.Itoa(r.Delivered)},
		{"lost", lost},
		{"duplicated", strconv.Itoa(r.Duplicated)},
		{"longest gap", ms(r.LongestGapMs) + " (" + ms(r.LongestGapDuringFaultMs) + " around the fault)"},
		{"latency during", during},
	}
	if !r.RateHeld {
		kv = append(kv, [2]string{"error", r.rateFailure()})
	}
	for _, e := range s.Errors {
		kv = append(kv, [2]string{"error", e})
	}
	if s.ReportDir != "" {
		kv = append(kv, [2]string{"report", s.ReportDir})
	} else {
		kv = append(kv, [2]string{"report", "not written: " + s.ReportError})
	}
	return kv
}
