package daemon

import (
	"context"
	"slices"
	"sync"
)

// budget is a weighted semaphore of bytes: the inbox replies (and
// evidence bundles, which hold an envelope) of all readers together hold
// at most its capacity in memory. Grants are FIFO,
// so a large request is not starved by small ones.
type budget struct {
	capacity int64

	mu      sync.Mutex
	free    int64
	waiters []*budgetWaiter // FIFO
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed when granted
}

func newBudget(capacity int64) *budget {
	return &budget{capacity: capacity, free: capacity}
}

// acquire takes n bytes (clamped to the capacity) and returns how many it
// took, to give back with release. It waits until they are free or ctx
// ends (then it takes nothing and returns ctx's error).
func (b *budget) acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 1), b.capacity)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.free >= n {
		b.free -= n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready: // granted meanwhile: give it back
			b.free += n
		default:
			b.waiters = slices.DeleteFunc(b.waiters, func(x *budgetWaiter) bool { return x == w })
		}
		b.grantLocked()
		b.mu.Unlock()
		return 0, ctx.Err()
	}
}

// release gives back n bytes taken by acquire.
func (b *budget) release(n int64) {
	b.mu.Lock()
	b.free += n
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked wakes the waiters at the head of the queue that now fit.
func (b *budget) grantLocked() {
	for len(b.waiters) > 0 && b.free >= b.waiters[0].n {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.free -= w.n
		close(w.ready)
	}
}
