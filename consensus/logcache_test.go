package consensus

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
)

func cacheEntry(idx uint64, size int) *raft.Log {
	data := bytes.Repeat([]byte{byte(idx)}, size)
	return &raft.Log{Index: idx, Term: 1, Type: raft.LogCommand, Data: data}
}

func checkEntries(t *testing.T, c *logCache, lo, hi uint64, size int) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		var l raft.Log
		if err := c.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", i, err)
		}
		if want := cacheEntry(i, size); l.Index != i || !bytes.Equal(l.Data, want.Data) {
			t.Fatalf("GetLog(%d) = index %d, %d bytes of %x; want %d bytes of %x", i, l.Index, len(l.Data), l.Data[:1], size, want.Data[:1])
		}
	}
}

// A backlog's entries are large: the cache keeps at most its bytes of
// them, the newest, and serves the rest from the store.
func TestLogCacheBoundsBytes(t *testing.T) {
	const size, maxBytes = 100_000, 1 << 20
	c := newLogCache(raft.NewInmemStore(), 512, maxBytes)
	for i := uint64(1); i <= 300; i += 3 { // in batches of 3, as Raft stores them
		if err := c.StoreLogs([]*raft.Log{cacheEntry(i, size), cacheEntry(i+1, size), cacheEntry(i+2, size)}); err != nil {
			t.Fatal(err)
		}
		if _, b := c.cached(); b > maxBytes {
			t.Fatalf("after entry %d the cache holds %d bytes, more than its %d", i+2, b, maxBytes)
		}
	}
	n, b := c.cached()
	if want := maxBytes / (size + 128); n != want {
		t.Errorf("the cache holds %d entries (%d bytes); want the newest %d", n, b, want)
	}
	for i := uint64(300); i > 300-uint64(n); i-- {
		if cached := c.ring[i%512]; cached == nil || cached.Index != i {
			t.Errorf("entry %d is not cached, but it is among the newest", i)
		}
	}
	checkEntries(t, c, 1, 300, size)
}

// Small entries are bounded by count, as in raft.LogCache.
func TestLogCacheBoundsEntries(t *testing.T) {
	c := newLogCache(raft.NewInmemStore(), 64, 1<<20)
	for i := uint64(1); i <= 1000; i++ {
		if err := c.StoreLog(cacheEntry(i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if n, b := c.cached(); n != 64 || b != 64*(10+128) {
		t.Errorf("the cache holds %d entries, %d bytes; want 64, %d", n, b, 64*(10+128))
	}
	checkEntries(t, c, 1, 1000, 10)
}

// A truncated log (a follower's conflicting suffix) empties the cache;
// the entries stored again are served, not the old ones.
func TestLogCacheDeleteRange(t *testing.T) {
	c := newLogCache(raft.NewInmemStore(), 16, 1<<20)
	for i := uint64(1); i <= 20; i++ {
		if err := c.StoreLog(cacheEntry(i, 50)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.DeleteRange(15, 20); err != nil {
		t.Fatal(err)
	}
	if n, b := c.cached(); n != 0 || b != 0 {
		t.Fatalf("after DeleteRange the cache holds %d entries, %d bytes", n, b)
	}
	var l raft.Log
	if err := c.GetLog(17, &l); err == nil {
		t.Fatalf("GetLog(17) after DeleteRange = %d, want an error", l.Index)
	}
	for i := uint64(15); i <= 25; i++ {
		if err := c.StoreLog(cacheEntry(i, 70)); err != nil {
			t.Fatal(err)
		}
	}
	checkEntries(t, c, 15, 25, 70)
	checkEntries(t, c, 1, 14, 50)
	if last, err := c.LastIndex(); err != nil || last != 25 {
		t.Errorf("LastIndex = %d, %v; want 25", last, err)
	}
}

// The store's error comes back as it is (raft.LogCache flattened it to
// text), and nothing is cached.
func TestLogCacheStoreError(t *testing.T) {
	want := fmt.Errorf("disk: %w", ErrStorageFull)
	c := newLogCache(failingStore{raft.NewInmemStore(), want}, 16, 1<<20)
	if err := c.StoreLog(cacheEntry(1, 10)); err != want {
		t.Fatalf("StoreLog = %v, want the store's error", err)
	}
	if n, _ := c.cached(); n != 0 {
		t.Errorf("a failed store cached %d entries", n)
	}
}

type failingStore struct {
	*raft.InmemStore
	err error
}

func (f failingStore) StoreLogs([]*raft.Log) error { return f.err }
