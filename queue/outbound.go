package queue

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// submit enqueues the items in order; see OpSubmit. With hold (a
// Release body) it holds them instead (held.go).
func (a *applier) submit(now int64, sub *Submit, hold *Release) ([]SubmitResult, error) {
	res := make([]SubmitResult, len(sub.Items))
	if sub.Origin != "" && sub.Origin != a.site {
		err := fmt.Sprintf("queue: submit: %v: origin %q is not the local site %q", ErrInvalid, sub.Origin, a.site)
		for i := range res {
			res[i] = SubmitResult{ID: sub.Items[i].ID, Err: err}
		}
		return res, nil
	}
	for i := range sub.Items {
		it := &sub.Items[i]
		r, err := a.submitItem(now, it, hold)
		if err != nil {
			return nil, fmt.Errorf("submit %q: %w", it.ID, err)
		}
		res[i] = r
	}
	return res, nil
}

func (a *applier) submitItem(now int64, it *SubmitItem, hold *Release) (SubmitResult, error) {
	res := SubmitResult{ID: it.ID}
	if err := it.Validate(); err != nil {
		res.Err = "queue: submit: " + err.Error()
		return res, nil
	}
	if r := a.outIDs.Get([]byte(it.ID)); r != nil {
		seq, _, ok := parseRef(r)
		if !ok {
			return res, badRef(bucketOutIDs, it.ID, r)
		}
		res.Seq, res.Existing = seq, true
		return res, nil
	}
	if h, ok, err := getHeld(a.tx, it.ID, false); err != nil || ok {
		return existingHeld(&h, it, nil), err // held.go
	}
	var hash []byte
	if it.Key != "" {
		hash = it.plaintextSum()
		if r := a.outKeys.Get([]byte(it.Key)); r != nil {
			return a.existingKey(r, it, hash)
		}
		if h, ok, err := heldByKey(a.tx, it.Key, false); err != nil || ok {
			return existingHeld(&h, it, hash), err
		}
	}
	if hold != nil {
		return a.holdItem(now, it, hold)
	}
	ck := chanKey(it.Dest, it.Precedence)
	if a.fenced(fenceOut, ck) {
		res.Err = fmt.Sprintf("%v %s (retry later)", ErrResyncing, it.Dest)
		return res, nil
	}
	seq, err := a.enqueue(now, it, hash)
	if err != nil {
		return res, err
	}
	res.Seq = seq
	return res, a.auditMsg(AuditSubmitted, true, now, ck, seq, it.ID, it.Flags, it.Payload) // audit_apply.go
}

// enqueue stores it, submitted at now, as the next message of its
// channel (not fenced) and returns its sequence number. hash is the
// digest the idempotency rule compares, with a key.
func (a *applier) enqueue(now int64, it *SubmitItem, hash []byte) (uint64, error) {
	ck := chanKey(it.Dest, it.Precedence)
	last, acked := getPair(a.outChans.Get(ck))
	seq := last + 1
	msgs, err := seqBucket(a.out, ck)
	if err != nil {
		return 0, err
	}
	rec := record{
		state: Queued, flags: it.Flags, submittedAt: now, expiresAt: it.ExpiresAt,
		id: it.ID, key: it.Key, hash: hash, payload: it.Payload,
		mailbox: it.Mailbox, from: it.From, mtype: it.Type,
	}
	rf := ref(seq, ck)
	l := loc{finOut, ck, seq}
	if msgs.Get(u64(seq)) != nil {
		return 0, corruptf(l.String(), "already stored, but channel cursor %s says last is %d", bucketOutChans, last)
	}
	if err := msgs.Put(u64(seq), rec.encode(l)); err != nil {
		return 0, err
	}
	if err := a.outChans.Put(ck, pair(seq, acked)); err != nil {
		return 0, err
	}
	if err := a.outIDs.Put([]byte(it.ID), rf); err != nil {
		return 0, err
	}
	if it.Key != "" {
		if err := a.outKeys.Put([]byte(it.Key), rf); err != nil {
			return 0, err
		}
	}
	if it.ExpiresAt > 0 {
		if err := a.expiry.Put(expiryKey(it.ExpiresAt, seq, ck), nil); err != nil {
			return 0, err
		}
	}
	if err := a.unreadPut(true, finOut, ck, seq, &rec); err != nil { // unread.go
		return 0, err
	}
	return seq, nil
}

// existingKey answers an item whose idempotency key is stored at ref r:
// the same message again, or a conflict.
func (a *applier) existingKey(r []byte, it *SubmitItem, hash []byte) (SubmitResult, error) {
	res := SubmitResult{ID: it.ID}
	seq, ck, ok := parseRef(r)
	if !ok {
		return res, badRef(bucketOutKeys, it.Key, r)
	}
	rec, err := getRecord(a.out, loc{finOut, ck, seq}, false)
	if err != nil {
		return res, err
	}
	if rec.key != it.Key {
		return res, badRef(bucketOutKeys, it.Key, r)
	}
	dest, p, ok := parseChanKey(ck)
	if !ok {
		return res, badRef(bucketOutKeys, it.Key, r)
	}
	if !sameSubmission(&Message{Dest: dest, Precedence: p, Mailbox: rec.mailbox, From: rec.from, Type: rec.mtype}, rec.hash, it, hash) {
		res.Err = ErrKeyConflict.Error()
		return res, nil
	}
	res.ID, res.Seq, res.Existing = rec.id, seq, true
	return res, nil
}

// SameSubmission is the idempotency rule: it reports whether item,
// submitted with the idempotency key of the stored outbound message st
// (from [Store.LookupKey]), repeats that message: the same destination,
// precedence and payload, the payload compared by its plaintext's SHA-256
// (a sealed payload's from its header: two seals of one plaintext differ),
// which the store keeps after expiry removes the payload. A repeat is
// answered with st's ID and enqueues nothing; anything else under the
// same key is [ErrKeyConflict]. OpSubmit applies the same rule, so a caller may answer
// a repeat without proposing it.
func SameSubmission(st *Status, it *SubmitItem) bool {
	if st.Direction != Outbound || st.Message.Key != it.Key || it.Key == "" {
		return false
	}
	return sameSubmission(&st.Message, st.payloadSum, it, it.plaintextSum())
}

// sameSubmission is SameSubmission on the stored message's channel and
// attributes (m) and payload digest, and the item's digest.
func sameSubmission(m *Message, sum []byte, it *SubmitItem, itSum []byte) bool {
	return m.Dest == it.Dest && m.Precedence == it.Precedence && m.Mailbox == it.Mailbox && m.From == it.From &&
		m.Type == it.Type && bytes.Equal(sum, itSum)
}

// payloadSum is the digest the idempotency rule compares (stored with
// messages that have a key).
func payloadSum(payload []byte) []byte {
	h := sha256.Sum256(payload)
	return h[:]
}

// getRecord loads and checks the message at l under parent (out or in),
// its payload too if payload is set. An index pointed at it: a missing
// message is corruption.
func getRecord(parent *bolt.Bucket, l loc, payload bool) (record, error) {
	v := getRaw(parent, l.ck, l.seq)
	if v == nil {
		return record{}, corruptf(l.String(), "missing, but an index refers to it")
	}
	return parseRecord(v, l, payload, false)
}

// badRef reports a damaged index entry: name in index does not refer to
// a message of that name.
func badRef(index []byte, name string, r []byte) error {
	return corruptf(fmt.Sprintf("bucket %s, key %q", index, name), "does not refer to a message of that name (ref %x)", r)
}

func getRaw(parent *bolt.Bucket, ck []byte, seq uint64) []byte {
	b := parent.Bucket(ck)
	if b == nil {
		return nil
	}
	return b.Get(u64(seq))
}

// delivered applies a cumulative ack from the destination.
func (a *applier) delivered(now int64, d *DeliveredCmd) error {
	if !d.Precedence.Valid() || validName(d.Dest) != nil {
		return nil // no such channel: nothing to acknowledge
	}
	ck := chanKey(d.Dest, d.Precedence)
	if err := a.deliver(now, ck, d.UpTo); err != nil {
		return err
	}
	if err := a.resyncOut(ck, d.UpTo); err != nil { // backup.go
		return err
	}
	return a.deliveredEvidence(d, ck) // evidence_store.go
}

// deliver marks the messages of channel ck up to upTo delivered.
func (a *applier) deliver(now int64, ck []byte, upTo uint64) error {
	last, acked := getPair(a.outChans.Get(ck))
	upTo = min(upTo, last)
	if upTo <= acked {
		return nil
	}
	msgs := a.out.Bucket(ck)
	if msgs == nil {
		return errCorrupt
	}
	msgs.FillPercent = seqFill
	for seq := acked + 1; seq <= upTo; seq++ {
		k := u64(seq)
		l := loc{finOut, ck, seq}
		v := msgs.Get(k)
		if v == nil {
			return corruptf(l.String(), "missing below the channel's last %d", last)
		}
		rec, err := decodeMeta(v, l)
		if err != nil {
			return err
		}
		if err := a.auditMsg(AuditDelivered, true, now, ck, seq, rec.id, rec.flags, nil); err != nil {
			return err
		}
		// Above the old Acked nothing was purgeable; up to upTo it is.
		if rec.state != Queued {
			// Expired or already Read: keep as is, now purgeable.
			if err := a.reindex(finOut, ck, seq, upTo, nil, v); err != nil {
				return err
			}
			continue
		}
		nv, err := patchRecord(v, l, Delivered, offDelivered, now)
		if err != nil {
			return err
		}
		if err := a.unexpire(v, seq, ck); err != nil {
			return err
		}
		if err := a.reindex(finOut, ck, seq, upTo, nil, nv); err != nil {
			return err
		}
		if err := msgs.Put(k, nv); err != nil {
			return err
		}
	}
	return a.outChans.Put(ck, pair(last, upTo))
}

// unexpire removes a message leaving the Queued state from the expiry
// index. v is its stored record.
func (a *applier) unexpire(v []byte, seq uint64, ck []byte) error {
	at := int64(be.Uint64(v[offExpires:]))
	if at <= 0 {
		return nil
	}
	return a.expiry.Delete(expiryKey(at, seq, ck))
}

// expire turns queued messages whose time has come into tombstones.
func (a *applier) expire(now int64) (*ExpireResult, error) {
	var due [][]byte
	c := a.expiry.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		at, _, _, ok := parseExpiryKey(k)
		if !ok {
			return nil, corruptf(fmt.Sprintf("bucket %s, key %x", bucketExpiry, k), "malformed")
		}
		if at > now {
			break
		}
		due = append(due, clone(k))
	}
	res := &ExpireResult{}
	for _, k := range due {
		if err := a.expiry.Delete(k); err != nil {
			return nil, err
		}
		_, seq, ck, _ := parseExpiryKey(k)
		l := loc{finOut, ck, seq}
		msgs := a.out.Bucket(ck)
		if msgs == nil {
			return nil, corruptf(fmt.Sprintf("bucket %s, key %x", bucketExpiry, k), "no such channel")
		}
		v := msgs.Get(u64(seq))
		if v == nil {
			return nil, corruptf(l.String(), "missing, but %s refers to it", bucketExpiry)
		}
		rec, err := decodeMeta(v, l)
		if err != nil {
			return nil, err
		}
		if rec.state != Queued {
			continue
		}
		// A Queued message is above its channel's Acked, so the expired
		// one is not purgeable yet: delivered() indexes it once acked.
		rec.state, rec.expiredAt, rec.payload = Expired, now, nil
		rec.flags |= FlagTombstone
		if err := msgs.Put(u64(seq), rec.encode(l)); err != nil {
			return nil, err
		}
		res.Expired++
		if err := a.auditMsg(AuditExpired, true, now, ck, seq, rec.id, rec.flags, nil); err != nil {
			return nil, err
		}
		if err := a.unreadPut(false, finOut, ck, seq, &rec); err != nil { // unread.go
			return nil, err
		}
		if err := a.expiryNotice(now, ck, seq, &rec); err != nil { // notice.go
			return nil, err
		}
	}
	return res, nil
}

// Pending returns outbound messages of channel (Site(), dest, p) with Seq
// greater than after, ascending and contiguous: at most maxMsgs messages
// and, after the first, at most maxBytes of payload in total (a limit <= 0
// means no limit). Expired messages are tombstones (FlagTombstone, no
// payload). An unknown channel gives no messages, and so may an after
// below the channel's Acked, as OpPurge deletes acknowledged messages:
// senders resume from Acked. A damaged message is never returned: the
// messages before it are, and a call that would start with it fails with
// an error wrapping [ErrCorrupt], so the channel stops there.
func (s *Store) Pending(dest string, p Precedence, after uint64, maxMsgs, maxBytes int) ([]Message, error) {
	var out []Message
	ck := chanKey(dest, p)
	err := s.view(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bucketOut).Bucket(ck)
		if msgs == nil {
			return nil
		}
		size := 0
		want := after + 1
		c := msgs.Cursor()
		for k, v := c.Seek(u64(want)); k != nil; k, v = c.Next() {
			if be.Uint64(k) != want || (maxMsgs > 0 && len(out) >= maxMsgs) {
				break
			}
			rec, err := decodeRecord(v, loc{finOut, ck, want})
			if err != nil && len(out) > 0 {
				s.note(err) // serve what precedes it; the next call fails
				break
			}
			if err != nil {
				return err
			}
			if maxBytes > 0 && len(out) > 0 && size+len(rec.payload) > maxBytes {
				break
			}
			size += len(rec.payload)
			rec.payload = clone(rec.payload)
			out = append(out, rec.message(s.site, dest, p, want))
			want++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: pending %s: %w", Channel{s.site, dest, p}, s.note(err))
	}
	return out, nil
}

// Outbound lists every outbound channel that ever had a message, sorted by
// destination, then precedence. It returns nil on a closed store.
func (s *Store) Outbound() []OutChannel {
	var out []OutChannel
	_ = s.view(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bucketOut)
		return tx.Bucket(bucketOutChans).ForEach(func(k, v []byte) error {
			dest, p, ok := parseChanKey(k)
			if !ok {
				return nil
			}
			last, acked := getPair(v)
			oc := OutChannel{Dest: dest, Precedence: p, Last: last, Acked: acked}
			if acked < last {
				if v := getRaw(msgs, k, acked+1); len(v) >= recHeader {
					oc.OldestQueuedAt = int64(be.Uint64(v[offSubmitted:]))
				}
			}
			out = append(out, oc)
			return nil
		})
	})
	return out
}

// NextExpiry returns the smallest ExpiresAt (Unix nanoseconds) among
// outbound messages still Queued, or 0 if none has one (or the store is
// closed). It reads one key: a proposer can check it before proposing
// OpExpire with a Time at or after it.
func (s *Store) NextExpiry() int64 {
	var at int64
	_ = s.view(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketExpiry).Cursor().First(); len(k) >= 8 {
			at = int64(be.Uint64(k))
		}
		return nil
	})
	return at
}
