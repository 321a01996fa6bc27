package consensus

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// TestSnapshotModesWhileWriting: a snapshot being written is in files
// only the daemon's user can read from the moment Raft creates them (Raft
// makes them 0755 and 0644), not only once it is complete.
func TestSnapshotModesWhileWriting(t *testing.T) {
	old := syscall.Umask(0o022) // as a daemon under a default umask
	defer syscall.Umask(old)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "snapshots"), dirMode); err != nil {
		t.Fatal(err)
	}
	fsnaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	store := &snapshotStore{FileSnapshotStore: fsnaps, dir: filepath.Join(dir, "snapshots")}
	_, trans := raft.NewInmemTransport("")
	sink, err := store.Create(raft.SnapshotVersionMax, 10, 2, raft.Configuration{}, 1, trans)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Write([]byte("state that is being written")); err != nil {
		t.Fatal(err)
	}
	snapModes(t, dir, 2) // while writing: meta.json and state.bin
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	snapModes(t, dir, 2)
}

// snapModes checks that the files under dir/snapshots are 0600 and its
// directories 0700, and that there are want files.
func snapModes(t *testing.T, dir string, want int) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(filepath.Join(dir, "snapshots"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := fs.FileMode(fileMode)
		if d.IsDir() {
			mode = dirMode
		} else {
			files++
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, want %v", p, info.Mode().Perm(), mode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != want {
		t.Errorf("%d files in the snapshots, want %d", files, want)
	}
}

// TestSnapshotNow: Node.Snapshot writes a snapshot on demand.
func TestSnapshotNow(t *testing.T) {
	c := MakeCluster(t, 3)
	l := c.leader()
	c.applyN(l, "a", 10)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.nodes[l].node.Snapshot(ctx); err != nil {
		t.Fatal(err)
	}
	dir := c.nodes[l].cfg.Dir
	if m, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin")); len(m) != 1 {
		t.Fatalf("snapshots after Snapshot: %v", m)
	}
	checkModes(t, dir)
}
