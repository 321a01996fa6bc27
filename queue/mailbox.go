package queue

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// The inbox per mailbox. bucketInbox lists every unread message by
// position; bucketMboxInbox lists the same messages by mailbox, so that a
// mailbox's reader finds its own without scanning the others', and
// bucketMboxUnread counts each mailbox's unread messages:
//
//	inbox_mbox:   mailboxKey(mailbox) pos(8) -> ref
//	inbox_mbox_n: mailboxKey(mailbox)        -> count(8)
//
// A mailboxKey is the name's length (one byte) and the name; the default
// mailbox is stored as "" (Message.Mailbox). Both are kept by receive and
// markRead in the same transaction as bucketInbox.
var (
	bucketMboxInbox  = []byte("inbox_mbox")
	bucketMboxUnread = []byte("inbox_mbox_n")
)

// bodyMarkReadBy is the body bit of MarkRead's who and scope in the log
// entry format (command_codec.go), after the audit bodies':
//
//	MarkReadBy = node:string uid:varint user:string pid:varint peer:string
//	             scoped:byte mailboxes:list(string)
//
// present exactly when a MarkRead has By, Node or Mailboxes (scoped 1:
// Mailboxes is not nil, which then may be empty).
const bodyMarkReadBy = 1 << 9

func (mr *MarkRead) hasBy() bool {
	return mr != nil && (mr.By != nil || mr.Node != "" || mr.Mailboxes != nil)
}

func appendMarkReadBy(b []byte, mr *MarkRead) []byte {
	if !mr.hasBy() {
		return b
	}
	by := NoActor
	if mr.By != nil {
		by = *mr.By
	}
	b = AppendString(b, mr.Node)
	b = binary.AppendVarint(b, by.UID)
	b = AppendString(b, by.User)
	b = binary.AppendVarint(b, by.PID)
	b = AppendString(b, by.Peer)
	if mr.Mailboxes == nil {
		return append(b, 0, 0)
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(len(mr.Mailboxes)))
	for _, mb := range mr.Mailboxes {
		b = AppendString(b, mb)
	}
	return b
}

func markReadBySize(mr *MarkRead) int {
	if !mr.hasBy() {
		return 0
	}
	by := NoActor
	if mr.By != nil {
		by = *mr.By
	}
	n := stringLen(len(mr.Node)) + varintLen(by.UID) + stringLen(len(by.User)) + varintLen(by.PID) + stringLen(len(by.Peer)) +
		1 + uvarintLen(uint64(len(mr.Mailboxes)))
	for _, mb := range mr.Mailboxes {
		n += stringLen(len(mb))
	}
	return n
}

func decodeMarkReadBy(d *Decoder, c *Command, bodies uint64) {
	if bodies&bodyMarkReadBy == 0 {
		return
	}
	if c.MarkRead == nil {
		d.fail("mark-read scope without a mark_read body")
		return
	}
	mr := c.MarkRead
	mr.Node = d.limited("node", MaxNameLen)
	by := Actor{UID: d.Varint(), User: d.limited("user", MaxAuditUser), PID: d.Varint(), Peer: d.limited("peer", MaxAuditPeer)}
	if by != NoActor {
		mr.By = &by
	}
	switch d.Byte() {
	case 0:
		if d.Uvarint() != 0 {
			d.fail("mark-read scope: mailboxes without the scoped flag")
		}
	case 1:
		n := d.Count(minStringLen, 0)
		mr.Mailboxes = make([]string, n)
		for i := range mr.Mailboxes {
			mr.Mailboxes[i] = d.limited("mailbox", MaxMailboxLen)
		}
	default:
		d.fail("mark-read scope: bad scoped flag")
	}
	if d.Err() == nil && !mr.hasBy() {
		d.fail("mark-read scope that is empty")
	}
}

func mailboxKey(mb string) []byte {
	b := make([]byte, 0, 1+len(mb)+8)
	b = append(b, byte(len(mb)))
	return append(b, mb...)
}

func mboxPosKey(mb string, pos uint64) []byte { return append(mailboxKey(mb), u64(pos)...) }

// inboxAdd lists the message at ref rf, at inbox position pos, in its
// mailbox's index.
func (a *applier) inboxAdd(mb string, pos uint64, rf []byte) error {
	idx, cnt := a.tx.Bucket(bucketMboxInbox), a.tx.Bucket(bucketMboxUnread)
	idx.FillPercent = seqFill
	if err := idx.Put(mboxPosKey(mb, pos), rf); err != nil {
		return err
	}
	k := mailboxKey(mb)
	return cnt.Put(k, u64(getU64(cnt, k)+1))
}

// inboxRemove drops a message read from its mailbox's index.
func (a *applier) inboxRemove(mb string, pos uint64) error {
	idx, cnt := a.tx.Bucket(bucketMboxInbox), a.tx.Bucket(bucketMboxUnread)
	key := mboxPosKey(mb, pos)
	if idx.Get(key) == nil {
		return corruptf(fmt.Sprintf("bucket %s, mailbox %q pos %d", bucketMboxInbox, MailboxName(mb), pos), "missing, but the message is unread in the inbox")
	}
	if err := idx.Delete(key); err != nil {
		return err
	}
	k := mailboxKey(mb)
	n := getU64(cnt, k)
	if n <= 1 {
		return cnt.Delete(k)
	}
	return cnt.Put(k, u64(n-1))
}

// MailboxUnread returns the number of unread inbox messages of each
// mailbox that has any ("" is reported as DefaultMailbox).
func (s *Store) MailboxUnread() map[string]int {
	out := map[string]int{}
	_ = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMboxUnread).ForEach(func(k, v []byte) error {
			if len(k) >= 1 && int(k[0]) == len(k)-1 && len(v) == 8 {
				out[MailboxName(string(k[1:]))] = int(be.Uint64(v))
			}
			return nil
		})
	})
	return out
}

// InboxQuery selects unread inbox messages: those of Mailboxes (names as
// stored: "" the default mailbox; nil: every mailbox; a name given twice
// counts once) with positions after After, at most Max (<= 0: no limit)
// and MaxBytes of payloads, IDs and keys (<= 0: no budget; the first
// message is returned however large).
type InboxQuery struct {
	Mailboxes []string
	After     uint64
	Max       int
	MaxBytes  int64
}

// InboxPage is the answer to an InboxQuery: Items in position order and
// Next, the position to continue after. Next is the last item's position
// (After if there is none) for one mailbox or every mailbox. For several
// mailboxes it also passes over the positions of the other mailboxes'
// messages that no later answer would return: up to the position before
// the first message of theirs that Max or MaxBytes left out, or, when
// none is left, up to the inbox's last unread position. A reader of a
// quiet mailbox among busy ones so continues from past what it has seen.
type InboxPage struct {
	Items []InboxItem
	Next  uint64
}

// InboxOf answers q. Each mailbox is read through its index
// (inbox_mbox), several by merging their indexes in position order, so
// the cost is that of the items returned and one index entry more per
// mailbox, whatever the other mailboxes hold.
func (s *Store) InboxOf(q InboxQuery) (*InboxPage, error) {
	page := &InboxPage{Next: q.After}
	if q.After == math.MaxUint64 {
		return page, nil
	}
	if q.Mailboxes == nil {
		items, err := s.InboxBytes(q.After, q.Max, q.MaxBytes)
		if err != nil {
			return nil, err
		}
		page.Items = items
		if len(items) > 0 {
			page.Next = items[len(items)-1].Pos
		}
		return page, nil
	}
	boxes := uniqueStrings(q.Mailboxes)
	several := len(boxes) > 1
	var size int64
	err := s.view(func(tx *bolt.Tx) error {
		in := tx.Bucket(bucketIn)
		prefixes := make([][]byte, len(boxes))
		for i, mb := range boxes {
			prefixes[i] = mailboxKey(mb)
		}
		m := newPrefixMerge(tx.Bucket(bucketMboxInbox), prefixes, u64(q.After+1))
		for {
			i, suffix, r, ok := m.peek()
			if !ok {
				if k, _ := tx.Bucket(bucketInbox).Cursor().Last(); several && len(k) == 8 {
					page.Next = max(page.Next, be.Uint64(k))
				}
				return nil
			}
			where := func() string {
				return fmt.Sprintf("bucket %s, mailbox %q, key %x", bucketMboxInbox, MailboxName(boxes[i]), suffix)
			}
			if len(suffix) != 8 {
				return corruptf(where(), "malformed key")
			}
			pos := be.Uint64(suffix)
			stop := func() error {
				if several {
					page.Next = pos - 1 // > After, >= the last item's
				}
				return nil
			}
			if q.Max > 0 && len(page.Items) >= q.Max {
				return stop()
			}
			seq, ck, ok := parseRef(r)
			origin, p, ok2 := parseChanKey(ck)
			if !ok || !ok2 {
				return corruptf(where(), "bad ref %x", r)
			}
			rec, err := inboxRecord(in, suffix, r)
			if err != nil {
				return err
			}
			if rec.mailbox != boxes[i] {
				return corruptf(where(), "lists a message of mailbox %q", MailboxName(rec.mailbox))
			}
			n := int64(len(rec.payload) + len(rec.id) + len(rec.key))
			if q.MaxBytes > 0 && len(page.Items) > 0 && size+n > q.MaxBytes {
				return stop()
			}
			size += n
			rec.payload = clone(rec.payload)
			page.Items = append(page.Items, InboxItem{Pos: pos, Message: rec.message(origin, s.site, p, seq), ReceivedAt: rec.deliveredAt})
			page.Next = pos
			m.next()
		}
	})
	if err != nil {
		return nil, fmt.Errorf("queue: inbox: %w", s.note(err))
	}
	return page, nil
}

// buildMailboxIndex lists every unread inbox message in its mailbox's
// index (the upgrade from format 4, whose messages all went to the
// default mailbox).
func buildMailboxIndex(tx *bolt.Tx) error {
	idx, cnt := tx.Bucket(bucketMboxInbox), tx.Bucket(bucketMboxUnread)
	counts := map[string]uint64{}
	in := tx.Bucket(bucketIn)
	err := tx.Bucket(bucketInbox).ForEach(func(k, r []byte) error {
		rec, err := inboxRecord(in, k, r)
		if err != nil {
			return err
		}
		counts[rec.mailbox]++
		return idx.Put(mboxPosKey(rec.mailbox, be.Uint64(k)), clone(r))
	})
	if err != nil {
		return err
	}
	return putMailboxCounts(cnt, counts)
}

// putMailboxCounts writes an upgrade's per-mailbox counts into cnt, in
// name order.
func putMailboxCounts(cnt *bolt.Bucket, counts map[string]uint64) error {
	for _, mb := range slices.Sorted(maps.Keys(counts)) {
		if err := cnt.Put(mailboxKey(mb), u64(counts[mb])); err != nil {
			return err
		}
	}
	return nil
}
