package forward

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/trust"
)

// deliveredLog records the OpDelivered commands a site proposes, before
// they change its store (so that a test that sees the change sees them).
type deliveredLog struct {
	Log
	mu  sync.Mutex
	cmd []queue.DeliveredCmd
}

func (l *deliveredLog) Propose(ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
	if cmd.Delivered != nil {
		l.mu.Lock()
		l.cmd = append(l.cmd, *cmd.Delivered)
		l.mu.Unlock()
	}
	return l.Log.Propose(ctx, cmd)
}

// TestForwardDeliveryProofs: the origin records a delivery only with the
// destination's signed proof of it. Acks whose proof does not hold (a
// flipped byte, none) and a refusal of the origin's own signature are
// failures: nothing is recorded for them, the hook hears of each, and the
// batch is sent again; its new ack proves the delivery. In the end every
// message is covered by a recorded delivery proof and by the origin's own
// statement of the batch it was sent in, both holding with the keyring.
func TestForwardDeliveryProofs(t *testing.T) {
	net := linktest.NewNet[transport.Batch, transport.Ack](11, func(b *transport.Batch) string { return b.To })
	t.Cleanup(net.Close)
	sites := []string{"alpha", "bravo"}
	alpha, bravo := newSite(t, net, "alpha", sites), newSite(t, net, "bravo", sites)
	log := &deliveredLog{Log: alpha.log}
	alpha.cfg.Log = log
	var badAcks, refusedOurs atomic.Int64
	alpha.cfg.Hooks.Untrusted = func(site string, ack bool, err error) {
		if site != "bravo" || Reason(err) == "" {
			t.Errorf("Untrusted(%s, %v, %v)", site, ack, err)
		}
		if ack {
			badAcks.Add(1)
		} else {
			refusedOurs.Add(1)
		}
	}

	var n atomic.Int64
	net.Handle("bravo", func(ctx context.Context, from string, b *transport.Batch) (*transport.Ack, error) {
		ack, err := bravo.receive(ctx, from, b)
		if err != nil || ack.Error != "" || len(ack.Proof) == 0 {
			return ack, err
		}
		switch n.Add(1) {
		case 2: // applied, but its proof was damaged on the way
			p := append([]byte(nil), ack.Proof...)
			p[len(p)-1] ^= 1
			ack.Proof = p
		case 4: // applied, but the proof was lost
			ack.Proof = nil
		case 6: // a proof of alpha's own: not a delivery proof
			ack.Proof = b.Proof
		case 8: // bravo refused alpha's signature (a key it does not pin yet)
			return testCodes.Refusal(fmt.Errorf("messages proof of alpha: %w", trust.ErrUnknownKey), ""), nil
		}
		return ack, nil
	})

	alpha.submit(t, "bravo", "m", 40)
	alpha.run(t)
	waitFor(t, alpha.store, func() bool { return allAcked(alpha.store) }, func() string {
		return fmt.Sprintf("alpha's channels not all acked: %+v", alpha.store.Outbound())
	})
	if badAcks.Load() != 3 || refusedOurs.Load() != 1 {
		t.Errorf("Untrusted heard of %d bad acks and %d refusals of ours, want 3 and 1", badAcks.Load(), refusedOurs.Load())
	}

	// Every message bravo holds is covered by a delivery proof and a
	// sent proof alpha recorded, each holding with the keyring.
	checkProven(t, bravo.store, log, 40)
}

// checkProven checks that dest holds want messages and that each is
// covered by a delivery proof and a sent proof the origin recorded (in
// log), each holding with the keyring.
func checkProven(t *testing.T, dest *queue.Store, log *deliveredLog, want int) {
	t.Helper()
	items, err := dest.Inbox(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != want {
		t.Fatalf("the destination holds %d messages, want %d", len(items), want)
	}
	ring := notaryOf(t, "alpha").Ring
	log.mu.Lock()
	defer log.mu.Unlock()
	for _, it := range items {
		m := it.Message
		leaf := trust.MessageLeaf(&m)
		for _, kind := range []trust.Kind{trust.KindDelivered, trust.KindMessages} {
			if !provenIn(t, ring, log.cmd, m.Precedence, m.Seq, leaf, kind) {
				t.Fatalf("%s (%s, seq %d): no recorded %s proof covers it", m.ID, m.Precedence, m.Seq, kind)
			}
		}
	}
}

// provenIn reports whether a recorded delivery of channel p holds a
// statement of kind that covers leaf as sequence seq and verifies.
func provenIn(t *testing.T, ring Verifier, cmds []queue.DeliveredCmd, p queue.Precedence, seq uint64, leaf trust.Hash, kind trust.Kind) bool {
	for _, d := range cmds {
		ev := d.Evidence
		if kind == trust.KindMessages {
			ev = d.Sent
		}
		if d.Precedence != p || ev == nil || seq < ev.First || seq-ev.First >= uint64(len(ev.Leaves)) {
			continue
		}
		i := int(seq - ev.First)
		s, err := trust.DecodeSigned(ev.Statement)
		if err != nil || s.Kind != kind || ring.Verify(s) != nil {
			t.Fatalf("recorded %s proof: %v", kind, err)
		}
		proof, err := trust.Prove(toHashes(ev.Leaves), i)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Leaves[i] == leaf && trust.CheckInclusion(s.Root, int64(s.Count), int64(i), leaf, proof) == nil {
			return true
		}
	}
	return false
}

// A delivery proof recorded late still counts once: Hooks.Delivered adds
// up to the channel's last sequence however the acks were recorded.
func TestAckReporterProofsInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []uint64
	var counted atomic.Uint64
	block := make(chan struct{})
	c := &Config{SubmitTimeout: time.Second, Logger: quiet,
		Log: ProposeFunc(func(ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
			<-block
			mu.Lock()
			got = append(got, cmd.Delivered.UpTo)
			mu.Unlock()
			return &queue.Result{}, nil
		}),
		Hooks: Hooks{Delivered: func(n uint64) { counted.Add(n) }}}
	r := NewAckReporter(c, "bravo", queue.Flash)
	ev := func() *queue.Evidence { return &queue.Evidence{First: 1, Leaves: make([][32]byte, 1)} }
	r.Prove(Delivery{UpTo: 5, Evidence: ev()})
	r.Report(9)
	r.Prove(Delivery{UpTo: 3, Evidence: ev()}) // a late ack of an earlier batch
	r.Prove(Delivery{UpTo: 9, Evidence: ev()})
	close(block)
	deadline := time.Now().Add(5 * time.Second)
	for counted.Load() < 9 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r.Stop()
	mu.Lock()
	defer mu.Unlock()
	// The first proposal may have started before the others were
	// reported; after it, every proof in order, and no plain ack is
	// needed once the proofs reached 9.
	if fmt.Sprint(got) != "[5 3 9]" || counted.Load() != 9 {
		t.Fatalf("proposed %v, counted %d; want [5 3 9] and 9", got, counted.Load())
	}
}
