package queue

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

var be = binary.BigEndian

func u64(v uint64) []byte {
	b := make([]byte, 8)
	be.PutUint64(b, v)
	return b
}

func getU64(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) < 8 {
		return 0
	}
	return be.Uint64(v)
}

// pair encodes two counters (last, acked).
func pair(a, b uint64) []byte {
	v := make([]byte, 16)
	be.PutUint64(v, a)
	be.PutUint64(v[8:], b)
	return v
}

func getPair(v []byte) (a, b uint64) {
	if len(v) < 16 {
		return 0, 0
	}
	return be.Uint64(v), be.Uint64(v[8:])
}

// chanKey names a channel by its remote site and precedence. Site names
// never contain a 0 byte, so keys sort by site, then precedence.
func chanKey(site string, p Precedence) []byte {
	k := make([]byte, 0, len(site)+2)
	k = append(k, site...)
	return append(k, 0, byte(p))
}

func parseChanKey(k []byte) (site string, p Precedence, ok bool) {
	n := len(k)
	if n < 2 || k[n-2] != 0 {
		return "", 0, false
	}
	return string(k[:n-2]), Precedence(k[n-1]), true
}

// ref locates a message: its sequence number and its channel key.
func ref(seq uint64, ck []byte) []byte {
	r := make([]byte, 8+len(ck))
	be.PutUint64(r, seq)
	copy(r[8:], ck)
	return r
}

func parseRef(r []byte) (seq uint64, ck []byte, ok bool) {
	if len(r) < 10 {
		return 0, nil, false
	}
	return be.Uint64(r), r[8:], true
}

// expiryKey orders queued messages by expiry time.
func expiryKey(at int64, seq uint64, ck []byte) []byte {
	k := make([]byte, 16+len(ck))
	be.PutUint64(k, uint64(at))
	be.PutUint64(k[8:], seq)
	copy(k[16:], ck)
	return k
}

// parseExpiryKey splits a key of bucketExpiry.
func parseExpiryKey(k []byte) (at int64, seq uint64, ck []byte, ok bool) {
	if len(k) < 18 {
		return 0, 0, nil, false
	}
	if _, _, ok := parseChanKey(k[16:]); !ok {
		return 0, 0, nil, false
	}
	return int64(be.Uint64(k)), be.Uint64(k[8:]), k[16:], true
}

// record is a stored message of either direction. The channel and Seq are
// the record's location, not part of it. Outbound records have no origin
// (it is the local site); inbound ones have no dest.
type record struct {
	state       State
	flags       uint32
	submittedAt int64
	expiresAt   int64
	deliveredAt int64 // outbound: ack from destination; inbound: applied here
	readAt      int64
	expiredAt   int64
	inboxPos    uint64 // inbound only, 0 when never in the inbox
	id          string
	key         string
	mailbox     string // the message's attributes (Message); present
	from        string // in the encoding when flags has flagAttrs
	mtype       string
	refused     string // the refusal reason of a Refused message (version 3)
	hash        []byte // SHA-256 of the payload, outbound messages with a key
	payload     []byte
}

// Record layout: the fields of a Message (encoding.go) but its channel
// and Seq, which are the record's location, with the message's life
// (state and times) in a fixed header so that state changes are byte
// patches, then the variable fields:
//
//	version(1) state(1) flags(4) submitted(8) expires(8) delivered(8)
//	read(8) expired(8) inbox_pos(8) payload_sum(4) sum(4)
//	id_len(uvarint) id key_len(uvarint) key
//	[mailbox_len(uvarint) mailbox from_len(uvarint) from type_len(uvarint) type]
//	hash_len(1) hash payload
//
// The bracketed attributes are there exactly when flags has bit 31 set
// (flagAttrs, encoding.go), so records of messages without attributes are
// laid out as before mailboxes existed. A record of version 3 is one of
// version 2 with the refusal reason of a refused message (State Refused,
// refuse.go) after the attributes: reason_len(uvarint) reason; every
// other record stays version 2. A refused record's read time is the time
// of the refusal.
//
// payload_sum is the CRC32C of the payload; sum is the CRC32C of the
// record's location (direction, channel key, seq) and every byte of the
// record but the sum itself and the payload. A state change patches the
// header and recomputes sum only, after checking it, so a patch costs the
// same for any payload size and never launders a damaged record; the
// payload is checked wherever it is served or forwarded.
//
// Version 1 records (files of format 2 and earlier) had no payload_sum and
// sum (a 54-byte header); Open rewrites them as version 2.
const (
	recVersion1       = 1
	recVersion        = 2
	recVersionRefused = 3 // version 2 and a refusal reason

	offVersion    = 0
	offState      = 1
	offFlags      = 2
	offSubmitted  = 6
	offExpires    = 14
	offDelivered  = 22
	offRead       = 30
	offExpired    = 38
	offInboxPos   = 46
	recHeader1    = 54 // version 1 header
	offPayloadSum = 54
	offSum        = 58
	recHeader     = 62
)

// loc is where a record is stored: it is part of the record's checksum,
// so a record that moved (a damaged key) does not verify.
type loc struct {
	kind byte // finIn or finOut
	ck   []byte
	seq  uint64
}

func (l loc) String() string { return recordName(l.kind, l.ck, l.seq) }

// encode returns a new buffer (bbolt keeps the slice until commit, so
// buffers are never reused within a transaction).
func (r *record) encode(l loc) []byte {
	n := recHeader + 6*binary.MaxVarintLen64 + len(r.id) + len(r.key) + len(r.mailbox) + len(r.from) + len(r.mtype) + len(r.refused) + 1 + len(r.hash) + len(r.payload)
	b := make([]byte, recHeader, n)
	b[offVersion] = recVersion
	if r.refused != "" {
		b[offVersion] = recVersionRefused
	}
	b[offState] = byte(r.state)
	attrs := r.mailbox != "" || r.from != "" || r.mtype != ""
	if attrs {
		be.PutUint32(b[offFlags:], r.flags|flagAttrs)
	} else {
		be.PutUint32(b[offFlags:], r.flags&^flagAttrs)
	}
	be.PutUint64(b[offSubmitted:], uint64(r.submittedAt))
	be.PutUint64(b[offExpires:], uint64(r.expiresAt))
	be.PutUint64(b[offDelivered:], uint64(r.deliveredAt))
	be.PutUint64(b[offRead:], uint64(r.readAt))
	be.PutUint64(b[offExpired:], uint64(r.expiredAt))
	be.PutUint64(b[offInboxPos:], r.inboxPos)
	be.PutUint32(b[offPayloadSum:], crc32.Checksum(r.payload, castagnoli))
	b = binary.AppendUvarint(b, uint64(len(r.id)))
	b = append(b, r.id...)
	b = binary.AppendUvarint(b, uint64(len(r.key)))
	b = append(b, r.key...)
	if attrs {
		for _, a := range [...]string{r.mailbox, r.from, r.mtype} {
			b = binary.AppendUvarint(b, uint64(len(a)))
			b = append(b, a...)
		}
	}
	if r.refused != "" {
		b = binary.AppendUvarint(b, uint64(len(r.refused)))
		b = append(b, r.refused...)
	}
	b = append(b, byte(len(r.hash)))
	b = append(b, r.hash...)
	be.PutUint32(b[offSum:], recordSum(l, b, len(b)))
	return append(b, r.payload...)
}

// recordSum is the checksum of the record v at l whose payload starts at
// payloadAt.
func recordSum(l loc, v []byte, payloadAt int) uint32 {
	var buf [9]byte
	buf[0] = l.kind
	be.PutUint64(buf[1:], l.seq)
	c := crc32.Update(0, castagnoli, buf[:1])
	c = crc32.Update(c, castagnoli, l.ck)
	c = crc32.Update(c, castagnoli, buf[1:])
	c = crc32.Update(c, castagnoli, v[:offSum])
	return crc32.Update(c, castagnoli, v[recHeader:payloadAt])
}

// parseRecord splits the stored record v at l into its fields after
// checking its structure and sum (and, with payload, its payload's sum).
// The strings are copies; hash and payload alias v unless copyBytes is
// set, and v is only valid inside its transaction.
func parseRecord(v []byte, l loc, payload, copyBytes bool) (record, error) {
	var r record
	switch {
	case len(v) < recHeader:
		return r, corruptf(l.String(), "record of %d bytes", len(v))
	case v[offVersion] != recVersion && v[offVersion] != recVersionRefused:
		return r, corruptf(l.String(), "record version %d", v[offVersion])
	}
	rest := v[recHeader:]
	var ok bool
	if r.id, rest, ok = readString(rest); !ok {
		return r, corruptf(l.String(), "bad id length")
	}
	if r.key, rest, ok = readString(rest); !ok {
		return r, corruptf(l.String(), "bad key length")
	}
	if be.Uint32(v[offFlags:])&flagAttrs != 0 {
		for _, a := range [...]*string{&r.mailbox, &r.from, &r.mtype} {
			if *a, rest, ok = readString(rest); !ok {
				return r, corruptf(l.String(), "bad attribute length")
			}
		}
	}
	if v[offVersion] == recVersionRefused {
		if r.refused, rest, ok = readString(rest); !ok || r.refused == "" {
			return r, corruptf(l.String(), "bad refusal reason length")
		}
	}
	if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
		return r, corruptf(l.String(), "bad hash length")
	}
	if n := int(rest[0]); n > 0 {
		r.hash = rest[1 : 1+n]
	}
	r.payload = rest[1+len(r.hash):]
	payloadAt := len(v) - len(r.payload)
	if got, want := recordSum(l, v, payloadAt), be.Uint32(v[offSum:]); got != want {
		return r, corruptf(l.String(), "record checksum %08x, stored %08x", got, want)
	}
	if payload {
		if got, want := crc32.Checksum(r.payload, castagnoli), be.Uint32(v[offPayloadSum:]); got != want {
			return r, corruptf(l.String(), "payload checksum %08x, stored %08x", got, want)
		}
	}
	r.state = State(v[offState])
	r.flags = be.Uint32(v[offFlags:]) &^ flagAttrs
	r.submittedAt = int64(be.Uint64(v[offSubmitted:]))
	r.expiresAt = int64(be.Uint64(v[offExpires:]))
	r.deliveredAt = int64(be.Uint64(v[offDelivered:]))
	r.readAt = int64(be.Uint64(v[offRead:]))
	r.expiredAt = int64(be.Uint64(v[offExpired:]))
	r.inboxPos = be.Uint64(v[offInboxPos:])
	if len(r.payload) == 0 {
		r.payload = nil
	}
	if copyBytes {
		r.hash = clone(r.hash)
		r.payload = clone(r.payload)
	}
	return r, nil
}

// decodeRecord parses and checks a stored record, payload included: for
// everything that serves or forwards it.
func decodeRecord(v []byte, l loc) (record, error) { return parseRecord(v, l, true, false) }

// decodeMeta parses and checks a stored record but not its payload's
// checksum: for the state changes of Apply, which keep the payload as it
// is (and its checksum with it). The payload is not to be used.
func decodeMeta(v []byte, l loc) (record, error) { return parseRecord(v, l, false, false) }

// decodeRecord1 parses a version 1 record (no checksums): the migration.
func decodeRecord1(v []byte) (record, bool) {
	var r record
	if len(v) < recHeader1 || v[offVersion] != recVersion1 {
		return r, false
	}
	r.state = State(v[offState])
	r.flags = be.Uint32(v[offFlags:])
	r.submittedAt = int64(be.Uint64(v[offSubmitted:]))
	r.expiresAt = int64(be.Uint64(v[offExpires:]))
	r.deliveredAt = int64(be.Uint64(v[offDelivered:]))
	r.readAt = int64(be.Uint64(v[offRead:]))
	r.expiredAt = int64(be.Uint64(v[offExpired:]))
	r.inboxPos = be.Uint64(v[offInboxPos:])
	rest := v[recHeader1:]
	var ok bool
	if r.id, rest, ok = readString(rest); !ok {
		return r, false
	}
	if r.key, rest, ok = readString(rest); !ok {
		return r, false
	}
	if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
		return r, false
	}
	r.hash = clone(rest[1 : 1+int(rest[0])])
	r.payload = clone(rest[1+int(rest[0]):])
	return r, true
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func readString(b []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}

// patchRecord returns a copy of the stored record v at l with its state
// and the time at offset off set (off 0: no time), after checking it
// (not its payload, whose checksum stays as it was).
func patchRecord(v []byte, l loc, st State, off int, t int64) ([]byte, error) {
	rec, err := decodeMeta(v, l)
	if err != nil {
		return nil, err
	}
	b := clone(v)
	b[offState] = byte(st)
	if off > 0 {
		be.PutUint64(b[off:], uint64(t))
	}
	be.PutUint32(b[offSum:], recordSum(l, b, len(b)-len(rec.payload)))
	return b, nil
}

// message rebuilds a message from its record and location. The payload
// aliases the record's.
func (r *record) message(origin, dest string, p Precedence, seq uint64) Message {
	return Message{
		ID: r.id, Origin: origin, Dest: dest, Precedence: p, Seq: seq, Key: r.key,
		Payload: r.payload, Flags: r.flags, SubmittedAt: r.submittedAt, ExpiresAt: r.expiresAt,
		Mailbox: r.mailbox, From: r.from, Type: r.mtype,
	}
}

// Receipt layout: the fields of a Receipt (encoding.go), its RSeq being
// the key and the origin its bucket, in a fixed layout that format 3
// files keep: precedence(1) seq(8) readAt(8) id sum(4), where sum is
// the CRC32C of the origin it is queued to, its RSeq and the bytes before
// the sum. Version 1 (files of format 2 and earlier) had no sum; Open adds
// it.
//
// A refusal receipt has bit 7 of the precedence byte set (rcptRefused) and
// the id as id_len(uvarint) id, then the reason: precedence(1) seq(8)
// readAt(8) id_len id reason sum(4). Read receipts are stored as before.
const rcptSumLen = 4

func encodeReceipt(origin []byte, rc Receipt) []byte {
	b := make([]byte, 17, 17+binary.MaxVarintLen64+len(rc.ID)+len(rc.Refused)+rcptSumLen)
	b[0] = byte(rc.Precedence)
	be.PutUint64(b[1:], rc.Seq)
	be.PutUint64(b[9:], uint64(rc.ReadAt))
	if rc.Refused != "" {
		b[0] |= rcptRefused
		b = binary.AppendUvarint(b, uint64(len(rc.ID)))
		b = append(b, rc.ID...)
		b = append(b, rc.Refused...)
	} else {
		b = append(b, rc.ID...)
	}
	return be.AppendUint32(b, receiptSum(origin, rc.RSeq, b))
}

func receiptSum(origin []byte, rseq uint64, body []byte) uint32 {
	c := crc32.Update(0, castagnoli, origin)
	c = crc32.Update(c, castagnoli, u64(rseq))
	return crc32.Update(c, castagnoli, body)
}

func receiptName(origin []byte, rseq uint64) string {
	return fmt.Sprintf("bucket %s, origin %q, rseq %d", bucketRcptOut, origin, rseq)
}

func decodeReceipt(origin []byte, rseq uint64, v []byte) (Receipt, error) {
	if len(v) < 17+rcptSumLen {
		return Receipt{}, corruptf(receiptName(origin, rseq), "receipt of %d bytes", len(v))
	}
	body := v[:len(v)-rcptSumLen]
	if got, want := receiptSum(origin, rseq, body), be.Uint32(v[len(body):]); got != want {
		return Receipt{}, corruptf(receiptName(origin, rseq), "receipt checksum %08x, stored %08x", got, want)
	}
	rc := Receipt{
		RSeq: rseq, Precedence: Precedence(body[0] &^ rcptRefused), Seq: be.Uint64(body[1:]),
		ReadAt: int64(be.Uint64(body[9:])), ID: string(body[17:]),
	}
	if body[0]&rcptRefused != 0 {
		id, rest, ok := readString(body[17:])
		if !ok || len(rest) == 0 {
			return Receipt{}, corruptf(receiptName(origin, rseq), "refusal receipt without an id and a reason")
		}
		rc.ID, rc.Refused = id, string(rest)
	}
	return rc, nil
}
