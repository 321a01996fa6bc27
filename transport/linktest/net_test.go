package linktest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

type toyBatch struct {
	to string
	n  int
}

type toyAck struct{ n int }

// toyNet is a Net with one site, bravo, whose handler records the batches
// it got and answers with their number.
func toyNet(t *testing.T, seed uint64) (*Net[toyBatch, toyAck], func() []int) {
	n := NewNet[toyBatch, toyAck](seed, func(b *toyBatch) string { return b.to })
	t.Cleanup(n.Close)
	var mu sync.Mutex
	var got []int
	n.Handle("bravo", func(ctx context.Context, from string, b *toyBatch) (*toyAck, error) {
		if from != "alpha" {
			t.Errorf("handler: from %q, want alpha", from)
		}
		mu.Lock()
		defer mu.Unlock()
		got = append(got, b.n)
		return &toyAck{n: b.n}, nil
	})
	return n, func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestNetDeliversAndAnswers(t *testing.T) {
	n, got := toyNet(t, 1)
	l := n.Link("alpha")
	ack, err := l.SendBatch(context.Background(), &toyBatch{to: "bravo", n: 7})
	if err != nil || ack.n != 7 {
		t.Fatalf("SendBatch = %+v, %v; want ack 7", ack, err)
	}
	if _, err := l.SendBatch(context.Background(), &toyBatch{to: "charlie"}); !errors.Is(err, ErrNoSite) {
		t.Fatalf("to an unknown site: err %v, want ErrNoSite", err)
	}
	if g := got(); !slices.Equal(g, []int{7}) {
		t.Fatalf("bravo got %v, want [7]", g)
	}
	l.SetPreferred("bravo", "b2")
	if p := l.Preferred("bravo"); p != "b2" {
		t.Fatalf("Preferred = %q, want b2", p)
	}
}

func TestNetFaults(t *testing.T) {
	n, got := toyNet(t, 1)
	l := n.Link("alpha")
	ctx := context.Background()

	n.SetFaults(Faults{Drop: 1})
	if _, err := l.SendBatch(ctx, &toyBatch{to: "bravo", n: 1}); !errors.Is(err, ErrDropped) {
		t.Fatalf("Drop: err %v, want ErrDropped", err)
	}
	n.SetFaults(Faults{DropAck: 1})
	if _, err := l.SendBatch(ctx, &toyBatch{to: "bravo", n: 2}); !errors.Is(err, ErrAckDropped) {
		t.Fatalf("DropAck: err %v, want ErrAckDropped", err)
	}
	n.SetFaults(Faults{Duplicate: 1})
	if _, err := l.SendBatch(ctx, &toyBatch{to: "bravo", n: 3}); err != nil {
		t.Fatalf("Duplicate: %v", err)
	}
	n.SetFaults(Faults{})
	n.Cut("bravo", true)
	if _, err := l.SendBatch(ctx, &toyBatch{to: "bravo", n: 4}); !errors.Is(err, ErrDropped) {
		t.Fatalf("Cut: err %v, want ErrDropped", err)
	}
	n.Cut("bravo", false)
	for end := time.Now().Add(5 * time.Second); len(got()) < 3 && time.Now().Before(end); {
		time.Sleep(time.Millisecond) // the late duplicate
	}
	g := got()
	slices.Sort(g)
	if !slices.Equal(g, []int{2, 3, 3}) {
		t.Fatalf("bravo got %v, want [2 3 3] (1 and 4 dropped, 2's ack dropped, 3 twice)", g)
	}
	want := Stats{Sent: 4, Delivered: 2, Dropped: 2, AcksDropped: 1, Duplicated: 1}
	if s := n.Stats(); s != want {
		t.Fatalf("Stats = %+v, want %+v", s, want)
	}
}

func TestNetReorders(t *testing.T) {
	n, got := toyNet(t, 1)
	l := n.Link("alpha")
	n.SetFaults(Faults{Reorder: 1, Delay: 200 * time.Millisecond})
	done := make(chan error)
	go func() {
		_, err := l.SendBatch(context.Background(), &toyBatch{to: "bravo", n: 1})
		done <- err
	}()
	for n.Stats().Sent == 0 { // batch 1 has drawn its fate: held back
		time.Sleep(time.Millisecond)
	}
	n.SetFaults(Faults{})
	if _, err := l.SendBatch(context.Background(), &toyBatch{to: "bravo", n: 2}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g := got(); !slices.Equal(g, []int{2, 1}) {
		t.Fatalf("bravo got %v, want [2 1] (1 held back)", g)
	}
	if s := n.Stats(); s.Reordered != 1 {
		t.Fatalf("Reordered = %d, want 1", s.Reordered)
	}
}

func TestNetDelayEndsWithContext(t *testing.T) {
	n, got := toyNet(t, 1)
	n.SetFaults(Faults{Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := n.Link("alpha").SendBatch(ctx, &toyBatch{to: "bravo"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
	if g := got(); len(g) != 0 {
		t.Fatalf("bravo got %v, want nothing", g)
	}
}

// TestNetSeeded: one sender sees the same faults from the same seed.
func TestNetSeeded(t *testing.T) {
	pattern := func(seed uint64) []bool {
		n, _ := toyNet(t, seed)
		n.SetFaults(Faults{Drop: 0.5})
		var out []bool
		for i := range 64 {
			_, err := n.Link("alpha").SendBatch(context.Background(), &toyBatch{to: "bravo", n: i})
			out = append(out, err == nil)
		}
		return out
	}
	a, b := pattern(42), pattern(42)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 42 gave two patterns:\n%v\n%v", a, b)
	}
	if slices.Equal(a, pattern(43)) {
		t.Fatalf("seeds 42 and 43 gave the same 64 drops")
	}
	if !slices.Contains(a, true) || !slices.Contains(a, false) {
		t.Fatalf("Drop 0.5 gave %v", a)
	}
}
