package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/internal/ctxsleep"
)

// drill is one drill in progress.
type drill struct {
	c        Cluster
	log      io.Writer // progress lines
	plan     *Plan
	o        Options // plan.Options
	run      string
	start    time.Time // first canary due; set before any goroutine starts
	submitWG sync.WaitGroup

	mu        sync.Mutex
	canaries  []canary       // guarded by mu; index = N
	events    []event        // guarded by mu
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

// Result is what one drill did: its report (report.json) and what the
// report does not hold.
type Result struct {
	Run    string  // this run's id: canary keys are drill-RUN-N
	Report *Report // the statistics
	Errors []error // the fault could not be applied or undone: each says what, where
	rec    *record // what the drill recorded, for the timeline
}

// Run runs the drill p through c: the canary stream with the fault in its
// middle third, then the drain; progress goes to log. It returns a Result
// whenever the stream began, and an error alongside when the drill was
// interrupted (matching ErrInterrupted), a submit failed for good, or the
// arrivals could not be read at the end. A nil Result comes only with an
// error, before anything was sent. log may be nil.
func Run(ctx context.Context, c Cluster, p *Plan, log io.Writer) (*Result, error) {
	if p == nil {
		return nil, errors.New("drill: no plan (Prepare makes one)")
	}
	if log == nil {
		log = io.Discard
	}
	run, err := newRunID()
	if err != nil {
		return nil, err
	}
	o := p.Options
	d := &drill{c: c, log: log, plan: p, o: o, run: run,
		failures: make(map[string]int), arrivals: newArrivalLog(run, p.Baseline)}
	d.notes = p.notes(p.Version, o.Duration)
	fmt.Fprintf(log, "drill: run %s: %s from %s to %s, %g canaries/s for %s, fault in the middle third\n",
		run, o.Scenario, p.From, p.To, o.Rate, o.Duration)

	runErr := d.execute(ctx)

	rec := d.record()
	res := &Result{Run: run, Report: newReport(rec), rec: rec}
	d.mu.Lock()
	res.Errors = slices.Clone(d.faultErrs)
	d.mu.Unlock()
	d.reportFailures()
	return res, runErr
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
		return fmt.Errorf("drill: %w", ErrInterrupted)
	case d.abortErr != nil:
		d.notes = append(d.notes, "Sending stopped early: "+d.abortErr.Error())
		return d.abortErr
	}
	return err
}

// send submits canaries at o.rate until o.duration has passed since
// d.start or sendCtx ends: canary n is due at d.start + n/rate. Each
// canary is submitted on its own goroutine (at most maxInFlight at
// once; the sender waits, it never skips); canaries that fell due while
// the sender waited (for a slot, or because this process was not
// scheduled) are sent at once, so a stall of the client costs no
// canaries, and only a daemon too slow to take them keeps the drill from
// holding its rate (it then fails: see Report.RateHeld). Submits run
// under ctx, not sendCtx, so stopping early leaves no canary in an
// unknown state.
func (d *drill) send(sendCtx, ctx context.Context, stop context.CancelFunc) {
	period := float64(time.Second) / d.o.Rate
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sem := make(chan struct{}, maxInFlight)
	stopAt := d.start.Add(d.o.Duration)
	deadline := stopAt.Add(retryGrace)
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
		key := canaryKey(d.run, n)
		d.mu.Lock()
		d.canaries = append(d.canaries, canary{N: n, Key: key, SentAt: now})
		d.mu.Unlock()
		last = now
		d.submitWG.Go(func() {
			defer func() { <-sem }()
			d.submit(ctx, n, key, deadline, stop)
		})
	}
	d.mu.Lock()
	d.end = last
	d.events = append(d.events, event{At: last, What: fmt.Sprintf("last canary sent (%d in all)", len(d.canaries))})
	d.mu.Unlock()
}

// submit submits canary n until the origin acknowledges it, retrying
// retryable errors with the same key until deadline. A non-retryable
// error stops the whole stream (stop): the drill cannot work.
func (d *drill) submit(ctx context.Context, n int, key string, deadline time.Time, stop context.CancelFunc) {
	req := client.SubmitRequest{
		To:         d.plan.To,
		Precedence: d.o.Precedence,
		Key:        key,
		Timeout:    submitTimeout,
		Drill:      true,
		Payload:    canaryPayload(key, d.o.Size),
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, attemptTimeout)
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
				d.events = append(d.events, event{At: time.Now(), What: "sending stopped: canary " + strconv.Itoa(n) + " refused: " + err.Error()})
			}
			d.mu.Unlock()
			stop()
			return
		}
		if ctxsleep.Sleep(ctx, delay) != nil {
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
	d.fail(fmt.Sprintf("not acknowledged by the end of sending + %s: %v", retryGrace, err))
}

// pollWhileSending reads arrivals every pollRun until ctx ends, for
// the progress line (and so the drain has less to read).
func (d *drill) pollWhileSending(ctx context.Context) {
	tick := time.NewTicker(pollRun)
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
			fmt.Fprintf(d.log, "drill: %v (will retry)\n", err)
		}
	}
}

// fetchArrivals reads every arrivals page after the log's cursor.
func (d *drill) fetchArrivals(ctx context.Context) error {
	for {
		d.mu.Lock()
		after := d.arrivals.cursor
		d.mu.Unlock()
		actx, cancel := context.WithTimeout(ctx, adminTimeout)
		page, err := d.c.Arrivals(actx, d.plan.To, d.o.Precedence, after, pageMax)
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
	deadline := end.Add(d.o.Drain)
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
			fmt.Fprintf(d.log, "drill: %v (will retry)\n", err)
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
					d.event(fmt.Sprintf("drain gave up after %s: %d acknowledged canaries missing", d.o.Drain, missing))
				} else {
					d.event(fmt.Sprintf("drain ended after %s: every acknowledged canary arrived, but %s reports sequences applied only up to %d of %d, so late copies may be missed",
						d.o.Drain, d.plan.To, d.lastApplied(), d.maxSeqAcked()))
				}
				return nil
			}
		}
		ctxsleep.Sleep(ctx, pollDrain)
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
	d.events = append(d.events, event{At: time.Now(), What: what})
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
		fmt.Fprintf(d.log, "drill: %s/%s [%s] sent %d acked %d arrived %d\n",
			elapsed.Truncate(time.Second), d.o.Duration, phase, sent, acked, arrived)
	}
}

// phaseLocked names the drill's phase elapsed after its start. d.mu must
// be held.
func (d *drill) phaseLocked(elapsed time.Duration) string {
	switch third := d.o.Duration / 3; {
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

// record is what the drill recorded, for the report.
func (d *drill) record() *record {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := &record{
		Scenario: d.o.Scenario, From: d.plan.From, To: d.plan.To,
		Precedence: d.o.Precedence, Rate: d.o.Rate, Duration: d.o.Duration, Size: d.o.Size,
		Start: d.start, FaultAt: d.faultAt, RestoreAt: d.restoreAt, End: d.end,
		Events:   slices.Clone(d.events),
		Canaries: make([]canary, len(d.canaries)),
		Notes:    slices.Clone(d.notes),
	}
	if in.End.IsZero() {
		in.End = d.start
	}
	stray := 0
	for k, times := range d.arrivals.byKey {
		if n, ok := keyIndex(d.run, k); !ok || n >= len(d.canaries) {
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
			fmt.Fprintf(d.log, "drill: ... and %d other submit errors\n", len(msgs)-k)
			break
		}
		fmt.Fprintf(d.log, "drill: %d canaries not acknowledged: %s\n", d.failures[m], m)
	}
}
