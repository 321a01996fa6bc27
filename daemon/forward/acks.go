package forward

import (
	"context"
	"sync"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// AckReporter commits a channel's acks (OpDelivered) in the background,
// so that a slow commit never holds the Forwarder up. Each proven
// delivery (Prove: the destination's signed proof and our own statement
// of the batch) is committed as it came, in order, so that every message
// keeps its proofs; plain acks (Report) coalesce: only the newest
// matters. At most maxProofs proven deliveries wait; beyond that the
// oldest is dropped, with a warning (its messages are recorded delivered
// by the newer ack, without their proof).
type AckReporter struct {
	c    *Config
	dest string
	prec queue.Precedence

	mu     sync.Mutex
	want   uint64     // the highest ack reported; guarded by mu
	proofs []Delivery // proven deliveries not yet committed, oldest first; guarded by mu

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

// ackRetry is the pause after a failed proposal of an ack.
const ackRetry = 200 * time.Millisecond

// maxProofs bounds the proven deliveries waiting to be committed: a few
// windows' worth of batches.
const maxProofs = 64

// NewAckReporter starts the reporter of channel (c.Site, dest, prec).
// Call Stop when done.
func NewAckReporter(c *Config, dest string, prec queue.Precedence) *AckReporter {
	r := &AckReporter{c: c, dest: dest, prec: prec,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// Report asks for the destination's ack up to upTo to be recorded. It
// never blocks.
func (r *AckReporter) Report(upTo uint64) {
	r.mu.Lock()
	r.want = max(r.want, upTo)
	r.mu.Unlock()
	r.poke()
}

// Prove asks for a proven delivery to be recorded with its evidence. It
// never blocks.
func (r *AckReporter) Prove(d Delivery) {
	r.mu.Lock()
	if len(r.proofs) == maxProofs {
		old := r.proofs[0]
		r.proofs = r.proofs[1:]
		r.c.logger().Warn("recording delivery proofs falls behind; dropped the oldest (its messages stay recorded delivered, without their proof)",
			"dest", r.dest, "precedence", r.prec, "up_to", old.UpTo)
	}
	r.proofs = append(r.proofs, d)
	r.want = max(r.want, d.UpTo)
	r.mu.Unlock()
	r.poke()
}

func (r *AckReporter) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// next is the command to commit next: the oldest proven delivery, else
// the newest ack if it is beyond done; ok is false if there is none.
func (r *AckReporter) next(done uint64) (d Delivery, proven, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.proofs) > 0 {
		return r.proofs[0], true, true
	}
	return Delivery{UpTo: r.want}, false, r.want > done
}

// committed drops d, the oldest proven delivery unless Prove dropped it
// meanwhile.
func (r *AckReporter) committed(d Delivery) {
	r.mu.Lock()
	if len(r.proofs) > 0 && r.proofs[0].Evidence == d.Evidence {
		r.proofs = r.proofs[1:]
	}
	r.mu.Unlock()
}

func (r *AckReporter) loop() {
	defer close(r.done)
	var done uint64
	for {
		select {
		case <-r.wake:
		case <-r.quit:
			return
		}
		for {
			d, proven, ok := r.next(done)
			if !ok {
				break
			}
			select {
			case <-r.quit:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(r.c.background(), r.c.SubmitTimeout)
			_, err := r.c.Log.Propose(ctx, &queue.Command{Op: queue.OpDelivered, Time: time.Now().UnixNano(),
				Delivered: &queue.DeliveredCmd{Dest: r.dest, Precedence: r.prec, UpTo: d.UpTo, Evidence: d.Evidence, Sent: d.Sent}})
			cancel()
			if err != nil {
				r.c.logger().Warn("recording delivery failed", "dest", r.dest, "precedence", r.prec, "up_to", d.UpTo, "err", err)
				select {
				case <-time.After(ackRetry):
					continue
				case <-r.quit:
					return
				}
			}
			if proven {
				r.committed(d)
			}
			if d.UpTo > done {
				if h := r.c.Hooks.Delivered; h != nil {
					h(d.UpTo - done)
				}
				done = d.UpTo
			}
		}
	}
}

// Stop waits for the reporter to finish its current proposal; acks
// reported but not yet proposed are dropped (the next leader resends
// those messages, and the destination drops what it has, proving again
// that it holds them).
func (r *AckReporter) Stop() {
	close(r.quit)
	<-r.done
}
