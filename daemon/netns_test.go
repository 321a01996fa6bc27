package daemon_test

// Network fault scenarios: the six-node lab as separate hotlined processes,
// each in its own network namespace built by netlab, with silent path cuts
// (bridge ports set down in the middle namespace), flapping paths, kill -9
// of leaders, and a leader that loses every WAN path. Every scenario ends
// with the exactly-once, in-order check on every acknowledged submission.
// They need root; elsewhere they skip.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/queue"
)

// activePath returns the path that carries node's batches to site ("" if
// none has yet).
func activePath(l *clustertest.NetnsLab, node, site string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := l.Client(node).Paths(ctx, "")
	if err != nil {
		return "", err
	}
	for _, p := range r.Paths {
		if p.Site == site && p.Active {
			return p.Path, nil
		}
	}
	return "", nil
}

// waitActivePath waits until node has an active path to site.
func waitActivePath(t *testing.T, l *clustertest.NetnsLab, node, site string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var p string
		if p, err = activePath(l, node, site); err == nil && p != "" {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s has no active path to %s within 15s (last error: %v)", node, site, err)
	return ""
}

// stream is one paced submitter: up to count messages from site from to
// site to, one per tick, through from's nodes in turn, until stopped. Keys
// are "<tag>-<i>"; each acknowledged submission goes into the ledger.
type stream struct {
	from, to string
	tag      string
	stopc    chan struct{}
	done     chan struct{}
	err      error
	acked    atomic.Int64

	mu        sync.Mutex
	submitted map[string]time.Time // key → when its first submit attempt started
}

// startStream starts a stream submitting every `every`, with precedence
// prec(i) for the i-th message.
func startStream(ctx context.Context, l *clustertest.NetnsLab, g *clustertest.Ledger, tag, from, to string, every time.Duration, count int, prec func(i int) string) *stream {
	s := &stream{from: from, to: to, tag: tag, stopc: make(chan struct{}), done: make(chan struct{}), submitted: map[string]time.Time{}}
	var clients []*client.Client
	for _, n := range daemon.LabNodes(from) {
		clients = append(clients, l.Client(n))
	}
	go func() {
		defer close(s.done)
		next := time.Now()
		for i := range count {
			select {
			case <-s.stopc:
				return
			case <-time.After(time.Until(next)):
			}
			// Catch up after a stall, but not in a burst.
			if next = next.Add(every); next.Before(time.Now().Add(-every)) {
				next = time.Now()
			}
			p := prec(i)
			key := fmt.Sprintf("%s-%d", tag, i)
			at := time.Now()
			m, err := submitRotating(ctx, clients, i, client.SubmitRequest{To: to, Precedence: p, Key: key, Payload: []byte(key)})
			if err != nil {
				s.err = err
				return
			}
			g.Add(clustertest.Sent{Key: key, ID: m.ID, From: from, To: to, Precedence: p})
			s.mu.Lock()
			s.submitted[key] = at
			s.mu.Unlock()
			s.acked.Add(1)
		}
	}()
	return s
}

// stop ends the stream after the submission under way and fails t if a
// submission failed.
func (s *stream) stop(t *testing.T) {
	t.Helper()
	select {
	case <-s.stopc:
	default:
		close(s.stopc)
	}
	s.wait(t)
}

// wait waits for the stream to end on its own (count reached).
func (s *stream) wait(t *testing.T) {
	t.Helper()
	<-s.done
	if s.err != nil {
		t.Fatalf("stream %s: %v", s.tag, s.err)
	}
	t.Logf("stream %s (%s→%s): %d acknowledged", s.tag, s.from, s.to, s.acked.Load())
}

// submitRotating submits req until acknowledged, starting at clients[start]
// and moving to the next node after every failed attempt, always with the
// same key (submitRetrying stays on one node, which stalls the stream for
// as long as that node is dead).
func submitRotating(ctx context.Context, clients []*client.Client, start int, req client.SubmitRequest) (*client.Message, error) {
	var last error
	for k := 0; ctx.Err() == nil; k++ {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		m, err := clients[(start+k)%len(clients)].Submit(actx, req)
		cancel()
		if err == nil {
			return m, nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("submit %s: %w (last error: %v)", req.Key, ctx.Err(), last)
}

func routine(int) string { return queue.Routine.String() }

// rotating cycles through every precedence.
func rotating(i int) string { return queue.Precedences[i%len(queue.Precedences)].String() }

// checkDelivery reads each site's whole inbox and checks exactly-once,
// in-order arrival of every acknowledged submission. It returns the
// inboxes by site.
func checkDelivery(t *testing.T, l *clustertest.NetnsLab, g *clustertest.Ledger) map[string][]client.InboxMessage {
	t.Helper()
	out := map[string][]client.InboxMessage{}
	for _, site := range daemon.LabSites {
		msgs := clustertest.DrainInbox(t, l.Client(daemon.LabNodes(site)[1]), g.AckedTo(site), time.Minute)
		g.CheckArrivals(t, site, msgs)
		out[site] = msgs
	}
	return out
}

// arrivalStats returns, over the inbox messages whose key starts with
// s.tag, the longest gap between consecutive arrivals (ReceivedAt, the
// destination's clock, in arrival order) and the longest time from the
// first submit attempt to arrival, and logs both.
func (s *stream) arrivalStats(t *testing.T, msgs []client.InboxMessage) (gap, latency time.Duration) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var at []time.Time
	for _, m := range msgs {
		if !strings.HasPrefix(m.Key, s.tag+"-") {
			continue
		}
		at = append(at, m.ReceivedAt)
		if sub, ok := s.submitted[m.Key]; ok {
			latency = max(latency, m.ReceivedAt.Sub(sub))
		}
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	for i := 1; i < len(at); i++ {
		gap = max(gap, at[i].Sub(at[i-1]))
	}
	t.Logf("stream %s (%s→%s): longest gap %v, longest submit-to-arrival time %v", s.tag, s.from, s.to, gap, latency)
	return gap, latency
}

// arrivedAfter counts the stream's messages that arrived after t.
func (s *stream) arrivedAfter(msgs []client.InboxMessage, t time.Time) int {
	n := 0
	for _, m := range msgs {
		if strings.HasPrefix(m.Key, s.tag+"-") && m.ReceivedAt.After(t) {
			n++
		}
	}
	return n
}

// startNetns starts the namespace lab name with an empty ledger and a
// context that ends after 3 minutes or with the test.
func startNetns(t *testing.T, name string) (*clustertest.NetnsLab, context.Context, *clustertest.Ledger) {
	t.Helper()
	l := clustertest.StartNetnsLab(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return l, ctx, clustertest.NewLedger()
}

// TestNetnsSilentCutActivePath cuts alpha's active path to bravo silently
// (every alpha node's port on it) under steady traffic; delivery must move
// to the other path within the detection time plus a resend.
func TestNetnsSilentCutActivePath(t *testing.T) {
	l, ctx, g := startNetns(t, "cut")
	s := startStream(ctx, l, g, "cut", "alpha", "bravo", 25*time.Millisecond, 320, routine)
	time.Sleep(2 * time.Second)
	leader := l.Leader("alpha")
	cut := waitActivePath(t, l, leader, "bravo")
	other := l.Paths[0]
	if cut == other {
		other = l.Paths[1]
	}
	t.Logf("cutting path %s of every alpha node (active at leader %s) after %d submissions", cut, leader, s.acked.Load())
	if err := l.Net.CutSite("alpha", cut); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	l.CheckAlive()

	// The leader's view: the cut path down to every bravo node, the other
	// one carrying the traffic.
	var r *client.PathsReply
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		r, err = l.Client(leader).Paths(pctx, "")
		cancel()
		if err == nil && pathsViewAfterCut(r, cut, other) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's paths 10s after the cut: want %s down and %s active to bravo; have %+v (err %v)", leader, cut, other, r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	in := checkDelivery(t, l, g)
	gap, _ := s.arrivalStats(t, in["bravo"])
	if gap >= 2500*time.Millisecond {
		t.Errorf("longest gap between arrivals at bravo is %v, want < 2.5s (path %s cut silently)", gap, cut)
	}
}

// pathsViewAfterCut reports whether r shows path cut down to every bravo
// node and an active path other.
func pathsViewAfterCut(r *client.PathsReply, cut, other string) bool {
	active, down := false, 0
	for _, p := range r.Paths {
		if p.Site != "bravo" {
			continue
		}
		if p.Path == cut {
			if p.State != client.PathDown || p.Active {
				return false
			}
			down++
		}
		if p.Path == other && p.Active && p.State == client.PathUp {
			active = true
		}
	}
	return active && down == len(daemon.LabNodes("bravo"))
}

// TestNetnsAllPathsCut cuts both of alpha's paths for 10s while routine
// and flash messages are submitted: they queue durably, and after the
// restore everything drains exactly once, in order, flash first.
func TestNetnsAllPathsCut(t *testing.T) {
	l, ctx, g := startNetns(t, "all")

	// Warm up, and wait until it has been delivered: nothing is in flight
	// when the cut starts.
	warm := startStream(ctx, l, g, "warm", "alpha", "bravo", 20*time.Millisecond, 20, rotating)
	warm.wait(t)
	waitQueued(t, l, "alpha", func(q uint64) bool { return q == 0 }, 30*time.Second, "the warm-up to be delivered")

	for _, p := range l.Paths {
		if err := l.Net.CutSite("alpha", p); err != nil {
			t.Fatal(err)
		}
	}
	cutAt := time.Now()
	t.Logf("cut every path of alpha")
	// A flash first, then a mix (one flash in three) through every node:
	// every routine message of the cut is committed while flash messages
	// are pending, so none of them may arrive ahead of any flash.
	mix := func(i int) string {
		if i%3 == 0 {
			return queue.Flash.String()
		}
		return queue.Routine.String()
	}
	s := startStream(ctx, l, g, "cut", "alpha", "bravo", 100*time.Millisecond, 95, mix)
	time.Sleep(5 * time.Second)
	q := waitQueued(t, l, "alpha", func(q uint64) bool { return q > 0 }, 5*time.Second, "messages to queue during the cut")
	t.Logf("queued at alpha during the cut: %d", q)
	s.wait(t)
	time.Sleep(time.Until(cutAt.Add(10 * time.Second)))
	for _, p := range l.Paths {
		if err := l.Net.RestoreSite("alpha", p); err != nil {
			t.Fatal(err)
		}
	}
	restoredAt := time.Now()
	t.Logf("restored every path of alpha after %v", restoredAt.Sub(cutAt).Round(time.Millisecond))
	waitQueued(t, l, "alpha", func(q uint64) bool { return q == 0 }, time.Minute, "the queue to drain after the restore")
	t.Logf("queue drained %v after the restore", time.Since(restoredAt).Round(time.Millisecond))
	l.CheckAlive()

	in := checkDelivery(t, l, g)
	var lastFlash, firstRoutine uint64
	var lastFlashKey, firstRoutineKey string
	for _, m := range in["bravo"] {
		if !strings.HasPrefix(m.Key, "cut-") {
			continue
		}
		switch m.Precedence {
		case "flash":
			if m.Pos > lastFlash {
				lastFlash, lastFlashKey = m.Pos, m.Key
			}
		case "routine":
			if firstRoutine == 0 || m.Pos < firstRoutine {
				firstRoutine, firstRoutineKey = m.Pos, m.Key
			}
		}
	}
	t.Logf("bravo inbox: last flash of the cut at position %d (%s), first routine at %d (%s)", lastFlash, lastFlashKey, firstRoutine, firstRoutineKey)
	if lastFlash == 0 || firstRoutine == 0 {
		t.Fatalf("the cut's flash or routine messages are missing at bravo")
	}
	if lastFlash > firstRoutine {
		t.Errorf("flash first: flash %s at inbox position %d is behind routine %s at %d (both submitted during the cut)", lastFlashKey, lastFlash, firstRoutineKey, firstRoutine)
	}
}

// waitQueued waits until the sum of site's outbound Queued, as an alpha
// node reports it, satisfies ok, and returns it.
func waitQueued(t *testing.T, l *clustertest.NetnsLab, site string, ok func(uint64) bool, within time.Duration, what string) uint64 {
	t.Helper()
	deadline := time.Now().Add(within)
	var last uint64
	var lastErr error
	for i := 0; time.Now().Before(deadline); i++ {
		st, err := l.Status(daemon.LabNodes(site)[i%3])
		if err == nil {
			last = 0
			for _, q := range st.Outbound {
				last += q.Queued
			}
			if ok(last) {
				return last
			}
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("site %s: waited %v for %s: queued %d (last error %v)", site, within, what, last, lastErr)
	return 0
}

// TestNetnsKillLeaders kills each site's leader with SIGKILL under
// traffic both ways, waits for a new leader and restarts the old one.
func TestNetnsKillLeaders(t *testing.T) {
	l, ctx, g := startNetns(t, "kill")
	streams := map[string]*stream{
		"bravo": startStream(ctx, l, g, "ab", "alpha", "bravo", 50*time.Millisecond, 600, rotating),
		"alpha": startStream(ctx, l, g, "ba", "bravo", "alpha", 50*time.Millisecond, 600, rotating),
	}
	for _, site := range daemon.LabSites {
		time.Sleep(2 * time.Second)
		victim := l.Leader(site)
		killedAt := time.Now()
		l.Kill9(victim)
		t.Logf("kill -9 %s (leader of %s)", victim, site)
		t.Logf("site %s: new leader %s after %v", site, l.Leader(site), time.Since(killedAt).Round(time.Millisecond))
		time.Sleep(time.Second)
		l.StartNode(victim)
		l.WaitLinks(site)
		t.Logf("site %s: %s restarted, links up %v after the kill", site, victim, time.Since(killedAt).Round(time.Millisecond))
	}
	time.Sleep(2 * time.Second)
	for _, s := range streams {
		s.stop(t)
	}
	l.CheckAlive()
	in := checkDelivery(t, l, g)
	for _, site := range daemon.LabSites {
		gap, _ := streams[site].arrivalStats(t, in[site]) // target < 3s
		if gap >= 10*time.Second {
			t.Errorf("site %s: longest gap between arrivals %v, want < 10s", site, gap)
		}
	}
}

// TestNetnsLeaderLosesAllPaths cuts only alpha's leader off both WAN
// paths (its LAN stays): it must hand leadership to a follower that still
// reaches bravo, and delivery must resume.
func TestNetnsLeaderLosesAllPaths(t *testing.T) {
	l, ctx, g := startNetns(t, "lead")
	s := startStream(ctx, l, g, "lead", "alpha", "bravo", 50*time.Millisecond, 400, routine)
	time.Sleep(1500 * time.Millisecond)
	old := l.Leader("alpha")
	for _, p := range l.Paths {
		if err := l.Net.Cut(old, p); err != nil {
			t.Fatal(err)
		}
	}
	cutAt := time.Now()
	t.Logf("cut %s (leader of alpha) off every path", old)
	newLeader := ""
	for newLeader == "" {
		if time.Since(cutAt) > 15*time.Second {
			s.stop(t)
			t.Fatalf("alpha's leadership is still not on another node 15s after cutting %s off every path", old)
		}
		for _, n := range daemon.LabNodes("alpha") {
			if st, err := l.Status(n); n != old && err == nil && st.Role == "leader" {
				newLeader = n
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	movedAt := time.Now()
	t.Logf("leadership moved from %s to %s %v after the cut", old, newLeader, movedAt.Sub(cutAt).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	for _, p := range l.Paths {
		if err := l.Net.Restore(old, p); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1 * time.Second)
	s.stop(t)
	l.CheckAlive()
	in := checkDelivery(t, l, g)
	s.arrivalStats(t, in["bravo"])
	if n := s.arrivedAfter(in["bravo"], movedAt); n == 0 {
		t.Errorf("nothing arrived at bravo after the hand-off to %s", newLeader)
	} else {
		t.Logf("%d messages arrived at bravo after the hand-off", n)
	}
}

// TestNetnsFlappingPath toggles alpha's active path down and up every
// 300ms for 10s under steady traffic: delivery must not stall for long
// and nothing may be duplicated.
func TestNetnsFlappingPath(t *testing.T) {
	l, ctx, g := startNetns(t, "flap")
	s := startStream(ctx, l, g, "flap", "alpha", "bravo", 25*time.Millisecond, 480, routine)
	time.Sleep(time.Second)
	leader := l.Leader("alpha")
	p := waitActivePath(t, l, leader, "bravo")
	t.Logf("flapping path %s of every alpha node (active at leader %s)", p, leader)
	restore := func() {
		if err := l.Net.RestoreSite("alpha", p); err != nil {
			t.Error(err)
		}
	}
	flaps := 0
	for start := time.Now(); time.Since(start) < 10*time.Second; flaps++ {
		if err := l.Net.CutSite("alpha", p); err != nil {
			restore()
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		restore()
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("%d flaps", flaps)
	s.wait(t)
	l.CheckAlive()
	in := checkDelivery(t, l, g)
	gap, _ := s.arrivalStats(t, in["bravo"])
	if gap >= 5*time.Second {
		t.Errorf("longest gap between arrivals at bravo is %v, want < 5s (path %s flapping)", gap, p)
	}
}
