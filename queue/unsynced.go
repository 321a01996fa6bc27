package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Unsynced state. The site's Raft log holds every applied command
// durably, and Raft restores the state machine from its latest snapshot
// at every start and then applies the log from there. So the state file
// need not be synced on each Apply once Raft can rebuild it: when Raft
// holds a snapshot of it, or when the file is new (Raft then applies its
// whole log, which it never compacted without a snapshot). A store in
// that mode commits without bbolt's two fdatasyncs per Apply; the kernel
// writes the pages back when it likes.
//
// A process crash (kill -9) loses nothing: the kernel holds what was
// written. A power loss or a kernel crash may leave the file torn (bbolt
// reuses pages the last synced meta page points to). The marker file
// PATH.unsynced, written and synced before the first unsynced commit,
// names the boot (Linux's boot_id) of the process writing that way, and,
// on a second line "new", says that the file was new when it went
// unsynced: Raft's whole log (or a snapshot, if it took one since) holds
// everything in it, so Raft can rebuild it at any later start, snapshot
// or not. A clean Close syncs the file and removes the marker. At Open, a
// marker from another boot means the machine stopped with unsynced
// writes: the file is discarded and rebuilt by Raft (Store.Discarded says
// why), or, when Raft cannot rebuild it (no snapshot, and the file was
// not new), Open fails naming the file. A marker from this boot (the
// process was killed) keeps the file, and a "new" one keeps it unsynced.

// markerSuffix is the marker's suffix after the state file's path.
const markerSuffix = ".unsynced"

// markerNew is the marker's second line for a file unsynced since new.
const markerNew = "new"

// bootIDFile holds the kernel's boot ID: a new random UUID each boot.
var bootIDFile = "/proc/sys/kernel/random/boot_id"

// BootIDEnv names the environment variable bootID falls back to when
// bootIDFile cannot be read: systemd's ProcSubset=pid (in the shipped
// unit) hides /proc/sys, so the unit passes the boot ID (specifier %b).
const BootIDEnv = "HOTLINE_BOOT_ID"

// bootID returns this boot's ID, from the kernel or else from BootIDEnv,
// as 32 lowercase hex digits (the kernel writes dashes, systemd's %b
// none), or "" when neither tells one (then every marker found at Open
// counts as another boot's, and a restarted node rebuilds its state).
func bootID() string {
	if b, err := os.ReadFile(bootIDFile); err == nil {
		if id := canonicalBootID(string(b)); id != "" {
			return id
		}
	}
	return canonicalBootID(os.Getenv(BootIDEnv))
}

// canonicalBootID is s as 32 lowercase hex digits without dashes, or ""
// if it is not a 128-bit ID.
func canonicalBootID(s string) string {
	id := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return ""
	}
	return id
}

// BootIDKnown reports whether this process knows its boot's ID (see
// bootID): without it every restart, even of a killed process, discards
// an unsynced state file and has Raft rebuild it.
func BootIDKnown() bool { return bootID() != "" }

// ErrUnsyncedLost is wrapped by Open's error for a state file written
// without sync when the machine stopped, which Raft cannot rebuild.
var ErrUnsyncedLost = errors.New("state written without sync before the machine stopped, and no snapshot to rebuild it from")

// checkUnsynced handles a marker left at path: none, or one from this
// boot (a crashed process), leaves the file as it is. One from another
// boot removes the file when rebuildable (or the marker says the file was
// new) and returns why; otherwise it returns an error wrapping
// ErrUnsyncedLost. markedNew reports a marker saying the file was new.
func checkUnsynced(path string, rebuildable bool) (discarded string, markedNew bool, err error) {
	marker := path + markerSuffix
	b, err := os.ReadFile(marker)
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", marker, err)
	}
	// Line by line: a marker written without a boot ID starts with an
	// empty line, and its second still says whether the file was new.
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	was, now := strings.TrimSpace(lines[0]), bootID()
	if id := canonicalBootID(was); id != "" {
		was = id // a marker from before IDs were canonical had dashes
	}
	markedNew = len(lines) > 1 && strings.TrimSpace(lines[1]) == markerNew
	if was != "" && was == now {
		return "", markedNew, nil // the process stopped; the kernel kept every write
	}
	if !rebuildable && !markedNew {
		return "", false, fmt.Errorf("%s (its writer ran in boot %q, this is boot %q): %w; move data_dir aside and let the node rejoin its site (README: Operations)",
			path, was, now, ErrUnsyncedLost)
	}
	// The file's removal is made durable before the marker's: the other
	// order could leave, after another power loss, the torn file without
	// its marker.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("discard %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", false, err
	}
	if err := removeMarker(path); err != nil {
		return "", false, fmt.Errorf("discard %s: %w", marker, err)
	}
	return fmt.Sprintf("%s was written without sync by boot %q and the machine restarted (boot %q): discarded; Raft rebuilds it from its snapshot and log", path, was, now), markedNew, nil
}

// goUnsynced writes and syncs the marker, then stops syncing the current
// file's commits. Called with applyMu held (or before the store is
// shared).
func (s *Store) goUnsynced() error {
	if s.unsynced.Load() {
		return nil
	}
	marker := s.path + markerSuffix
	want := bootID() + "\n"
	if s.fromNew {
		want += markerNew + "\n"
	}
	if err := writeMarker(marker, want); err != nil {
		return fmt.Errorf("queue: marker %s: %w", marker, err)
	}
	s.unsynced.Store(true)
	s.mu.RLock()
	if s.h != nil {
		s.h.db.NoSync, s.h.db.NoGrowSync = true, true
	}
	s.mu.RUnlock()
	return nil
}

// writeMarker makes the marker hold content, durably: unchanged if it
// does, else written to a temporary file, synced and renamed over it (a
// marker truncated by a power loss would lose its "new" line).
func writeMarker(marker, content string) error {
	if b, err := os.ReadFile(marker); err == nil && string(b) == content {
		return nil
	}
	tmp := marker + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, marker)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(marker))
}

// removeMarker removes the marker of the state file at path, durably.
func removeMarker(path string) error {
	if err := os.Remove(path + markerSuffix); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return syncDir(filepath.Dir(path))
}

// ErrWriteBack is wrapped by Rebuildable's error when syncing the
// unsynced file failed: a write-back error, after which the file may not
// hold what was applied. The node should stop; Raft restores its latest
// snapshot at the next start.
var ErrWriteBack = errors.New("sync of the unsynced state file failed")

// Rebuildable tells the store that Raft now holds a snapshot of it (so
// it can rebuild the file after a power loss): from now on its commits
// are not synced. Called at every snapshot: once unsynced, it syncs the
// file instead, so that a write-back error the kernel met meanwhile is
// reported (wrapping ErrWriteBack) rather than unseen until Close. Safe
// to call more than once, and concurrently with Apply; it waits for a
// running Apply, so it must not be called while a Snapshot of this store
// is open (Apply may be waiting for it to grow the file's map).
func (s *Store) Rebuildable() error {
	if s.unsynced.Load() {
		s.mu.RLock()
		defer s.mu.RUnlock()
		if s.h == nil {
			return ErrClosed
		}
		if err := s.h.db.Sync(); err != nil {
			return fmt.Errorf("queue: %s: %w: %w", s.path, ErrWriteBack, err)
		}
		return nil
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.RLock()
	closed := s.h == nil
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return s.goUnsynced()
}

// Unsynced reports whether commits skip the fdatasyncs (see above).
func (s *Store) Unsynced() bool { return s.unsynced.Load() }

// Discarded returns, when Open discarded a state file torn by a power
// loss (see above), a sentence saying so for the log; "" otherwise.
func (s *Store) Discarded() string { return s.discarded }

// syncAndClear makes an unsynced file durable and removes its marker
// (clean Close). The marker stays when the sync fails.
func (s *Store) syncAndClear(h *handle) error {
	if !s.unsynced.Load() {
		return nil
	}
	if err := h.db.Sync(); err != nil {
		return err
	}
	return removeMarker(s.path)
}
