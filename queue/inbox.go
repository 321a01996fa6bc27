package queue

import (
	"bytes"
	"fmt"
	"math"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Reasons reported in MarkReadResult.Errs.
const (
	errUnknownMessage = "unknown message"
	errNotInbox       = "not an inbox message"
	// ErrNotMailbox: the message is in a mailbox the MarkRead's
	// Mailboxes do not name; it is left unread.
	errNotMailbox = "in a mailbox this caller may not acknowledge"
)

// receive applies an inbound batch from its channel's last+1; see
// OpReceive. The batch has been validated.
func (a *applier) receive(now int64, r *Receive) (*ReceiveResult, error) {
	ck := chanKey(r.Origin, r.Precedence)
	last := getU64(a.inChans, ck)
	res := &ReceiveResult{Last: last}
	if len(r.Messages) == 0 {
		return res, nil
	}
	inboxLast := getU64(a.meta, metaInboxLast)
	unread := getU64(a.meta, metaUnread)
	var msgs *bolt.Bucket
	holding := true // every message so far is held as the command carries it
	nextRefusal := 0
	for i := range r.Messages {
		m := &r.Messages[i]
		refused := r.refusal(i, &nextRefusal) // refuse.go
		if m.Seq <= last {
			if holding {
				same, err := a.holdsAsSent(ck, m)
				if err != nil {
					return nil, err
				}
				if holding = same; same {
					res.Held++
				}
			}
			continue // duplicate
		}
		if m.Seq > last+1 {
			break // gap: the sender resends from last+1
		}
		if msgs == nil {
			var err error
			if msgs, err = seqBucket(a.in, ck); err != nil {
				return nil, err
			}
		}
		rec := record{
			state: Delivered, flags: m.Flags, submittedAt: m.SubmittedAt, expiresAt: m.ExpiresAt,
			deliveredAt: now, id: m.ID, key: m.Key, payload: m.Payload,
			mailbox: m.Mailbox, from: m.From, mtype: m.Type,
		}
		rf := ref(m.Seq, ck)
		switch {
		case m.Tombstone():
			rec.state, rec.expiredAt, rec.payload = Expired, now, nil
		case m.Flags&(FlagLinkTest|FlagDrill) != 0:
			// delivered, never shown to clients
		case refused != "":
			// held, never shown to clients; its origin learns why
			rec.state, rec.readAt, rec.refused = Refused, now, refused
		default:
			inboxLast++
			unread++
			rec.inboxPos = inboxLast
			if err := a.inbox.Put(u64(inboxLast), rf); err != nil {
				return nil, err
			}
			if err := a.inboxAdd(m.Mailbox, inboxLast, rf); err != nil { // mailbox.go
				return nil, err
			}
			if err := a.unreadPut(true, finIn, ck, m.Seq, &rec); err != nil { // unread.go
				return nil, err
			}
		}
		l := loc{finIn, ck, m.Seq}
		if msgs.Get(u64(m.Seq)) != nil {
			return nil, corruptf(l.String(), "already stored, but channel cursor %s says last is %d", bucketInChans, last)
		}
		v := rec.encode(l)
		if err := a.reindex(finIn, ck, m.Seq, 0, nil, v); err != nil {
			return nil, err
		}
		if err := msgs.Put(u64(m.Seq), v); err != nil {
			return nil, err
		}
		if err := a.indexInbound(m.ID, rf); err != nil {
			return nil, err
		}
		if err := a.auditMsg(AuditReceived, false, now, ck, m.Seq, m.ID, m.Flags, m.Payload); err != nil {
			return nil, err
		}
		if refused != "" {
			if err := a.auditMsgDetail(AuditRefused, false, now, ck, m.Seq, m.ID, m.Flags, nil, refused); err != nil {
				return nil, err
			}
			if err := a.queueReceipt(r.Origin, Receipt{Precedence: r.Precedence, Seq: m.Seq, ID: m.ID, ReadAt: now, Refused: refused}); err != nil {
				return nil, err
			}
		}
		last = m.Seq
		res.Applied++
		if holding {
			res.Held++
		}
	}
	if err := a.receiveEvidence(r, ck, last); err != nil { // evidence_store.go
		return nil, err
	}
	if res.Applied == 0 {
		return res, nil
	}
	res.Last = last
	if err := a.inChans.Put(ck, u64(last)); err != nil {
		return nil, err
	}
	if err := a.meta.Put(metaInboxLast, u64(inboxLast)); err != nil {
		return nil, err
	}
	return res, a.meta.Put(metaUnread, u64(unread))
}

// holdsAsSent reports whether the inbound record at m's sequence of
// channel ck is m as it was received: same id, flags, times and payload
// (a tombstone holds none). A purged record is not held.
func (a *applier) holdsAsSent(ck []byte, m *Message) (bool, error) {
	msgs := a.in.Bucket(ck)
	if msgs == nil {
		return false, nil
	}
	l := loc{finIn, ck, m.Seq}
	v := msgs.Get(u64(m.Seq))
	if v == nil {
		return false, nil
	}
	rec, err := decodeRecord(v, l)
	if err != nil {
		return false, err
	}
	payload := m.Payload
	if m.Tombstone() {
		payload = nil
	}
	return rec.id == m.ID && rec.flags == m.Flags && rec.submittedAt == m.SubmittedAt &&
		rec.expiresAt == m.ExpiresAt && rec.mailbox == m.Mailbox && rec.from == m.From && rec.mtype == m.Type &&
		bytes.Equal(rec.payload, payload), nil
}

// markRead marks inbox messages read and queues their receipts. An ID
// that several inbound messages carry (a peer reused it) marks every one
// of them; an ID repeated in mr is marked once.
func (a *applier) markRead(now int64, mr *MarkRead) (*MarkReadResult, error) {
	res := &MarkReadResult{Errs: make([]string, len(mr.IDs))}
	unread := getU64(a.meta, metaUnread)
	start := unread
	var first map[string]int // ID -> its first index in mr.IDs
	if len(mr.IDs) > 1 {
		first = make(map[string]int, len(mr.IDs))
	}
	for i, id := range mr.IDs {
		if first != nil {
			if j, ok := first[id]; ok {
				res.Errs[i] = res.Errs[j]
				continue
			}
			first[id] = i
		}
		refs, err := a.inboundRefs(id)
		if err != nil {
			return nil, err
		}
		if len(refs) == 0 {
			if id != "" && a.outIDs.Get([]byte(id)) != nil {
				res.Errs[i] = errNotInbox
			} else {
				res.Errs[i] = errUnknownMessage
			}
			continue
		}
		inbox, outside := false, false
		for _, r := range refs {
			in, out, err := a.markOneRead(now, mr, id, r, &unread)
			if err != nil {
				return nil, err
			}
			inbox = inbox || in
			outside = outside || out
		}
		switch {
		case !inbox && outside:
			res.Errs[i] = errNotMailbox
		case !inbox:
			res.Errs[i] = errNotInbox
		}
	}
	if unread == start {
		return res, nil
	}
	return res, a.meta.Put(metaUnread, u64(unread))
}

// markOneRead marks the inbound message at ref r, which carries id, read
// if it is in the inbox and unread and in one of mr's mailboxes, and
// reports whether it ever entered the inbox (in) and whether it was left
// alone because it is in another mailbox (outside).
func (a *applier) markOneRead(now int64, mr *MarkRead, id string, r []byte, unread *uint64) (in, outside bool, err error) {
	seq, ck, ok := parseRef(r)
	origin, p, ok2 := parseChanKey(ck)
	if !ok || !ok2 {
		return false, false, badRef(bucketInIDs, id, r)
	}
	l := loc{finIn, ck, seq}
	msgs := a.in.Bucket(ck)
	if msgs == nil {
		return false, false, badRef(bucketInIDs, id, r)
	}
	v := msgs.Get(u64(seq))
	if v == nil {
		return false, false, corruptf(l.String(), "missing, but %s refers to it", bucketInIDs)
	}
	rec, err := decodeMeta(v, l)
	if err != nil {
		return false, false, err
	}
	switch {
	case rec.id != id:
		return false, false, badRef(bucketInIDs, id, r)
	case rec.inboxPos == 0:
		return false, false, nil
	case mr.Mailboxes != nil && !slices.Contains(mr.Mailboxes, rec.mailbox):
		return false, true, nil
	case rec.state == Read:
		return true, false, nil
	}
	nv, err := patchRecord(v, l, Read, offRead, now)
	if err != nil {
		return false, false, err
	}
	if err := a.reindex(finIn, ck, seq, 0, v, nv); err != nil {
		return false, false, err
	}
	msgs.FillPercent = seqFill
	if err := msgs.Put(u64(seq), nv); err != nil {
		return false, false, err
	}
	if err := a.inbox.Delete(u64(rec.inboxPos)); err != nil {
		return false, false, err
	}
	if err := a.inboxRemove(rec.mailbox, rec.inboxPos); err != nil { // mailbox.go
		return false, false, err
	}
	if err := a.unreadPut(false, finIn, ck, seq, &rec); err != nil { // unread.go
		return false, false, err
	}
	*unread--
	a.actor, a.actorNode = mr.By, mr.Node
	err = a.auditMsg(AuditRead, false, now, ck, seq, rec.id, rec.flags, nil)
	a.actor, a.actorNode = nil, ""
	if err != nil {
		return false, false, err
	}
	if origin == a.site {
		return true, false, nil // an expiry notice (notice.go): nobody to receipt
	}
	return true, false, a.queueReceipt(origin, Receipt{Precedence: p, Seq: seq, ID: rec.id, ReadAt: now})
}

// Inbox returns unread inbox messages with Pos greater than after, in
// ascending Pos order, at most max of them (max <= 0: no limit). It is
// InboxBytes without a byte budget.
func (s *Store) Inbox(after uint64, max int) ([]InboxItem, error) {
	return s.InboxBytes(after, max, 0)
}

// InboxBytes is Inbox with a byte budget: it stops before the message
// that would take the returned payloads, IDs and keys over maxBytes
// (maxBytes <= 0: no budget), but always returns the first unread message
// however large, so a reader is never stuck behind one. Payloads are read
// from the file only for the messages returned, so the memory a call
// takes is bounded by max(maxBytes, the largest message).
func (s *Store) InboxBytes(after uint64, max int, maxBytes int64) ([]InboxItem, error) {
	var out []InboxItem
	var size int64
	if after == math.MaxUint64 {
		return nil, nil // nothing comes after the last position (after+1 would wrap)
	}
	err := s.view(func(tx *bolt.Tx) error {
		in := tx.Bucket(bucketIn)
		c := tx.Bucket(bucketInbox).Cursor()
		for k, r := c.Seek(u64(after + 1)); k != nil; k, r = c.Next() {
			if max > 0 && len(out) >= max {
				break
			}
			seq, ck, ok := parseRef(r)
			origin, p, ok2 := parseChanKey(ck)
			if !ok || !ok2 {
				return inboxRef(k, r)
			}
			rec, err := inboxRecord(in, k, r)
			if err != nil {
				return err
			}
			n := int64(len(rec.payload) + len(rec.id) + len(rec.key))
			if maxBytes > 0 && len(out) > 0 && size+n > maxBytes {
				break
			}
			size += n
			rec.payload = clone(rec.payload)
			out = append(out, InboxItem{
				Pos:        be.Uint64(k),
				Message:    rec.message(origin, s.site, p, seq),
				ReceivedAt: rec.deliveredAt,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: inbox: %w", s.note(err))
	}
	return out, nil
}

// InboxUnread returns the number of unread inbox messages (0 on a closed
// store).
func (s *Store) InboxUnread() int {
	var n uint64
	_ = s.view(func(tx *bolt.Tx) error {
		n = getU64(tx.Bucket(bucketMeta), metaUnread)
		return nil
	})
	return int(n)
}

// Inbound lists every inbound channel that applied a message, sorted by
// origin, then precedence. It returns nil on a closed store.
func (s *Store) Inbound() []InChannel {
	var out []InChannel
	_ = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInChans).ForEach(func(k, v []byte) error {
			if origin, p, ok := parseChanKey(k); ok && len(v) >= 8 && origin != s.site { // not the notices' (notice.go)
				out = append(out, InChannel{Origin: origin, Precedence: p, Last: be.Uint64(v)})
			}
			return nil
		})
	})
	return out
}

// Arrival is one inbound message as applied here, without its payload.
type Arrival struct {
	Seq         uint64
	ID, Key     string
	Flags       uint32
	SubmittedAt int64 // origin's commit time, Unix ns
	ArrivedAt   int64 // applied here, Unix ns
}

// Arrivals returns the inbound messages of channel (origin → this site,
// p) with sequence numbers after `after` whose flags include any of
// flags, in sequence order, looking at no more than scan messages (so one
// call stays bounded however rare the flagged ones are), and at most max
// of them. next is the last sequence looked at (== after when nothing
// was), to pass as `after` to continue; last is the channel's last
// applied sequence. Purged messages are skipped.
func (s *Store) Arrivals(origin string, p Precedence, after uint64, flags uint32, max, scan int) (out []Arrival, next, last uint64, err error) {
	next = after
	ck := chanKey(origin, p)
	err = s.view(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketInChans).Get(ck); len(v) >= 8 {
			last = be.Uint64(v)
		}
		b := tx.Bucket(bucketIn).Bucket(ck)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && scan > 0 && len(out) < max; k, v = c.Next() {
			scan--
			rec, err := decodeMeta(v, loc{finIn, ck, be.Uint64(k)})
			if err != nil {
				return err
			}
			next = be.Uint64(k)
			if rec.flags&flags == 0 {
				continue
			}
			out = append(out, Arrival{Seq: next, ID: rec.id, Key: rec.key, Flags: rec.flags,
				SubmittedAt: rec.submittedAt, ArrivedAt: rec.deliveredAt})
		}
		return nil
	})
	if err != nil {
		return nil, after, 0, fmt.Errorf("queue: arrivals from %s/%s: %w", origin, p, s.note(err))
	}
	return out, next, last, nil
}
