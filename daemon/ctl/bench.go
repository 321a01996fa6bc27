package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/bench"
	"github.com/hotline-link/hotline/daemon/client"
)

type benchOpts struct {
	bench.Options
	recvSocket string
	json       bool
}

func newBenchCmd(e *env) *cobra.Command {
	var o benchOpts
	cmd := &cobra.Command{
		Use:   "bench --recv-socket FILE --to SITE --n N [flags]",
		Short: "Measure throughput and latency between two sites, and check exactly-once delivery",
		Long: `bench submits N messages of --size bytes through the daemon at --socket to
site --to, with --concurrency workers (at most --rate messages/s if set),
while reading and acknowledging them from the inbox of the destination's
daemon at --recv-socket. Each submission has a unique idempotency key, so
retries after errors cannot duplicate.

It prints progress every second on stderr and a summary (or one JSON object
with --json) on stdout, and fails if any message was lost or duplicated or
any submit failed. The summary includes the CPU seconds per delivered
message of the two daemons' processes (process_cpu_seconds_total from
their GET /metrics, read before and after the run), or says why a
daemon's could not be read. It waits up to --timeout after the last submit for the
messages to arrive; submits are retried for up to --timeout each.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return e.bench(c.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.recvSocket, "recv-socket", "", "the destination daemon's socket `FILE` (required)")
	f.StringVar(&o.To, "to", "", "destination `SITE` (required)")
	f.IntVar(&o.N, "n", 1000, "send `N` messages")
	f.IntVar(&o.Size, "size", 1024, "payload size in `BYTES` (at least "+strconv.Itoa(bench.HeaderSize)+")")
	f.IntVar(&o.Concurrency, "concurrency", 16, "`N` concurrent submitters")
	f.Float64Var(&o.Rate, "rate", 0, "submit at most `N` messages per second (0 = unlimited)")
	f.StringVar(&o.Precedence, "precedence", "routine", "`LEVEL`: flash, immediate, priority or routine")
	f.DurationVar(&o.Timeout, "timeout", 2*time.Minute, "wait `DUR` after the last submit for arrivals (and per submit)")
	f.BoolVar(&o.json, "json", false, "print the summary as one JSON object")
	return cmd
}

func (o *benchOpts) validate() error {
	if o.recvSocket == "" {
		return usagef("bench: --recv-socket FILE is required")
	}
	if err := o.Validate(); err != nil {
		return usagef("bench: %w", err)
	}
	if err := checkPrecedence(o.Precedence); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// bench runs the bench o asks for between the daemon at --socket and the
// one at o.recvSocket and prints its result; the error says what failed
// (the exit status is 1 then).
func (e *env) bench(ctx context.Context, o benchOpts) error {
	send, recv := e.client(), client.New(o.recvSocket)
	defer send.CloseIdleConnections()
	defer recv.CloseIdleConnections()
	res, err := bench.Run(ctx, send, recv, o.Options, e.stderr)
	if ws, ok := errors.AsType[*bench.WrongSiteError](err); ok {
		return fmt.Errorf("bench: --recv-socket %s is node %s of site %q, not of --to site %q", o.recvSocket, ws.Node, ws.Site, ws.To)
	}
	if res == nil {
		return err
	}
	if werr := printBenchResult(e.stdout, res, o.json); werr != nil {
		return fmt.Errorf("bench: write output: %w", werr)
	}
	if err != nil {
		return err
	}
	return res.Check()
}

// printBenchResult writes the summary of a bench to w: key-value lines,
// or with asJSON the Result as one JSON object.
func printBenchResult(w io.Writer, res *bench.Result, asJSON bool) error {
	if asJSON {
		return writeJSON(w, res)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	pct := func(p50, p90, p99, mx float64) string {
		return "p50=" + f(p50) + " p90=" + f(p90) + " p99=" + f(p99) + " max=" + f(mx)
	}
	kv := [][2]string{
		{"run", res.RunID},
		{"n", strconv.Itoa(res.N)},
		{"size", strconv.Itoa(res.Size)},
		{"concurrency", strconv.Itoa(res.Concurrency)},
		{"submitted", strconv.Itoa(res.Submitted)},
		{"delivered", strconv.Itoa(res.Delivered)},
		{"lost", strconv.Itoa(res.Lost)},
		{"duplicated", strconv.Itoa(res.Duplicated)},
		{"failed_submits", strconv.Itoa(res.FailedSubmits)},
		{"elapsed", f(res.ElapsedS) + "s"},
		{"msgs_per_sec", f(res.MsgsPerSec)},
		{"submit_ms", pct(res.SubmitP50, res.SubmitP90, res.SubmitP99, res.SubmitMax)},
		{"e2e_ms", pct(res.E2EP50, res.E2EP90, res.E2EP99, res.E2EMax)},
	}
	return writeKV(w, append(kv, cpuLines(res)...))
}

// cpuLines are the text summary's CPU figures: per message, then each
// daemon's (or why it was not read).
func cpuLines(res *bench.Result) [][2]string {
	per := "not measured (a daemon's CPU could not be read, see below)"
	switch {
	case res.CPUSPerMsg != nil:
		per = strconv.FormatFloat(*res.CPUSPerMsg, 'f', 6, 64) + " (the processes below, each once)"
	case res.Delivered == 0:
		per = "not measured (nothing delivered)"
	}
	kv := [][2]string{{"cpu_s_per_msg", per}}
	for _, n := range res.Nodes {
		v := safe(n.Node)
		if n.PID != 0 {
			v += " pid=" + strconv.Itoa(n.PID)
		}
		if n.CPUS != nil {
			v += " cpu_s=" + strconv.FormatFloat(*n.CPUS, 'f', 2, 64)
		} else {
			v += " not read: " + strconv.Quote(n.Error)
		}
		if n.Socket != "" {
			v += " socket=" + safe(n.Socket)
		}
		kv = append(kv, [2]string{"cpu_" + n.Side, v})
	}
	return kv
}
