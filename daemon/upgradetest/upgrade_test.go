package upgradetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// measureCommand is the command whose log gives the longest delivery
// pause of a rolling upgrade (the figure the release note quotes).
const measureCommand = "go test ./daemon/upgradetest/ -run 'TestRollingUpgrade$' -count=1 -v"

// TestRollingUpgrade starts both sites on the previous release and, under
// paced traffic both ways (20 messages a second each way, two submitters
// per site), upgrades alpha one node at a time, followers first and the
// leader last (its leadership moved to an upgraded node first, as the
// README's procedure says), then bravo: each node is stopped with SIGTERM, started on
// the current build, and must be healthy (a leader known, caught up with
// its site's leader, a path up to the other site) before the next one.
// Once, while alpha's leader still runs the previous release, an
// upgraded alpha follower is rolled back to it and forward again, and
// must cope. The site-version steps (siteversion_test.go) run as
// subtests named siteversion-*, so that
// "-skip 'TestRollingUpgrade/siteversion'" leaves them out.
//
// After the upgrade the traffic runs a few seconds more; then every
// acknowledged message must be in its destination's inbox exactly once
// and in order, come back read once the inbox is acknowledged, and the
// evidence of messages sent before, during and after the upgrade must
// verify with the current hotlinectl (as must bundles the previous
// release gave before the upgrade). The test logs the timeline, and the
// longest pause in delivery each way while the upgrade ran, as the
// destination's clients saw it (long polls of its inbox on every node).
func TestRollingUpgrade(t *testing.T) {
	skipLab(t)
	prev, rel := previousRelease(t)
	cur := clustertest.Binaries(t)
	c := clock{t: t, start: time.Now()}
	l := clustertest.StartProcLabFrom(t, prev, rollingBasePort, nil)
	for _, n := range allNodes() {
		waitHealthy(t, l, n, 60*time.Second)
		if st, err := statusOf(l, n); err != nil || st.Version != rel.Version {
			t.Fatalf("%s: status %+v, %v: want version %s", n, st, err, rel.Version)
		}
	}
	c.logf("both sites up on release %s (%s); leaders %s, %s", rel.Version, rel.Commit[:7], leaderOf(t, l, "alpha"), leaderOf(t, l, "bravo"))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	g := clustertest.NewLedger()
	tr := newPacedTraffic(ctx, c, g, l.Client)
	trafficOn := true
	defer func() {
		if trafficOn { // the test failed: the submitters may wait for a dead site
			cancel()
			tr.Stop(t)
		}
	}()
	watchCtx, stopWatching := context.WithCancel(context.Background())
	watches := map[string]*arrivalWatch{}
	for _, s := range daemon.LabSites {
		watches[s] = watchArrivals(watchCtx, s, l.Client)
	}
	defer func() {
		stopWatching()
		for _, w := range watches {
			w.Wait()
		}
	}()
	for _, s := range daemon.LabSites {
		for k := range 2 {
			tr.Go(s, fmt.Sprintf("up-%s-%d", s, k), k, 100*time.Millisecond)
		}
	}
	waitAcked := func(more int64) {
		t.Helper()
		want := tr.acked.Load() + more
		clustertest.Eventually(t, 60*time.Second, "acknowledged submissions", func() bool { return tr.acked.Load() >= want })
	}
	waitAcked(100)
	c.logf("traffic both ways: %d acknowledged", tr.acked.Load())
	// Bundles the previous release gives, verified at the end with the
	// current build.
	var oldBundles []string
	for _, s := range daemon.LabSites {
		key := tr.ackedBetween(c.start, time.Now())
		i := slices.IndexFunc(key, func(k string) bool { return strings.HasPrefix(k, "up-"+s+"-") })
		oldBundles = append(oldBundles, fetchProof(t, l, prev, daemon.LabNodes(s)[0], g.Sent()[key[i]].ID))
	}

	// The rolling upgrade.
	var timeline []string
	step := func(node, bin, what string) {
		t.Helper()
		before, _ := statusOf(l, node)
		t0 := time.Now()
		stopNode(t, l, node)
		stopped := time.Now()
		l.StartNodeFrom(node, bin)
		answered, healthy := waitHealthy(t, l, node, 90*time.Second)
		st, err := statusOf(l, node)
		if err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		if want := bin == prev; (st.Version == rel.Version) != want {
			t.Fatalf("%s runs version %q after %s", node, st.Version, what)
		}
		role := "follower"
		if before != nil && before.Role == "leader" {
			role = "leader"
		}
		line := fmt.Sprintf("%s (%s) %s: SIGTERM at %s, exited %.1fs later; on %s it answered at %s, healthy at %s",
			node, role, what, c.at(t0), stopped.Sub(t0).Seconds(), st.Version, c.at(answered), c.at(healthy))
		timeline = append(timeline, line)
		c.logf("%s", line)
	}
	mixed := map[string][]siteVersionView{} // by site, while it ran both builds
	upgradeSite := func(site string, drill bool) {
		t.Helper()
		nodes := daemon.LabNodes(site)
		var done []string
		for len(done) < len(nodes) {
			leader := l.LeaderAmong(60*time.Second, nodes...)
			next := leader // the leader last
			for _, n := range nodes {
				if n != leader && !slices.Contains(done, n) {
					next = n
					break
				}
			}
			if next == leader && len(done) > 0 {
				// README, Upgrading a site: the leadership moves to an
				// upgraded node before the leader stops.
				to := done[len(done)-1]
				out, err := l.CtlOutput("--socket", filepath.Join("run", leader+".sock"), "leader", "transfer", "--to", to)
				if err != nil {
					c.logf("leader transfer from %s to %s failed (its upgrade stops it anyway): %v: %s", leader, to, err, strings.TrimSpace(out))
				} else {
					c.logf("before its upgrade: %s", strings.TrimSpace(out))
				}
			}
			step(next, cur, "upgraded")
			done = append(done, next)
			if drill {
				drill = false
				// Rollback before the raise: the leader still runs the
				// previous release.
				if st, err := statusOf(l, leader); err == nil {
					c.logf("%s leads %s on %s", leader, site, st.Version)
				}
				step(next, prev, "rolled back to "+rel.Version+" (site version not raised)")
				mixed[site] = append(mixed[site], siteVersions(l, nodes)...)
				step(next, cur, "upgraded again")
			}
			if len(done) < len(nodes) {
				mixed[site] = append(mixed[site], siteVersions(l, nodes)...)
			}
			waitAcked(20)
		}
	}
	upStart := time.Now()
	upgradeSite("alpha", true)
	t.Run("siteversion-mixed-alpha", func(t *testing.T) { checkMixed(t, mixed["alpha"]) })
	t.Run("siteversion-raised-alpha", func(t *testing.T) { waitSiteVersion(t, l, "alpha", 2, 45*time.Second) })
	upgradeSite("bravo", false)
	upEnd := time.Now()
	c.logf("rolling upgrade done in %.1fs", upEnd.Sub(upStart).Seconds())
	t.Run("siteversion-mixed-bravo", func(t *testing.T) { checkMixed(t, mixed["bravo"]) })
	t.Run("siteversion-raised-bravo", func(t *testing.T) { waitSiteVersion(t, l, "bravo", 2, 45*time.Second) })

	// A rollback after the raise, of an alpha follower.
	alpha := daemon.LabNodes("alpha")
	leader := l.LeaderAmong(60*time.Second, alpha...)
	victim := alpha[slices.IndexFunc(alpha, func(n string) bool { return n != leader })]
	out := rollBack(t, l, victim, prev)
	c.logf("%s rolled back to %s after the raise: %s", victim, rel.Version, out)
	t.Run("siteversion-rollback-refused", func(t *testing.T) { checkRefused(t, victim, out) })
	step(victim, cur, "upgraded again after the rollback")
	waitAcked(40)

	time.Sleep(3 * time.Second)
	tr.Stop(t)
	trafficOn = false
	c.logf("traffic stopped: %d acknowledged", tr.acked.Load())

	received := map[string][]time.Time{} // by destination
	for _, s := range daemon.LabSites {
		msgs := clustertest.DrainInbox(t, l.Client(daemon.LabNodes(s)[1]), g.AckedTo(s), 2*time.Minute)
		g.CheckArrivals(t, s, msgs)
		for _, m := range msgs {
			received[s] = append(received[s], m.ReceivedAt)
		}
		actx, acancel := context.WithTimeout(ctx, time.Minute)
		clustertest.AckAll(actx, t, l.Client(daemon.LabNodes(s)[2]), daemon.LabNodes(s)[2], msgs)
		acancel()
	}
	leaders := map[string]*client.Client{}
	for _, s := range daemon.LabSites {
		leaders[s] = l.Client(leaderOf(t, l, s))
	}
	readStart := time.Now()
	rctx, rcancel := context.WithTimeout(context.Background(), 3*time.Minute)
	g.WaitRead(rctx, t, func(site string) *client.Client { return leaders[site] }, client.Retryable)
	rcancel()
	c.logf("every acknowledged message arrived once, in order, and came back read (checked in %.1fs)", time.Since(readStart).Seconds())
	stopWatching()
	for _, w := range watches {
		w.Wait()
	}

	// The evidence of messages sent before, during and after the upgrade.
	sent := g.Sent()
	phases := []struct {
		name     string
		from, to time.Time
	}{{"before", c.start, upStart}, {"during", upStart, upEnd}, {"after", upEnd, time.Now()}}
	verified := 0
	for _, ph := range phases {
		keys := tr.ackedBetween(ph.from, ph.to)
		for _, s := range daemon.LabSites {
			var mine []string
			for _, k := range keys {
				if sent[k].From == s {
					mine = append(mine, k)
				}
			}
			if len(mine) == 0 {
				t.Errorf("no message from %s acknowledged %s the upgrade", s, ph.name)
				continue
			}
			for i, k := range []string{mine[0], mine[len(mine)/2], mine[len(mine)-1]} {
				verify(t, l, cur, fetchProof(t, l, cur, daemon.LabNodes(s)[i], sent[k].ID))
				verified++
			}
			// The destination's bundle (the statement as it received it).
			verify(t, l, cur, fetchProof(t, l, cur, daemon.LabNodes(other(s))[0], sent[mine[0]].ID))
			verified++
		}
	}
	for _, f := range oldBundles {
		verify(t, l, cur, f)
		verified++
	}
	c.logf("%d evidence bundles verified (%d given by release %s before the upgrade)", verified, len(oldBundles), rel.Version)

	// The figures.
	t.Logf("timeline of the rolling upgrade (seconds since the test started; upgrade %s to %s):\n  %s",
		c.at(upStart), c.at(upEnd), strings.Join(timeline, "\n  "))
	var seen, server, acked []string
	for _, s := range daemon.LabSites {
		dir := other(s) + "->" + s
		ag := longestGap(tr.ackTimes(g, other(s)), upStart, upEnd)
		acked = append(acked, fmt.Sprintf("%s: %.2fs (between %s and %s)", other(s), ag.Len().Seconds(), c.at(ag.From), c.at(ag.To)))
		gp := longestGap(watches[s].times(), upStart, upEnd)
		seen = append(seen, fmt.Sprintf("%s: %.2fs (between %s and %s)", dir, gp.Len().Seconds(), c.at(gp.From), c.at(gp.To)))
		ts := received[s]
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		sg := longestGap(ts, upStart, upEnd)
		server = append(server, fmt.Sprintf("%s: %.2fs (between %s and %s)", dir, sg.Len().Seconds(), c.at(sg.From), c.at(sg.To)))
		if gp.Len() > 2*time.Minute {
			t.Errorf("delivery %s paused %v during the upgrade", dir, gp.Len())
		}
	}
	t.Logf("longest delivery pause during the rolling upgrade (%.1fs, 20 msg/s each way), first seen by the destination's clients: %s",
		upEnd.Sub(upStart).Seconds(), strings.Join(seen, ", "))
	t.Logf("the same by the destination's received_at: %s", strings.Join(server, ", "))
	t.Logf("longest pause in acknowledged submissions by origin: %s", strings.Join(acked, ", "))
	t.Logf("measured by: %s", measureCommand)
}

// fetchProof writes message id's evidence bundle as node gives it (with
// hotlinectl of directory bin) to a file in the lab's directory and
// returns the file's name; it retries while the message is not yet
// covered by a signed statement (409).
func fetchProof(t *testing.T, l *clustertest.ProcLab, bin, node, id string) string {
	t.Helper()
	f := filepath.Join("proofs", fmt.Sprintf("%s-%s-%d.json", id, node, time.Now().UnixNano()))
	if err := os.MkdirAll(filepath.Join(l.Dir, "proofs"), 0o755); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := ctl(l, bin, "--socket", filepath.Join("run", node+".sock"), "get", id, "--proof", f)
		if err == nil {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("proof of %s at %s: %v", id, node, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verify checks a bundle with hotlinectl verify of directory bin and the
// lab's keyring.
func verify(t *testing.T, l *clustertest.ProcLab, bin, file string) {
	t.Helper()
	out, err := ctl(l, bin, "verify", file, "--keys", filepath.Join("pki", "sites.pub"))
	if err != nil || !strings.Contains(out, "verified:") {
		t.Errorf("verify %s: %v\n%s", file, err, out)
	}
}

// allNodes lists the lab's nodes, alpha's first.
func allNodes() []string {
	var nodes []string
	for _, s := range daemon.LabSites {
		nodes = append(nodes, daemon.LabNodes(s)...)
	}
	return nodes
}
