package queue

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// ReleaseMapped drops this process's map of the state file's pages: bbolt
// reads the file through a read-only shared map, and every page read
// stays mapped, so the node's resident memory (RssFile) grows with
// whatever it has read of the file — with a backlog, the whole queue. The
// pages stay in the page cache; the next read maps them again (a minor
// fault, no I/O). It works inside a read transaction, during which bbolt
// cannot move its map, and covers the pages that transaction sees (those
// written since stay mapped until the next call). Elsewhere than Linux it
// does nothing. It returns ErrClosed on a closed store.
func (s *Store) ReleaseMapped() error {
	err := s.view(func(tx *bolt.Tx) error { return releaseMapped(tx.DB().Info().Data, tx.Size()) })
	if err != nil {
		return fmt.Errorf("queue: release mapped pages: %w", err)
	}
	return nil
}
