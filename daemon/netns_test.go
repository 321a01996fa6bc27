package daemon

// Network fault scenarios: the six-node lab as separate hotlined processes,
// each in its own network namespace built by netlab, with silent path cuts
// (bridge ports set down in the middle namespace), flapping paths, kill -9
// of leaders, and a leader that loses every WAN path. Every scenario ends
// with the exactly-once, in-order check on every acknowledged submission.
// They need root; elsewhere they skip.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/netlab"
	"github.com/hotline-link/hotline/queue"
)

// netnsPaths are the lab's WAN paths, in preference order.
var netnsPaths = []string{"fiber", "sat"}

// The binaries are built once per test binary run, into a directory named
// after this process; directories of earlier runs whose process is gone
// are removed then (there is no package-wide teardown to do it).
var (
	netnsBinOnce sync.Once
	netnsBinDir  string
	netnsBinErr  error
)

const netnsBinPrefix = "hotline-netns-bin-"

func netnsBinaries(t *testing.T) string {
	t.Helper()
	netnsBinOnce.Do(func() {
		old, _ := filepath.Glob(filepath.Join(os.TempDir(), netnsBinPrefix+"*"))
		for _, d := range old {
			pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), netnsBinPrefix))
			if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH {
				os.RemoveAll(d)
			}
		}
		netnsBinDir = filepath.Join(os.TempDir(), fmt.Sprintf("%s%d", netnsBinPrefix, os.Getpid()))
		cmd := exec.Command("go", "build", "-o", netnsBinDir+"/", "github.com/hotline-link/hotline/cmd/hotlined")
		if out, err := cmd.CombinedOutput(); err != nil {
			netnsBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if netnsBinErr != nil {
		t.Fatal(netnsBinErr)
	}
	return netnsBinDir
}

// netnsLab is the six-process lab in network namespaces. It reuses
// procLab for the process table, kill9, checkAlive, client and leader
// (sockets at dir/run/<node>.sock); only starting a node differs.
type netnsLab struct {
	*procLab
	net *netlab.Lab
}

// startNetLab builds the namespaces, writes the six configs, starts every
// node in its namespace and waits until both sites have a leader whose
// link to the other site has every (node, path) up.
func startNetLab(t *testing.T, tag string) *netnsLab {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Skipf("needs root for network namespaces: %v", err)
	}
	if testing.Short() {
		t.Skip("builds a namespace lab and starts six processes")
	}
	bin := netnsBinaries(t)
	spec := netlab.Spec{Prefix: fmt.Sprintf("hn%s%d", tag, os.Getpid()%10000), Paths: netnsPaths}
	for _, s := range LabSites {
		spec.Sites = append(spec.Sites, netlab.Site{Name: s, Nodes: LabNodes(s)})
	}
	nl, err := netlab.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nl.Close(); err != nil {
			t.Error(err)
		}
	})
	l := &netnsLab{procLab: &procLab{t: t, bin: bin, dir: t.TempDir(), procs: map[string]*proc{}}, net: nl}
	if err := EnsureLabPKI(l.dir); err != nil {
		t.Fatal(err)
	}
	cfgs := LabConfigs(l.dir, netnsPaths, func(s, i int) (string, map[string]string) {
		node := LabNodes(LabSites[s])[i]
		paths := map[string]string{}
		for _, p := range netnsPaths {
			paths[p] = nl.PathAddr(node, p) + ":7100"
		}
		return nl.LANAddr(node) + ":7000", paths
	})
	for _, c := range cfgs {
		c.Socket = filepath.Join(l.dir, "run", c.Node+".sock")
		c.Raft.HeartbeatTimeout.Duration = 500 * time.Millisecond
		c.Raft.ElectionTimeout.Duration = 500 * time.Millisecond
		c.Raft.LeaderLeaseTimeout.Duration = 250 * time.Millisecond
		c.LogLevel = "warn"
		l.writeConfig(c)
	}
	t.Cleanup(l.stopAll)
	for _, c := range cfgs {
		l.start(c.Node)
	}
	for _, s := range LabSites {
		l.waitLinks(s)
	}
	return l
}

// writeConfig writes c to dir/<node>.toml and checks that LoadConfig reads
// back the same config.
func (l *netnsLab) writeConfig(c *Config) {
	l.t.Helper()
	file := filepath.Join(l.dir, c.Node+".toml")
	f, err := os.Create(file)
	if err != nil {
		l.t.Fatal(err)
	}
	err = toml.NewEncoder(f).Encode(c)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		l.t.Fatalf("write %s: %v", file, err)
	}
	back, err := LoadConfig(file)
	if err != nil {
		l.t.Fatalf("read back %s: %v", file, err)
	}
	back.file = c.file
	if !reflect.DeepEqual(back, c) {
		l.t.Fatalf("%s reads back as\n%+v\nwant\n%+v", file, back, c)
	}
}

// start runs node's hotlined inside its namespace, logging to dir/<node>.log.
func (l *netnsLab) start(node string) {
	l.t.Helper()
	logf, err := os.OpenFile(filepath.Join(l.dir, node+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	defer logf.Close()
	cmd := l.net.Command(node, filepath.Join(l.bin, "hotlined"), "--config", filepath.Join(l.dir, node+".toml"))
	cmd.Dir = l.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", node, err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	l.mu.Lock()
	l.procs[node] = p
	l.mu.Unlock()
}

// stopAll stops every node with SIGTERM (kill after 10s) and, when the
// test failed, prints the tail of every node's log.
func (l *netnsLab) stopAll() {
	t := l.t
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.procs {
		p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for n, p := range l.procs {
		select {
		case <-p.exited:
			if code := p.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("%s exited with status %d after SIGTERM", n, code)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop within 10s of SIGTERM", n)
			p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if t.Failed() {
		for _, s := range LabSites {
			for _, n := range LabNodes(s) {
				b, _ := os.ReadFile(filepath.Join(l.dir, n+".log"))
				if len(b) > 6000 {
					b = b[len(b)-6000:]
				}
				t.Logf("--- %s log (tail) ---\n%s", n, b)
			}
		}
	}
}

// status asks node for its status with a short deadline.
func (l *netnsLab) status(node string) (*client.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return l.client(node).Status(ctx)
}

// waitLinks waits until site has a leader that sees every (node, path) of
// every other site up, and returns the leader.
func (l *netnsLab) waitLinks(site string) string {
	l.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		leader := l.leader(site)
		if st, err := l.status(leader); err == nil && st.Role == "leader" && len(st.Links) > 0 &&
			!slices.ContainsFunc(st.Links, func(sl client.SiteLink) bool { return sl.PathsUp < sl.PathsTotal }) {
			return leader
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("site %s: no leader with every path to the other site up within 60s", site)
	return ""
}

// activePath returns the path that carries node's batches to site ("" if
// none has yet).
func (l *netnsLab) activePath(node, site string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := l.client(node).Paths(ctx, "")
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
func (l *netnsLab) waitActivePath(node, site string) string {
	l.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var p string
		if p, err = l.activePath(node, site); err == nil && p != "" {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("%s has no active path to %s within 15s (last error: %v)", node, site, err)
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
func (l *netnsLab) startStream(ctx context.Context, g *ledger, tag, from, to string, every time.Duration, count int, prec func(i int) string) *stream {
	s := &stream{from: from, to: to, tag: tag, stopc: make(chan struct{}), done: make(chan struct{}), submitted: map[string]time.Time{}}
	var clients []*client.Client
	for _, n := range LabNodes(from) {
		clients = append(clients, l.client(n))
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
			g.add(sent{key: key, id: m.ID, from: from, to: to, precedence: p})
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

// ackedTo counts the ledger's acknowledged submissions to site.
func (g *ledger) ackedTo(site string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, s := range g.sent {
		if s.to == site {
			n++
		}
	}
	return n
}

// checkDelivery reads each site's whole inbox and checks exactly-once,
// in-order arrival of every acknowledged submission. It returns the
// inboxes by site.
func (l *netnsLab) checkDelivery(g *ledger) map[string][]client.InboxMessage {
	l.t.Helper()
	out := map[string][]client.InboxMessage{}
	for _, site := range LabSites {
		msgs := drainInbox(l.t, l.client(LabNodes(site)[1]), g.ackedTo(site), time.Minute)
		g.checkArrivals(l.t, site, msgs)
		out[site] = msgs
	}
	return out
}

// arrivalStats returns, over the inbox messages whose key starts with
// s.tag, the longest gap between consecutive arrivals (ReceivedAt, the
// destination's clock, in arrival order) and the longest time from the
// first submit attempt to arrival.
func (s *stream) arrivalStats(msgs []client.InboxMessage) (gap, latency time.Duration) {
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

func netnsContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestNetnsSilentCutActivePath cuts alpha's active path to bravo silently
// (every alpha node's port on it) under steady traffic; delivery must move
// to the other path within the detection time plus a resend.
func TestNetnsSilentCutActivePath(t *testing.T) {
	l := startNetLab(t, "cut")
	ctx := netnsContext(t)
	g := newLedger()
	s := l.startStream(ctx, g, "cut", "alpha", "bravo", 25*time.Millisecond, 320, routine)
	time.Sleep(2 * time.Second)
	leader := l.leader("alpha")
	cut := l.waitActivePath(leader, "bravo")
	other := netnsPaths[0]
	if cut == other {
		other = netnsPaths[1]
	}
	t.Logf("cutting path %s of every alpha node (active at leader %s) after %d submissions", cut, leader, s.acked.Load())
	if err := l.net.CutSite("alpha", cut); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	l.checkAlive()

	// The leader's view: the cut path down to every bravo node, the other
	// one carrying the traffic.
	var r *client.PathsReply
	deadline := time.Now().Add(10 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		var err error
		r, err = l.client(leader).Paths(pctx, "")
		cancel()
		if err == nil && pathsViewAfterCut(r, cut, other) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's paths 10s after the cut: want %s down and %s active to bravo; have %+v (err %v)", leader, cut, other, r, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	in := l.checkDelivery(g)
	gap, lat := s.arrivalStats(in["bravo"])
	t.Logf("longest gap %v", gap)
	t.Logf("longest submit-to-arrival time %v", lat)
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
	return active && down == len(LabNodes("bravo"))
}

// TestNetnsAllPathsCut cuts both of alpha's paths for 10s while routine
// and flash messages are submitted: they queue durably, and after the
// restore everything drains exactly once, in order, flash first.
func TestNetnsAllPathsCut(t *testing.T) {
	l := startNetLab(t, "all")
	ctx := netnsContext(t)
	g := newLedger()

	// Warm up, and wait until it has been delivered: nothing is in flight
	// when the cut starts.
	warm := l.startStream(ctx, g, "warm", "alpha", "bravo", 20*time.Millisecond, 20, rotating)
	warm.wait(t)
	l.waitQueued("alpha", func(q uint64) bool { return q == 0 }, 30*time.Second, "the warm-up to be delivered")

	for _, p := range netnsPaths {
		if err := l.net.CutSite("alpha", p); err != nil {
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
	s := l.startStream(ctx, g, "cut", "alpha", "bravo", 100*time.Millisecond, 95, mix)
	time.Sleep(5 * time.Second)
	q := l.waitQueued("alpha", func(q uint64) bool { return q > 0 }, 5*time.Second, "messages to queue during the cut")
	t.Logf("queued at alpha during the cut: %d", q)
	s.wait(t)
	time.Sleep(time.Until(cutAt.Add(10 * time.Second)))
	for _, p := range netnsPaths {
		if err := l.net.RestoreSite("alpha", p); err != nil {
			t.Fatal(err)
		}
	}
	restoredAt := time.Now()
	t.Logf("restored every path of alpha after %v", restoredAt.Sub(cutAt).Round(time.Millisecond))
	l.waitQueued("alpha", func(q uint64) bool { return q == 0 }, time.Minute, "the queue to drain after the restore")
	t.Logf("queue drained %v after the restore", time.Since(restoredAt).Round(time.Millisecond))
	l.checkAlive()

	in := l.checkDelivery(g)
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
func (l *netnsLab) waitQueued(site string, ok func(uint64) bool, within time.Duration, what string) uint64 {
	l.t.Helper()
	deadline := time.Now().Add(within)
	var last uint64
	var lastErr error
	for i := 0; time.Now().Before(deadline); i++ {
		st, err := l.status(LabNodes(site)[i%3])
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
	l.t.Fatalf("site %s: waited %v for %s: queued %d (last error %v)", site, within, what, last, lastErr)
	return 0
}

// TestNetnsKillLeaders kills each site's leader with SIGKILL under
// traffic both ways, waits for a new leader and restarts the old one.
func TestNetnsKillLeaders(t *testing.T) {
	l := startNetLab(t, "kill")
	ctx := netnsContext(t)
	g := newLedger()
	streams := map[string]*stream{
		"bravo": l.startStream(ctx, g, "ab", "alpha", "bravo", 50*time.Millisecond, 600, rotating),
		"alpha": l.startStream(ctx, g, "ba", "bravo", "alpha", 50*time.Millisecond, 600, rotating),
	}
	for _, site := range LabSites {
		time.Sleep(2 * time.Second)
		victim := l.leader(site)
		killedAt := time.Now()
		l.kill9(victim)
		t.Logf("kill -9 %s (leader of %s)", victim, site)
		t.Logf("site %s: new leader %s after %v", site, l.leader(site), time.Since(killedAt).Round(time.Millisecond))
		time.Sleep(time.Second)
		l.start(victim)
		l.waitLinks(site)
		t.Logf("site %s: %s restarted, links up %v after the kill", site, victim, time.Since(killedAt).Round(time.Millisecond))
	}
	time.Sleep(2 * time.Second)
	for _, s := range streams {
		s.stop(t)
	}
	l.checkAlive()
	in := l.checkDelivery(g)
	for _, site := range LabSites {
		gap, lat := streams[site].arrivalStats(in[site])
		t.Logf("site %s: longest gap %v (target < 3s), longest submit-to-arrival time %v", site, gap, lat)
		if gap >= 10*time.Second {
			t.Errorf("site %s: longest gap between arrivals %v, want < 10s", site, gap)
		}
	}
}

// TestNetnsLeaderLosesAllPaths cuts only alpha's leader off both WAN
// paths (its LAN stays): it must hand leadership to a follower that still
// reaches bravo, and delivery must resume.
func TestNetnsLeaderLosesAllPaths(t *testing.T) {
	l := startNetLab(t, "lead")
	ctx := netnsContext(t)
	g := newLedger()
	s := l.startStream(ctx, g, "lead", "alpha", "bravo", 50*time.Millisecond, 400, routine)
	time.Sleep(1500 * time.Millisecond)
	old := l.leader("alpha")
	for _, p := range netnsPaths {
		if err := l.net.Cut(old, p); err != nil {
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
		for _, n := range LabNodes("alpha") {
			if st, err := l.status(n); n != old && err == nil && st.Role == "leader" {
				newLeader = n
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	movedAt := time.Now()
	t.Logf("leadership moved from %s to %s %v after the cut", old, newLeader, movedAt.Sub(cutAt).Round(time.Millisecond))
	time.Sleep(3 * time.Second)
	for _, p := range netnsPaths {
		if err := l.net.Restore(old, p); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1 * time.Second)
	s.stop(t)
	l.checkAlive()
	in := l.checkDelivery(g)
	gap, lat := s.arrivalStats(in["bravo"])
	t.Logf("longest gap %v, longest submit-to-arrival time %v", gap, lat)
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
	l := startNetLab(t, "flap")
	ctx := netnsContext(t)
	g := newLedger()
	s := l.startStream(ctx, g, "flap", "alpha", "bravo", 25*time.Millisecond, 480, routine)
	time.Sleep(time.Second)
	leader := l.leader("alpha")
	p := l.waitActivePath(leader, "bravo")
	t.Logf("flapping path %s of every alpha node (active at leader %s)", p, leader)
	restore := func() {
		if err := l.net.RestoreSite("alpha", p); err != nil {
			t.Error(err)
		}
	}
	flaps := 0
	for start := time.Now(); time.Since(start) < 10*time.Second; flaps++ {
		if err := l.net.CutSite("alpha", p); err != nil {
			restore()
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		restore()
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("%d flaps", flaps)
	s.wait(t)
	l.checkAlive()
	in := l.checkDelivery(g)
	gap, lat := s.arrivalStats(in["bravo"])
	t.Logf("longest gap %v", gap)
	t.Logf("longest submit-to-arrival time %v", lat)
	if gap >= 5*time.Second {
		t.Errorf("longest gap between arrivals at bravo is %v, want < 5s (path %s flapping)", gap, p)
	}
}
