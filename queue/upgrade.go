package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The upgrade of an older state file (migrate) is announced before it
// changes anything and reports its progress, since rewriting a large
// file's records takes minutes and the node is not serving meanwhile.
//
// Open's upgrade first writes a consistent copy of the file as it was
// beside it, PATH.formatN.bak (N the old format), so that the node can go
// back to the build it ran before; if the copy cannot be written (no
// space, a name in the way) Open fails and the file is unchanged.
// Restore's upgrade (a snapshot of an older format from Raft) writes no
// copy: the snapshot it came from stays in Raft's snapshot directory.
//
// An upgrade marks the file (metaUpgrading) once the copy is written and
// clears the mark in its last transaction, with the format change. An
// upgrade resumed after a crash finds the mark and keeps the copy that
// its first attempt wrote, rather than copy a file it already changed.

// metaUpgrading is the meta key present while an upgrade is under way:
// the format it began from.
var metaUpgrading = []byte("upgrading")

// progressEvery is the least time between two progress reports.
var progressEvery = 5 * time.Second

// upgrader says how migrate reports and whether it keeps a copy first.
type upgrader struct {
	log    *slog.Logger // never nil
	backup bool         // write PATH.formatN.bak before changing anything
}

// begin announces the upgrade of the file at path from format from, after
// writing the copy (up.backup) unless the upgrade is resumed, and marks
// the file. An error means nothing was changed.
func (up upgrader) begin(db *bolt.DB, path string, from uint64, resumed bool) error {
	bak := fmt.Sprintf("%s.format%d.bak", path, from)
	switch {
	case resumed:
		if fi, err := os.Lstat(bak); up.backup && err == nil && fi.Mode().IsRegular() {
			up.log.Info(fmt.Sprintf("state: resuming the upgrade of %s from format %d to %d; a copy of the file as it was is at %s", path, from, formatVersion, bak))
		} else {
			up.log.Warn(fmt.Sprintf("state: resuming the upgrade of %s from format %d to %d; there is no copy of the file as it was at %s", path, from, formatVersion, bak))
		}
		return nil
	case up.backup:
		if err := writeCopy(db, bak); err != nil {
			return err
		}
		up.log.Info(fmt.Sprintf("state: upgrading %s from format %d to %d; a copy of the file as it was is at %s", path, from, formatVersion, bak))
	default:
		up.log.Info(fmt.Sprintf("state: upgrading %s, restored from a snapshot, from format %d to %d; no copy is kept (the snapshot stays with Raft's)", path, from, formatVersion))
	}
	err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaUpgrading, u64(from)) })
	if err != nil && up.backup {
		_ = os.Remove(bak) // else the next start finds it in the way
	}
	return err
}

// writeCopy writes a consistent copy of db to bak (one read transaction,
// to a synced temporary file renamed to bak). Something already at bak is
// in the way: it may be the only copy of an earlier state, so it is kept
// and writeCopy fails.
func writeCopy(db *bolt.DB, bak string) error {
	if _, err := os.Lstat(bak); err == nil {
		return fmt.Errorf("cannot keep a copy of the file as it was: %s already exists: move it away, then start again (if a start of this build wrote it, it is a complete copy of the file as it still is: a copy is renamed into place only once written and synced)", bak)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot keep a copy of the file as it was: %w", err)
	}
	dir := filepath.Dir(bak)
	if stale, _ := filepath.Glob(bak + ".tmp-*"); stale != nil {
		for _, name := range stale { // of a start killed while copying
			_ = os.Remove(name)
		}
	}
	tmp, err := writeTemp(bak, ".tmp-", func(f *os.File) error {
		return db.View(func(tx *bolt.Tx) error {
			_, err := tx.WriteTo(f)
			return err
		})
	})
	if err == nil {
		if err = os.Rename(tmp, bak); err != nil {
			_ = os.Remove(tmp)
		}
	}
	if err == nil {
		if err = syncDir(dir); err != nil {
			_ = os.Remove(bak)
		}
	}
	if err != nil {
		return fmt.Errorf("cannot keep a copy of the file as it was at %s: %w", bak, err)
	}
	return nil
}

// progress reports how many of the records an upgrade rewrites it has
// gone through, at most every progressEvery. A nil progress reports
// nothing.
type progress struct {
	log         *slog.Logger
	path        string
	total, done int
	start, last time.Time
}

// progress counts the records the upgrade from format from rewrites.
func (up upgrader) progress(db *bolt.DB, path string, from uint64) (*progress, error) {
	p := &progress{log: up.log, path: path, start: time.Now()}
	p.last = p.start
	err := db.View(func(tx *bolt.Tx) error {
		if from < 3 { // migrateRecords
			for _, name := range [][]byte{bucketOut, bucketIn} {
				parent := tx.Bucket(name)
				if parent == nil {
					continue
				}
				err := parent.ForEachBucket(func(ck []byte) error {
					p.total += parent.Bucket(ck).Stats().KeyN
					return nil
				})
				if err != nil {
					return err
				}
			}
		}
		if b := tx.Bucket(bucketHeld); b != nil && from < 7 { // migrateHeld
			p.total += b.Stats().KeyN
		}
		return nil
	})
	return p, err
}

// add counts n more records and reports if it is time.
func (p *progress) add(n int) {
	if p == nil {
		return
	}
	p.done += n
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		p.log.Info(fmt.Sprintf("state: upgrading %s: %d of %d records", p.path, p.done, p.total))
	}
}

// finish reports the end of the upgrade.
func (p *progress) finish(from uint64) {
	if p == nil {
		return
	}
	p.log.Info(fmt.Sprintf("state: upgraded %s from format %d to %d (%d records, %s)",
		p.path, from, formatVersion, p.done, time.Since(p.start).Round(time.Millisecond)))
}
