package daemon

import (
	"sync"
	"time"
)

// recentEvents keeps, by key, the events of the last window behind an
// alarm that clears by itself (bad_signature, protocol_version): when they
// began (the first after a window without one), the latest, how many, and
// what the latest said. With max > 0 it remembers at most max keys,
// forgetting the expired ones, else the one seen longest ago, to make
// room. Safe for concurrent use.
type recentEvents[K comparable] struct {
	window time.Duration
	max    int

	mu   sync.Mutex
	seen map[K]*recentEvent // guarded by mu
}

// recentEvent is the events of one key since its alarm was last raised
// anew.
type recentEvent struct {
	since, at time.Time
	n         int
	words     string
}

func newRecentEvents[K comparable](window time.Duration, max int) *recentEvents[K] {
	return &recentEvents[K]{window: window, max: max, seen: map[K]*recentEvent{}}
}

// record notes an event of k at now, and reports whether it raised k's
// alarm anew (none of k in the window before it).
func (r *recentEvents[K]) record(k K, words string, now time.Time) (fresh bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.seen[k]
	if e == nil || now.Sub(e.at) > r.window {
		if e == nil && r.max > 0 && len(r.seen) >= r.max {
			r.dropOldestLocked(now)
		}
		e = &recentEvent{since: now}
		r.seen[k] = e
		fresh = true
	}
	e.at, e.words = now, words
	e.n++
	return fresh
}

// dropOldestLocked forgets the expired keys, or if none has expired the
// one seen longest ago.
func (r *recentEvents[K]) dropOldestLocked(now time.Time) {
	var oldest K
	var oldestAt time.Time
	for k, e := range r.seen {
		if now.Sub(e.at) > r.window {
			delete(r.seen, k)
			continue
		}
		if oldestAt.IsZero() || e.at.Before(oldestAt) {
			oldest, oldestAt = k, e.at
		}
	}
	if len(r.seen) >= r.max {
		delete(r.seen, oldest)
	}
}

// live calls f with each key whose latest event is within the window of
// now, in no order; f must not call r.
func (r *recentEvents[K]) live(now time.Time, f func(K, recentEvent)) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, e := range r.seen {
		if now.Sub(e.at) <= r.window {
			f(k, *e)
		}
	}
}
