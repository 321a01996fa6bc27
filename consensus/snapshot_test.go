package consensus

import (
	"context"
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
	if err := os.Chmod(dir, dirMode); err != nil {
		t.Fatal(err)
	}
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
	checkModesOf(t, dir, 2) // while writing: meta.json and state.bin
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	checkModesOf(t, dir, 2)
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
