package consensus

import (
	"fmt"
	"path/filepath"

	"github.com/hotline-link/hotline/internal/boltcheck"
)

// pageOutSize is how much of raft.db bbolt must use (its high-water mark:
// how big the log is, the preallocated zeros beyond it not counted) before
// ReleaseMapped pages its maps out.
const pageOutSize = 32 << 20

// ReleaseMapped asks the kernel to take back the pages of raft.db that
// this process maps. bbolt reads the log through a read-only shared map
// and appending an entry reads the one before it, so without this the
// node's resident memory (RssFile) grows with the log, entries of a
// megabyte each while a backlog drains, until the log is compacted and
// bbolt happens to remap. It uses MADV_PAGEOUT on each map of the file
// (found in /proc/self/maps by its device and inode, or its path) once the
// log uses pageOutSize bytes of the file: the pages leave the map and, as
// no one else maps them, the page cache; a later read of the log reads the
// disk, so the map of a small log is left alone (paging out a small, busy log every
// second slowed Raft enough, in a race-detector test, for a leader to
// lose its lease). MADV_PAGEOUT never changes what memory holds, so a
// map that bbolt moved meanwhile is harmless. Elsewhere than Linux (5.4
// and later) it does nothing and returns nil, or the kernel's error.
func (n *Node) ReleaseMapped() error {
	path := filepath.Join(n.cfg.Dir, "raft.db")
	n.logs.wmu.Lock() // no commit rewrites the meta page meanwhile
	inUse, err := boltcheck.InUse(path)
	n.logs.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("consensus: release the mapped pages of %s: %w", path, err)
	}
	if inUse < pageOutSize {
		return nil
	}
	if err := pageOut(path); err != nil {
		return fmt.Errorf("consensus: release the mapped pages of %s: %w", path, err)
	}
	return nil
}
