package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/drill"
)

type drillOpts struct {
	drill.Options
	report string
	json   bool
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
			return e.runDrill(c.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.To, "to", "", "destination `SITE` (required)")
	f.StringVar(&o.Scenario, "scenario", "", "`SCENARIO`: "+strings.Join(drill.Scenarios, ", ")+" (required)")
	f.Float64Var(&o.Rate, "rate", 50, "`N` canaries per second")
	f.DurationVar(&o.Duration, "duration", 30*time.Second, "send canaries for `DUR` (at least "+drill.MinDuration.String()+")")
	f.DurationVar(&o.Drain, "drain", time.Minute, "after the last canary, wait at most `DUR` for the rest to arrive")
	f.StringVar(&o.report, "report", "", "`DIR` for the report (default drill-SCENARIO-TIME in the current directory)")
	f.StringVar(&o.Precedence, "precedence", "routine", "`LEVEL` of the canaries: flash, immediate, priority or routine")
	f.IntVar(&o.Size, "size", 256, "canary payload size in `BYTES`")
	f.BoolVar(&o.json, "json", false, "print the summary as one JSON object")
	return cmd
}

func (o *drillOpts) validate() error {
	if err := o.Validate(); err != nil {
		return usagef("drill: %w", err)
	}
	if err := checkPrecedence(o.Precedence); err != nil {
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

// runDrill runs the drill o asks for through the socket, writes its
// report into o.report and prints the summary; the error says everything
// that failed (the exit status is 1 then).
func (e *env) runDrill(ctx context.Context, o drillOpts) error {
	if o.report == "" {
		o.report = defaultDrillDir(o.Scenario, time.Now())
	}
	if err := checkReportDir(o.report); err != nil {
		return err
	}
	c := e.client()
	defer c.CloseIdleConnections()
	plan, err := drill.Prepare(ctx, c, o.Options)
	if err != nil {
		return err
	}
	res, runErr := drill.Run(ctx, c, plan, e.stderr)
	if res == nil {
		return runErr
	}
	report := res.Report
	werr := res.WriteFiles(o.report)
	if perr := printDrillSummary(e.stdout, o, res, werr, runErr); perr != nil {
		return fmt.Errorf("drill: write output: %w", perr)
	}

	var errs []error
	if runErr != nil {
		errs = append(errs, runErr)
	}
	errs = append(errs, res.Errors...)
	switch {
	case errors.Is(runErr, drill.ErrInterrupted):
		// Without the drain, "lost" only means "not seen yet".
		if report.Duplicated > 0 {
			errs = append(errs, fmt.Errorf("drill: %d duplicated", report.Duplicated))
		}
	case report.Lost > 0 || report.Duplicated > 0:
		errs = append(errs, fmt.Errorf("drill: %d lost, %d duplicated", report.Lost, report.Duplicated))
	}
	if !report.RateHeld && runErr == nil {
		errs = append(errs, errors.New("drill: "+report.RateFailure()))
	}
	if werr != nil {
		errs = append(errs, fmt.Errorf("drill: %w", werr))
	}
	return errors.Join(errs...)
}

// drillSummary is the --json output: report.json plus where it is and
// what went wrong.
type drillSummary struct {
	*drill.Report
	Run         string   `json:"run"`
	ReportDir   string   `json:"report_dir,omitempty"` // "" when the report could not be written
	ReportError string   `json:"report_error,omitempty"`
	Errors      []string `json:"errors,omitempty"`      // interruption, fault or restore failures
	Interrupted bool     `json:"interrupted,omitempty"` // no drain: "lost" canaries may still arrive
}

// printDrillSummary writes the result of a drill to w.
func printDrillSummary(w io.Writer, o drillOpts, res *drill.Result, writeErr, runErr error) error {
	s := drillSummary{Report: res.Report, Run: res.Run, ReportDir: o.report}
	if writeErr != nil {
		s.ReportDir, s.ReportError = "", writeErr.Error()
	}
	if runErr != nil {
		s.Errors = append(s.Errors, runErr.Error())
		s.Interrupted = errors.Is(runErr, drill.ErrInterrupted)
	}
	for _, err := range res.Errors {
		s.Errors = append(s.Errors, err.Error())
	}
	if o.json {
		return writeJSON(w, s)
	}
	return writeKV(w, drillSummaryKV(&s))
}

// drillSummaryKV is the human summary of s.
func drillSummaryKV(s *drillSummary) [][2]string {
	r := s.Report
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
		kv = append(kv, [2]string{"error", r.RateFailure()})
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
