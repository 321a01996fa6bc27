package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
)

// startLeaderDuties starts, under ctx, the work only the leader does: one
// forwarder per outbound channel (so a higher precedence never waits behind
// a lower one), one receipt sender per remote site, expiry and purge, link
// tests, and the hand-off of leadership when this node loses every path.
func startLeaderDuties(n *Node) *leaderDuties {
	ctx, cancel := context.WithCancel(n.ctx)
	d := &leaderDuties{cancel: cancel}
	wg := &d.wg
	for _, site := range n.cfg.remoteSites() {
		for _, p := range queue.Precedences {
			f := &channelForwarder{n: n, dest: site, prec: p}
			wg.Add(1)
			go func() { defer wg.Done(); f.run(ctx) }()
		}
		r := &receiptSender{n: n, origin: site}
		wg.Add(1)
		go func() { defer wg.Done(); r.run(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); n.expireLoop(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); n.purgeLoop(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); n.linkTestLoop(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); n.handoffLoop(ctx) }()
	return d
}

// leaderDuties is the running leader-only work.
type leaderDuties struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// stop cancels the duties and waits for them; nil-safe.
func (d *leaderDuties) stop() {
	if d == nil {
		return
	}
	d.cancel()
	d.wg.Wait()
}

// channelForwarder sends one outbound channel's committed messages to the
// destination site, keeping up to Link.Window batches in flight, until
// they are acknowledged. It sends nothing new while a higher precedence to
// the same site has messages outstanding. Any failure resends from the last ack: the
// destination drops what it already has, so resending is always safe.
type channelForwarder struct {
	n    *Node
	dest string
	prec queue.Precedence
}

type sendResult struct {
	last  uint64 // highest sequence in the batch
	acked uint64 // what the destination had acknowledged when it was sent
	ack   *transport.Ack
	err   error
}

func (f *channelForwarder) acked() uint64 {
	for _, c := range f.n.store.Outbound() {
		if c.Dest == f.dest && c.Precedence == f.prec {
			return c.Acked
		}
	}
	return 0
}

func (f *channelForwarder) run(ctx context.Context) {
	cfg := f.n.cfg.Link
	log := f.n.log.With("channel", queue.Channel{Origin: f.n.cfg.Site, Dest: f.dest, Precedence: f.prec}.String())
	rep := newAckReporter(f.n, f.dest, f.prec)
	defer rep.stop()
	if !f.resync(ctx) { // backup.go: a restored channel learns the destination's last first
		return
	}
	acked := f.acked()
	backoff := cfg.RetryMin.Duration
	failing := false
	for ctx.Err() == nil {
		// One round: pipeline batches from acked+1 until a failure.
		roundCtx, cancel := context.WithCancel(ctx)
		results := make(chan sendResult, cfg.Window)
		var inflight []uint64 // last seq of each batch in flight, in order
		next := acked + 1
		var roundErr error
		for roundErr == nil && ctx.Err() == nil {
			held := f.higherPending()
			for !held && len(inflight) < cfg.Window {
				msgs, err := f.n.store.Resend(f.dest, f.prec, next-1, cfg.BatchMessages, cfg.BatchBytes)
				if err != nil {
					roundErr = err
					break
				}
				if len(msgs) == 0 {
					break
				}
				last := msgs[len(msgs)-1].Seq
				inflight = append(inflight, last)
				next = last + 1
				b := &transport.Batch{Kind: transport.BatchMessages, From: f.n.cfg.Site, To: f.dest, Precedence: f.prec, Messages: msgs}
				sentAcked := acked
				go func() {
					sctx, scancel := context.WithTimeout(roundCtx, cfg.SendTimeout.Duration)
					defer scancel()
					ack, err := f.n.link.SendBatch(sctx, b)
					results <- sendResult{last: last, acked: sentAcked, ack: ack, err: err}
				}()
			}
			if roundErr != nil {
				break
			}
			if len(inflight) == 0 {
				changed := f.n.store.Changed()
				if held = f.higherPending(); !held {
					if msgs, _ := f.n.store.Pending(f.dest, f.prec, next-1, 1, 1); len(msgs) > 0 {
						continue
					}
				}
				select {
				case <-changed:
				case <-ctx.Done():
				}
				continue
			}
			r := <-results
			inflight = removeSeq(inflight, r.last)
			switch {
			case r.err != nil:
				roundErr = r.err
			case r.ack.Error != "":
				f.n.redirect(f.dest, r.ack)
				roundErr = fmt.Errorf("%s refused batch: %s", f.dest, r.ack.Error)
			default:
				if r.ack.Leader != "" {
					f.n.link.SetPreferred(f.dest, r.ack.Leader)
				}
				if r.ack.Last < r.acked {
					// The destination acknowledges less than it had before the
					// batch was sent: it lost state (restored from a backup).
					// Resend from its last; Resend gives what we still keep.
					log.Warn("destination lost messages it had acknowledged (restored from a backup?); resending them",
						"had_acked", r.acked, "now_acks", r.ack.Last)
					acked = r.ack.Last
					roundErr = errGap
					break
				}
				if r.ack.Last > acked {
					acked = r.ack.Last
					rep.report(acked)
				}
				if failing {
					log.Info("channel recovered", "acked", acked)
					failing = false
					backoff = cfg.RetryMin.Duration
				}
				if r.ack.Last < r.last {
					// The destination stopped at a gap (a batch it has not
					// seen yet): resend from its ack.
					roundErr = errGap
				}
			}
		}
		cancel()
		for range inflight {
			<-results
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(roundErr, errGap) {
			continue
		}
		f.n.metrics.sendFailures.WithLabelValues(f.dest).Inc()
		if !failing {
			log.Warn("sending failed; will retry", "err", roundErr, "acked", acked)
			failing = true
		} else {
			log.Debug("sending failed again", "err", roundErr, "backoff", backoff)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, cfg.RetryMax.Duration)
	}
}

var errGap = errors.New("destination reported a gap")

// redirect points the next send to site at the leader a refusing node
// named; a node that was starting or stopping and named none is no
// longer preferred. Either way the caller retries: every send is safe to
// repeat.
func (n *Node) redirect(site string, ack *transport.Ack) {
	switch {
	case ack.Leader != "":
		n.link.SetPreferred(site, ack.Leader)
	case retryableText(ack.Error):
		n.link.SetPreferred(site, "")
	}
}

// higherPending reports whether a channel of higher precedence to the same
// destination has messages not yet acknowledged. A channel then holds its
// own new batches back (those in flight finish), so that after an outage
// flash drains first, then immediate, and so on (ACP 121 precedence).
func (f *channelForwarder) higherPending() bool {
	if f.prec == queue.Precedences[0] {
		return false
	}
	for _, c := range f.n.store.Outbound() {
		if c.Dest == f.dest && c.Precedence < f.prec && c.Last > c.Acked {
			return true
		}
	}
	return false
}

func removeSeq(s []uint64, v uint64) []uint64 {
	for i, x := range s {
		if x == v {
			return append(s[:i], s[i+1:]...)
		}
	}
	return s
}

// ackReporter commits the destination's acks (OpDelivered) in the
// background, coalescing: only the newest ack matters.
type ackReporter struct {
	n    *Node
	dest string
	prec queue.Precedence
	mu   sync.Mutex
	want uint64
	wake chan struct{}
	quit chan struct{}
	done chan struct{}
}

func newAckReporter(n *Node, dest string, p queue.Precedence) *ackReporter {
	r := &ackReporter{n: n, dest: dest, prec: p, wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go r.loop()
	return r
}

func (r *ackReporter) report(upTo uint64) {
	r.mu.Lock()
	r.want = max(r.want, upTo)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *ackReporter) loop() {
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
		ctx, cancel := context.WithTimeout(r.n.ctx, r.n.cfg.SubmitTimeout.Duration)
		_, err := r.n.propose(ctx, &queue.Command{Op: queue.OpDelivered, Time: time.Now().UnixNano(),
			Delivered: &queue.DeliveredCmd{Dest: r.dest, Precedence: r.prec, UpTo: want}})
		cancel()
		if err != nil {
			r.n.log.Warn("recording delivery failed", "dest", r.dest, "precedence", r.prec, "up_to", want, "err", err)
			r.report(want) // try again
			select {
			case <-time.After(200 * time.Millisecond):
			case <-r.quit:
				return
			}
			continue
		}
		r.n.metrics.delivered.Add(float64(want - done))
		done = want
	}
}

// stop waits for the reporter to finish its current proposal.
func (r *ackReporter) stop() {
	close(r.quit)
	<-r.done
}

// receiptSender carries read receipts for messages that origin sent us
// back to origin, and drops them once origin acknowledged them.
type receiptSender struct {
	n      *Node
	origin string
}

func (s *receiptSender) run(ctx context.Context) {
	cfg := s.n.cfg.Link
	backoff := cfg.RetryMin.Duration
	if !s.resync(ctx) { // backup.go
		return
	}
	for ctx.Err() == nil {
		changed := s.n.store.Changed()
		var acked uint64
		for _, q := range s.n.store.ReceiptQueues() {
			if q.Origin == s.origin {
				acked = q.Acked
			}
		}
		rs, err := s.n.store.PendingReceipts(s.origin, acked, 1000)
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
			backoff = cfg.RetryMin.Duration
			continue
		}
		if ctx.Err() != nil {
			return
		}
		s.n.log.Debug("sending receipts failed; will retry", "origin", s.origin, "err", err)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, cfg.RetryMax.Duration)
	}
}

func (s *receiptSender) send(ctx context.Context, rs []queue.Receipt) error {
	sctx, cancel := context.WithTimeout(ctx, s.n.cfg.Link.SendTimeout.Duration)
	defer cancel()
	ack, err := s.n.link.SendBatch(sctx, &transport.Batch{Kind: transport.BatchReceipts, From: s.n.cfg.Site, To: s.origin, Receipts: rs})
	if err != nil {
		return err
	}
	if ack.Error != "" {
		s.n.redirect(s.origin, ack)
		return fmt.Errorf("%s refused receipts: %s", s.origin, ack.Error)
	}
	if ack.Last < rs[0].RSeq {
		return fmt.Errorf("%s acked receipts only up to %d", s.origin, ack.Last)
	}
	pctx, pcancel := context.WithTimeout(ctx, s.n.cfg.SubmitTimeout.Duration)
	defer pcancel()
	_, err = s.n.propose(pctx, &queue.Command{Op: queue.OpReceiptsAcked, Time: time.Now().UnixNano(),
		ReceiptsAcked: &queue.ReceiptsAcked{Origin: s.origin, UpTo: ack.Last}})
	return err
}

// expireLoop proposes expiry when a queued message's TTL has run out.
func (n *Node) expireLoop(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		if next := n.store.NextExpiry(); next == 0 || next > now {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, n.cfg.SubmitTimeout.Duration)
		res, err := n.propose(pctx, &queue.Command{Op: queue.OpExpire, Time: now})
		cancel()
		if err == nil && res.Expire != nil && res.Expire.Expired > 0 {
			n.log.Warn("messages expired before delivery", "count", res.Expire.Expired)
		}
	}
}

// purgeLoop deletes messages that reached a final state (delivered, read,
// expired) longer ago than the retention period, in bounded steps.
func (n *Node) purgeLoop(ctx context.Context) {
	wait := 10 * time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		before := time.Now().Add(-n.cfg.Retention.Duration).UnixNano()
		pctx, cancel := context.WithTimeout(ctx, n.cfg.SubmitTimeout.Duration)
		res, err := n.propose(pctx, &queue.Command{Op: queue.OpPurge, Time: time.Now().UnixNano(), Purge: &queue.Purge{Before: before}})
		cancel()
		wait = time.Minute
		if err != nil {
			n.log.Warn("purging old messages failed; will retry", "err", err)
			continue
		}
		if res.Purge != nil && res.Purge.Purged > 0 {
			n.log.Info("purged messages past retention", "count", res.Purge.Purged, "retention", n.cfg.Retention)
		}
		if res.Purge != nil && res.Purge.More {
			wait = time.Second
		}
	}
}
