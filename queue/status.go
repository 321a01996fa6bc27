package queue

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Lookup returns the status of the outbound (queued or after, or held:
// held.go) or inbound message with that ID (outbound first, should both
// exist), or ErrNotFound. When several inbound messages share an ID, the
// one indexed first is returned.
func (s *Store) Lookup(id string) (*Status, error) {
	var st *Status
	err := s.view(func(tx *bolt.Tx) error {
		if r := tx.Bucket(bucketOutIDs).Get([]byte(id)); r != nil {
			var err error
			st, err = s.status(tx, Outbound, bucketOutIDs, id, r)
			return err
		}
		if h, ok, err := getHeld(tx, id, true); err != nil || ok {
			if ok {
				st = h.status(s.site, true)
			}
			return err
		}
		if r := tx.Bucket(bucketInIDs).Get([]byte(id)); r != nil {
			var err error
			st, err = s.status(tx, Inbound, bucketInIDs, id, r)
			return err
		}
		return ErrNotFound
	})
	if err != nil {
		return nil, s.lookupErr("lookup", id, err)
	}
	return st, nil
}

// LookupInbound returns the status of the inbound message with that ID,
// or ErrNotFound, ignoring outbound messages: a peer may choose an ID
// that one of ours has. When several inbound messages share the ID, the
// one indexed first is returned (OpMarkRead of the ID marks them all).
func (s *Store) LookupInbound(id string) (*Status, error) {
	var st *Status
	err := s.view(func(tx *bolt.Tx) error {
		r := tx.Bucket(bucketInIDs).Get([]byte(id))
		if r == nil {
			return ErrNotFound
		}
		var err error
		st, err = s.status(tx, Inbound, bucketInIDs, id, r)
		return err
	})
	if err != nil {
		return nil, s.lookupErr("lookup inbound", id, err)
	}
	return st, nil
}

// LookupKey returns the status of the outbound message (held or not)
// submitted with the idempotency key, or ErrNotFound.
func (s *Store) LookupKey(key string) (*Status, error) {
	var st *Status
	err := s.view(func(tx *bolt.Tx) error {
		r := tx.Bucket(bucketOutKeys).Get([]byte(key))
		if r == nil {
			h, ok, err := heldByKey(tx, key, true)
			if ok {
				st = h.status(s.site, true)
			} else if err == nil {
				err = ErrNotFound
			}
			return err
		}
		var err error
		st, err = s.status(tx, Outbound, bucketOutKeys, key, r)
		return err
	})
	if err != nil {
		return nil, s.lookupErr("lookup key", key, err)
	}
	return st, nil
}

// lookupErr returns ErrNotFound as is (its text says enough) and wraps
// anything else.
func (s *Store) lookupErr(op, what string, err error) error {
	if err == ErrNotFound {
		return err
	}
	return fmt.Errorf("queue: %s %q: %w", op, what, s.note(err))
}

// status loads the message at ref r, which index (out_ids, in_ids or
// out_keys) lists under name, and checks that it carries that name.
func (s *Store) status(tx *bolt.Tx, dir Direction, index []byte, name string, r []byte) (*Status, error) {
	seq, ck, ok := parseRef(r)
	site, p, ok2 := parseChanKey(ck)
	if !ok || !ok2 {
		return nil, badRef(index, name, r)
	}
	parent, kind, origin, dest := bucketOut, finOut, s.site, site
	if dir == Inbound {
		parent, kind, origin, dest = bucketIn, finIn, site, s.site
	}
	rec, err := getRecord(tx.Bucket(parent), loc{kind, ck, seq}, true)
	if err != nil {
		return nil, err
	}
	named := rec.id
	if bytes.Equal(index, bucketOutKeys) {
		named = rec.key
	}
	if named != name {
		return nil, badRef(index, name, r)
	}
	rec.payload = clone(rec.payload)
	st := &Status{
		Message:     rec.message(origin, dest, p, seq),
		Direction:   dir,
		State:       rec.state,
		SubmittedAt: rec.submittedAt,
		DeliveredAt: rec.deliveredAt,
		ReadAt:      rec.readAt,
		ExpiredAt:   rec.expiredAt,
		InboxPos:    rec.inboxPos,
		payloadSum:  clone(rec.hash),
	}
	if rec.state == Refused { // a refused record's read time is its refusal's
		st.RefusedAt, st.RefusedReason, st.ReadAt = rec.readAt, rec.refused, 0
	}
	return st, nil
}
