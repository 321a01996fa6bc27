package consensus

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/hotline-link/hotline/internal/boltcheck"
)

// DefaultStorageReserve is the free space, in bytes, below which a node
// stops writing its Raft log (Config.StorageReserve when 0). It keeps room
// for what must still be written after that: Raft's term and vote (Raft
// panics when it cannot write them), the state machine's copy of entries
// already in the log, and a snapshot.
const DefaultStorageReserve = 64 << 20

// StorageError reports that the filesystem of Dir is full: it had Free
// bytes available, below Reserve, or a write failed with ENOSPC or EDQUOT
// (Cause). It matches ErrStorageFull with errors.Is.
type StorageError struct {
	Dir     string
	Free    uint64 // bytes available to this process when detected
	Reserve uint64
	Cause   error // the failed write, or nil when the free space was too low
}

func (e *StorageError) Error() string {
	s := fmt.Sprintf("consensus: storage full: %d bytes free in %s (reserve %d)", e.Free, e.Dir, e.Reserve)
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *StorageError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrStorageFull}
	}
	return []error{ErrStorageFull, e.Cause}
}

// space watches the free space of one directory's filesystem.
type space struct {
	dir     string
	reserve uint64
}

// free returns the bytes available to an unprivileged writer.
func (s space) free() (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return 0, fmt.Errorf("consensus: statfs %s: %w", s.dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// check returns a *StorageError when less than the reserve is free, and
// nil otherwise (also when statfs fails: then the writes decide).
func (s space) check() error {
	free, err := s.free()
	if err != nil || free >= s.reserve {
		return nil
	}
	return &StorageError{Dir: s.dir, Free: free, Reserve: s.reserve}
}

// roomToResume reports whether enough space is free to take part in Raft
// again: the reserve and a quarter more, so that a node does not flap
// around the threshold.
func (s space) roomToResume() bool {
	free, err := s.free()
	return err == nil && free >= s.reserve+s.reserve/4
}

// classify turns a write error caused by a full filesystem into a
// *StorageError; other errors are returned as they are. bbolt reports some
// of them with %s, so the text is checked too.
func (s space) classify(err error) error {
	if err == nil || errors.Is(err, ErrStorageFull) {
		return err
	}
	msg := err.Error()
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(msg, syscall.ENOSPC.Error()) || strings.Contains(msg, syscall.EDQUOT.Error()) {
		free, _ := s.free()
		return &StorageError{Dir: s.dir, Free: free, Reserve: s.reserve, Cause: err}
	}
	return err
}

// guardedStore is the Raft log and stable store: raft-boltdb, whose log
// writes are refused with a *StorageError when the filesystem is below the
// reserve, and whose write failures for lack of space become one. Each
// such refusal is reported to full, which must not block.
//
// Raft steps a leader down when its log write fails, and a follower refuses
// the entries; the node then leaves the cluster (see Node.standBy).
// Stable-store writes (term, vote) are not refused: Raft panics when they
// fail, and the reserve exists so that they do not.
//
// Every write holds wmu, so that the prefiller (pre, nil for none) never
// extends the file while bbolt writes it.
type guardedStore struct {
	*raftboltdb.BoltStore
	space   space
	full    func(error)
	observe func(time.Duration) // nil: not timed
	wmu     *sync.Mutex
	pre     *prefiller
}

var (
	_ raft.LogStore    = (*guardedStore)(nil)
	_ raft.StableStore = (*guardedStore)(nil)
)

// StoreLog implements raft.LogStore.
func (g *guardedStore) StoreLog(l *raft.Log) error { return g.StoreLogs([]*raft.Log{l}) }

// StoreLogs implements raft.LogStore.
func (g *guardedStore) StoreLogs(logs []*raft.Log) error {
	if err := g.space.check(); err != nil {
		g.full(err)
		return err
	}
	start := time.Now()
	g.wmu.Lock()
	err := g.space.classify(g.BoltStore.StoreLogs(logs))
	g.wmu.Unlock()
	if g.pre != nil {
		g.pre.Kick()
	}
	if errors.Is(err, ErrStorageFull) {
		g.full(err)
	}
	if err == nil && g.observe != nil {
		g.observe(time.Since(start))
	}
	return err
}

// DeleteRange implements raft.LogStore.
func (g *guardedStore) DeleteRange(lo, hi uint64) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	return g.BoltStore.DeleteRange(lo, hi)
}

// Set implements raft.StableStore.
func (g *guardedStore) Set(k, v []byte) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	return g.BoltStore.Set(k, v)
}

// SetUint64 implements raft.StableStore.
func (g *guardedStore) SetUint64(k []byte, v uint64) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	return g.BoltStore.SetUint64(k, v)
}

// openBolt opens raft.db after checking its consistency. bbolt panics on
// some corruptions (while rebuilding the free list at open, or reading a
// damaged page); such a file gives an error naming it, never a panic.
// A missing file is created.
func openBolt(path string) (*raftboltdb.BoltStore, error) {
	if err := checkBolt(path); err != nil {
		return nil, err
	}
	var store *raftboltdb.BoltStore
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("consensus: open %s: file is corrupt: %v", path, r)
			}
		}()
		store, err = raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: boltOptions()})
		return err
	}()
	if err != nil {
		if !strings.Contains(err.Error(), path) {
			err = fmt.Errorf("consensus: open %s: %w", path, err)
		}
		return nil, err
	}
	return store, nil
}

// checkBolt checks raft.db's page structure and runs bbolt's consistency
// check (package boltcheck, as for state.db): bbolt panics on some
// corruptions in goroutines of its own, where no recover reaches, so the
// pages are walked with plain reads before bbolt maps the file, then
// bbolt opens it and checks it (so the file is read about three times
// before raft-boltdb opens it).
func checkBolt(path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := boltcheck.Open(path, fileMode, boltOptions())
	switch {
	case err != nil:
		// boltcheck says "file is corrupt" for damage, and "(is another
		// process using it?)" for a lock; any other error (permissions,
		// I/O) is not damage and must not read as such: the README's
		// remedy for a corrupt raft.db is to move it aside.
		return fmt.Errorf("consensus: open %s: %w", path, err)
	}
	return db.Close()
}

// boltOptions are raft.db's bbolt options. NoFreelistSync: without it
// bbolt rewrites the whole freelist on every commit, and log compaction
// makes that list long.
func boltOptions() *bbolt.Options {
	return &bbolt.Options{Timeout: boltOpenTimeout, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType}
}

// Data file modes: readable by the daemon's user only.
const (
	fileMode = 0o600
	dirMode  = 0o700
)

// restrictModes sets every file under root to 0600 and every directory,
// root included, to 0700, where they allow more.
func restrictModes(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(fileMode)
		if d.IsDir() {
			want = dirMode
		} else if !info.Mode().IsRegular() {
			return nil
		}
		if info.Mode().Perm()&^want != 0 {
			if err := os.Chmod(p, want); err != nil {
				return fmt.Errorf("consensus: restrict mode of %s: %w", p, err)
			}
		}
		return nil
	})
}

// snapshotStore is raft's file snapshot store with 0700 snapshot
// directories and 0600 files (raft creates them 0755 and 0644).
type snapshotStore struct {
	*raft.FileSnapshotStore
	dir    string // the snapshots directory
	stored func() // Config.SnapshotStored, or nil
}

// Create implements raft.SnapshotStore.
func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	// Raft made the temporary directory and its files (meta.json, the
	// empty state.bin) with its modes: restrict them before any state is
	// written, so that the state is never in a file others may read.
	if err := restrictModes(filepath.Join(s.dir, sink.ID()+".tmp")); err != nil {
		_ = sink.Cancel()
		return nil, err
	}
	return &snapshotSink{SnapshotSink: sink, dir: s.dir, stored: s.stored}, nil
}

type snapshotSink struct {
	raft.SnapshotSink
	dir    string
	stored func() // Config.SnapshotStored, or nil
}

// Close implements raft.SnapshotSink: the snapshot is renamed into place
// (raft syncs it), then its modes restricted.
func (s *snapshotSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	if err := restrictModes(filepath.Join(s.dir, s.ID())); err != nil {
		return err
	}
	if s.stored != nil {
		s.stored()
	}
	return nil
}

// HasSnapshot reports whether the Raft state in dir (Config.Dir) holds a
// complete snapshot, without opening or creating anything.
func HasSnapshot(dir string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, "snapshots")); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, snapshotsRetain, hclog.NewNullLogger())
	if err != nil {
		return false, fmt.Errorf("consensus: snapshots in %s: %w", dir, err)
	}
	list, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("consensus: snapshots in %s: %w", dir, err)
	}
	return len(list) > 0, nil
}
