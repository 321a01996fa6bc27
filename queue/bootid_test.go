package queue

import (
	"os"
	"path/filepath"
	"testing"
)

// withoutKernelBootID makes bootIDFile unreadable, as systemd's
// ProcSubset=pid does (it hides /proc/sys).
func withoutKernelBootID(t *testing.T) {
	old := bootIDFile
	bootIDFile = filepath.Join(t.TempDir(), "absent")
	t.Cleanup(func() { bootIDFile = old })
}

// The boot ID comes from the kernel, else from HOTLINE_BOOT_ID (what the
// unit passes, systemd's %b), in one form; anything else is no ID.
func TestBootIDSources(t *testing.T) {
	t.Setenv(BootIDEnv, "")
	if id := bootID(); id == "" || len(id) != 32 {
		t.Fatalf("bootID() from the kernel = %q, want 32 hex digits", id)
	}
	withoutKernelBootID(t)
	for env, want := range map[string]string{
		"":                                     "",
		"0123456789ABCDEF0123456789abcdef":     "0123456789abcdef0123456789abcdef",
		"01234567-89ab-cdef-0123-456789abcdef": "0123456789abcdef0123456789abcdef",
		"0123456789abcdef":                     "",
		"0123456789abcdef0123456789abcdeg":     "",
		"%b":                                   "",
	} {
		t.Setenv(BootIDEnv, env)
		if got := bootID(); got != want {
			t.Errorf("%s=%q: bootID() = %q, want %q", BootIDEnv, env, got, want)
		}
	}
}

// Without any boot ID, a marker still says whether the file was new: a
// restarted node whose file was new and has no snapshot discards it (Raft
// replays its whole log) instead of refusing to start. Before, the empty
// first line was dropped and "new" read as the boot.
func TestUnsyncedWithoutBootID(t *testing.T) {
	withoutKernelBootID(t)
	t.Setenv(BootIDEnv, "")
	s, path := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "one")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+markerSuffix, []byte("\n"+markerNew+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, "alpha", Options{})
	if err != nil {
		t.Fatalf("Open refused a new file's marker written without a boot ID: %v", err)
	}
	defer s.Close()
	if s.Discarded() == "" || s.AppliedIndex() != 0 {
		t.Fatalf("discarded %q, applied %d: want the file discarded (no boot ID: it may be another boot)", s.Discarded(), s.AppliedIndex())
	}
}

// A marker naming this boot in the kernel's form (with dashes, as builds
// before the canonical form wrote it) is this boot's: the file is kept.
func TestUnsyncedMarkerWithDashedBootID(t *testing.T) {
	raw, err := os.ReadFile(bootIDFile)
	if err != nil {
		t.Skip("no kernel boot ID here")
	}
	s, path := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "one")))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+markerSuffix, append(raw, markerNew+"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Discarded() != "" {
		t.Fatalf("discarded %q: the marker names this boot", s.Discarded())
	}
	mustStatus(t, s, "m1")
}
