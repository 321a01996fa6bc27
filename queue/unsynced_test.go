package queue

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// readMarker returns the boot the marker names (its first line).
func readMarker(t *testing.T, path string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(path + markerSuffix)
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	boot, _, _ := strings.Cut(string(b), "\n")
	return boot, true
}

// A new file is rebuildable by Raft: commits are unsynced, under a
// marker naming this boot, which a clean Close removes.
func TestUnsyncedNewFile(t *testing.T) {
	s, path := openStore(t, "alpha")
	if !s.Unsynced() {
		t.Fatal("a new state file should not be synced on each commit")
	}
	got, ok := readMarker(t, path)
	if !ok || got != bootID() {
		t.Fatalf("marker = %q, %v; want this boot %q", got, ok, bootID())
	}
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "one")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := readMarker(t, path); ok {
		t.Fatal("a clean Close left the marker")
	}

	// An existing file without a Raft snapshot is synced, until Raft
	// says it holds one.
	s, err := Open(path, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Unsynced() {
		t.Fatal("an existing file Raft cannot rebuild is not synced")
	}
	if _, ok := readMarker(t, path); ok {
		t.Fatal("marker written for a synced file")
	}
	if err := s.Rebuildable(); err != nil {
		t.Fatal(err)
	}
	if !s.Unsynced() {
		t.Fatal("Rebuildable did not stop the syncs")
	}
	if _, ok := readMarker(t, path); !ok {
		t.Fatal("no marker before unsynced commits")
	}
	// Restore (a snapshot from the leader) keeps the mode.
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r, w, _ := os.Pipe()
	go func() { _, _ = snap.WriteTo(w); w.Close(); snap.Release() }()
	if err := s.Restore(r); err != nil {
		t.Fatal(err)
	}
	s.mu.RLock()
	noSync := s.h.db.NoSync
	s.mu.RUnlock()
	if !noSync {
		t.Fatal("Restore's new file is synced again")
	}
	if st := mustStatus(t, s, "m1"); st.State != Queued {
		t.Fatalf("m1 after restore: %v", st.State)
	}
}

// A marker from another boot means a power loss may have torn the file:
// it is discarded when Raft can rebuild it, and refused otherwise; a
// marker of this boot (a killed process) keeps it.
func TestUnsyncedAfterPowerLoss(t *testing.T) {
	setup := func(t *testing.T, boot string) string {
		s, path := openStore(t, "alpha")
		var l cmdLog
		l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "one")))
		// The process dies without Close: the marker stays. Close here
		// only releases the file lock, then the marker is put back as a
		// crash would have left it.
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+markerSuffix, []byte(boot+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("same boot", func(t *testing.T) {
		path := setup(t, bootID())
		s, err := Open(path, "alpha", Options{Rebuildable: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Discarded() != "" {
			t.Fatalf("discarded after a process crash: %s", s.Discarded())
		}
		mustStatus(t, s, "m1")
	})
	t.Run("other boot, rebuildable", func(t *testing.T) {
		path := setup(t, "another-boot")
		s, err := Open(path, "alpha", Options{Rebuildable: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if why := s.Discarded(); !strings.Contains(why, "another-boot") || !strings.Contains(why, "Raft rebuilds it") {
			t.Fatalf("Discarded() = %q", why)
		}
		if s.AppliedIndex() != 0 {
			t.Fatalf("applied %d after discarding", s.AppliedIndex())
		}
		if _, err := s.Lookup("m1"); err == nil {
			t.Fatal("m1 still there: the file was not discarded")
		}
		if got, _ := readMarker(t, path); got != bootID() {
			t.Fatalf("marker %q, want this boot", got)
		}
	})
	t.Run("other boot, no snapshot", func(t *testing.T) {
		path := setup(t, "another-boot")
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Open(path, "alpha", Options{})
		if !errors.Is(err, ErrUnsyncedLost) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "move data_dir aside") {
			t.Fatalf("Open: %v; want ErrUnsyncedLost naming the file and the remedy", err)
		}
		after, err := os.ReadFile(path)
		if err != nil || string(after) != string(before) {
			t.Fatalf("the refused file changed (err %v)", err)
		}
	})
}

// A marker of this boot without "new", on a file Raft cannot rebuild (a
// node killed, then its Raft state moved aside): the file is opened
// synced, so the marker must go, or the next boot would refuse the file.
func TestUnsyncedStaleMarkerCleared(t *testing.T) {
	s, path := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "one")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+markerSuffix, []byte(bootID()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Unsynced() {
		t.Fatal("opened unsynced without a snapshot or a new file")
	}
	if _, ok := readMarker(t, path); ok {
		t.Fatal("the marker stayed on a file now synced")
	}
	mustStatus(t, s, "m1")

	// Once unsynced, Rebuildable (at each snapshot) syncs the file and
	// keeps the mode; the marker is rewritten only if it changed.
	if err := s.Rebuildable(); err != nil {
		t.Fatal(err)
	}
	st1, err := os.Stat(path + markerSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Rebuildable(); err != nil {
		t.Fatal(err)
	}
	if !s.Unsynced() {
		t.Fatal("mode lost")
	}
	if err := writeMarker(path+markerSuffix, bootID()+"\n"); err != nil {
		t.Fatal(err)
	}
	st2, err := os.Stat(path + markerSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(st1, st2) {
		t.Fatal("an unchanged marker was rewritten")
	}
}
