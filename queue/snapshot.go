package queue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/hotline-link/hotline/internal/boltcheck"
)

// Snapshot is a consistent point-in-time view of a Store, taken by
// [Store.Snapshot]. It holds a bbolt read transaction until Release; it is
// safe to write out while Apply and Restore continue. A Snapshot is used by
// one goroutine at a time.
type Snapshot struct {
	mu      sync.Mutex
	h       *handle
	tx      *bolt.Tx // nil once released
	applied uint64
}

// Snapshot returns a view of the committed state. It is cheap: the copy
// happens in WriteTo. The caller must Release it.
func (s *Store) Snapshot() (*Snapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.h == nil {
		return nil, fmt.Errorf("queue: snapshot: %w", ErrClosed)
	}
	tx, err := s.h.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("queue: snapshot: %w", err)
	}
	s.h.acquire()
	return &Snapshot{h: s.h, tx: tx, applied: getU64(tx.Bucket(bucketMeta), metaApplied)}, nil
}

// Index returns the applied index the snapshot contains.
func (sn *Snapshot) Index() uint64 { return sn.applied }

// errReleased is returned by WriteTo after Release.
var errReleased = errors.New("queue: snapshot released")

// WriteTo writes the whole state (a bbolt database file) to w.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.tx == nil {
		return 0, errReleased
	}
	n, err := sn.tx.WriteTo(w)
	if err != nil {
		return n, fmt.Errorf("queue: write snapshot: %w", err)
	}
	return n, nil
}

// Release ends the snapshot's read transaction. It is idempotent.
func (sn *Snapshot) Release() {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.tx == nil {
		return
	}
	_ = sn.tx.Rollback()
	sn.tx = nil
	sn.h.release()
}

// Restore replaces the whole state with a snapshot written by
// Snapshot.WriteTo. The bytes go to a temporary file beside the store,
// which is synced, checked (format version, site) and renamed over the
// store's file; then the store reopens it. Readers wait only for the swap;
// open snapshots keep reading the old state. On success Changed is woken
// and a storage failure (Err) is cleared. On error the state is unchanged,
// unless the renamed file cannot be reopened (then Err is set).
func (s *Store) Restore(r io.Reader) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.RLock()
	closed := s.h == nil
	s.mu.RUnlock()
	if closed {
		return fmt.Errorf("queue: restore: %w", ErrClosed)
	}
	tmp, err := s.receiveSnapshot(r)
	if err != nil {
		return fmt.Errorf("queue: restore: %w", err)
	}
	defer os.Remove(tmp) // after a successful rename there is nothing to remove

	s.mu.Lock()
	old := s.h
	err = os.Rename(tmp, s.path)
	if err == nil {
		err = syncDir(filepath.Dir(s.path))
	}
	if err != nil && !errors.Is(err, errSyncDir) {
		s.mu.Unlock()
		return fmt.Errorf("queue: restore: %w", err)
	}
	// No copy of an older format's file before upgrading it: the
	// snapshot it came from stays in Raft's snapshot directory.
	h, st, oerr := openHandle(s.path, s.site, upgrader{log: s.log})
	if oerr != nil {
		s.mu.Unlock()
		err := fmt.Errorf("queue: restore: reopen: %w", oerr)
		s.failed.Store(&err)
		return err
	}
	h.db.NoSync, h.db.NoGrowSync = s.unsynced.Load(), s.unsynced.Load()
	s.h = h
	s.applied.Store(st.applied)
	s.siteVer.Store(st.siteVersion)
	s.failed.Store(nil)
	s.noteInbox(h.db, true)
	s.mu.Unlock()
	_ = old.retire()
	s.notify()
	if err != nil { // restored, but the rename may not be durable
		return fmt.Errorf("queue: restore: %w", err)
	}
	return nil
}

// receiveSnapshot writes r to a synced temporary file beside the store and
// checks that it is a snapshot of this site's store.
func (s *Store) receiveSnapshot(r io.Reader) (path string, err error) {
	path, err = writeTemp(s.path, ".restore-", func(f *os.File) error {
		if _, err := io.Copy(f, r); err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if err := checkSnapshot(path, s.site); err != nil {
		_ = os.Remove(path)
		return "", err
	}
	return path, nil
}

// writeTemp writes a new temporary file beside target (named after it,
// with suffix and a random tail) with write, syncs and closes it, and
// returns its path; on error nothing is left of it.
func writeTemp(target, suffix string, write func(*os.File) error) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(target), filepath.Base(target)+suffix+"*")
	if err != nil {
		return "", err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// checkSnapshot checks a received snapshot's structure (the page walk
// and bbolt's check, as at Open), format and site.
func checkSnapshot(path, site string) error {
	opts := boltOptions()
	opts.ReadOnly = true
	opts.InitialMmapSize = 0
	db, err := boltcheck.Open(path, 0o600, opts)
	if err != nil {
		return fmt.Errorf("not a queue snapshot: %w", asCorrupt(err))
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || meta.Get(metaVersion) == nil {
			return errors.New("not a queue snapshot: no meta bucket")
		}
		if err := checkMeta(meta, site); err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		return nil
	})
}

var errSyncDir = errors.New("sync directory")

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", errSyncDir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%w: %w", errSyncDir, err)
	}
	return nil
}
