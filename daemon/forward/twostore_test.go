package forward

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/linktest"
)

// memNet is the in-memory link between the test's sites.
type memNet = linktest.Net[transport.Batch, transport.Ack]

// storeLog is a Log without Raft: it numbers each command into the next
// entry and applies it to the store at once, one at a time, as a site of
// one node would.
type storeLog struct {
	mu sync.Mutex
	s  *queue.Store
}

func (l *storeLog) Propose(ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
	data, err := cmd.Encode()
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	res := l.s.Apply([]queue.Entry{{Index: l.s.AppliedIndex() + 1, Data: data}})[0]
	if res.Err != "" {
		return nil, fmt.Errorf("apply %s: %s", cmd.Op, res.Err)
	}
	return &res, nil
}

// site is one site of the test: a real store in a temporary directory, its
// log, and its forwarding config on the in-memory net.
type site struct {
	name  string
	store *queue.Store
	log   *storeLog
	cfg   *Config

	delivered atomic.Uint64 // Hooks.Delivered
	failures  atomic.Int64  // Hooks.SendFailed
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newSite(t *testing.T, net *memNet, name string, sites []string) *site {
	t.Helper()
	return openSite(t, net, name, sites, filepath.Join(t.TempDir(), "state.db"))
}

// notaries are the keys of the test's sites, made once for the package.
var notaries = sync.OnceValues(func() (map[string]*Notary, error) {
	return newNotaries("alpha", "bravo", "charlie")
})

func notaryOf(t testing.TB, site string) *Notary {
	t.Helper()
	ns, err := notaries()
	if err != nil {
		t.Fatal(err)
	}
	return ns[site]
}

// openSite is newSite on the store at path (a new one if there is none).
func openSite(t *testing.T, net *memNet, name string, sites []string, path string) *site {
	t.Helper()
	st, err := queue.Open(path, name, queue.Options{Sites: sites})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s := &site{name: name, store: st, log: &storeLog{s: st}}
	var remote []string
	for _, o := range sites {
		if o != name {
			remote = append(remote, o)
		}
	}
	s.cfg = &Config{Site: name, Remote: remote,
		Window: 4, BatchMessages: 5, BatchBytes: 1 << 20,
		RetryMin: time.Millisecond, RetryMax: 4 * time.Millisecond,
		SendTimeout: time.Second, SubmitTimeout: time.Second,
		Link: net.Link(name), Log: s.log, State: st, Logger: quiet, Notary: notaryOf(t, name),
		Codes: testCodes, Retryable: testRetryable,
		Hooks: Hooks{
			SendFailed: func(string) { s.failures.Add(1) },
			Delivered:  func(n uint64) { s.delivered.Add(n) },
		}}
	net.Handle(name, s.receive)
	return s
}

// receive is the far side's receiving end: it applies a batch from another
// site (OpReceive, OpReceipts) and acks what its channel now holds.
func (s *site) receive(ctx context.Context, from string, b *transport.Batch) (*transport.Ack, error) {
	if b.From != from || b.To != s.name {
		return &transport.Ack{Error: fmt.Sprintf("batch from %s names sites %s->%s", from, b.From, b.To)}, nil
	}
	now := time.Now().UnixNano()
	cmd, err := s.cfg.Notary.Command(b, now)
	if err != nil {
		return testCodes.Refusal(err, ""), nil
	}
	res, err := s.log.Propose(ctx, cmd)
	if err != nil {
		return testCodes.Refusal(err, ""), nil
	}
	if res.Receive != nil {
		proof, err := s.cfg.Notary.SignDelivered(cmd, res.Receive.Last, now)
		if err != nil {
			return testCodes.Refusal(err, ""), nil
		}
		return &transport.Ack{Last: res.Receive.Last, Proof: proof}, nil
	}
	return &transport.Ack{Last: res.Receipts.Last}, nil
}

// run runs the site's forwarding until the test ends or stop is called.
func (s *site) run(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, s.cfg) }()
	stop = sync.OnceFunc(func() { cancel(); <-done })
	t.Cleanup(stop)
	return stop
}

// submit commits messages to dest: ids prefix-0.. spread over the
// precedences; it returns the ids per precedence in submission order.
func (s *site) submit(t *testing.T, dest, prefix string, n int) map[queue.Precedence][]string {
	t.Helper()
	out := map[queue.Precedence][]string{}
	var items []queue.SubmitItem
	for i := range n {
		p := queue.Precedences[i%len(queue.Precedences)]
		id := fmt.Sprintf("%s-%d", prefix, i)
		out[p] = append(out[p], id)
		items = append(items, queue.SubmitItem{ID: id, Dest: dest, Precedence: p, Payload: []byte("payload " + id)})
	}
	if err := s.trySubmit(items); err != nil {
		t.Fatal(err)
	}
	return out
}

// trySubmit commits items, failing if any is refused.
func (s *site) trySubmit(items []queue.SubmitItem) error {
	res, err := s.log.Propose(context.Background(), &queue.Command{Op: queue.OpSubmit, Time: time.Now().UnixNano(),
		Submit: &queue.Submit{Origin: s.name, Items: items}})
	if err != nil {
		return err
	}
	for i, r := range res.Submit {
		if r.Err != "" {
			return fmt.Errorf("submit %s: %s", items[i].ID, r.Err)
		}
	}
	return nil
}

// waitFor polls cond on every change of st until it holds, failing the
// test after a while with what describe says.
func waitFor(t *testing.T, st *queue.Store, cond func() bool, describe func() string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		changed := st.Changed()
		if cond() {
			return
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out: %s", describe())
		}
	}
}

// allAcked reports whether every outbound channel of st is acknowledged.
func allAcked(st *queue.Store) bool {
	for _, c := range st.Outbound() {
		if c.Acked < c.Last {
			return false
		}
	}
	return true
}

// TestForwardTwoStores forwards messages from alpha to bravo over a link
// that drops, delays, reorders and duplicates batches and loses acks, on
// two real stores: every message arrives exactly once and in order per
// channel, alpha records the acks (OpDelivered) with bravo's signed proof
// of each message, and the read receipts come back to alpha.
func TestForwardTwoStores(t *testing.T) {
	net := linktest.NewNet[transport.Batch, transport.Ack](7, func(b *transport.Batch) string { return b.To })
	t.Cleanup(net.Close)
	sites := []string{"alpha", "bravo"}
	alpha, bravo := newSite(t, net, "alpha", sites), newSite(t, net, "bravo", sites)
	net.SetFaults(linktest.Faults{Drop: 0.1, DropAck: 0.1, Duplicate: 0.2, Reorder: 0.2, Delay: 2 * time.Millisecond})

	// A refusal naming bravo's leader now and then: alpha prefers it.
	// Most are coded; every other one comes as text only, as from a node
	// of an earlier version.
	var refusals atomic.Int64
	net.Handle("bravo", func(ctx context.Context, from string, b *transport.Batch) (*transport.Ack, error) {
		switch n := refusals.Add(1); {
		case n%18 == 0:
			return &transport.Ack{Error: "not the leader", Leader: "bravo-2"}, nil
		case n%9 == 0:
			return testCodes.Refusal(errTestNotLeader, "bravo-2"), nil
		}
		return bravo.receive(ctx, from, b)
	})

	want := alpha.submit(t, "bravo", "early", 60) // queued before forwarding starts
	alpha.run(t)
	bravo.run(t)
	for p, ids := range alpha.submit(t, "bravo", "late", 60) { // new sequence numbers while forwarding
		want[p] = append(want[p], ids...)
	}
	start := time.Now()
	waitFor(t, alpha.store, func() bool { return allAcked(alpha.store) }, func() string {
		return fmt.Sprintf("alpha's channels not all acked: %+v", alpha.store.Outbound())
	})

	// Exactly once and in order per channel.
	items, err := bravo.store.Inbox(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	got := map[queue.Precedence][]string{}
	for _, it := range items {
		m := it.Message
		if m.Origin != "alpha" || string(m.Payload) != "payload "+m.ID {
			t.Fatalf("bravo's inbox holds %+v", m)
		}
		if uint64(len(got[m.Precedence])+1) != m.Seq {
			t.Fatalf("bravo got %s as seq %d of %s after %d messages", m.ID, m.Seq, m.Precedence, len(got[m.Precedence]))
		}
		got[m.Precedence] = append(got[m.Precedence], m.ID)
	}
	// The hold: a channel sent nothing while a higher precedence had
	// messages outstanding, so every message queued before forwarding
	// started arrived before any of a lower precedence.
	early := map[string]bool{}
	for _, ids := range want {
		for _, id := range ids {
			if strings.HasPrefix(id, "early-") {
				early[id] = true
			}
		}
	}
	var highest queue.Precedence // the lowest precedence (highest value) seen so far
	for _, it := range items {
		m := it.Message
		if m.Precedence > highest {
			highest = m.Precedence
		}
		if early[m.ID] && m.Precedence < highest {
			t.Fatalf("bravo got %s (%s) after a message of precedence %s", m.ID, m.Precedence, highest)
		}
	}

	var ids []string
	for _, p := range queue.Precedences {
		if fmt.Sprint(got[p]) != fmt.Sprint(want[p]) {
			t.Fatalf("bravo's %s channel holds\n%v\nwant\n%v", p, got[p], want[p])
		}
		ids = append(ids, got[p]...)
	}
	for _, id := range ids {
		if st, err := alpha.store.Lookup(id); err != nil || st.State != queue.Delivered {
			t.Fatalf("alpha: %s is %v (%v), want delivered", id, st, err)
		}
	}
	// Counted once each (the count follows the commit).
	waitFor(t, alpha.store, func() bool { return alpha.delivered.Load() == 120 }, func() string {
		return fmt.Sprintf("Hooks.Delivered counted %d messages, want 120", alpha.delivered.Load())
	})
	// Whatever the link did, every message has its proofs: received at
	// bravo, sent and delivered at alpha.
	msgs := inbox(t, bravo.store, 120)
	checkProven(t, alpha.store, bravo.store, msgs, queue.ProofSent, queue.ProofDelivered)

	t.Logf("all acked after %v", time.Since(start))
	// Read receipts flow back.
	if _, err := bravo.log.Propose(context.Background(), &queue.Command{Op: queue.OpMarkRead, Time: time.Now().UnixNano(),
		MarkRead: &queue.MarkRead{IDs: ids}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alpha.store, func() bool {
		st, err := alpha.store.Lookup(ids[len(ids)-1])
		return err == nil && st.State == queue.Read
	}, func() string {
		return fmt.Sprintf("receipts not back: bravo's queues %+v", bravo.store.ReceiptQueues())
	})
	for _, id := range ids {
		if st, err := alpha.store.Lookup(id); err != nil || st.State != queue.Read {
			t.Fatalf("alpha: %s is %v (%v), want read", id, st, err)
		}
	}
	// Each read receipt came signed by bravo, and alpha keeps it.
	checkProven(t, alpha.store, bravo.store, msgs, queue.ProofSent, queue.ProofDelivered, queue.ProofRead)
	waitFor(t, bravo.store, func() bool {
		q := bravo.store.ReceiptQueues()
		return len(q) == 1 && q[0].Acked == q[0].Last
	}, func() string { return fmt.Sprintf("bravo's receipts not all acked: %+v", bravo.store.ReceiptQueues()) })

	s := net.Stats()
	t.Logf("net: %+v; alpha's failed rounds: %d", s, alpha.failures.Load())
	if s.Dropped == 0 || s.AcksDropped == 0 || s.Duplicated == 0 || s.Reordered == 0 || alpha.failures.Load() == 0 {
		t.Errorf("the link did not mistreat batches as asked: %+v, %d failed rounds", s, alpha.failures.Load())
	}
	if p := alpha.cfg.Link.(*linktest.Link[transport.Batch, transport.Ack]).Preferred("bravo"); p != "bravo-2" {
		t.Errorf("after refusals naming bravo-2, alpha prefers %q", p)
	}
}

// TestRunLeavesNoGoroutine stops forwarding while batches are in flight
// (delayed on the link) and while a channel backs off: Run returns, and
// every goroutine it started (forwarders, their sends, ack reporters,
// receipt senders) has ended.
func TestRunLeavesNoGoroutine(t *testing.T) {
	for name, faults := range map[string]linktest.Faults{
		"in flight":   {Delay: time.Hour},
		"backing off": {Drop: 1},
	} {
		t.Run(name, func(t *testing.T) {
			net := linktest.NewNet[transport.Batch, transport.Ack](3, func(b *transport.Batch) string { return b.To })
			t.Cleanup(net.Close)
			sites := []string{"alpha", "bravo"}
			alpha, _ := newSite(t, net, "alpha", sites), newSite(t, net, "bravo", sites)
			before := runtime.NumGoroutine()
			alpha.cfg.RetryMin, alpha.cfg.RetryMax = time.Hour, time.Hour
			net.SetFaults(faults)
			alpha.submit(t, "bravo", "m", 40)
			stop := alpha.run(t)
			waitFor(t, alpha.store, func() bool { return net.Stats().Sent >= 2 }, func() string { return "nothing sent" })
			stop()
			deadline := time.Now().Add(5 * time.Second)
			for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if n := runtime.NumGoroutine(); n > before {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines after Run returned, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
			}
		})
	}
}
