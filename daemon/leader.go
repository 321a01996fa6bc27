package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/hotline-link/hotline/daemon/forward"
	"github.com/hotline-link/hotline/queue"
)

// startLeaderDuties starts, under ctx, the work only the leader does:
// forwarding (package forward: a forwarder per outbound channel, a receipt
// sender per remote site), expiry and purge, link tests, the hand-off
// of leadership when this node loses every path, and raising the site
// version (siteversion.go).
func startLeaderDuties(n *Node) *leaderDuties {
	ctx, cancel := context.WithCancel(n.ctx)
	d := &leaderDuties{cancel: cancel}
	wg := &d.wg
	fc := n.forwardConfig()
	wg.Go(func() { forward.Run(ctx, fc) })
	wg.Go(func() { n.expireLoop(ctx) })
	wg.Go(func() { n.purgeLoop(ctx) })
	wg.Go(func() { n.linkHealth.testLoop(ctx) })
	wg.Go(func() { n.linkHealth.handoffLoop(ctx) })
	wg.Go(func() { n.audit.loop(ctx) }) // audit_exchange.go
	wg.Go(func() { n.siteVersionLoop(ctx) })
	return d
}

// forwardConfig wires forwarding to this node: its link, its log, its
// store, its metrics.
func (n *Node) forwardConfig() *forward.Config {
	l := n.cfg.Link
	return &forward.Config{
		Site:          n.cfg.Site,
		Remote:        n.cfg.remoteSites(),
		Window:        l.Window,
		BatchMessages: l.BatchMessages,
		BatchBytes:    l.BatchBytes,
		RetryMin:      l.RetryMin.Duration,
		RetryMax:      l.RetryMax.Duration,
		SendTimeout:   l.SendTimeout.Duration,
		SubmitTimeout: n.cfg.SubmitTimeout.Duration,
		Link:          n.link,
		Log:           forward.ProposeFunc(n.propose),
		State:         n.store,
		Notary:        n.notary(),
		Codes:         callCodes,
		Retryable:     retryable,
		Background:    n.ctx,
		Logger:        n.log,
		Hooks: forward.Hooks{
			SendFailed: func(dest string) { n.metrics.sendFailures.WithLabelValues(dest).Inc() },
			Delivered:  func(k uint64) { n.metrics.delivered.Add(float64(k)) },
			Untrusted:  n.untrustedHook,
		},
	}
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
