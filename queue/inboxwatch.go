package queue

import (
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// inboxWatch tells inbox readers that the inbox gained messages, so that a
// long-poll is woken by what it waits for and not by every commit.
type inboxWatch struct {
	last atomic.Uint64 // the highest inbox position assigned (meta inbox_last)

	mu      sync.Mutex
	changed chan struct{} // closed when last advances or the state is restored
}

func (w *inboxWatch) init(last uint64) {
	w.last.Store(last)
	w.changed = make(chan struct{})
}

// advance records the inbox position after a commit and wakes the waiters
// if it moved (or always, when force: a restore may change anything).
func (w *inboxWatch) advance(last uint64, force bool) {
	if w.last.Swap(last) == last && !force {
		return
	}
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// InboxLast returns the highest inbox position ever assigned on this
// store (0 for an empty inbox). No unread message has a position above
// it, so a reader waiting for messages after `after` has nothing to read
// while InboxLast() <= after. It is a memory read: cheap to call often.
func (s *Store) InboxLast() uint64 { return s.inbox.last.Load() }

// InboxChanged returns a channel that is closed when the inbox gains a
// message (InboxLast advances) or the state is restored from a snapshot;
// acknowledgements and commits that do not touch the inbox do not close
// it. Call InboxChanged before InboxLast or Inbox, and again after each
// wake, so that no change is missed.
func (s *Store) InboxChanged() <-chan struct{} {
	s.inbox.mu.Lock()
	defer s.inbox.mu.Unlock()
	return s.inbox.changed
}

// noteInbox reads the committed inbox position from db and wakes the
// inbox readers if it moved. Callers hold applyMu and s.mu (shared).
func (s *Store) noteInbox(db *bolt.DB, force bool) {
	var last uint64
	_ = db.View(func(tx *bolt.Tx) error {
		last = getU64(tx.Bucket(bucketMeta), metaInboxLast)
		return nil
	})
	s.inbox.advance(last, force)
}
