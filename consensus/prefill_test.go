//go:build linux

package consensus

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/hotline-link/hotline/internal/boltcheck"
	"golang.org/x/sys/unix"
)

// smallPrefill makes the prefiller's sizes small for a test.
func smallPrefill(t *testing.T) {
	lo, ahead, chunk := prefillMin, prefillAhead, prefillChunk
	prefillMin, prefillAhead, prefillChunk = 512<<10, 2<<20, 256<<10
	t.Cleanup(func() { prefillMin, prefillAhead, prefillChunk = lo, ahead, chunk })
}

// extent is raft.db's size and the bytes bbolt uses.
func extent(t *testing.T, path string) (size, inUse int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, inUse, err = boltcheck.Extent(f)
	if err != nil {
		t.Fatal(err)
	}
	return size, inUse
}

// firstHole is the offset of the file's first hole (its size if none).
func firstHole(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_HOLE)
	if err != nil {
		t.Fatal(err)
	}
	return off
}

// entry is log entry i of the test: 64 KiB.
func entry(i uint64) *raft.Log {
	return &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 32<<10)}
}

// With the prefiller filling between writes, bbolt never grows raft.db
// itself: the file's size after each log write is the size the prefiller
// left, every byte of it was written (no hole), zeros always lie ahead of
// the pages in use, and every entry reads back after reopening. Without
// it (the control), the same writes grow the file.
func TestPrefillKeepsZerosAheadOfTheLog(t *testing.T) {
	smallPrefill(t)
	const n = 160 // 10 MiB of entries: five times prefillAhead

	// Control: plain raft-boltdb grows the file as the log grows.
	ctl := filepath.Join(t.TempDir(), "raft.db")
	cs, err := openBolt(ctl)
	if err != nil {
		t.Fatal(err)
	}
	grown := 0
	for i := uint64(1); i <= n; i++ {
		before, _ := extent(t, ctl)
		if err := cs.StoreLogs([]*raft.Log{entry(i)}); err != nil {
			t.Fatal(err)
		}
		if after, _ := extent(t, ctl); after > before {
			grown++
		}
	}
	cs.Close()
	if grown == 0 {
		t.Fatalf("control: %d entries of 64 KiB never grew %s", n, ctl)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "raft.db")
	store, err := openBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	var wmu sync.Mutex
	sp := space{dir: dir, reserve: 1 << 20}
	pre, err := newPrefiller(path, &wmu, sp, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	g := &guardedStore{BoltStore: store, space: sp, full: func(error) {}, wmu: &wmu}
	pre.fill()
	for i := uint64(1); i <= n; i++ {
		size, inUse := extent(t, path)
		if size-inUse < prefillLead(inUse) {
			t.Fatalf("before entry %d: %d bytes beyond the %d in use, want %d", i, size-inUse, inUse, prefillLead(inUse))
		}
		if err := g.StoreLogs([]*raft.Log{entry(i)}); err != nil {
			t.Fatal(err)
		}
		if after, _ := extent(t, path); after != size {
			t.Fatalf("entry %d grew raft.db from %d to %d bytes: bbolt outran the zeros", i, size, after)
		}
		pre.fill()
	}
	size, inUse := extent(t, path)
	if inUse < n*64<<10 {
		t.Fatalf("bbolt uses %d bytes after %d entries of 64 KiB", inUse, n)
	}
	if hole := firstHole(t, path); hole < size {
		t.Errorf("raft.db of %d bytes has a hole at %d: its space was not written", size, hole)
	}
	t.Logf("control grew %d times in %d writes; prefilled file %d bytes, %d in use", grown, n, size, inUse)

	// Running on its own, the filler catches up after writes.
	pre.Start()
	g.pre = pre
	for i := uint64(n + 1); i <= 2*n; i++ {
		if err := g.StoreLogs([]*raft.Log{entry(i)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		size, inUse := extent(t, path)
		if size-inUse >= prefillLead(inUse) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the writes: %d bytes beyond the %d in use, want %d", size-inUse, inUse, prefillLead(inUse))
		}
		time.Sleep(10 * time.Millisecond)
	}
	pre.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	store, err = openBolt(path) // checks the file's pages first
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i := uint64(1); i <= 2*n; i++ {
		var l raft.Log
		if err := store.GetLog(i, &l); err != nil || !bytes.Equal(l.Data, entry(i).Data) {
			t.Fatalf("entry %d after reopening: %d bytes, err %v", i, len(l.Data), err)
		}
	}
}

// Below the reserve plus twice the lead, nothing is prefilled.
func TestPrefillRespectsTheReserve(t *testing.T) {
	smallPrefill(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "raft.db")
	store, err := openBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	free, err := (space{dir: dir}).free()
	if err != nil {
		t.Fatal(err)
	}
	before, _ := extent(t, path)
	var wmu sync.Mutex
	pre, err := newPrefiller(path, &wmu, space{dir: dir, reserve: free}, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer pre.Close()
	pre.fill()
	if after, _ := extent(t, path); after != before {
		t.Fatalf("raft.db grew from %d to %d bytes with no room above the reserve", before, after)
	}
}
