package forward

import (
	"context"
	"sync"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// AckReporter commits a channel's acks (OpDelivered) in the background,
// coalescing: only the newest ack matters, so a slow commit never holds
// the Forwarder up and never queues more than one proposal.
type AckReporter struct {
	c    *Config
	dest string
	prec queue.Precedence

	mu   sync.Mutex
	want uint64 // the highest ack reported; guarded by mu

	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

// ackRetry is the pause after a failed proposal of an ack.
const ackRetry = 200 * time.Millisecond

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
	select {
	case r.wake <- struct{}{}:
	default:
	}
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
		r.mu.Lock()
		want := r.want
		r.mu.Unlock()
		if want <= done {
			continue
		}
		ctx, cancel := context.WithTimeout(r.c.background(), r.c.SubmitTimeout)
		_, err := r.c.Log.Propose(ctx, &queue.Command{Op: queue.OpDelivered, Time: time.Now().UnixNano(),
			Delivered: &queue.DeliveredCmd{Dest: r.dest, Precedence: r.prec, UpTo: want}})
		cancel()
		if err != nil {
			r.c.logger().Warn("recording delivery failed", "dest", r.dest, "precedence", r.prec, "up_to", want, "err", err)
			r.Report(want) // try again
			select {
			case <-time.After(ackRetry):
			case <-r.quit:
				return
			}
			continue
		}
		if h := r.c.Hooks.Delivered; h != nil {
			h(want - done)
		}
		done = want
	}
}

// Stop waits for the reporter to finish its current proposal; acks
// reported but not yet proposed are dropped (the next leader resends
// those messages, and the destination drops what it has).
func (r *AckReporter) Stop() {
	close(r.quit)
	<-r.done
}
