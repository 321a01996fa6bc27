package daemon

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/transport"
)

// linkTestKey names one link test target: a remote site over one path.
type linkTestKey struct{ site, path string }

// linkTests keeps the last link test per (site, path).
type linkTests struct {
	mu   sync.Mutex
	last map[linkTestKey]client.LinkTest
}

func (lt *linkTests) record(k linkTestKey, r client.LinkTest) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.last == nil {
		lt.last = map[linkTestKey]client.LinkTest{}
	}
	lt.last[k] = r
}

func (lt *linkTests) snapshot() map[linkTestKey]client.LinkTest {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	out := make(map[linkTestKey]client.LinkTest, len(lt.last))
	for k, v := range lt.last {
		out[k] = v
	}
	return out
}

// dropFailures forgets failed link tests: a node that stops testing (it
// lost the leadership) can no longer tell when they pass again, and the
// new leader tests for itself. Passed tests stay for `paths`.
func (lt *linkTests) dropFailures() {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	for k, v := range lt.last {
		if !v.OK {
			delete(lt.last, k)
		}
	}
}

// linkTestLoop runs on the leader: every link_test_interval it sends a
// marked test call on every path to every other site (not only the active
// path), which a node there answers once its site committed a Raft
// barrier. It records the round trip and raises an alarm (log, status,
// metric) when one fails. A failed (site, path) is re-tested as soon as
// the path's probes reach a node of that site again, so the alarm clears
// about when the path heals rather than an interval later. Link tests
// never touch the queue, so nothing of them reaches an inbox.
func (n *Node) linkTestLoop(ctx context.Context) {
	every := n.cfg.Link.LinkTestInterval.Duration
	if every == 0 {
		return
	}
	defer n.linkTests.dropFailures()
	var wg sync.WaitGroup
	for _, site := range n.cfg.remoteSites() {
		for _, path := range n.cfg.Paths {
			wg.Go(func() { n.linkTestTarget(ctx, site, path, every) })
		}
	}
	wg.Wait()
}

// linkTestTarget tests one (site, path) until ctx ends: the first time
// soon after taking over, then every interval. After a failure it tests
// again as soon as the path is up here (checked every probe interval),
// leaving a gap after the failed test that starts at a second and doubles
// with each failed re-test up to the interval; at the latest it tests at
// the interval.
func (n *Node) linkTestTarget(ctx context.Context, site, path string, every time.Duration) {
	poll := max(n.cfg.Link.ProbeInterval.Duration, 50*time.Millisecond)
	next := time.Now().Add(min(every, 5*time.Second))
	gap := time.Second
	var failed bool
	var last time.Time
	for {
		wait := time.Until(next)
		if failed {
			wait = min(wait, poll)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		now := time.Now()
		retest := failed && now.Sub(last) >= gap && n.pathUp(site, path)
		if now.Before(next) && !retest {
			continue
		}
		if retest {
			gap = min(2*gap, every)
		}
		last = now
		failed = !n.linkTest(ctx, site, path)
		if !failed {
			gap = time.Second
		}
		next = time.Now().Add(every)
	}
}

// pathUp reports whether any node of site is up on path here.
func (n *Node) pathUp(site, path string) bool {
	for _, p := range n.link.Paths() {
		if p.Site == site && p.Path == path && p.State == transport.PathUp {
			return true
		}
	}
	return false
}

// linkTest sends one link test to site over path and reports whether it
// passed. A node there that is starting or stopping is asked again (its
// answer says nothing about the path) until the test's time is up.
func (n *Node) linkTest(ctx context.Context, site, path string) bool {
	timeout := min(n.cfg.Link.SendTimeout.Duration, max(n.cfg.Link.LinkTestInterval.Duration/2, time.Second))
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	body := []byte(n.cfg.Node + " " + strconv.FormatInt(start.UnixNano(), 10))
	var (
		rep  *transport.Reply
		node string
		err  error
	)
	for {
		rep, node, err = n.link.CallSite(tctx, site, path, &transport.Call{Op: callLinkTest, Body: body})
		if err != nil || !retryable(callCodes.Err(callLinkTest, rep)) || tctx.Err() != nil {
			break
		}
		select {
		case <-tctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if ctx.Err() != nil {
		return true // lost leadership or shutting down: no verdict
	}
	if err == nil && rep.Error != "" {
		err = fmt.Errorf("%s answered: %s", node, rep.Error)
	}
	r := client.LinkTest{At: start.UTC(), OK: err == nil}
	k := linkTestKey{site, path}
	prev, had := n.linkTests.snapshot()[k]
	if err != nil {
		r.Error = err.Error()
		n.metrics.linkTestFailures.WithLabelValues(site, path).Inc()
		n.log.Error("ALARM: link test failed", "site", site, "path", path, "err", err)
	} else {
		rtt := time.Since(start)
		r.RTTMillis = millis(rtt)
		n.metrics.linkTestRTT.WithLabelValues(site, path).Set(rtt.Seconds())
		if had && !prev.OK {
			n.log.Info("link test passes again; alarm cleared", "site", site, "path", path, "rtt", rtt.Round(time.Microsecond), "answered_by", node)
		} else {
			n.log.Debug("link test passed", "site", site, "path", path, "rtt", rtt.Round(time.Microsecond), "answered_by", node)
		}
	}
	n.linkTests.record(k, r)
	return err == nil
}

// serveLinkTest answers another site's link test: this site commits a Raft
// barrier (on the leader, asked over the LAN if need be), proving the
// whole path from the tester to a durable commit here.
func (n *Node) serveLinkTest(ctx context.Context) (*transport.Reply, error) {
	if err := n.barrier(ctx); err != nil {
		return &transport.Reply{Error: "site " + n.cfg.Site + " could not commit: " + err.Error()}, nil
	}
	leader, _ := n.raft.Leader()
	return &transport.Reply{Body: []byte(leader)}, nil
}

// barrier commits a no-op command on the site's log (through the leader),
// proving that the site can commit. It is a command rather than a Raft
// barrier so that the log's last entry stays one every store records (see
// readIndex).
func (n *Node) barrier(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SubmitTimeout.Duration)
	defer cancel()
	_, err := n.propose(ctx, noopCommand())
	return err
}

// upPaths counts the (node, path) pairs to other sites that are up here.
func (n *Node) upPaths() int {
	c := 0
	for _, p := range n.link.Paths() {
		if p.Site != n.cfg.Site && p.State == transport.PathUp {
			c++
		}
	}
	return c
}

// reach counts the other sites this node has at least one path up to,
// and the (node, path) pairs up to other sites.
func (n *Node) reach() (sites, paths int) {
	up := map[string]bool{}
	for _, p := range n.link.Paths() {
		if p.Site != n.cfg.Site && p.State == transport.PathUp {
			up[p.Site] = true
			paths++
		}
	}
	return len(up), paths
}

// handoffLoop runs on the leader: when it has had no path up to some
// other site for handoff_after while a follower reaches more of the other
// sites, it hands the leadership to that follower, so that the site keeps
// sending to every site (with two sites: when the leader reaches nobody
// and a follower does).
func (n *Node) handoffLoop(ctx context.Context) {
	after := n.cfg.Link.HandoffAfter.Duration
	if after == 0 || len(n.siteNodes()) < 2 {
		return
	}
	remote := len(n.cfg.remoteSites())
	tick := time.NewTicker(max(n.cfg.Link.ProbeInterval.Duration, 50*time.Millisecond))
	defer tick.Stop()
	var cutSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sites, _ := n.reach()
		if sites == remote {
			cutSince = time.Time{}
			continue
		}
		if cutSince.IsZero() {
			cutSince = time.Now()
			n.log.Warn("leader has no path to some other site", "reaches_sites", sites, "of", remote, "handoff_after", after)
			continue
		}
		if time.Since(cutSince) < after {
			continue
		}
		to, toSites, up := n.bestFollower(ctx, sites)
		if to == "" {
			continue // nobody better off: keep trying, keep leading
		}
		n.log.Warn("handing leadership to a follower that reaches more sites", "to", to, "its_sites", toSites, "our_sites", sites, "its_paths_up", up, "cut_for", time.Since(cutSince).Round(time.Millisecond))
		if _, err := n.transferLeader(ctx, to); err != nil {
			n.log.Error("leadership hand-off failed", "to", to, "err", err)
			continue
		}
		return // no longer the leader
	}
}

// bestFollower asks the site's other nodes how many other sites and
// paths they reach and returns the one reaching the most sites (then the
// most paths), if it reaches more than ours. A node of an earlier version
// answers only callUpPaths; it counts as reaching one site if it has a
// path up (exact with two sites).
func (n *Node) bestFollower(ctx context.Context, ours int) (node string, sites, paths int) {
	for _, f := range n.siteNodes() {
		if f == n.cfg.Node {
			continue
		}
		s, p, ok := n.followerReach(ctx, f)
		if ok && s > ours && (s > sites || (s == sites && p > paths)) {
			node, sites, paths = f, s, p
		}
	}
	return node, sites, paths
}

// followerReach asks node what it reaches (callReach, else callUpPaths).
func (n *Node) followerReach(ctx context.Context, node string) (sites, paths int, ok bool) {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rep, err := n.link.Call(cctx, node, &transport.Call{Op: callReach})
	if err != nil {
		return 0, 0, false
	}
	if rep.Error == "" {
		if _, err := fmt.Sscanf(string(rep.Body), "%d %d", &sites, &paths); err == nil {
			return sites, paths, true
		}
		return 0, 0, false
	}
	rep, err = n.link.Call(cctx, node, &transport.Call{Op: callUpPaths})
	if err != nil || rep.Error != "" {
		return 0, 0, false
	}
	paths, err = strconv.Atoi(string(rep.Body))
	if err != nil {
		return 0, 0, false
	}
	return min(paths, 1), paths, true
}

// alarms lists what an operator should look at now: paths down, failed
// link tests.
func (n *Node) alarms() []string {
	var out []string
	if n.store != nil {
		if c, last := n.store.Corruption(); c > 0 {
			out = append(out, fmt.Sprintf("store corruption: %d damaged records found, not served or forwarded; rebuild this node (README: Corruption and recovery); latest: %v", c, last))
		}
	}
	if err := n.storageFull(); err != nil {
		out = append(out, err.Error())
	}
	if n.store != nil {
		out = append(out, n.resyncAlarms()...) // backup.go
	}
	for _, p := range n.link.Paths() {
		if p.Site == n.cfg.Site {
			if p.State == transport.PathDown {
				out = append(out, fmt.Sprintf("intra-site link to %s down: %s", p.Node, p.LastErr))
			}
			continue
		}
		switch p.State {
		case transport.PathDown:
			out = append(out, fmt.Sprintf("path %s to %s/%s down since %s: %s", p.Path, p.Site, p.Node, p.Since.UTC().Format(time.RFC3339), p.LastErr))
		case transport.PathAdminDown:
			m, _ := n.link.PathAdmin(p.Path)
			out = append(out, fmt.Sprintf("path %s to %s/%s disabled by an operator (%s)", p.Path, p.Site, p.Node, adminModeName(m)))
		}
	}
	for k, lt := range n.linkTests.snapshot() {
		if !lt.OK {
			out = append(out, fmt.Sprintf("link test to %s via %s failed at %s: %s", k.site, k.path, lt.At.Format(time.RFC3339), lt.Error))
		}
	}
	out = append(out, n.certAlarms()...)
	return out
}
