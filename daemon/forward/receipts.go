package forward

import (
	"context"
	"fmt"
	"time"

	"github.com/hotline-link/hotline/internal/ctxsleep"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
)

// maxReceipts is the most receipts one batch carries.
const maxReceipts = 1000

// ReceiptSender carries read receipts for messages that origin sent us
// back to origin, and drops them (OpReceiptsAcked) once origin
// acknowledged them. One batch is in flight at a time.
type ReceiptSender struct {
	c      *Config
	origin string
}

// NewReceiptSender returns the sender of receipts to origin.
func NewReceiptSender(c *Config, origin string) *ReceiptSender {
	return &ReceiptSender{c: c, origin: origin}
}

// Run sends receipts until ctx ends. A restored receipt queue first learns
// origin's last applied receipt (resync).
func (s *ReceiptSender) Run(ctx context.Context) {
	c := s.c
	backoff := c.RetryMin
	if !s.resync(ctx) {
		return
	}
	for ctx.Err() == nil {
		changed := c.State.Changed()
		var acked uint64
		for _, q := range c.State.ReceiptQueues() {
			if q.Origin == s.origin {
				acked = q.Acked
			}
		}
		rs, err := c.State.PendingReceipts(s.origin, acked, maxReceipts)
		if err == nil && len(rs) == 0 {
			select {
			case <-changed:
			case <-ctx.Done():
			}
			continue
		}
		if err == nil {
			err = s.send(ctx, rs)
		}
		if err == nil {
			backoff = c.RetryMin
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if Reason(err) != "" && backoff == c.RetryMin {
			c.logger().Error("a signature on the link did not hold; will retry", "origin", s.origin, "err", err, "reason", Reason(err))
		} else {
			c.logger().Debug("sending receipts failed; will retry", "origin", s.origin, "err", err)
		}
		if ctxsleep.Sleep(ctx, backoff) != nil {
			return
		}
		backoff = min(backoff*2, c.RetryMax)
	}
}

func (s *ReceiptSender) send(ctx context.Context, rs []queue.Receipt) error {
	c := s.c
	sctx, cancel := context.WithTimeout(ctx, c.SendTimeout)
	defer cancel()
	b := &transport.Batch{Kind: transport.BatchReceipts, From: c.Site, To: s.origin, Receipts: rs}
	if _, err := c.Notary.Sign(b, time.Now().UnixNano()); err != nil {
		return err
	}
	ack, err := c.Link.SendBatch(sctx, b)
	if err != nil {
		return err
	}
	if err := c.refused(s.origin, ack); err != nil {
		c.untrusted(s.origin, false, err)
		return fmt.Errorf("%s refused receipts: %w", s.origin, err)
	}
	if ack.Last < rs[0].RSeq {
		return fmt.Errorf("%s acked receipts only up to %d", s.origin, ack.Last)
	}
	pctx, pcancel := context.WithTimeout(ctx, c.SubmitTimeout)
	defer pcancel()
	_, err = c.Log.Propose(pctx, &queue.Command{Op: queue.OpReceiptsAcked, Time: time.Now().UnixNano(),
		ReceiptsAcked: &queue.ReceiptsAcked{Origin: s.origin, UpTo: ack.Last}})
	return err
}
