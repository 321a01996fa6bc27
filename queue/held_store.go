package queue

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// Held messages as stored (held.go has the commands): the record, its
// index by sending mailbox, and the listing that reads them.

// heldRec is a held message as stored.
type heldRec struct {
	item        SubmitItem // Payload set only when decoded with it
	submittedAt int64
	by          Actor
	node        string
	sum         []byte // the plaintext's SHA-256 (SubmitItem.plaintextSum)
	payloadLen  int    // the stored payload's length
}

// heldVersion is the first byte of a held value:
//
//	heldValue = version:byte(2) hlen:uvarint header hsum:uint32
//	            payload psum:uint32
//	header    = submitted:varint node:string actor sum:bytes item
//
// hlen is the header's length; actor as in Release, item as in a Submit
// (command_codec.go) with an empty payload: the payload follows the
// header's checksum, so that a listing checks and reads the header alone.
// hsum is the CRC32C of the ID (the key) and every byte before it, psum
// that of the ID and the payload, both big-endian. Version 1 (format 6
// and earlier) had the payload inside the item and one checksum over
// everything (decodeHeld1); the upgrade rewrites it (migrateHeld).
const (
	heldVersion  = 2
	heldVersion1 = 1
)

func (h *heldRec) encode() []byte {
	it := h.item
	payload := it.Payload
	it.Payload = nil
	hdr := make([]byte, 0, 48+len(h.node)+len(h.by.User)+len(h.by.Peer)+len(h.sum)+len(it.ID)+len(it.Key)+len(it.Dest)+len(it.Mailbox)+len(it.From)+len(it.Type)+6*binary.MaxVarintLen64)
	hdr = binary.AppendVarint(hdr, h.submittedAt)
	hdr = AppendString(hdr, h.node)
	hdr = appendActor(hdr, h.by)
	hdr = AppendBytes(hdr, h.sum)
	hdr = appendSubmitItem(hdr, &it)
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(hdr)+4+len(payload)+4)
	b = append(b, heldVersion)
	b = binary.AppendUvarint(b, uint64(len(hdr)))
	b = append(b, hdr...)
	b = be.AppendUint32(b, heldSum(it.ID, b))
	b = append(b, payload...)
	return be.AppendUint32(b, heldSum(it.ID, payload))
}

func heldSum(id string, b []byte) uint32 {
	return crc32.Update(crc32.Checksum([]byte(id), castagnoli), castagnoli, b)
}

func heldWhere(id string) string { return fmt.Sprintf("bucket %s, key %q", bucketHeld, id) }

// decodeHeld parses and checks the held value v stored under id: its
// header, and with payload its payload too (which then aliases v).
// Without payload, the payload's bytes are neither read nor checked.
func decodeHeld(id string, v []byte, payload bool) (heldRec, error) {
	var h heldRec
	if len(v) < 1 || v[0] != heldVersion {
		return h, corruptf(heldWhere(id), "malformed held record (%d bytes)", len(v))
	}
	hlen, n := binary.Uvarint(v[1:])
	start := 1 + n
	if n <= 0 || hlen > uint64(len(v)) || uint64(len(v)-start) < hlen+8 {
		return h, corruptf(heldWhere(id), "malformed held record (%d bytes)", len(v))
	}
	end := start + int(hlen)
	if got, want := heldSum(id, v[:end]), be.Uint32(v[end:]); got != want {
		return h, corruptf(heldWhere(id), "held record checksum %08x, stored %08x", got, want)
	}
	d := NewDecoder(v[start:end])
	h.submittedAt = d.Varint()
	h.node = d.Str()
	h.by = d.actor()
	h.sum = d.Bytes()
	d.submitItem(&h.item, "")
	if err := d.Finish(); err != nil {
		return h, corruptf(heldWhere(id), "%v", err)
	}
	switch {
	case h.item.ID != id:
		return h, corruptf(heldWhere(id), "holds message %q", h.item.ID)
	case h.item.Payload != nil:
		return h, corruptf(heldWhere(id), "payload inside the header")
	}
	p := v[end+4 : len(v)-4]
	h.payloadLen = len(p)
	if payload {
		if got, want := heldSum(id, p), be.Uint32(v[len(v)-4:]); got != want {
			return h, corruptf(heldWhere(id), "held payload checksum %08x, stored %08x", got, want)
		}
		if len(p) > 0 {
			h.item.Payload = p
		}
	}
	return h, nil
}

// decodeHeld1 parses and checks a version 1 held value (format 6):
//
//	heldValue1 = version:byte(1) submitted:varint node:string actor
//	             sum:bytes item sum:uint32
//
// item with its payload, sum the CRC32C of the ID and every byte before
// it. The payload aliases v.
func decodeHeld1(id string, v []byte) (heldRec, error) {
	var h heldRec
	if len(v) < 1+4 || v[0] != heldVersion1 {
		return h, corruptf(heldWhere(id), "not a version 1 held record (%d bytes)", len(v))
	}
	body := v[:len(v)-4]
	if got, want := heldSum(id, body), be.Uint32(v[len(body):]); got != want {
		return h, corruptf(heldWhere(id), "held record checksum %08x, stored %08x", got, want)
	}
	d := NewDecoder(body[1:])
	h.submittedAt = d.Varint()
	h.node = d.Str()
	h.by = d.actor()
	h.sum = d.Bytes()
	d.submitItem(&h.item, "")
	if err := d.Finish(); err != nil {
		return h, corruptf(heldWhere(id), "%v", err)
	}
	if h.item.ID != id {
		return h, corruptf(heldWhere(id), "holds message %q", h.item.ID)
	}
	h.payloadLen = len(h.item.Payload)
	return h, nil
}

// status is the held message's Status (with its payload if payload; h
// must then have been decoded with it).
func (h *heldRec) status(site string, payload bool) *Status {
	it := &h.item
	m := Message{ID: it.ID, Origin: site, Dest: it.Dest, Precedence: it.Precedence, Key: it.Key, Flags: it.Flags,
		SubmittedAt: h.submittedAt, ExpiresAt: it.ExpiresAt, Mailbox: it.Mailbox, From: it.From, Type: it.Type}
	if payload {
		m.Payload = clone(it.Payload)
	}
	return &Status{Message: m, Direction: Outbound, State: Held, SubmittedAt: h.submittedAt, payloadSum: clone(h.sum)}
}

// getHeld returns the held message id (with its payload if payload), ok
// false if there is none.
func getHeld(tx *bolt.Tx, id string, payload bool) (heldRec, bool, error) {
	v := tx.Bucket(bucketHeld).Get([]byte(id))
	if v == nil {
		return heldRec{}, false, nil
	}
	h, err := decodeHeld(id, v, payload)
	return h, err == nil, err
}

// heldByKey returns the held message submitted with idempotency key key.
func heldByKey(tx *bolt.Tx, key string, payload bool) (heldRec, bool, error) {
	id := tx.Bucket(bucketHeldKeys).Get([]byte(key))
	if id == nil {
		return heldRec{}, false, nil
	}
	h, ok, err := getHeld(tx, string(id), payload)
	if err == nil && (!ok || h.item.Key != key) {
		return h, false, corruptf(fmt.Sprintf("bucket %s, key %q", bucketHeldKeys, key), "does not refer to a held message of that key (id %q)", id)
	}
	return h, ok, err
}

// heldIndexKey is h's key in bucketHeldMbox.
func heldIndexKey(h *heldRec) []byte {
	k := mailboxKey(h.item.From)
	k = be.AppendUint64(k, finTime(h.submittedAt))
	return append(k, h.item.ID...)
}

// heldIndexAdd lists the held message h in its sending mailbox's index
// and count.
func heldIndexAdd(tx *bolt.Tx, h *heldRec) error {
	if err := tx.Bucket(bucketHeldMbox).Put(heldIndexKey(h), nil); err != nil {
		return err
	}
	cnt, k := tx.Bucket(bucketHeldCount), mailboxKey(h.item.From)
	return cnt.Put(k, u64(getU64(cnt, k)+1))
}

// heldIndexRemove unlists the held message h (released).
func heldIndexRemove(tx *bolt.Tx, h *heldRec) error {
	idx, key := tx.Bucket(bucketHeldMbox), heldIndexKey(h)
	if k, _ := idx.Cursor().Seek(key); !bytes.Equal(k, key) {
		return corruptf(fmt.Sprintf("bucket %s, mailbox %q", bucketHeldMbox, MailboxName(h.item.From)), "held message %q is not listed", h.item.ID)
	}
	if err := idx.Delete(key); err != nil {
		return err
	}
	cnt, k := tx.Bucket(bucketHeldCount), mailboxKey(h.item.From)
	n := getU64(cnt, k)
	if n <= 1 {
		return cnt.Delete(k)
	}
	return cnt.Put(k, u64(n-1))
}

// HeldMessage is one held message as Store.Held lists it: its status
// (State Held, Seq 0, no payload), its stored payload's size and
// plaintext SHA-256 (from a sealed payload's header), and who submitted
// it on which node.
type HeldMessage struct {
	Status       Status
	PayloadLen   int
	PlaintextSum []byte
	By           Actor
	Node         string
}

// HeldQuery selects held messages: those sent from Mailboxes (stored
// names, "" the default; nil: every mailbox; a name given twice counts
// once), at most Max (<= 0: 1000).
type HeldQuery struct {
	Mailboxes []string
	Max       int
}

// Held lists the held messages q selects in submission order (of the
// hold's time, then by ID), and whether more were left out by q.Max. It
// merges the mailboxes' indexes (held_mbox) and reads the records it
// returns, their headers only: their payloads are neither read nor
// checked (Lookup checks a payload it returns). A damaged header, or an
// index entry without its record, is an error wrapping ErrCorrupt.
func (s *Store) Held(q HeldQuery) (out []HeldMessage, more bool, err error) {
	max := q.Max
	if max <= 0 {
		max = 1000
	}
	err = s.view(func(tx *bolt.Tx) error {
		boxes := q.Mailboxes
		if boxes == nil {
			if err := tx.Bucket(bucketHeldCount).ForEach(func(k, _ []byte) error {
				if len(k) < 1 || int(k[0]) != len(k)-1 {
					return corruptf(fmt.Sprintf("bucket %s, key %x", bucketHeldCount, k), "malformed")
				}
				boxes = append(boxes, string(k[1:]))
				return nil
			}); err != nil {
				return err
			}
		}
		boxes = uniqueStrings(boxes)
		prefixes := make([][]byte, len(boxes))
		for i, mb := range boxes {
			prefixes[i] = mailboxKey(mb)
		}
		held := tx.Bucket(bucketHeld)
		for m := newPrefixMerge(tx.Bucket(bucketHeldMbox), prefixes, nil); ; m.next() {
			i, suffix, _, ok := m.peek()
			if !ok {
				return nil
			}
			if len(out) == max {
				more = true
				return nil
			}
			where := fmt.Sprintf("bucket %s, mailbox %q, key %x", bucketHeldMbox, MailboxName(boxes[i]), suffix)
			if len(suffix) <= 8 {
				return corruptf(where, "malformed key")
			}
			id := string(suffix[8:])
			v := held.Get(suffix[8:])
			if v == nil {
				return corruptf(where, "held message %q is missing", id)
			}
			h, err := decodeHeld(id, v, false)
			if err != nil {
				return err
			}
			if h.item.From != boxes[i] || finTime(h.submittedAt) != be.Uint64(suffix) {
				return corruptf(where, "held message %q is of mailbox %q, held at %d", id, MailboxName(h.item.From), h.submittedAt)
			}
			out = append(out, HeldMessage{Status: *h.status(s.site, false), PayloadLen: h.payloadLen,
				PlaintextSum: clone(h.sum), By: h.by, Node: h.node})
		}
	})
	if err != nil {
		return nil, false, fmt.Errorf("queue: held: %w", s.note(err))
	}
	return out, more, nil
}

// HeldCount returns the number of held messages sent from each mailbox
// that has any ("" is reported as DefaultMailbox), from their counts
// (held_mbox_n): it reads no message.
func (s *Store) HeldCount() map[string]int {
	out := map[string]int{}
	_ = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHeldCount).ForEach(func(k, v []byte) error {
			if len(k) >= 1 && int(k[0]) == len(k)-1 && len(v) == 8 {
				out[MailboxName(string(k[1:]))] = int(be.Uint64(v))
			}
			return nil
		})
	})
	return out
}

// migrateHeld rewrites the version 1 held records as version 2, in
// transactions of at most migrateBatch records or migrateBatchBytes (the
// upgrade from format 6; an interrupted one resumes, version 2 records
// being kept), counting them in p. A damaged record stops it
// (ErrCorrupt): its mailbox, and so its place in the index, is unknown.
func migrateHeld(db *bolt.DB, p *progress) error {
	var after []byte
	for done := false; !done; {
		n := 0 // records seen in this transaction
		err := db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketHeld)
			if b == nil {
				done = true
				return nil
			}
			c := b.Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			type kv struct{ k, v []byte }
			var batch []kv
			size := 0
			for n = 0; k != nil && n < migrateBatch && size < migrateBatchBytes; k, v = c.Next() {
				n++
				size += len(v)
				after = clone(k)
				if len(v) > 0 && v[0] == heldVersion {
					continue // rewritten by an interrupted upgrade
				}
				h, err := decodeHeld1(string(k), v)
				if err != nil {
					return err
				}
				batch = append(batch, kv{clone(k), h.encode()})
			}
			done = k == nil
			for _, e := range batch {
				if err := b.Put(e.k, e.v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		p.add(n)
	}
	return nil
}

// buildHeldIndex lists every held message in its sending mailbox's
// index and count: the upgrade from format 6, after migrateHeld.
func buildHeldIndex(tx *bolt.Tx) error {
	counts := map[string]uint64{}
	var keys [][]byte
	err := tx.Bucket(bucketHeld).ForEach(func(k, v []byte) error {
		h, err := decodeHeld(string(k), v, false)
		if err != nil {
			return err
		}
		counts[h.item.From]++
		keys = append(keys, heldIndexKey(&h))
		return nil
	})
	if err != nil {
		return err
	}
	idx, cnt := tx.Bucket(bucketHeldMbox), tx.Bucket(bucketHeldCount)
	for _, k := range keys {
		if err := idx.Put(k, nil); err != nil {
			return err
		}
	}
	return putMailboxCounts(cnt, counts) // mailbox.go
}
