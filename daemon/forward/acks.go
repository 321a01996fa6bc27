package forward

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// AckReporter commits a channel's proofs of delivery (OpDelivered) in the
// background, so that a slow commit never holds the Forwarder up. Each
// commit is ONE command with every waiting proof that continues the
// delivered run recorded on the site's log, sorted by their first
// message (the first starts at most at the recorded sequence + 1, each
// next at most one past the end of the one before), up to
// queue.MaxDeliveredProofs, with UpTo the end of that run. So no message
// is ever recorded delivered without its proof, proofs are committed in
// order however their acks arrived, and however many arrive during one
// commit the next takes them all (one Raft round trip, not one per
// proof). A proof that does not continue the run waits for the one
// before it; one the recorded run already covers is dropped (its
// messages hold their proof). No other proof is ever dropped.
//
// What waits is bounded by the forwarder: it hands a proof over only
// once its window acknowledged the batch and every batch before it, so
// the waiting proofs continue one another, and it sends no new batch
// while maxBacklog of them wait (Backlog).
type AckReporter struct {
	c    *Config
	dest string
	prec queue.Precedence

	mu     sync.Mutex
	proofs []Delivery // proven deliveries not yet committed; guarded by mu

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

// ackRetry is the pause after a failed proposal of an ack.
const ackRetry = 200 * time.Millisecond

// maxBacklog is how many proofs may wait before the forwarder sends no
// new batch: one command's worth.
const maxBacklog = queue.MaxDeliveredProofs

// NewAckReporter starts the reporter of channel (c.Site, dest, prec).
// Call Stop when done.
func NewAckReporter(c *Config, dest string, prec queue.Precedence) *AckReporter {
	r := &AckReporter{c: c, dest: dest, prec: prec,
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

// Prove asks for a proven delivery to be recorded with its evidence. It
// never blocks.
func (r *AckReporter) Prove(d Delivery) {
	r.mu.Lock()
	r.proofs = append(r.proofs, d)
	r.mu.Unlock()
	r.poke()
}

// Backlog is the number of proofs waiting to be committed.
func (r *AckReporter) Backlog() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.proofs)
}

func (r *AckReporter) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run drops the proofs the recorded run (up to done) covers and returns
// those that continue it, in order, at most queue.MaxDeliveredProofs
// (none: nothing to commit now), and the end of the run they make.
func (r *AckReporter) run(done uint64) ([]queue.DeliveredProof, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.proofs = slices.DeleteFunc(r.proofs, func(d Delivery) bool { return d.UpTo <= done })
	slices.SortStableFunc(r.proofs, func(a, b Delivery) int {
		return cmp.Or(cmp.Compare(a.Evidence.First, b.Evidence.First), cmp.Compare(b.UpTo, a.UpTo))
	})
	var out []queue.DeliveredProof
	end := done
	for _, d := range r.proofs {
		switch {
		case len(out) == queue.MaxDeliveredProofs || d.Evidence.First > end+1:
			return out, end
		case d.UpTo > end: // else the run's proofs cover it: it goes next time
			out = append(out, queue.DeliveredProof{Evidence: d.Evidence, Sent: d.Sent})
			end = d.UpTo
		}
	}
	return out, end
}

// recorded is what the log records the destination holds: done, or more
// if the state says so.
func (r *AckReporter) recorded(done uint64) uint64 {
	if r.c.State == nil {
		return done
	}
	return max(done, r.c.acked(r.dest, r.prec))
}

func (r *AckReporter) loop() {
	defer close(r.done)
	done := r.recorded(0)
	for {
		select {
		case <-r.wake:
		case <-r.quit:
			return
		}
		for {
			done = r.recorded(done)
			ps, upTo := r.run(done)
			if len(ps) == 0 {
				break
			}
			select {
			case <-r.quit:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(r.c.background(), r.c.SubmitTimeout)
			_, err := r.c.Log.Propose(ctx, &queue.Command{Op: queue.OpDelivered, Time: time.Now().UnixNano(),
				Delivered: &queue.DeliveredCmd{Dest: r.dest, Precedence: r.prec, UpTo: upTo, Proofs: ps}})
			cancel()
			if err != nil {
				r.c.logger().Warn("recording delivery failed", "dest", r.dest, "precedence", r.prec, "up_to", upTo, "err", err)
				select {
				case <-time.After(ackRetry):
					continue
				case <-r.quit:
					return
				}
			}
			if h := r.c.Hooks.Delivered; h != nil {
				h(upTo - done)
			}
			done = upTo
		}
	}
}

// Stop waits for the reporter to finish its current proposal; proofs
// not yet proposed are dropped (the next leader resends those messages,
// and the destination drops what it has, proving again that it holds
// them).
func (r *AckReporter) Stop() {
	close(r.quit)
	<-r.done
}
