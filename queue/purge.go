package queue

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The finalized index (bucketFin) lists the messages OpPurge may delete,
// ordered by the time their life ended, so that a purge reads only what it
// deletes. Its content is a function of the stored records alone
// (finKey), maintained wherever a record or a channel's Acked changes, and
// rebuilt from the records when an older file is opened (buildFinIndex):
//
//   - an outbound message is listed once the destination acknowledged it
//     (Seq <= Acked) and it is Delivered, Read, Refused or Expired, at its
//     DeliveredAt, ReadAt (a Refused one's refusal time) or ExpiredAt; a
//     Queued message always has Seq > Acked, and a Delivered one that
//     becomes Read or Refused moves to ReadAt;
//   - an inbound message is listed when Read, at ReadAt, or, if it never
//     entered the inbox (tombstone, link test, drill, refused), at
//     DeliveredAt.
//
// Key: time(8, sign bit flipped so that negative times sort first)
// kind(1) ref (seq(8) channel key).
const (
	finIn  byte = 'i'
	finOut byte = 'o'

	finRefOff = 9 // offset of the ref in a key
)

// finTime encodes t so that byte order is numeric order.
func finTime(t int64) uint64 { return uint64(t) ^ 1<<63 }

func makeFinKey(at int64, kind byte, seq uint64, ck []byte) []byte {
	k := make([]byte, finRefOff+8+len(ck))
	be.PutUint64(k, finTime(at))
	k[8] = kind
	be.PutUint64(k[finRefOff:], seq)
	copy(k[finRefOff+8:], ck)
	return k
}

// parseFinKey splits a key of bucketFin: the end time (as finTime), the
// kind and the ref.
func parseFinKey(k []byte) (at uint64, kind byte, r []byte, ok bool) {
	if len(k) < finRefOff+10 || (k[8] != finIn && k[8] != finOut) {
		return 0, 0, nil, false
	}
	if _, _, ok := parseChanKey(k[finRefOff+8:]); !ok {
		return 0, 0, nil, false
	}
	return be.Uint64(k), k[8], k[finRefOff:], true
}

// finKey returns the index key of the stored record v (message seq of
// channel ck, of direction kind), or nil when it is not purgeable. acked
// is the outbound channel's Acked (unused for inbound records).
func finKey(kind byte, v []byte, seq uint64, ck []byte, acked uint64) []byte {
	if len(v) < recHeader1 { // the fields read are at the same offsets in both versions
		return nil
	}
	st := State(v[offState])
	var off int
	switch {
	case kind == finOut && seq > acked:
		return nil
	case kind == finOut && st == Delivered:
		off = offDelivered
	case st == Read:
		off = offRead
	case kind == finOut && st == Refused: // at its refusal (refuse.go)
		off = offRead
	case kind == finOut && st == Expired:
		off = offExpired
	case kind == finIn && be.Uint64(v[offInboxPos:]) == 0:
		off = offDelivered
	default:
		return nil
	}
	return makeFinKey(int64(be.Uint64(v[off:])), kind, seq, ck)
}

// reindex updates the finalized index for message seq of ck whose stored
// record changes from old (nil: new message) to v.
func (a *applier) reindex(kind byte, ck []byte, seq, acked uint64, old, v []byte) error {
	ok, nk := finKey(kind, old, seq, ck, acked), finKey(kind, v, seq, ck, acked)
	if bytes.Equal(ok, nk) {
		return nil
	}
	if ok != nil {
		if err := a.fin.Delete(ok); err != nil {
			return err
		}
	}
	if nk != nil {
		return a.fin.Put(nk, nil)
	}
	return nil
}

// purge deletes the messages the finalized index lists before p.Before;
// see OpPurge.
func (a *applier) purge(p *Purge) (*PurgeResult, error) {
	max := p.Max
	if max == 0 {
		max = DefaultPurgeMax
	}
	var due [][]byte
	res := &PurgeResult{}
	c := a.fin.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		at, _, _, ok := parseFinKey(k)
		if !ok {
			return nil, corruptf(fmt.Sprintf("bucket %s, key %x", bucketFin, k), "malformed")
		}
		if at >= finTime(p.Before) {
			break
		}
		if len(due) == max {
			res.More = true
			break
		}
		due = append(due, clone(k))
	}
	for _, k := range due {
		if err := a.fin.Delete(k); err != nil {
			return nil, err
		}
		_, kind, r, _ := parseFinKey(k)
		if err := a.purgeMessage(kind, r); err != nil {
			return nil, err
		}
		res.Purged++
	}
	return res, nil
}

// purgeMessage deletes the message at ref r of direction kind and its
// index entries.
func (a *applier) purgeMessage(kind byte, r []byte) error {
	seq, ck, ok := parseRef(r)
	if !ok {
		return corruptf(fmt.Sprintf("bucket %s", bucketFin), "bad ref %x", r)
	}
	l := loc{kind, ck, seq}
	parent := a.in
	if kind == finOut {
		parent = a.out
	}
	msgs := parent.Bucket(ck)
	if msgs == nil {
		return corruptf(l.String(), "no such channel, but %s refers to it", bucketFin)
	}
	k := u64(seq)
	v := msgs.Get(k)
	if v == nil {
		return corruptf(l.String(), "missing, but %s refers to it", bucketFin)
	}
	rec, err := decodeMeta(v, l) // id and key are copies
	if err != nil {
		return err
	}
	if kind == finIn {
		if err := a.unindexInbound(rec.id, r); err != nil {
			return err
		}
	} else if err := deleteIfRef(a.outIDs, rec.id, r); err != nil {
		return err
	}
	if kind == finOut && rec.key != "" {
		if err := deleteIfRef(a.outKeys, rec.key, r); err != nil {
			return err
		}
	}
	if err := a.dropEvidence(kind, r); err != nil { // evidence_store.go
		return err
	}
	if kind == finOut && rec.state == Delivered { // delivered, never read
		if err := a.unreadPut(false, finOut, ck, seq, &rec); err != nil { // unread.go
			return err
		}
	}
	return msgs.Delete(k)
}

// deleteIfRef deletes index entry name if it points at ref r.
func deleteIfRef(index *bolt.Bucket, name string, r []byte) error {
	k := []byte(name)
	if len(k) == 0 || !bytes.Equal(index.Get(k), r) {
		return nil
	}
	return index.Delete(k)
}

// buildFinIndex fills the finalized index from the stored records: the
// migration of a format 1 file, which had no such index.
func buildFinIndex(tx *bolt.Tx) error {
	fin := tx.Bucket(bucketFin)
	out, in := tx.Bucket(bucketOut), tx.Bucket(bucketIn)
	err := tx.Bucket(bucketOutChans).ForEach(func(ck, v []byte) error {
		_, acked := getPair(v)
		msgs := out.Bucket(ck)
		if msgs == nil {
			return nil
		}
		c := msgs.Cursor()
		for k, v := c.First(); k != nil && be.Uint64(k) <= acked; k, v = c.Next() {
			if fk := finKey(finOut, v, be.Uint64(k), ck, acked); fk != nil {
				if err := fin.Put(fk, nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return in.ForEach(func(ck, _ []byte) error {
		msgs := in.Bucket(ck)
		if msgs == nil {
			return nil
		}
		return msgs.ForEach(func(k, v []byte) error {
			if fk := finKey(finIn, v, be.Uint64(k), ck, 0); fk != nil {
				return fin.Put(fk, nil)
			}
			return nil
		})
	})
}
