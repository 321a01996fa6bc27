package transport

import (
	"context"
	"sync"
)

// budget is a semaphore of bytes: the request frames the Link is
// receiving or serving at once, over all connections. A request reserves
// its whole claimed length before reading its body (so that no two
// half-read frames can each wait for the other's bytes) and releases it when
// its stream is done. Waiters are served in arrival order, so a large frame
// is not starved by small ones. All methods are safe for concurrent use.
type budget struct {
	size int64 // fixed at creation

	mu      sync.Mutex
	used    int64
	waiters []*budgetWaiter // FIFO
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once the bytes are reserved
}

func newBudget(size int64) *budget { return &budget{size: size} }

// acquire reserves n bytes (at most size), waiting until they are free or
// ctx ends; then it returns ctx's error and reserves nothing.
func (b *budget) acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.size {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.used -= n
	default:
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
	}
	b.grantLocked()
	return ctx.Err()
}

// release returns n reserved bytes.
func (b *budget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.grantLocked()
}

// grantLocked serves waiters in order while their bytes fit.
func (b *budget) grantLocked() {
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		if b.used+w.n > b.size {
			return
		}
		b.used += w.n
		close(w.ready)
		b.waiters = b.waiters[1:]
	}
}

// inUse returns the bytes reserved and the number of requests waiting.
func (b *budget) inUse() (used int64, waiting int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, len(b.waiters)
}
