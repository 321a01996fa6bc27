package daemon

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// handedOut remembers the ports freeAddr returned, so that two calls in
// one test process never return the same one (a port closed after the
// check can be picked again by the kernel).
var handedOut sync.Map

// freeAddr returns ip:port with a port free for both TCP and UDP now and
// not returned before by this process.
func freeAddr(t testing.TB, ip string) string {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatalf("listen on %s: %v", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", ip, port))
		l.Close()
		if err == nil {
			u.Close()
			if _, dup := handedOut.LoadOrStore(port, true); dup {
				continue
			}
			return fmt.Sprintf("%s:%d", ip, port)
		}
	}
	t.Fatalf("no free port on %s", ip)
	return ""
}

// testLab is the lab (three nodes per site) running in this test process.
type testLab struct {
	t     testing.TB
	dir   string
	sites []string
	cfgs  map[string]*Config
	nodes map[string]*Node
}

// startLab starts the two-site lab with short Raft timeouts on free
// loopback ports, and waits until both sites have a leader.
func startLab(t testing.TB, opts ...func(*Config)) *testLab {
	t.Helper()
	return startLabSites(t, LabSites, opts...)
}

// startLabSites is startLab for the given sites (at most 10): site s
// listens on 127.0.<21+s>.x (Raft, fiber) and 127.0.<31+s>.x (sat).
func startLabSites(t testing.TB, sites []string, opts ...func(*Config)) *testLab {
	t.Helper()
	dir := t.TempDir()
	if err := EnsureLabPKIFor(dir, sites); err != nil {
		t.Fatal(err)
	}
	cfgs := LabConfigsFor(dir, sites, []string{"fiber", "sat"}, func(s, i int) (string, map[string]string) {
		ip := fmt.Sprintf("127.0.%d.%d", 21+s, 1+i)
		return freeAddr(t, ip), map[string]string{
			"fiber": freeAddr(t, ip),
			"sat":   freeAddr(t, fmt.Sprintf("127.0.%d.%d", 31+s, 1+i)),
		}
	})
	lab := &testLab{t: t, dir: dir, sites: sites, cfgs: map[string]*Config{}, nodes: map[string]*Node{}}
	for _, c := range cfgs {
		c.Raft.HeartbeatTimeout.Duration = 500 * time.Millisecond
		c.Raft.ElectionTimeout.Duration = 500 * time.Millisecond
		c.Raft.LeaderLeaseTimeout.Duration = 250 * time.Millisecond
		c.LogLevel = "warn"
		c.AllowRemoteDrills = true
		for _, o := range opts {
			o(c)
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		lab.cfgs[c.Node] = c
		lab.start(c.Node)
	}
	t.Cleanup(func() {
		for _, n := range lab.nodes {
			n.Close()
		}
	})
	for _, s := range sites {
		lab.settled(s)
	}
	return lab
}

// settled waits until every running node of site names the same leader,
// which leads: a test that starts by asking any node for its leader (a
// drill, an admin call) then finds one.
func (l *testLab) settled(site string) {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		leader := l.leader(site)
		agreed := true
		for _, name := range LabNodes(site) {
			if n := l.nodes[name]; n != nil {
				if id, _ := n.raft.Leader(); id != leader {
					agreed = false
				}
			}
		}
		if agreed {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("the nodes of site %s did not agree on a leader within 30s", site)
}

func (l *testLab) start(node string) {
	l.t.Helper()
	c := l.cfgs[node]
	n, err := Open(c, newLogger(testWriter{l.t}, c.LogLevel, "text"))
	if err != nil {
		l.t.Fatalf("open %s: %v", node, err)
	}
	l.nodes[node] = n
}

// leader waits for site's leader and returns its name.
func (l *testLab) leader(site string) string {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, name := range LabNodes(site) {
			if n := l.nodes[name]; n != nil && n.raft.IsLeader() {
				return name
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("site %s elected no leader within 30s", site)
	return ""
}

func (l *testLab) client(node string) *client.Client { return client.New(l.cfgs[node].Socket) }

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// sent is one acknowledged submission.
type sent struct {
	key, id, from, to, precedence string
}

// ledger records acknowledged submissions and checks what arrived.
type ledger struct {
	mu   sync.Mutex
	sent map[string]sent // by key
}

func newLedger() *ledger { return &ledger{sent: map[string]sent{}} }

func (g *ledger) add(s sent) {
	g.mu.Lock()
	g.sent[s.key] = s
	g.mu.Unlock()
}

// submitRetrying submits until acknowledged, retrying with the same key as
// a careful client does; a retry must never duplicate.
func submitRetrying(ctx context.Context, c *client.Client, req client.SubmitRequest) (*client.Message, error) {
	var last error
	for ctx.Err() == nil {
		m, err := c.Submit(ctx, req)
		if err == nil {
			return m, nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return nil, fmt.Errorf("submit %s: %w (last error: %v)", req.Key, ctx.Err(), last)
}

// traffic is perNode submissions from every lab node to the other sites,
// destinations and precedences in rotation (every (destination,
// precedence) pair alike), each retried with its key until acknowledged.
type traffic struct {
	wg       sync.WaitGroup
	errs     chan error
	progress atomic.Int64 // acknowledged submissions so far
}

// startTraffic starts the submitters of the two-site lab; keys are
// "<prefix>-<node>-<i>".
func startTraffic(ctx context.Context, prefix string, perNode int, clientFor func(node string) *client.Client, g *ledger) *traffic {
	return startTrafficSites(ctx, prefix, LabSites, perNode, clientFor, g)
}

// startTrafficSites is startTraffic between the given sites: message i of
// a node goes to its (i mod (len(sites)-1))th other site.
func startTrafficSites(ctx context.Context, prefix string, sites []string, perNode int, clientFor func(node string) *client.Client, g *ledger) *traffic {
	tr := &traffic{errs: make(chan error, len(sites)*3)}
	for _, site := range sites {
		var others []string
		for _, s := range sites {
			if s != site {
				others = append(others, s)
			}
		}
		for _, node := range LabNodes(site) {
			c := clientFor(node)
			tr.wg.Add(1)
			go func() {
				defer tr.wg.Done()
				for i := range perNode {
					to := others[i%len(others)]
					p := queue.Precedences[(i/len(others))%len(queue.Precedences)]
					key := fmt.Sprintf("%s-%s-%d", prefix, node, i)
					m, err := submitRetrying(ctx, c, client.SubmitRequest{To: to, Precedence: p.String(), Key: key, Payload: []byte(key)})
					if err != nil {
						tr.errs <- err
						return
					}
					g.add(sent{key: key, id: m.ID, from: site, to: to, precedence: p.String()})
					tr.progress.Add(1)
				}
			}()
		}
	}
	return tr
}

// wait waits for every submitter and fails t on the first error.
func (tr *traffic) wait(t testing.TB) {
	t.Helper()
	tr.wg.Wait()
	close(tr.errs)
	for err := range tr.errs {
		t.Fatal(err)
	}
}

// checkArrivals verifies exactly-once, in-order delivery: every
// acknowledged submission to site appears exactly once in msgs (the site's
// inbox in position order), and within each channel sequence numbers
// increase by one from 1.
func (g *ledger) checkArrivals(t testing.TB, site string, msgs []client.InboxMessage) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	seen := map[string]int{}
	lastSeq := map[string]uint64{}
	for _, m := range msgs {
		seen[m.Key]++
		ch := m.From + "/" + m.Precedence
		if m.Seq != lastSeq[ch]+1 {
			t.Errorf("site %s: channel %s: seq %d after %d (out of order or gap)", site, ch, m.Seq, lastSeq[ch])
		}
		lastSeq[ch] = m.Seq
		if s, ok := g.sent[m.Key]; ok && s.id != m.ID {
			t.Errorf("site %s: key %s arrived as id %s, submitted as %s", site, m.Key, m.ID, s.id)
		}
	}
	want := 0
	for k, s := range g.sent {
		if s.to != site {
			continue
		}
		want++
		switch seen[k] {
		case 1:
		case 0:
			t.Errorf("site %s: %s (id %s from %s) was acknowledged but never arrived", site, k, s.id, s.from)
		default:
			t.Errorf("site %s: %s arrived %d times", site, k, seen[k])
		}
	}
	for k, c := range seen {
		if _, ok := g.sent[k]; !ok {
			t.Errorf("site %s: %s arrived %d times but was never acknowledged", site, k, c)
		}
	}
	t.Logf("site %s: %d acknowledged, %d arrived", site, want, len(msgs))
}

// drainInbox reads site's inbox through node until want unread messages
// are there or the deadline passes, and returns them in position order.
func drainInbox(t testing.TB, c *client.Client, want int, deadline time.Duration) []client.InboxMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	var out []client.InboxMessage
	var after uint64
	for len(out) < want && ctx.Err() == nil {
		in, err := c.Inbox(ctx, after, 1000, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			t.Logf("inbox: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		out = append(out, in.Messages...)
		after = in.Next
	}
	// Anything extra (a duplicate) shows up within a short grace period.
	if in, err := c.Inbox(context.Background(), after, 1000, 500*time.Millisecond); err == nil {
		out = append(out, in.Messages...)
	}
	return out
}
