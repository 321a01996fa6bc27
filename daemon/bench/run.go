package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/internal/ctxsleep"
)

// run is one bench in progress.
type run struct {
	o    Options
	id   runID
	send Daemon
	recv Daemon
	log  io.Writer

	submitDone chan struct{} // closed when every submit has finished

	mu         sync.Mutex
	t          *tally         // guarded by mu
	lastSubmit time.Time      // guarded by mu; when the submits finished
	failures   map[string]int // guarded by mu; error text -> count
	submitted  int            // guarded by mu; submits finished, either way
}

// Run benches o through send, the daemon of the submitting site, and
// recv, a daemon of site o.To, writing progress and diagnostics to log.
//
// It returns a nil Result only when the bench could not begin: o is
// invalid ([Options.Validate]), a daemon did not answer, or recv is not of
// site o.To ([WrongSiteError]). Else it
// returns the Result, with an error when ctx ended the bench
// ([ErrInterrupted]) or the inbox could not be read; whether the Result
// is a failure is [Result.Check]'s to say.
func Run(ctx context.Context, send, recv Daemon, o Options, log io.Writer) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	r := &run{
		o:          o,
		send:       send,
		recv:       recv,
		log:        &lockedWriter{w: log},
		submitDone: make(chan struct{}),
		t:          newTally(o.N),
		failures:   make(map[string]int),
	}
	if _, err := rand.Read(r.id[:]); err != nil {
		return nil, fmt.Errorf("bench: run id: %w", err)
	}
	sendSt, recvSt, err := r.preflight(ctx)
	if err != nil {
		return nil, err
	}
	probes := []*cpuProbe{ // cpu.go
		newCPUProbe(ctx, send, "send", sendSt.Node, sendSt.PID),
		newCPUProbe(ctx, recv, "recv", recvSt.Node, recvSt.PID),
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
	progressWG.Go(func() { r.progress(progressDone) })

	r.submitAll(ctx)
	r.mu.Lock()
	r.lastSubmit = time.Now()
	r.mu.Unlock()
	close(r.submitDone)

	err = <-recvErr
	end := time.Now()
	close(progressDone)
	progressWG.Wait()
	nodes := make([]NodeCPU, len(probes))
	for k, p := range probes {
		nodes[k] = p.finish(ctx)
	}

	r.mu.Lock()
	res := r.t.result(end)
	failures := r.failures
	r.mu.Unlock()
	res.RunID = hex.EncodeToString(r.id[:])
	res.Size, res.Concurrency, res.Rate, res.Precedence = o.Size, o.Concurrency, o.Rate, o.Precedence
	res.Nodes = nodes
	if v, ok := cpuPerMessage(nodes, res.Delivered); ok {
		res.CPUSPerMsg = &v
	}
	r.reportFailures(failures)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("bench: %w", ErrInterrupted)
	}
	return &res, err
}

// Check returns nil when the bench passed: every successful submit
// arrived exactly once and no submit failed. Else its error counts what
// went wrong.
func (res *Result) Check() error {
	if res.Lost > 0 || res.Duplicated > 0 || res.FailedSubmits > 0 {
		return fmt.Errorf("bench: %d lost, %d duplicated, %d failed submits", res.Lost, res.Duplicated, res.FailedSubmits)
	}
	return nil
}

// preflight checks that both daemons answer and that the receiving one is
// a node of the destination site, so a wrong socket fails at once instead
// of after the timeout. It returns the two daemons' status.
func (r *run) preflight(ctx context.Context) (send, recv *client.Status, err error) {
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	if send, err = r.send.Status(ctx); err != nil {
		return nil, nil, fmt.Errorf("bench: sending daemon: %w", err)
	}
	if recv, err = r.recv.Status(ctx); err != nil {
		return nil, nil, fmt.Errorf("bench: receiving daemon: %w", err)
	}
	if recv.Site != "" && recv.Site != r.o.To {
		return nil, nil, &WrongSiteError{Node: recv.Node, Site: recv.Site, To: r.o.To}
	}
	return send, recv, nil
}

// key is the idempotency key of message i.
func (r *run) key(i int) string {
	return "bench-" + hex.EncodeToString(r.id[:]) + "-" + strconv.Itoa(i)
}

// submitAll submits every message with o.Concurrency workers, paced by
// o.Rate, and returns when all have finished or ctx ends.
func (r *run) submitAll(ctx context.Context) {
	jobs := make(chan int)
	go func() {
		defer close(jobs)
		begin := time.Now()
		for i := range r.o.N {
			if r.o.Rate > 0 {
				at := begin.Add(time.Duration(float64(i) / r.o.Rate * float64(time.Second)))
				if d := time.Until(at); d > 0 && ctxsleep.Sleep(ctx, d) != nil {
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
	for range r.o.Concurrency {
		wg.Go(func() {
			for i := range jobs {
				r.submitOne(ctx, i)
			}
		})
	}
	wg.Wait()
}

// submitOne submits message i, retrying retryable errors with the same key
// for up to o.Timeout.
func (r *run) submitOne(ctx context.Context, i int) {
	req := client.SubmitRequest{
		To:         r.o.To,
		Precedence: r.o.Precedence,
		Key:        r.key(i),
		Payload:    encodePayload(r.id, uint64(i), r.o.Size),
	}
	start := time.Now()
	r.mu.Lock()
	r.t.started(i, start)
	r.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	var delay time.Duration
	for {
		_, err := r.send.Submit(sctx, req)
		if err == nil {
			lat := time.Since(start)
			r.mu.Lock()
			r.t.submitted(i, lat)
			r.submitted++
			r.mu.Unlock()
			return
		}
		if client.Retryable(err) {
			if delay = nextDelay(delay); ctxsleep.Sleep(sctx, delay) == nil {
				continue
			}
		}
		if ctx.Err() != nil {
			err = ErrInterrupted
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
// acknowledges them, until every successful submit has arrived or
// o.Timeout has passed since the last submit. It returns ctx's error when
// ctx ends first, and an error when the inbox cannot be read for a reason
// that retrying does not fix.
func (r *run) receive(ctx context.Context) error {
	// Acknowledgements go to their own goroutine, so that the next read
	// of the inbox does not wait for the last read's ack to commit (the
	// end-to-end time is taken at the read). At most ackQueue reads'
	// acks wait; then the reader waits too.
	acks := make(chan []string, ackQueue)
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		for ids := range acks {
			r.ack(ctx, ids)
		}
	}()
	defer func() {
		close(acks)
		<-ackDone
	}()
	var after uint64
	var delay time.Duration
	for {
		// Once finished, one last poll without waiting catches copies
		// that are already there, so late duplicates are counted too.
		last := r.finished()
		wait := pollWait
		if last {
			wait = 0
		}
		in, err := r.recv.Inbox(ctx, after, pollMax, wait)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if last {
				fmt.Fprintf(r.log, "bench: last read of the inbox: %v\n", err)
				return nil
			}
			if !client.Retryable(err) {
				return fmt.Errorf("bench: read inbox: %w", err)
			}
			delay = nextDelay(delay)
			fmt.Fprintf(r.log, "bench: read inbox: %v; retrying in %s\n", err, delay)
			if ctxsleep.Sleep(ctx, delay) != nil {
				return ctx.Err()
			}
			continue
		}
		delay = 0
		now := time.Now()
		var ids []string
		inBatch := make(map[string]bool)
		r.mu.Lock()
		for k := range in.Messages {
			m := &in.Messages[k]
			after = max(after, m.Pos)
			id, i, ok := decodeHeader(m.Payload)
			if !ok || id != r.id {
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
			select {
			case acks <- ids:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if last {
			return nil
		}
	}
}

// ack acknowledges ids, retrying a few times; a failed ack only leaves
// messages unread at the destination, so it is reported, not fatal.
func (r *run) ack(ctx context.Context, ids []string) {
	var delay time.Duration
	for attempt := 1; ; attempt++ {
		_, err := r.recv.Ack(ctx, ids)
		if err == nil || ctx.Err() != nil {
			return
		}
		if attempt == 3 || !client.Retryable(err) {
			fmt.Fprintf(r.log, "bench: ack %d messages: %v\n", len(ids), err)
			return
		}
		delay = nextDelay(delay)
		if ctxsleep.Sleep(ctx, delay) != nil {
			return
		}
	}
}

// finished reports whether the receiver may stop: all submits are done and
// either everything submitted arrived or o.Timeout passed since.
func (r *run) finished() bool {
	select {
	case <-r.submitDone:
	default:
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.t.complete() || time.Since(r.lastSubmit) >= r.o.Timeout
}

// progress writes a line to the log every progressEvery until done is
// closed.
func (r *run) progress(done <-chan struct{}) {
	tick := time.NewTicker(progressEvery)
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
		fmt.Fprintf(r.log, "bench: submitted %d/%d (ok %d, failed %d)  received %d  %d msg/s\n",
			sub, r.o.N, ok, failed, recv, recv-prev)
		prev = recv
	}
}

// reportFailures writes the distinct submit errors to the log, most
// frequent first.
func (r *run) reportFailures(failures map[string]int) {
	msgs := make([]string, 0, len(failures))
	for m := range failures {
		msgs = append(msgs, m)
	}
	sort.Slice(msgs, func(a, b int) bool { return failures[msgs[a]] > failures[msgs[b]] })
	for k, m := range msgs {
		if k == maxFailureLines {
			fmt.Fprintf(r.log, "bench: ... and %d other submit errors\n", len(msgs)-k)
			break
		}
		fmt.Fprintf(r.log, "bench: %d submits failed: %s\n", failures[m], m)
	}
}

// lockedWriter serialises the writes of the submitters, the reader, the
// acknowledger and the progress line to the log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
