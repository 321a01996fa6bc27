package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/transport"
)

// linkHealth watches the paths to the other sites: on the leader it runs
// the periodic link tests (testLoop) and hands the leadership to a
// follower that reaches more sites (handoffLoop); on every node it answers
// other sites' link tests and the site's questions about what it reaches.
// Open builds it once the link exists; the leader's duties run its loops.
type linkHealth struct {
	cfg      *Config
	log      *slog.Logger
	link     *transport.Link
	raft     *consensus.Node
	commit   *committer             // barriers (serveLinkTest, callBarrier)
	failures *prometheus.CounterVec // hotline_link_test_failures_total
	rtt      *prometheus.GaugeVec   // hotline_link_test_rtt_seconds
	// transfer moves the site's leadership (admin.transferLeader); Open
	// sets it once the admin operations exist.
	transfer func(ctx context.Context, to string) (*client.LeaderTransfer, error)

	tests linkTests // the last test per (site, path); read by paths and alarms
}

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

// testLoop runs on the leader: every link_test_interval it sends a
// marked test call on every path to every other site (not only the active
// path), which a node there answers once its site committed a Raft
// barrier. It records the round trip and raises an alarm (log, status,
// metric) when one fails. A failed (site, path) is re-tested as soon as
// the path's probes reach a node of that site again, so the alarm clears
// about when the path heals rather than an interval later. Link tests
// never touch the queue, so nothing of them reaches an inbox.
func (h *linkHealth) testLoop(ctx context.Context) {
	every := h.cfg.Link.LinkTestInterval.Duration
	if every == 0 {
		return
	}
	defer h.tests.dropFailures()
	var wg sync.WaitGroup
	for _, site := range h.cfg.remoteSites() {
		for _, path := range h.cfg.Paths {
			wg.Go(func() { h.testTarget(ctx, site, path, every) })
		}
	}
	wg.Wait()
}

// testTarget tests one (site, path) until ctx ends: the first time
// soon after taking over, then every interval. After a failure it tests
// again as soon as the path is up here (checked every probe interval),
// leaving a gap after the failed test that starts at a second and doubles
// with each failed re-test up to the interval; at the latest it tests at
// the interval.
func (h *linkHealth) testTarget(ctx context.Context, site, path string, every time.Duration) {
	poll := max(h.cfg.Link.ProbeInterval.Duration, 50*time.Millisecond)
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
		retest := failed && now.Sub(last) >= gap && h.pathUp(site, path)
		if now.Before(next) && !retest {
			continue
		}
		if retest {
			gap = min(2*gap, every)
		}
		last = now
		failed = !h.linkTest(ctx, site, path)
		if !failed {
			gap = time.Second
		}
		next = time.Now().Add(every)
	}
}

// pathUp reports whether any node of site is up on path here.
func (h *linkHealth) pathUp(site, path string) bool {
	for _, p := range h.link.Paths() {
		if p.Site == site && p.Path == path && p.State == transport.PathUp {
			return true
		}
	}
	return false
}

// linkTest sends one link test to site over path and reports whether it
// passed. A node there that is starting or stopping is asked again (its
// answer says nothing about the path) until the test's time is up.
func (h *linkHealth) linkTest(ctx context.Context, site, path string) bool {
	timeout := min(h.cfg.Link.SendTimeout.Duration, max(h.cfg.Link.LinkTestInterval.Duration/2, time.Second))
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	body := []byte(h.cfg.Node + " " + strconv.FormatInt(start.UnixNano(), 10))
	var (
		rep  *transport.Reply
		node string
		err  error
	)
	for {
		rep, node, err = h.link.CallSite(tctx, site, path, &transport.Call{Op: callLinkTest, Body: body})
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
	prev, had := h.tests.snapshot()[k]
	if err != nil {
		r.Error = err.Error()
		h.failures.WithLabelValues(site, path).Inc()
		h.log.Error("ALARM: link test failed", "site", site, "path", path, "err", err)
	} else {
		rtt := time.Since(start)
		r.RTTMillis = millis(rtt)
		h.rtt.WithLabelValues(site, path).Set(rtt.Seconds())
		if had && !prev.OK {
			h.log.Info("link test passes again; alarm cleared", "site", site, "path", path, "rtt", rtt.Round(time.Microsecond), "answered_by", node)
		} else {
			h.log.Debug("link test passed", "site", site, "path", path, "rtt", rtt.Round(time.Microsecond), "answered_by", node)
		}
	}
	h.tests.record(k, r)
	return err == nil
}

// serveLinkTest answers another site's link test: this site commits a Raft
// barrier (on the leader, asked over the LAN if need be), proving the
// whole path from the tester to a durable commit here.
func (h *linkHealth) serveLinkTest(ctx context.Context) ([]byte, error) {
	if err := h.barrier(ctx); err != nil {
		return nil, fmt.Errorf("site %s could not commit: %w", h.cfg.Site, err)
	}
	leader, _ := h.raft.Leader()
	return []byte(leader), nil
}

// barrier commits a no-op command on the site's log (through the leader),
// proving that the site can commit. It is a command rather than a Raft
// barrier so that the log's last entry stays one every store records (see
// readIndex).
func (h *linkHealth) barrier(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.SubmitTimeout.Duration)
	defer cancel()
	_, err := h.commit.propose(ctx, noopCommand())
	return err
}

// upPaths counts the (node, path) pairs to other sites that are up here.
func (h *linkHealth) upPaths() int {
	c := 0
	for _, p := range h.link.Paths() {
		if p.Site != h.cfg.Site && p.State == transport.PathUp {
			c++
		}
	}
	return c
}

// reach counts the other sites this node has at least one path up to,
// and the (node, path) pairs up to other sites.
func (h *linkHealth) reach() (sites, paths int) {
	up := map[string]bool{}
	for _, p := range h.link.Paths() {
		if p.Site != h.cfg.Site && p.State == transport.PathUp {
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
func (h *linkHealth) handoffLoop(ctx context.Context) {
	after := h.cfg.Link.HandoffAfter.Duration
	if after == 0 || len(h.cfg.siteNodes()) < 2 {
		return
	}
	remote := len(h.cfg.remoteSites())
	tick := time.NewTicker(max(h.cfg.Link.ProbeInterval.Duration, 50*time.Millisecond))
	defer tick.Stop()
	var cutSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sites, _ := h.reach()
		if sites == remote {
			cutSince = time.Time{}
			continue
		}
		if cutSince.IsZero() {
			cutSince = time.Now()
			h.log.Warn("leader has no path to some other site", "reaches_sites", sites, "of", remote, "handoff_after", after)
			continue
		}
		if time.Since(cutSince) < after {
			continue
		}
		to, toSites, up := h.bestFollower(ctx, sites)
		if to == "" {
			continue // nobody better off: keep trying, keep leading
		}
		h.log.Warn("handing leadership to a follower that reaches more sites", "to", to, "its_sites", toSites, "our_sites", sites, "its_paths_up", up, "cut_for", time.Since(cutSince).Round(time.Millisecond))
		if _, err := h.transfer(ctx, to); err != nil {
			h.log.Error("leadership hand-off failed", "to", to, "err", err)
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
func (h *linkHealth) bestFollower(ctx context.Context, ours int) (node string, sites, paths int) {
	for _, f := range h.cfg.siteNodes() {
		if f == h.cfg.Node {
			continue
		}
		s, p, ok := h.followerReach(ctx, f)
		if ok && s > ours && (s > sites || (s == sites && p > paths)) {
			node, sites, paths = f, s, p
		}
	}
	return node, sites, paths
}

// followerReach asks node what it reaches (callReach, else callUpPaths).
func (h *linkHealth) followerReach(ctx context.Context, node string) (sites, paths int, ok bool) {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	rep, err := h.link.Call(cctx, node, &transport.Call{Op: callReach})
	if err != nil {
		return 0, 0, false
	}
	if rep.Error == "" {
		if _, err := fmt.Sscanf(string(rep.Body), "%d %d", &sites, &paths); err == nil {
			return sites, paths, true
		}
		return 0, 0, false
	}
	rep, err = h.link.Call(cctx, node, &transport.Call{Op: callUpPaths})
	if err != nil || rep.Error != "" {
		return 0, 0, false
	}
	paths, err = strconv.Atoi(string(rep.Body))
	if err != nil {
		return 0, 0, false
	}
	return min(paths, 1), paths, true
}
