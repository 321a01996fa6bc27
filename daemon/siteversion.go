package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// The site version is the feature gate of a site that runs mixed builds
// during a rolling upgrade (as etcd's cluster version): a build proposes
// a kind of command that an older build does not understand only once the
// site version says every node understands it. It is replicated state
// (queue.Store.SiteVersion, 1 until raised); the leader raises it to
// queue.MaxSiteVersion once every server of the site's Raft configuration
// speaks hotline-raft/N with N at least that version, which it learns from
// the protocol each of its Raft connections negotiated
// (consensus.Node.PeerProtocol). Raising it to 2 moves the state file to
// format 8 and the command is a log entry of format 6, both of which the
// previous release (0.1.0) refuses: that is the point after which a node
// can no longer go back to it (README, Upgrading a site).

// siteVersionEvery is how often the leader checks whether it can raise the
// site version.
const siteVersionEvery = 2 * time.Second

// siteVersionLoop raises the site version on the leader once every server
// speaks a protocol that understands it, and records why not otherwise
// (siteVersionWait, for status). It returns when the version is this
// build's highest, or when ctx ends (leadership lost).
func (n *Node) siteVersionLoop(ctx context.Context) {
	defer n.siteWait.Store(nil)
	logged := ""
	t := time.NewTicker(siteVersionEvery)
	defer t.Stop()
	for {
		if n.store.SiteVersion() >= queue.MaxSiteVersion {
			return
		}
		wait := n.siteVersionLaggards()
		if wait == "" {
			if err := n.raiseSiteVersion(ctx); err != nil {
				wait = fmt.Sprintf("its raise to be committed (%v)", err)
				n.siteWait.Store(&wait)
			}
		} else {
			n.siteWait.Store(&wait)
			if wait != logged {
				n.log.Info("site version stays below this build's until every node runs a build that speaks it", "site_version", n.store.SiteVersion(), "want", queue.MaxSiteVersion, "waiting_for", wait)
				logged = wait
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// siteVersionLaggards names the servers of the Raft configuration that do
// not speak hotline-raft/MaxSiteVersion as this leader's open connections
// to each negotiated it, or to which it holds none ("" when every one
// does).
func (n *Node) siteVersionLaggards() string {
	members, err := n.raft.Members()
	if err != nil {
		return fmt.Sprintf("the Raft configuration (%v)", err)
	}
	var behind []string
	for _, m := range members {
		if m.ID == n.cfg.Node {
			continue
		}
		v, _, ok := n.raft.PeerProtocol(m.Addr)
		switch {
		case !ok:
			behind = append(behind, m.ID+" (no connection from this leader)")
		case uint64(v) < queue.MaxSiteVersion:
			behind = append(behind, fmt.Sprintf("%s (hotline-raft/%d)", m.ID, v))
		}
	}
	return strings.Join(behind, ", ")
}

// raiseSiteVersion proposes queue.MaxSiteVersion; a failure is logged,
// returned, and retried at the next tick.
func (n *Node) raiseSiteVersion(ctx context.Context) error {
	from := n.store.SiteVersion()
	pctx, cancel := context.WithTimeout(ctx, n.cfg.SubmitTimeout.Duration)
	defer cancel()
	res, err := n.propose(pctx, &queue.Command{Op: queue.OpSiteVersion, Time: time.Now().UnixNano(),
		SiteVersion: &queue.SiteVersionCmd{Version: queue.MaxSiteVersion}})
	if err != nil {
		n.log.Warn("raising the site version failed; will retry", "from", from, "to", queue.MaxSiteVersion, "err", err)
		return err
	}
	if res.SiteVersion != nil && res.SiteVersion.Raised {
		n.log.Info("site version raised: every node of the site runs a build that speaks it; a node can no longer go back to a build that does not (README, Upgrading a site)",
			"from", from, "to", res.SiteVersion.Version)
	}
	return nil
}

// siteVersionWait is why the leader has not raised the site version yet
// ("" on a follower, or once it is raised).
func (n *Node) siteVersionWait() string {
	if p := n.siteWait.Load(); p != nil && n.store.SiteVersion() < queue.MaxSiteVersion {
		return *p
	}
	return ""
}
