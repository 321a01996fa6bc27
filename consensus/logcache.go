package consensus

import (
	"sync"

	"github.com/hashicorp/raft"
)

// Limits of the log cache.
const (
	logCacheSize  = 512      // entries
	logCacheBytes = 16 << 20 // of their data
)

// logCache is raft.LogCache bounded by bytes as well as by entries: a
// ring of the most recently stored entries, in front of the log store,
// that holds at most maxBytes of their data (Data and Extensions) and
// drops the oldest beyond it. Raft reads an entry back soon after it
// stored it (to replicate and apply it), so a few recent entries serve
// nearly every read; older ones are read from the store. A count alone is
// no bound: entries of link batches are about a megabyte each, and
// draining a backlog put 512 of them (over 380 MiB) in the cache of every
// node of the receiving site.
//
// Unlike raft.LogCache, it returns the store's error as it is, so that a
// *StorageError still matches ErrStorageFull. All methods are safe for
// concurrent use.
type logCache struct {
	store    raft.LogStore
	maxBytes int

	mu     sync.RWMutex
	ring   []*raft.Log // guarded by mu: by Index % len(ring)
	bytes  int         // guarded by mu: the size of what ring holds
	oldest uint64      // guarded by mu: ring holds no entry below it
}

var (
	_ raft.LogStore          = (*logCache)(nil)
	_ raft.MonotonicLogStore = (*logCache)(nil)
)

func newLogCache(store raft.LogStore, entries, maxBytes int) *logCache {
	return &logCache{store: store, maxBytes: maxBytes, ring: make([]*raft.Log, entries)}
}

// entrySize is what an entry costs the cache: its data and a little more.
func entrySize(l *raft.Log) int { return len(l.Data) + len(l.Extensions) + 128 }

// GetLog implements raft.LogStore.
func (c *logCache) GetLog(idx uint64, log *raft.Log) error {
	c.mu.RLock()
	cached := c.ring[idx%uint64(len(c.ring))]
	c.mu.RUnlock()
	if cached != nil && cached.Index == idx {
		*log = *cached
		return nil
	}
	return c.store.GetLog(idx, log)
}

// StoreLog implements raft.LogStore.
func (c *logCache) StoreLog(log *raft.Log) error { return c.StoreLogs([]*raft.Log{log}) }

// StoreLogs implements raft.LogStore: it caches logs once the store has
// them, then drops the oldest entries while the cache holds more than
// maxBytes.
func (c *logCache) StoreLogs(logs []*raft.Log) error {
	if err := c.store.StoreLogs(logs); err != nil || len(logs) == 0 {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := uint64(len(c.ring))
	for _, l := range logs {
		if old := c.ring[l.Index%n]; old != nil {
			c.bytes -= entrySize(old)
		}
		c.ring[l.Index%n] = l
		c.bytes += entrySize(l)
	}
	last := logs[len(logs)-1].Index
	if last >= n { // the ring's slots hold only entries after last-n
		c.oldest = max(c.oldest, last-n+1)
	}
	for ; c.bytes > c.maxBytes && c.oldest <= last; c.oldest++ {
		i := c.oldest % n
		if l := c.ring[i]; l != nil && l.Index == c.oldest {
			c.bytes -= entrySize(l)
			c.ring[i] = nil
		}
	}
	return nil
}

// FirstIndex implements raft.LogStore.
func (c *logCache) FirstIndex() (uint64, error) { return c.store.FirstIndex() }

// LastIndex implements raft.LogStore.
func (c *logCache) LastIndex() (uint64, error) { return c.store.LastIndex() }

// DeleteRange implements raft.LogStore; it empties the cache.
func (c *logCache) DeleteRange(lo, hi uint64) error {
	c.mu.Lock()
	clear(c.ring)
	c.bytes, c.oldest = 0, 0
	c.mu.Unlock()
	return c.store.DeleteRange(lo, hi)
}

// IsMonotonic implements raft.MonotonicLogStore as the store does.
func (c *logCache) IsMonotonic() bool {
	m, ok := c.store.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

// cached returns the number of entries and bytes the cache holds (tests).
func (c *logCache) cached() (entries, bytes int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, l := range c.ring {
		if l != nil {
			entries++
		}
	}
	return entries, c.bytes
}
