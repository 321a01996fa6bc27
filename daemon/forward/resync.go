package forward

import (
	"context"
	"fmt"
	"time"

	"github.com/hotline-link/hotline/internal/ctxsleep"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
)

// A site restored from a backup has its outbound channels and receipt
// queues fenced (queue.RestoreBackup): it may have given out sequence
// numbers after the backup that the other site already has. Before
// sending, each fenced channel asks the other site where it is (an empty
// batch; the ack's Last is its last applied) and commits that, which lifts
// the fence; new messages then continue after it.

// resync waits until the forwarder's channel is not fenced: it asks the
// destination for its last sequence number and commits it (OpDelivered),
// retrying with backoff. It returns false when ctx ends.
func (f *Forwarder) resync(ctx context.Context) bool {
	c := f.c
	return resyncLoop(ctx, c,
		func() bool { return c.State.OutFenced(f.dest, f.prec) },
		&transport.Batch{Kind: transport.BatchMessages, From: c.Site, To: f.dest, Precedence: f.prec},
		func(last uint64) *queue.Command {
			return &queue.Command{Op: queue.OpDelivered, Time: time.Now().UnixNano(),
				Delivered: &queue.DeliveredCmd{Dest: f.dest, Precedence: f.prec, UpTo: last}}
		},
		func(last uint64) {
			c.logger().Warn("restored channel resynchronised: sequence numbers continue after the destination's last",
				"dest", f.dest, "precedence", f.prec, "last", last)
		},
		func(err error) {
			c.logger().Debug("resynchronising a restored channel failed; will retry", "dest", f.dest, "precedence", f.prec, "err", err)
		})
}

// resync waits until the receipt queue to s.origin is not fenced: it asks
// origin for the last receipt it applied and commits it
// (OpReceiptsAcked), retrying with backoff. It returns false when ctx
// ends.
func (s *ReceiptSender) resync(ctx context.Context) bool {
	c := s.c
	return resyncLoop(ctx, c,
		func() bool { return c.State.ReceiptsFenced(s.origin) },
		&transport.Batch{Kind: transport.BatchReceipts, From: c.Site, To: s.origin},
		func(last uint64) *queue.Command {
			return &queue.Command{Op: queue.OpReceiptsAcked, Time: time.Now().UnixNano(),
				ReceiptsAcked: &queue.ReceiptsAcked{Origin: s.origin, UpTo: last}}
		},
		func(uint64) {},
		func(err error) {
			c.logger().Debug("resynchronising restored receipts failed; will retry", "origin", s.origin, "err", err)
		})
}

// resyncLoop sends the empty batch probe and commits cmd(ack.Last) while
// fenced says so, backing off between failures; done and failed report.
// It returns false when ctx ends.
func resyncLoop(ctx context.Context, c *Config, fenced func() bool, probe *transport.Batch,
	cmd func(last uint64) *queue.Command, done func(last uint64), failed func(error)) bool {
	backoff := c.RetryMin
	for fenced() {
		err := func() error {
			sctx, cancel := context.WithTimeout(ctx, c.SendTimeout)
			defer cancel()
			ack, err := c.Link.SendBatch(sctx, probe)
			if err != nil {
				return err
			}
			if err := c.refused(probe.To, ack); err != nil {
				return fmt.Errorf("%s refused: %w", probe.To, err)
			}
			pctx, pcancel := context.WithTimeout(ctx, c.SubmitTimeout)
			defer pcancel()
			if _, err := c.Log.Propose(pctx, cmd(ack.Last)); err != nil {
				return err
			}
			done(ack.Last)
			return nil
		}()
		if ctx.Err() != nil {
			return false
		}
		if err != nil {
			failed(err)
			if ctxsleep.Sleep(ctx, backoff) != nil {
				return false
			}
			backoff = min(backoff*2, c.RetryMax)
		}
	}
	return ctx.Err() == nil
}
