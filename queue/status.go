package queue

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Lookup returns the status of the outbound or inbound message with that
// ID (outbound first, should both exist), or ErrNotFound. When several
// inbound messages share an ID, the first one received is returned.
func (s *Store) Lookup(id string) (*Status, error) {
	var st *Status
	err := s.view(func(tx *bolt.Tx) error {
		if r := tx.Bucket(bucketOutIDs).Get([]byte(id)); r != nil {
			var err error
			st, err = s.status(tx, Outbound, r)
			return err
		}
		if r := tx.Bucket(bucketInIDs).Get([]byte(id)); r != nil {
			var err error
			st, err = s.status(tx, Inbound, r)
			return err
		}
		return ErrNotFound
	})
	if err != nil {
		return nil, lookupErr("lookup", id, err)
	}
	return st, nil
}

// LookupKey returns the status of the outbound message submitted with the
// idempotency key, or ErrNotFound.
func (s *Store) LookupKey(key string) (*Status, error) {
	var st *Status
	err := s.view(func(tx *bolt.Tx) error {
		r := tx.Bucket(bucketOutKeys).Get([]byte(key))
		if r == nil {
			return ErrNotFound
		}
		var err error
		st, err = s.status(tx, Outbound, r)
		return err
	})
	if err != nil {
		return nil, lookupErr("lookup key", key, err)
	}
	return st, nil
}

// lookupErr returns ErrNotFound as is (its text says enough) and wraps
// anything else.
func lookupErr(op, what string, err error) error {
	if err == ErrNotFound {
		return err
	}
	return fmt.Errorf("queue: %s %q: %w", op, what, err)
}

// status loads the message at ref r.
func (s *Store) status(tx *bolt.Tx, dir Direction, r []byte) (*Status, error) {
	seq, ck, ok := parseRef(r)
	site, p, ok2 := parseChanKey(ck)
	if !ok || !ok2 {
		return nil, errCorrupt
	}
	parent, origin, dest := bucketOut, s.site, site
	if dir == Inbound {
		parent, origin, dest = bucketIn, site, s.site
	}
	rec, err := getRecord(tx.Bucket(parent), ck, seq)
	if err != nil {
		return nil, err
	}
	rec.payload = clone(rec.payload)
	return &Status{
		Message:     rec.message(origin, dest, p, seq),
		Direction:   dir,
		State:       rec.state,
		SubmittedAt: rec.submittedAt,
		DeliveredAt: rec.deliveredAt,
		ReadAt:      rec.readAt,
		ExpiredAt:   rec.expiredAt,
		InboxPos:    rec.inboxPos,
	}, nil
}
