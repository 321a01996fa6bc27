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
				var readAt int64 // a read proof is of the read the origin records
				if st, err := side.st.Lookup(m.ID); err == nil && kind == queue.ProofRead {
					readAt = st.ReadAt
				}
				if err := verifyStored(n, ps[i], &m, readAt); err != nil {
					t.Fatalf("%s: %v", m.ID, err)
				}
			}
		}
	}
}

// TestAckReporterProofsInOrder: proofs are committed in order of their
// first message whatever order they came in, all that continue the
// recorded run in one command (UpTo its end), none dropped; one beyond a
// gap waits for the proof before it, and one the run covers adds nothing.
// Hooks.Delivered counts each message once.
func TestAckReporterProofsInOrder(t *testing.T) {
	var mu sync.Mutex
	var got []string
	var counted atomic.Uint64
	block := make(chan struct{})
	var calls atomic.Int64
	c := &Config{SubmitTimeout: 5 * time.Second, Logger: quiet,
		Log: ProposeFunc(func(ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
			if calls.Add(1) == 1 {
				<-block
			}
			if _, err := cmd.Encode(); err != nil { // queue's checks: ordered, contiguous, ending at UpTo
				t.Errorf("proposed a command queue refuses: %v", err)
			}
			d := cmd.Delivered
			s := fmt.Sprint(d.UpTo, ":")
			for _, p := range d.Proofs {
				s += fmt.Sprintf(" %d+%d", p.Evidence.First, len(p.Evidence.Leaves))
			}
			mu.Lock()
			got = append(got, s)
			mu.Unlock()
			return &queue.Result{}, nil
		}),
		Hooks: Hooks{Delivered: func(n uint64) { counted.Add(n) }}}
	r := NewAckReporter(c, "bravo", queue.Flash)
	defer r.Stop()
	proof := func(first uint64, n int) Delivery {
		ev := &queue.Evidence{Statement: fmt.Appendf(nil, "d%d", first), First: first, Leaves: make([][32]byte, n)}
		return Delivery{UpTo: first + uint64(n) - 1, Evidence: ev, Sent: ev}
	}
	wait := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for counted.Load() < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if counted.Load() != n {
			t.Fatalf("counted %d, want %d", counted.Load(), n)
		}
	}
	r.Prove(proof(1, 5)) // committed at once; its proposal blocks
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	r.Prove(proof(11, 10)) // acked before the batch before it
	r.Prove(proof(6, 5))
	r.Prove(proof(31, 10)) // beyond a gap: waits
	r.Prove(proof(21, 5))
	r.Prove(proof(2, 3)) // covered by the recorded run
	close(block)
	wait(25)
	if n := r.Backlog(); n != 1 {
		t.Fatalf("%d proofs waiting, want 1 (31..40)", n)
	}
	r.Prove(proof(26, 5))
	wait(40)
	mu.Lock()
	defer mu.Unlock()
	if want := "[5: 1+5 25: 6+5 11+10 21+5 40: 26+5 31+10]"; fmt.Sprint(got) != want {
		t.Fatalf("proposed %v, want %s", got, want)
	}
}
