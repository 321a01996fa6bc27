package forward

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hotline-link/hotline/internal/ctxsleep"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/trust"
)

// Forwarder sends one outbound channel's committed messages to the
// destination site until they are acknowledged, and records the acks
// (through an AckReporter). It is the goroutine around a Window: it
// reads the store, sends batches, sleeps, and feeds the results back.
type Forwarder struct {
	c    *Config
	dest string
	prec queue.Precedence
	log  *slog.Logger

	// held are proven deliveries of batches the window has not acked yet
	// (their answer overtook an earlier batch's); Run's goroutine only.
	held []Delivery
}

// NewForwarder returns the forwarder of channel (c.Site, dest, prec).
func NewForwarder(c *Config, dest string, prec queue.Precedence) *Forwarder {
	ch := queue.Channel{Origin: c.Site, Dest: dest, Precedence: prec}
	return &Forwarder{c: c, dest: dest, prec: prec, log: c.logger().With("channel", ch.String())}
}

// result is a sent batch's outcome.
type result struct {
	f      Flight
	b      *transport.Batch // as sent, with its proof
	leaves []trust.Hash     // of its messages, as signed
	ack    *transport.Ack
	err    error
}

// Run forwards until ctx ends. A restored channel first learns the
// destination's last sequence (resync).
func (f *Forwarder) Run(ctx context.Context) {
	c := f.c
	rep := NewAckReporter(c, f.dest, f.prec)
	defer rep.Stop()
	if !f.resync(ctx) {
		return
	}
	w := NewWindow(c.Window, c.acked(f.dest, f.prec), c.RetryMin, c.RetryMax)
	results := make(chan result, max(c.Window, 1))
	round := newRound(ctx)
	defer func() {
		round.cancel()
		for range w.InFlight() {
			<-results
		}
	}()
	var changed <-chan struct{}
	observe := true
	for ctx.Err() == nil {
		if observe {
			changed = c.State.Changed()
			last, held := f.observe()
			w.OnNew(last)
			w.SetHeld(held)
		}
		observe = true
		var s Step
		var d *Delivery
		var err error
		switch op := w.Next(); op.Action {
		case Send:
			if rep.Backlog() >= maxBacklog { // the proofs' commits fall behind: wait for them
				if ctxsleep.Sleep(ctx, c.RetryMin) != nil {
					return
				}
				observe = false
				continue
			}
			msgs, rerr := c.State.Resend(f.dest, f.prec, op.After, c.BatchMessages, c.BatchBytes)
			switch {
			case rerr != nil:
				s, err = w.Fail(), rerr
			case len(msgs) == 0:
				w.OnNew(op.After) // nothing after it yet: wait for a change
				observe = false
			default:
				fl := w.Sent(msgs[len(msgs)-1].Seq)
				b := &transport.Batch{Kind: transport.BatchMessages, From: c.Site, To: f.dest, Precedence: f.prec, Messages: msgs}
				go f.send(round.ctx, b, fl, results)
				observe = false
			}
		case Await:
			s, d, err = f.take(w, <-results)
		case Idle:
			select {
			case <-changed:
			case <-ctx.Done():
			}
		case Backoff:
			if ctxsleep.Sleep(ctx, op.Wait) != nil {
				return
			}
			w.Retry()
		}
		f.do(s, d, err, w, rep)
		if s.Abort {
			round.cancel()
			round = newRound(ctx)
		}
	}
}

// round is the context of one round's sends: cancelled when the round
// ends, so batches still in flight give up.
type round struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newRound(parent context.Context) round {
	ctx, cancel := context.WithCancel(parent)
	return round{ctx, cancel}
}

// send signs b, sends it within SendTimeout and reports its outcome on
// results.
func (f *Forwarder) send(ctx context.Context, b *transport.Batch, fl Flight, results chan<- result) {
	r := result{f: fl, b: b}
	r.leaves, r.err = f.c.Notary.Sign(b, time.Now().UnixNano())
	if r.err == nil {
		sctx, cancel := context.WithTimeout(ctx, f.c.SendTimeout)
		r.ack, r.err = f.c.Link.SendBatch(sctx, b)
		cancel()
		if r.err == nil && r.ack == nil {
			r.err = errors.New("link returned neither an ack nor an error")
		}
	}
	results <- r
}

// take feeds one batch's outcome to the window, and returns the delivery
// its ack proves (nil if none), which is recorded even when the window
// ignores the ack (a round that ended). An ack whose delivery proof does
// not hold is a failure: the batch is sent again.
func (f *Forwarder) take(w *Window, r result) (Step, *Delivery, error) {
	if r.err != nil {
		return w.OnFailure(r.f), nil, r.err
	}
	if err := f.c.refused(f.dest, r.ack); err != nil {
		f.c.untrusted(f.dest, false, err)
		return w.OnFailure(r.f), nil, fmt.Errorf("%s refused batch: %w", f.dest, err)
	}
	d, err := f.c.Notary.CheckDelivered(r.b, r.leaves, r.ack)
	if err != nil {
		f.c.untrusted(f.dest, true, err)
		return w.OnFailure(r.f), nil, fmt.Errorf("%s acked up to %d but its delivery proof does not hold: %w", f.dest, r.ack.Last, err)
	}
	if r.ack.Leader != "" {
		f.c.Link.SetPreferred(f.dest, r.ack.Leader)
	}
	return w.OnAck(r.f, r.ack.Last), d, nil
}

// do carries out what a step asks, except cancelling the round, and
// hands proven deliveries to the reporter, in order of their first
// message, once the window acked them: a proof of a batch whose
// predecessor is not yet acked waits for it, as the window does. A
// round that ends drops the proofs still waiting: the window acks
// nothing of it, so the next round resends those batches and gets new
// proofs (every sequence the window acks comes with a proof of its own
// round), and at most a window of batches' proofs wait here.
func (f *Forwarder) do(s Step, d *Delivery, err error, w *Window, rep *AckReporter) {
	if d != nil {
		f.held = append(f.held, *d)
	}
	slices.SortStableFunc(f.held, func(a, b Delivery) int { return cmp.Compare(a.Evidence.First, b.Evidence.First) })
	f.held = slices.DeleteFunc(f.held, func(h Delivery) bool {
		if h.UpTo <= w.Acked() {
			rep.Prove(h)
			return true
		}
		return false
	})
	if s.Abort {
		f.held = nil
	}
	if s.Restored {
		// Resend from its last; Resend gives what we still keep.
		f.log.Warn("destination lost messages it had acknowledged (restored from a backup?); resending them",
			"had_acked", s.HadAcked, "now_acks", w.Acked())
	}
	if s.Recovered {
		f.log.Info("channel recovered", "acked", w.Acked())
	}
	if !s.Failed {
		return
	}
	if h := f.c.Hooks.SendFailed; h != nil {
		h(f.dest)
	}
	switch {
	case Reason(err) != "" && !s.Again:
		f.log.Error("a signature on the link did not hold; will retry", "err", err, "reason", Reason(err), "acked", w.Acked())
	case s.Again:
		f.log.Debug("sending failed again", "err", err, "backoff", w.Backoff())
	default:
		f.log.Warn("sending failed; will retry", "err", err, "acked", w.Acked())
	}
}

// acked is what the store records channel (c.Site, dest, p)'s
// destination acknowledged.
func (c *Config) acked(dest string, p queue.Precedence) uint64 {
	for _, ch := range c.State.Outbound() {
		if ch.Dest == dest && ch.Precedence == p {
			return ch.Acked
		}
	}
	return 0
}

// observe reads the channel's last sequence and whether a channel of
// higher precedence to the same destination has messages not yet
// acknowledged. The channel then holds its own new batches back, so that
// after an outage flash drains first, then immediate, and so on (ACP 121
// precedence).
func (f *Forwarder) observe() (last uint64, held bool) {
	for _, ch := range f.c.State.Outbound() {
		switch {
		case ch.Dest != f.dest:
		case ch.Precedence == f.prec:
			last = ch.Last
		case ch.Precedence < f.prec && ch.Last > ch.Acked:
			held = true
		}
	}
	return last, held
}
