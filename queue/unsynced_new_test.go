package queue

import (
	"os"
	"strings"
	"testing"
)

// A file unsynced since it was new is rebuilt from Raft's whole log, with
// no snapshot: a power loss discards it (it is not refused), and a
// killed process keeps it unsynced, its marker still saying so. The
// daemon opens an existing file without a snapshot with Options{}.
func TestUnsyncedSinceNew(t *testing.T) {
	// crashed leaves the store as a kill -9 does: the marker of a new
	// file, naming boot.
	crashed := func(t *testing.T, boot string) string {
		s, path := openStore(t, "alpha")
		var l cmdLog
		l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "one")))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+markerSuffix, []byte(boot+"\n"+markerNew+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	wantNewMarker := func(t *testing.T, path string) {
		t.Helper()
		b, err := os.ReadFile(path + markerSuffix)
		if err != nil || string(b) != bootID()+"\n"+markerNew+"\n" {
			t.Fatalf("marker %q (%v), want this boot and %q", b, err, markerNew)
		}
	}

	t.Run("power loss, no snapshot", func(t *testing.T) {
		path := crashed(t, "another-boot")
		s, err := Open(path, "alpha", Options{})
		if err != nil {
			t.Fatalf("Open refused a file Raft's whole log rebuilds: %v", err)
		}
		defer s.Close()
		if why := s.Discarded(); !strings.Contains(why, "another-boot") {
			t.Fatalf("Discarded() = %q", why)
		}
		if s.AppliedIndex() != 0 || !s.Unsynced() {
			t.Fatalf("applied %d, unsynced %v: want a new, unsynced file", s.AppliedIndex(), s.Unsynced())
		}
		wantNewMarker(t, path)
	})
	t.Run("process killed, no snapshot", func(t *testing.T) {
		path := crashed(t, bootID())
		s, err := Open(path, "alpha", Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Discarded() != "" || !s.Unsynced() {
			t.Fatalf("discarded %q, unsynced %v: want the file kept, unsynced", s.Discarded(), s.Unsynced())
		}
		mustStatus(t, s, "m1")
		wantNewMarker(t, path)
	})
}
