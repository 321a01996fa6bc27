//go:build linux

package consensus

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/hotline-link/hotline/internal/testutil"
	"golang.org/x/sys/unix"
)

// Reading the log maps raft.db's pages; pageOut gives them back, and the
// log reads the same afterwards.
func TestPageOutReleasesRaftDB(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err == nil && fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is a tmpfs: its pages cannot be paged out without swap")
	}
	path := filepath.Join(dir, "raft.db")
	store, err := openBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const n, size = 64, 256 << 10
	for i := uint64(1); i <= n; i++ {
		data := bytes.Repeat([]byte{byte(i)}, size)
		if err := store.StoreLog(&raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() {
		t.Helper()
		for i := uint64(1); i <= n; i++ {
			var l raft.Log
			if err := store.GetLog(i, &l); err != nil || len(l.Data) != size || l.Data[size-1] != byte(i) {
				t.Fatalf("GetLog(%d): %d bytes, err %v", i, len(l.Data), err)
			}
		}
	}
	read()
	before := testutil.MappedKiB(t, path)
	if before < n*size/1024/2 {
		t.Fatalf("only %d KiB of %s mapped after reading %d entries of %d KiB", before, path, n, size>>10)
	}
	if err := pageOut(path); err != nil {
		t.Fatal(err)
	}
	after := testutil.MappedKiB(t, path)
	t.Logf("resident map of raft.db: %d KiB after reading, %d KiB after pageOut", before, after)
	if after > before/4 {
		t.Errorf("%d KiB of %s still mapped after pageOut (%d before)", after, path, before)
	}
	read()
}
