package daemon

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	b := newBudget(10)
	ctx := context.Background()
	n1, _ := b.acquire(ctx, 6)
	if n1 != 6 {
		t.Fatalf("took %d", n1)
	}
	// 6 more do not fit: the waiter gets them once the first 6 come back.
	got := make(chan int64)
	go func() {
		n, _ := b.acquire(ctx, 6)
		got <- n
	}()
	// A small request behind it waits too (FIFO), even though 4 are free.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	time.Sleep(20 * time.Millisecond)
	if _, err := b.acquire(short, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("small request overtook the queue: %v", err)
	}
	select {
	case n := <-got:
		t.Fatalf("granted %d while only 4 were free", n)
	default:
	}
	b.release(n1)
	if n := <-got; n != 6 {
		t.Fatalf("waiter took %d", n)
	}
	// Over the capacity is clamped, so it can always be granted eventually.
	b.release(6)
	if n, err := b.acquire(ctx, 1<<40); err != nil || n != 10 {
		t.Fatalf("oversized request: %d, %v", n, err)
	}
	b.release(10)
	if b.free != 10 || len(b.waiters) != 0 {
		t.Fatalf("leaked: free %d, waiters %d", b.free, len(b.waiters))
	}
}
