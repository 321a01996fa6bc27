package forward

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Window is the sending state of one outbound channel: what the destination
// has acknowledged, which batches are in flight, whether the channel is
// held back for a higher precedence, and whether it is backing off after a
// failure. It does no I/O, starts no goroutines and reads no clock: its
// driver (Forwarder) feeds it events and does what Next says. Its methods
// are not safe for concurrent use.
//
// A round sends batches from Acked()+1, up to the window's size in flight.
// It ends (Step.Abort) on a failure, a refusal, a gap or a destination
// that went backwards; the results of the batches still in flight are then
// ignored, and once they are all back the next round starts from the
// (possibly lower) ack: at once after a gap, after a backoff otherwise.
//
//	┌─────────┐ ──OnAck: gap, restored──> ┌──────────┐
//	│ sending │ ──OnFailure, Fail───────> │ draining │
//	└─────────┘ <──drained after a gap─── └──────────┘
//	     ▲                                     │ drained after a failure
//	     │                ┌─────────┐          │
//	     └──── Retry ──── │ waiting │ <────────┘
//	                      └─────────┘
type Window struct {
	size     int
	acked    uint64   // highest sequence the destination acknowledged
	next     uint64   // first sequence not yet sent in this round
	last     uint64   // highest sequence the channel holds (OnNew)
	inflight []uint64 // last sequence of each batch in flight, in send order
	firsts   []uint64 // first sequence of each batch in flight
	sentAt   []uint64 // acked when each batch in flight was sent
	ahead    []span   // batches of this round acked before one sent earlier
	held     bool
	phase    phase
	backOff  bool // draining: back off once drained (a failure, not a gap)
	failing  bool // rounds failed since the last ack
	backoff  time.Duration
	min, max time.Duration
}

// span is a range of sequences, first..last.
type span struct{ first, last uint64 }

func (s span) String() string { return fmt.Sprintf("%d..%d", s.first, s.last) }

type phase uint8

const (
	sending  phase = iota
	draining       // a round ended: wait for its batches, ignore their results
	waiting        // backing off after a failure; Retry starts the next round
)

func (p phase) String() string {
	return [...]string{"sending", "draining", "waiting"}[p]
}

// NewWindow returns the state of a channel whose destination has
// acknowledged up to acked, sending up to size batches at a time (at least
// one) and backing off from retryMin, doubling up to retryMax.
func NewWindow(size int, acked uint64, retryMin, retryMax time.Duration) *Window {
	return &Window{size: max(size, 1), acked: acked, next: acked + 1, last: acked,
		backoff: retryMin, min: retryMin, max: max(retryMax, retryMin)}
}

// Action is what the driver does next.
type Action uint8

// Actions, as Next returns them.
const (
	// Idle: nothing to send and nothing in flight; wait until the channel
	// gets new messages (OnNew) or the hold ends (SetHeld).
	Idle Action = iota
	// Send: read the batch after Op.After from the store, send it and tell
	// the window with Sent.
	Send
	// Await: wait for the result of a batch in flight (OnAck, OnFailure).
	Await
	// Backoff: sleep Op.Wait, then call Retry.
	Backoff
)

func (a Action) String() string {
	return [...]string{"idle", "send", "await", "backoff"}[a]
}

// Op is the driver's next step: an Action and its argument.
type Op struct {
	Action Action
	After  uint64        // Send: the batch starts at After+1
	Wait   time.Duration // Backoff: how long to wait
}

func (o Op) String() string {
	switch o.Action {
	case Send:
		return fmt.Sprintf("send after %d", o.After)
	case Backoff:
		return fmt.Sprintf("backoff %v", o.Wait)
	}
	return o.Action.String()
}

// Next says what to do now. It changes nothing: calling it twice gives the
// same answer.
func (w *Window) Next() Op {
	switch {
	case w.phase == waiting:
		return Op{Action: Backoff, Wait: w.backoff}
	case w.phase == sending && !w.held && len(w.inflight) < w.size && w.next <= w.last:
		return Op{Action: Send, After: w.next - 1}
	case len(w.inflight) > 0:
		return Op{Action: Await}
	}
	return Op{Action: Idle}
}

// Flight names a batch in flight; the driver hands it back with the
// batch's result.
type Flight struct {
	Last uint64 // highest sequence in the batch
}

// Sent records that the batch after the last Send's After, up to and
// including last, is now in flight.
func (w *Window) Sent(last uint64) Flight {
	w.inflight = append(w.inflight, last)
	w.firsts = append(w.firsts, w.next)
	w.sentAt = append(w.sentAt, w.acked)
	w.next = max(w.next, last+1)
	return Flight{Last: last}
}

// OnNew tells the window the highest sequence the channel holds. The
// driver also calls it with a Send's After when the store had nothing
// after it, so that it waits for a change instead of asking again.
func (w *Window) OnNew(last uint64) { w.last = last }

// SetHeld holds new batches back (held) while a higher precedence to the
// same destination has messages outstanding, or lets them go; batches in
// flight finish either way.
func (w *Window) SetHeld(held bool) { w.held = held }

// Step is what an event asks of the driver besides the next Op.
type Step struct {
	// Record > 0: the destination newly acknowledged up to Record; commit
	// it (OpDelivered).
	Record uint64
	// Abort: the round ended; cancel the batches still in flight (their
	// results are ignored).
	Abort bool
	// Restored: the destination acknowledged less than the HadAcked it had
	// acknowledged when the batch was sent: it lost state (restored from a
	// backup). The window resends from its new ack.
	Restored bool
	HadAcked uint64
	// Recovered: the first ack after failed rounds; the backoff is reset.
	Recovered bool
	// Failed: a round failed (count it). Again: it was not the first since
	// the last ack.
	Failed, Again bool
}

func (s Step) String() string {
	var out []string
	if s.Record > 0 {
		out = append(out, fmt.Sprintf("record %d", s.Record))
	}
	if s.Restored {
		out = append(out, fmt.Sprintf("restored (had acked %d)", s.HadAcked))
	}
	if s.Recovered {
		out = append(out, "recovered")
	}
	if s.Failed && s.Again {
		out = append(out, "failed again")
	} else if s.Failed {
		out = append(out, "failed")
	}
	if s.Abort {
		out = append(out, "abort")
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, ", ")
}

// take removes f from the batches in flight and reports whether it was
// there, its first sequence and what was acked when it was sent.
func (w *Window) take(f Flight) (first, sentAt uint64, ok bool) {
	i := slices.Index(w.inflight, f.Last)
	if i < 0 {
		return 0, 0, false
	}
	first, sentAt = w.firsts[i], w.sentAt[i]
	w.inflight = slices.Delete(w.inflight, i, i+1)
	w.firsts = slices.Delete(w.firsts, i, i+1)
	w.sentAt = slices.Delete(w.sentAt, i, i+1)
	return first, sentAt, true
}

// advance moves acked over the batches acked ahead that now follow it.
func (w *Window) advance() {
	for moved := true; moved; {
		moved = false
		for i, a := range w.ahead {
			if a.first <= w.acked+1 {
				w.acked = max(w.acked, a.last)
				w.ahead = slices.Delete(w.ahead, i, i+1)
				moved = true
				break
			}
		}
	}
}

// OnAck takes the destination's answer to batch f: it has applied its
// channel up to ackLast (cumulative). The ack counts for f's own messages
// only, up to ackLast: its delivery proof covers no others, and every
// message is recorded delivered with its proof. So the window acks a
// batch once the batches before it are acked too (an answer that
// overtook an earlier one waits for it), and a round that ends before
// then resends the batches whose own answer did not count.
//
// An ack below what the destination had acknowledged when f was sent
// means it was restored; an ack below f.Last means it stopped at a gap (a
// batch it has not seen yet). Either ends the round and the next one
// resends from the window's ack at once. An ack for a batch not in flight
// (or while draining) changes nothing.
func (w *Window) OnAck(f Flight, ackLast uint64) Step {
	first, sentAt, ok := w.take(f)
	if !ok {
		return Step{}
	}
	if w.phase == draining {
		w.drained()
		return Step{}
	}
	if ackLast < sentAt {
		w.acked = ackLast
		return w.abort(false, Step{Restored: true, HadAcked: sentAt})
	}
	var s Step
	if held := min(ackLast, f.Last); held >= first {
		w.ahead = append(w.ahead, span{first, held})
	}
	before := w.acked
	w.advance()
	if w.acked > before {
		s.Record = w.acked
	}
	if w.failing {
		w.failing = false
		w.backoff = w.min
		s.Recovered = true
	}
	if ackLast < f.Last {
		return w.abort(false, s)
	}
	return s
}

// OnFailure takes a failed send of batch f (an error or a refusal): the
// round ends and the next one starts after a backoff.
func (w *Window) OnFailure(f Flight) Step {
	if _, _, ok := w.take(f); !ok {
		return Step{}
	}
	if w.phase == draining {
		w.drained()
		return Step{}
	}
	return w.Fail()
}

// Fail ends the round for a failure not tied to a batch (the store could
// not be read); the next one starts after a backoff. While draining or
// backing off it changes nothing.
func (w *Window) Fail() Step {
	if w.phase != sending {
		return Step{}
	}
	s := Step{Failed: true, Again: w.failing}
	w.failing = true
	return w.abort(true, s)
}

func (w *Window) abort(backOff bool, s Step) Step {
	s.Abort = true
	w.phase = draining
	w.backOff = backOff
	w.drained()
	return s
}

// drained moves on once no batch of an ended round is in flight.
func (w *Window) drained() {
	if w.phase != draining || len(w.inflight) > 0 {
		return
	}
	if w.backOff {
		w.phase = waiting
		return
	}
	w.restart()
}

// Retry ends a backoff: the next round starts from the last ack, and the
// next backoff is twice as long (up to the maximum).
func (w *Window) Retry() {
	if w.phase != waiting {
		return
	}
	w.backoff = min(w.backoff*2, w.max)
	w.restart()
}

func (w *Window) restart() {
	w.phase = sending
	w.next = w.acked + 1
	w.ahead = nil
}

// Acked is the highest sequence the destination acknowledged.
func (w *Window) Acked() uint64 { return w.acked }

// Backoff is how long the next backoff lasts.
func (w *Window) Backoff() time.Duration { return w.backoff }

// InFlight is the number of batches sent whose result has not come back.
func (w *Window) InFlight() int { return len(w.inflight) }

// String shows the state, for transcripts and logs.
func (w *Window) String() string {
	s := fmt.Sprintf("%s acked=%d next=%d last=%d inflight=%v", w.phase, w.acked, w.next, w.last, w.inflight)
	if len(w.ahead) > 0 {
		s += fmt.Sprintf(" ahead=%v", w.ahead)
	}
	if w.held {
		s += " held"
	}
	if w.failing {
		s += " failing"
	}
	return s + fmt.Sprintf(" backoff=%v", w.backoff)
}
