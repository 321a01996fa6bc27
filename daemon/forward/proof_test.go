package forward

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/trust"
)

// TestForwardDeliveryProofs: the origin records a delivery only with the
// destination's signed proof of it. Acks whose proof does not hold (a
// flipped byte, none) and a refusal of the origin's own signature are
// failures: nothing is recorded for them, the hook hears of each, and the
// batch is sent again; its new ack proves the delivery. In the end every
// message has its received proof at the destination and its sent and
// delivered proofs at the origin, all holding with the keyring.
func TestForwardDeliveryProofs(t *testing.T) {
	net := linktest.NewNet[transport.Batch, transport.Ack](11, func(b *transport.Batch) string { return b.To })
	t.Cleanup(net.Close)
	sites := []string{"alpha", "bravo"}
	alpha, bravo := newSite(t, net, "alpha", sites), newSite(t, net, "bravo", sites)
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

	// Every message bravo holds has its received proof there, and its
	// sent and delivered proofs at alpha.
	checkProven(t, alpha.store, bravo.store, inbox(t, bravo.store, 40), queue.ProofSent, queue.ProofDelivered)
}

// inbox returns the messages of st's inbox, which must be want.
func inbox(t *testing.T, st *queue.Store, want int) []queue.Message {
	t.Helper()
	items, err := st.Inbox(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != want {
		t.Fatalf("the inbox holds %d messages, want %d", len(items), want)
	}
	var out []queue.Message
	for _, it := range items {
		out = append(out, it.Message)
	}
	return out
}

// checkProven checks that each of msgs (as dest holds them) has its
// received proof at dest and the proofs of kinds at origin, every one
// holding with the keyring and naming the message's leaf.
func checkProven(t *testing.T, origin, dest *queue.Store, msgs []queue.Message, kinds ...string) {
	t.Helper()
	n := notaryOf(t, "alpha")
	for _, m := range msgs {
		for _, side := range []struct {
			st    *queue.Store
			kinds []string
		}{{dest, []string{queue.ProofReceived}}, {origin, kinds}} {
			ps, err := side.st.Proofs(m.ID)
			if err != nil {
				t.Fatalf("proofs of %s: %v", m.ID, err)
			}
			for _, kind := range side.kinds {
				i := slices.IndexFunc(ps, func(p queue.Proof) bool { return p.Kind == kind })
				if i < 0 {
					t.Fatalf("%s (%s, seq %d): no %s proof among %d", m.ID, m.Precedence, m.Seq, kind, len(ps))
				}
				if _, err := n.CheckStored(ps[i], &m); err != nil {
					t.Fatalf("%s: %v", m.ID, err)
				}
			}
		}
	}
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
