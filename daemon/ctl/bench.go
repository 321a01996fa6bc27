package ctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/transport/pki"
)

// errInterrupted is returned when ctx ends a bench early.
var errInterrupted = errors.New("interrupted")

// Inbox polling of the bench receiver.
const (
	benchPollMax  = 1000
	benchPollWait = time.Second
)

type benchOpts struct {
	recvSocket, to, precedence string
	n, size, concurrency       int
	rate                       float64
	timeout                    time.Duration
	json                       bool
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
any submit failed. It waits up to --timeout after the last submit for the
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
	f.StringVar(&o.to, "to", "", "destination `SITE` (required)")
	f.IntVar(&o.n, "n", 1000, "send `N` messages")
	f.IntVar(&o.size, "size", 1024, "payload size in `BYTES` (at least "+strconv.Itoa(benchHeaderSize)+")")
	f.IntVar(&o.concurrency, "concurrency", 16, "`N` concurrent submitters")
	f.Float64Var(&o.rate, "rate", 0, "submit at most `N` messages per second (0 = unlimited)")
	f.StringVar(&o.precedence, "precedence", "routine", "`LEVEL`: flash, immediate, priority or routine")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "wait `DUR` after the last submit for arrivals (and per submit)")
	f.BoolVar(&o.json, "json", false, "print the summary as one JSON object")
	return cmd
}

func (o *benchOpts) validate() error {
	switch {
	case o.recvSocket == "":
		return usagef("bench: --recv-socket FILE is required")
	case o.to == "":
		return usagef("bench: --to SITE is required")
	case o.n < 1:
		return usagef("bench: --n %d must be at least 1", o.n)
	case o.size < benchHeaderSize:
		return usagef("bench: --size %d is too small (at least %d bytes, for the bench header)", o.size, benchHeaderSize)
	case o.concurrency < 1:
		return usagef("bench: --concurrency %d must be at least 1", o.concurrency)
	case o.rate < 0:
		return usagef("bench: --rate %g is negative", o.rate)
	case o.timeout <= 0:
		return usagef("bench: --timeout %s must be positive", o.timeout)
	}
	if err := pki.ValidName(o.to); err != nil {
		return usagef("bench: --to: %v", err)
	}
	if err := checkPrecedence(o.precedence); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// benchRun is one bench in progress.
type benchRun struct {
	e          *env
	o          benchOpts
	run        benchRunID
	sendClient *client.Client
	recvClient *client.Client

	submitDone chan struct{} // closed when every submit has finished

	mu         sync.Mutex
	t          *benchTally    // guarded by mu
	lastSubmit time.Time      // guarded by mu; when the submits finished
	failures   map[string]int // guarded by mu; error text -> count
	submitted  int            // guarded by mu; submits finished, either way
}

func (e *env) bench(ctx context.Context, o benchOpts) error {
	r := &benchRun{
		e:          e,
		o:          o,
		sendClient: e.client(),
		recvClient: client.New(o.recvSocket),
		submitDone: make(chan struct{}),
		t:          newBenchTally(o.n),
		failures:   make(map[string]int),
	}
	if _, err := rand.Read(r.run[:]); err != nil {
		return fmt.Errorf("bench: run id: %w", err)
	}
	defer r.sendClient.CloseIdleConnections()
	defer r.recvClient.CloseIdleConnections()
	if err := r.preflight(ctx); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	recvErr := make(chan error, 1)
	go func() {
		err := r.receive(ctx)
		if err != nil {
			cancel() // a broken receiver makes the rest pointless
		}
		recvErr <- err
	}()
	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	progressWG.Add(1)
	go func() {
		defer progressWG.Done()
		r.progress(progressDone)
	}()

	r.submitAll(ctx)
	r.mu.Lock()
	r.lastSubmit = time.Now()
	r.mu.Unlock()
	close(r.submitDone)

	err := <-recvErr
	end := time.Now()
	close(progressDone)
	progressWG.Wait()

	r.mu.Lock()
	res := r.t.result(end)
	failures := r.failures
	r.mu.Unlock()
	res.RunID = hex.EncodeToString(r.run[:])
	res.Size, res.Concurrency, res.Rate, res.Precedence = o.size, o.concurrency, o.rate, o.precedence
	r.reportFailures(failures)
	if werr := r.printResult(res); werr != nil {
		return fmt.Errorf("bench: write output: %w", werr)
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("bench: %w", errInterrupted)
	case err != nil:
		return err
	case res.Lost > 0 || res.Duplicated > 0 || res.FailedSubmits > 0:
		return fmt.Errorf("bench: %d lost, %d duplicated, %d failed submits", res.Lost, res.Duplicated, res.FailedSubmits)
	}
	return nil
}

// preflight checks that both daemons answer and that the receiving one is
// a node of the destination site, so a wrong socket fails at once instead
// of after the timeout.
func (r *benchRun) preflight(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := r.sendClient.Status(ctx); err != nil {
		return fmt.Errorf("bench: sending daemon: %w", err)
	}
	st, err := r.recvClient.Status(ctx)
	if err != nil {
		return fmt.Errorf("bench: receiving daemon: %w", err)
	}
	if st.Site != "" && st.Site != r.o.to {
		return fmt.Errorf("bench: --recv-socket %s is node %s of site %q, not of --to site %q", r.o.recvSocket, st.Node, st.Site, r.o.to)
	}
	return nil
}

// key is the idempotency key of message i.
func (r *benchRun) key(i int) string {
	return "bench-" + hex.EncodeToString(r.run[:]) + "-" + strconv.Itoa(i)
}

// submitAll submits every message with o.concurrency workers, paced by
// o.rate, and returns when all have finished or ctx ends.
func (r *benchRun) submitAll(ctx context.Context) {
	jobs := make(chan int)
	go func() {
		defer close(jobs)
		begin := time.Now()
		for i := range r.o.n {
			if r.o.rate > 0 {
				at := begin.Add(time.Duration(float64(i) / r.o.rate * float64(time.Second)))
				if d := time.Until(at); d > 0 && sleepCtx(ctx, d) != nil {
					return
				}
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range r.o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r.submitOne(ctx, i)
			}
		}()
	}
	wg.Wait()
}

// submitOne submits message i, retrying retryable errors with the same key
// for up to o.timeout.
func (r *benchRun) submitOne(ctx context.Context, i int) {
	req := client.SubmitRequest{
		To:         r.o.to,
		Precedence: r.o.precedence,
		Key:        r.key(i),
		Payload:    encodeBenchPayload(r.run, uint64(i), r.o.size),
	}
	start := time.Now()
	r.mu.Lock()
	r.t.started(i, start)
	r.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, r.o.timeout)
	defer cancel()
	var retry backoff
	for {
		_, err := r.sendClient.Submit(sctx, req)
		if err == nil {
			lat := time.Since(start)
			r.mu.Lock()
			r.t.submitted(i, lat)
			r.submitted++
			r.mu.Unlock()
			return
		}
		if client.Retryable(err) && sleepCtx(sctx, retry.next()) == nil {
			continue
		}
		if ctx.Err() != nil {
			err = errInterrupted
		}
		r.mu.Lock()
		r.t.failedSubmit(i)
		r.submitted++
		r.failures[err.Error()]++
		r.mu.Unlock()
		return
	}
}

// receive polls the destination inbox, accounts this run's messages and
// acknowledges them, until every successful submit has arrived or o.timeout
// has passed since the last submit. It returns ctx's error when ctx ends
// first, and an error when the inbox cannot be read for a reason that
// retrying does not fix.
func (r *benchRun) receive(ctx context.Context) error {
	var after uint64
	var retry backoff
	for {
		// Once finished, one last poll without waiting catches copies
		// that are already there, so late duplicates are counted too.
		last := r.finished()
		wait := benchPollWait
		if last {
			wait = 0
		}
		in, err := r.recvClient.Inbox(ctx, after, benchPollMax, wait)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if last {
				fmt.Fprintf(r.e.stderr, "bench: last read of the inbox: %v\n", err)
				return nil
			}
			if !client.Retryable(err) {
				return fmt.Errorf("bench: read inbox: %w", err)
			}
			d := retry.next()
			fmt.Fprintf(r.e.stderr, "bench: read inbox: %v; retrying in %s\n", err, d)
			if sleepCtx(ctx, d) != nil {
				return ctx.Err()
			}
			continue
		}
		retry.reset()
		now := time.Now()
		var ids []string
		inBatch := make(map[string]bool)
		r.mu.Lock()
		for k := range in.Messages {
			m := &in.Messages[k]
			after = max(after, m.Pos)
			run, i, ok := decodeBenchHeader(m.Payload)
			if !ok || run != r.run {
				continue
			}
			if r.t.received(i, m.ID, m.Pos, now) && !inBatch[m.ID] {
				inBatch[m.ID] = true
				ids = append(ids, m.ID)
			}
		}
		r.mu.Unlock()
		after = max(after, in.Next)
		if len(ids) > 0 {
			r.ack(ctx, ids)
		}
		if last {
			return nil
		}
	}
}

// ack acknowledges ids, retrying a few times; a failed ack only leaves
// messages unread at the destination, so it is reported, not fatal.
func (r *benchRun) ack(ctx context.Context, ids []string) {
	var retry backoff
	for attempt := 1; ; attempt++ {
		_, err := r.recvClient.Ack(ctx, ids)
		if err == nil || ctx.Err() != nil {
			return
		}
		if attempt == 3 || !client.Retryable(err) {
			fmt.Fprintf(r.e.stderr, "bench: ack %d messages: %v\n", len(ids), err)
			return
		}
		if sleepCtx(ctx, retry.next()) != nil {
			return
		}
	}
}

// finished reports whether the receiver may stop: all submits are done and
// either everything submitted arrived or o.timeout passed since.
func (r *benchRun) finished() bool {
	select {
	case <-r.submitDone:
	default:
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.t.complete() || time.Since(r.lastSubmit) >= r.o.timeout
}

// progress prints a line to stderr every second until done is closed.
func (r *benchRun) progress(done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	prev := 0
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		r.mu.Lock()
		sub, ok, failed, recv := r.submitted, r.t.okCount, r.t.failed, r.t.distinct
		r.mu.Unlock()
		fmt.Fprintf(r.e.stderr, "bench: submitted %d/%d (ok %d, failed %d)  received %d  %d msg/s\n",
			sub, r.o.n, ok, failed, recv, recv-prev)
		prev = recv
	}
}

// reportFailures prints the distinct submit errors, most frequent first.
func (r *benchRun) reportFailures(failures map[string]int) {
	msgs := make([]string, 0, len(failures))
	for m := range failures {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(a, b int) bool { return failures[msgs[a]] > failures[msgs[b]] })
	for k, m := range msgs {
		if k == 5 {
			fmt.Fprintf(r.e.stderr, "bench: ... and %d other submit errors\n", len(msgs)-k)
			break
		}
		fmt.Fprintf(r.e.stderr, "bench: %d submits failed: %s\n", failures[m], m)
	}
}

// printResult writes the summary to stdout.
func (r *benchRun) printResult(res benchResult) error {
	if r.o.json {
		return writeJSON(r.e.stdout, res)
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	pct := func(p50, p90, p99, mx float64) string {
		return "p50=" + f(p50) + " p90=" + f(p90) + " p99=" + f(p99) + " max=" + f(mx)
	}
	return writeKV(r.e.stdout, [][2]string{
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
	})
}
