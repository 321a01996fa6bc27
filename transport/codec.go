package transport

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/hotline-link/hotline/queue"
)

// Body encoding. Integers are varints (signed ones zigzag), strings and byte
// slices a uvarint length then the bytes, precedence and kind one byte.
//
//	batch:   kind, from, to, precedence, n, n×message, m, m×receipt
//	message: id, seq, key, payload, flags, submitted_at, expires_at
//	         (origin, dest and precedence are the batch's)
//	receipt: rseq, precedence, seq, id, read_at
//	ack:     last, leader, error
//	call:    op, body
//	reply:   body, error [, code, leader]
//	         (code and leader only when either is not empty, so that a
//	         reply without them reads as it did before they existed)
//
// A decoder accepts exactly this: no trailing bytes, no truncation, counts
// that fit the remaining bytes and MaxBatchItems, valid kinds and
// precedences. Counts are checked before anything is allocated for them, so
// a batch body of n bytes decodes into at most n bytes of strings (payloads
// alias the body) plus MaxBatchItems × 128 bytes of structs.

// Smallest encodings, to bound counts before allocating.
const (
	minMessageLen = 7
	minReceiptLen = 5
)

type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)              { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64)        { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)          { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string)            { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *encoder) bytes(p []byte)          { e.uvarint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *encoder) count(n int)             { e.uvarint(uint64(n)) }
func (e *encoder) prec(p queue.Precedence) { e.u8(uint8(p)) }

// decoder reads a body; the first error sticks and later reads return zero
// values.
type decoder struct {
	what string // for error messages: "batch", "ack", ...
	b    []byte
	err  error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = protocolErr("malformed %s: %s", d.what, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) u8() uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != uvarintLen(v) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || n != uvarintLen(uint64(v<<1)^uint64(v>>63)) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// uvarintLen is the length of the minimal encoding of v; longer ones are
// rejected so that every value has exactly one encoding.
func uvarintLen(v uint64) int { return max(1, (bits.Len64(v)+6)/7) }

// raw returns the next length-prefixed byte string, aliasing the input.
func (d *decoder) raw() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("length %d exceeds the %d bytes left", n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) str() string { return string(d.raw()) }

// bytes returns the next byte string (nil when empty), aliasing the input.
func (d *decoder) bytes() []byte {
	p := d.raw()
	if len(p) == 0 {
		return nil
	}
	return p
}

// count reads an item count and checks it against MaxBatchItems and the
// bytes left.
func (d *decoder) count(minLen int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > MaxBatchItems {
		d.fail("count %d exceeds the limit of %d items", n, MaxBatchItems)
		return 0
	}
	if n > uint64(len(d.b)/minLen) {
		d.fail("count %d cannot fit in %d bytes", n, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) prec() queue.Precedence {
	p := queue.Precedence(d.u8())
	if d.err == nil && !p.Valid() {
		d.fail("invalid precedence %d", p)
	}
	return p
}

// done reports the first error, or trailing bytes.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// appendBatch encodes b, which must have passed b.check().
func appendBatch(buf []byte, b *Batch) []byte {
	e := encoder{buf}
	e.u8(uint8(b.Kind))
	e.str(b.From)
	e.str(b.To)
	e.prec(b.Precedence)
	e.count(len(b.Messages))
	for i := range b.Messages {
		m := &b.Messages[i]
		e.str(m.ID)
		e.uvarint(m.Seq)
		e.str(m.Key)
		e.bytes(m.Payload)
		e.uvarint(uint64(m.Flags))
		e.varint(m.SubmittedAt)
		e.varint(m.ExpiresAt)
	}
	e.count(len(b.Receipts))
	for i := range b.Receipts {
		r := &b.Receipts[i]
		e.uvarint(r.RSeq)
		e.prec(r.Precedence)
		e.uvarint(r.Seq)
		e.str(r.ID)
		e.varint(r.ReadAt)
	}
	return e.b
}

// batchSizeHint estimates the encoded size of b.
func batchSizeHint(b *Batch) int {
	n := 16 + len(b.From) + len(b.To)
	for i := range b.Messages {
		m := &b.Messages[i]
		n += 40 + len(m.ID) + len(m.Key) + len(m.Payload)
	}
	n += len(b.Receipts) * (32 + 36)
	return n
}

func decodeBatch(p []byte) (*Batch, error) {
	d := decoder{what: "batch", b: p}
	b := &Batch{Kind: BatchKind(d.u8())}
	b.From = d.str()
	b.To = d.str()
	b.Precedence = d.prec()
	if n := d.count(minMessageLen); n > 0 {
		b.Messages = make([]queue.Message, n)
		for i := range b.Messages {
			m := &b.Messages[i]
			m.Origin, m.Dest, m.Precedence = b.From, b.To, b.Precedence
			m.ID = d.str()
			m.Seq = d.uvarint()
			m.Key = d.str()
			m.Payload = d.bytes()
			flags := d.uvarint()
			if flags > math.MaxUint32 {
				d.fail("message %d: flags %#x overflow 32 bits", i, flags)
			}
			m.Flags = uint32(flags)
			m.SubmittedAt = d.varint()
			m.ExpiresAt = d.varint()
		}
	}
	if n := d.count(minReceiptLen); n > 0 {
		b.Receipts = make([]queue.Receipt, n)
		for i := range b.Receipts {
			r := &b.Receipts[i]
			r.RSeq = d.uvarint()
			r.Precedence = d.prec()
			r.Seq = d.uvarint()
			r.ID = d.str()
			r.ReadAt = d.varint()
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if err := b.check(); err != nil {
		return nil, protocolErr("malformed batch: %v", err)
	}
	return b, nil
}

func appendAck(buf []byte, a *Ack) []byte {
	e := encoder{buf}
	e.uvarint(a.Last)
	e.str(a.Leader)
	e.str(a.Error)
	return e.b
}

func decodeAck(p []byte) (*Ack, error) {
	d := decoder{what: "ack", b: p}
	a := &Ack{Last: d.uvarint(), Leader: d.str(), Error: d.str()}
	if err := d.done(); err != nil {
		return nil, err
	}
	return a, nil
}

func appendCall(buf []byte, c *Call) []byte {
	e := encoder{buf}
	e.str(c.Op)
	e.bytes(c.Body)
	return e.b
}

func decodeCall(p []byte) (*Call, error) {
	d := decoder{what: "call", b: p}
	c := &Call{Op: d.str(), Body: d.bytes()}
	if err := d.done(); err != nil {
		return nil, err
	}
	return c, nil
}

func appendReply(buf []byte, r *Reply) []byte {
	e := encoder{buf}
	e.bytes(r.Body)
	e.str(r.Error)
	if r.Code != "" || r.Leader != "" {
		e.str(r.Code)
		e.str(r.Leader)
	}
	return e.b
}

func decodeReply(p []byte) (*Reply, error) {
	d := decoder{what: "reply", b: p}
	r := &Reply{Body: d.bytes(), Error: d.str()}
	if d.err == nil && len(d.b) > 0 {
		r.Code, r.Leader = d.str(), d.str()
		if d.err == nil && r.Code == "" && r.Leader == "" {
			d.fail("empty code and leader (they are left out when empty)")
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return r, nil
}
