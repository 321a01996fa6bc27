package queue

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// The encoding of messages and receipts, the one both the log (command
// version 3, [Command.Encode]) and the link's batch frames (package
// transport) use:
//
//	message = id:string seq:uvarint key:string payload:bytes
//	          flags:uvarint submitted_at:varint expires_at:varint
//	          [mailbox:string from:string type:string]
//	receipt = rseq:uvarint precedence:byte seq:uvarint id:string
//	          read_at:varint
//	list    = n:uvarint, then n elements
//
// The bracketed attribute section is present exactly when flags has bit
// 31 (flagAttrs) set, which it is when any of the three is not empty; a
// message without attributes encodes as before mailboxes existed.
//
// A uvarint is minimal (encoding/binary's, with no redundant 0x80
// bytes); a varint is a zig-zag uvarint (times, which may be negative);
// a string or bytes is its length as a uvarint, then its bytes. Nil and
// empty are the same value: an empty byte string or list decodes as nil.
// A message's channel (origin, dest, precedence) is not part of it: what
// carries messages names their channel.
//
// A [Decoder] accepts exactly what these functions append: every value
// has one encoding. It bounds a list's length by the bytes left before
// allocating it, so decoding n bytes allocates at most n bytes of
// strings plus the list elements that n bytes can hold. Stored message
// records keep their own fixed layout (codec.go), patched in place; they
// hold the same fields, with times as 8-byte big-endian integers.

// Smallest encodings of list elements, to bound a list's length by the
// input left before allocating it.
const (
	minMessageLen = 7 // id, seq, key, payload, flags, 2 times: 1 byte each
	minReceiptLen = 5 // rseq, precedence, seq, id, time
	minStringLen  = 1
)

// AppendString appends s as a length and its bytes.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendBytes appends p as a length and its bytes (nil and empty alike).
func AppendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// AppendVarint appends v zig-zag encoded.
func AppendVarint(b []byte, v int64) []byte { return binary.AppendVarint(b, v) }

// AppendMessage appends m without its channel (see the package's
// encoding).
func AppendMessage(b []byte, m *Message) []byte {
	b = AppendString(b, m.ID)
	b = binary.AppendUvarint(b, m.Seq)
	b = AppendString(b, m.Key)
	b = AppendBytes(b, m.Payload)
	if !m.HasAttrs() {
		b = binary.AppendUvarint(b, uint64(m.Flags&^flagAttrs))
		b = binary.AppendVarint(b, m.SubmittedAt)
		return binary.AppendVarint(b, m.ExpiresAt)
	}
	b = binary.AppendUvarint(b, uint64(m.Flags|flagAttrs))
	b = binary.AppendVarint(b, m.SubmittedAt)
	b = binary.AppendVarint(b, m.ExpiresAt)
	b = AppendString(b, m.Mailbox)
	b = AppendString(b, m.From)
	return AppendString(b, m.Type)
}

// attrsLen is the size of m's attribute section.
func attrsLen(m *Message) int {
	if !m.HasAttrs() {
		return 0
	}
	return stringLen(len(m.Mailbox)) + stringLen(len(m.From)) + stringLen(len(m.Type))
}

// AppendMessages appends a list of messages, each without its channel.
func AppendMessages(b []byte, ms []Message) []byte {
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for i := range ms {
		b = AppendMessage(b, &ms[i])
	}
	return b
}

// AppendReceipt appends r. Its precedence must be valid (a Decoder
// refuses it otherwise).
//
// A refusal receipt (Refused set) has bit 7 of the precedence byte set
// (rcptRefused) and its reason after the time; a read receipt is encoded
// as before refusals existed.
func AppendReceipt(b []byte, r *Receipt) []byte {
	b = binary.AppendUvarint(b, r.RSeq)
	if r.Refused != "" {
		b = append(b, byte(r.Precedence)|rcptRefused)
	} else {
		b = append(b, byte(r.Precedence))
	}
	b = binary.AppendUvarint(b, r.Seq)
	b = AppendString(b, r.ID)
	b = binary.AppendVarint(b, r.ReadAt)
	if r.Refused != "" {
		b = AppendString(b, r.Refused)
	}
	return b
}

// rcptRefused is the bit of a receipt's encoded precedence byte (wire,
// log and stored) that announces a refusal reason.
const rcptRefused = 0x80

// AppendReceipts appends a list of receipts.
func AppendReceipts(b []byte, rs []Receipt) []byte {
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for i := range rs {
		b = AppendReceipt(b, &rs[i])
	}
	return b
}

// MessageLen is the size of m's encoding by AppendMessage.
func MessageLen(m *Message) int {
	return stringLen(len(m.ID)) + uvarintLen(m.Seq) + stringLen(len(m.Key)) + stringLen(len(m.Payload)) +
		uvarintLen(uint64(m.encFlags())) + varintLen(m.SubmittedAt) + varintLen(m.ExpiresAt) + attrsLen(m)
}

// encFlags is m's flags as encoded: with flagAttrs when it has attributes.
func (m *Message) encFlags() uint32 {
	if m.HasAttrs() {
		return m.Flags | flagAttrs
	}
	return m.Flags &^ flagAttrs
}

// ReceiptLen is the size of r's encoding by AppendReceipt.
func ReceiptLen(r *Receipt) int {
	n := uvarintLen(r.RSeq) + 1 + uvarintLen(r.Seq) + stringLen(len(r.ID)) + varintLen(r.ReadAt)
	if r.Refused != "" {
		n += stringLen(len(r.Refused))
	}
	return n
}

// stringLen is the encoded size of a string or bytes of n bytes.
func stringLen(n int) int { return uvarintLen(uint64(n)) + n }

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func varintLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

// Decoder reads values in this package's encoding from a byte slice. The
// first malformed value sets Err (a message naming the byte offset);
// every read after it returns a zero value, so a caller reads a whole
// structure and checks once. Strings are copies; byte strings alias the
// input, with their capacity limited to their length. A Decoder is not
// safe for concurrent use.
type Decoder struct {
	b   []byte // the input left
	n   int    // the length of the whole input, for offsets in errors
	err error
}

// NewDecoder returns a Decoder reading b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b, n: len(b)} }

// Err returns the first error, or nil.
func (d *Decoder) Err() error { return d.err }

// Finish returns the first error, or an error if input is left: a
// structure must end where its input ends.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

// Empty reports whether the whole input was read.
func (d *Decoder) Empty() bool { return len(d.b) == 0 }

func (d *Decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%s at byte %d", fmt.Sprintf(format, args...), d.n-len(d.b))
	}
	d.b = nil
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// Uvarint reads a minimal unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	v, k := binary.Uvarint(d.b)
	switch {
	case k == 0:
		d.fail("truncated")
		return 0
	case k < 0:
		d.fail("varint overflows 64 bits")
		return 0
	case k > 1 && d.b[k-1] == 0:
		d.fail("non-minimal varint")
		return 0
	}
	d.b = d.b[k:]
	return v
}

// Varint reads a zig-zag varint.
func (d *Decoder) Varint() int64 {
	u := d.Uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

// flags reads message flags: a uvarint of at most 32 bits.
func (d *Decoder) flags() uint32 {
	v := d.Uvarint()
	if v > 1<<32-1 {
		d.fail("flags overflow 32 bits")
		return 0
	}
	return uint32(v)
}

// legacyFlags reads the flags of a format that had no attribute section:
// bit 31 (flagAttrs) was never set then, so it is refused.
func (d *Decoder) legacyFlags() uint32 {
	v := d.flags()
	if v&flagAttrs != 0 {
		d.fail("flags %#x: bit 31 is not used in this format", v)
		return 0
	}
	return v
}

// Precedence reads a precedence byte, which must be valid.
func (d *Decoder) Precedence() Precedence {
	if d.err != nil {
		return 0
	}
	p := Precedence(d.Byte())
	if d.err == nil && !p.Valid() {
		d.fail("invalid precedence %d", uint8(p))
		return 0
	}
	return p
}

// raw reads a length and returns that many bytes of the input.
func (d *Decoder) raw() []byte {
	v := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if v > uint64(len(d.b)) {
		d.fail("length beyond the end of the input (%d bytes, %d left)", v, len(d.b))
		return nil
	}
	p := d.b[:v:v]
	d.b = d.b[v:]
	return p
}

// Str reads a string (a copy).
func (d *Decoder) Str() string { return string(d.raw()) }

// strLike reads a string and returns prev, without allocating, when
// equal: site names repeat in every item of a batch.
func (d *Decoder) strLike(prev string) string {
	b := d.raw()
	if string(b) == prev {
		return prev
	}
	return string(b)
}

// Bytes reads a byte string, nil when empty, aliasing the input.
func (d *Decoder) Bytes() []byte {
	p := d.raw()
	if len(p) == 0 {
		return nil
	}
	return p
}

// Count reads a list length: at most max (when max > 0) and no more
// than the input left can hold at minLen bytes per element.
func (d *Decoder) Count(minLen, max int) int {
	v := d.Uvarint()
	switch {
	case d.err != nil:
		return 0
	case max > 0 && v > uint64(max):
		d.fail("count %d exceeds the limit of %d items", v, max)
		return 0
	case v > uint64(len(d.b)/minLen):
		d.fail("list longer than the input (%d items of at least %d bytes, %d bytes left)", v, minLen, len(d.b))
		return 0
	}
	return int(v)
}

// Message reads a message's fields into m; its channel is left as it is.
func (d *Decoder) Message(m *Message) {
	m.ID = d.Str()
	m.Seq = d.Uvarint()
	m.Key = d.Str()
	m.Payload = d.Bytes()
	m.Flags = d.flags()
	m.SubmittedAt = d.Varint()
	m.ExpiresAt = d.Varint()
	m.Mailbox, m.From, m.Type = "", "", ""
	if m.Flags&flagAttrs != 0 {
		m.Flags &^= flagAttrs
		m.Mailbox, m.From, m.Type = d.Str(), d.Str(), d.Str()
		if d.err == nil && !m.HasAttrs() {
			d.fail("message %q: attribute section with no attribute", m.ID)
		}
	}
}

// Messages reads a list of at most max (when max > 0) messages of
// channel ch: nil when empty or on an error.
func (d *Decoder) Messages(ch Channel, max int) []Message {
	n := d.Count(minMessageLen, max)
	if n == 0 {
		return nil
	}
	ms := make([]Message, n)
	for i := range ms {
		m := &ms[i]
		m.Origin, m.Dest, m.Precedence = ch.Origin, ch.Dest, ch.Precedence
		d.Message(m)
	}
	if d.err != nil {
		return nil
	}
	return ms
}

// Receipt reads a receipt into r.
func (d *Decoder) Receipt(r *Receipt) {
	r.RSeq = d.Uvarint()
	p := d.Byte()
	refused := p&rcptRefused != 0
	r.Precedence = Precedence(p &^ rcptRefused)
	if d.err == nil && !r.Precedence.Valid() {
		d.fail("invalid precedence %d", p)
	}
	r.Seq = d.Uvarint()
	r.ID = d.Str()
	r.ReadAt = d.Varint()
	r.Refused = ""
	if refused {
		r.Refused = d.limited("refusal reason", MaxRefusalLen)
		if d.err == nil && r.Refused == "" {
			d.fail("receipt %d: refusal without a reason", r.RSeq)
		}
	}
}

// Receipts reads a list of at most max (when max > 0) receipts: nil when
// empty or on an error.
func (d *Decoder) Receipts(max int) []Receipt {
	n := d.Count(minReceiptLen, max)
	if n == 0 {
		return nil
	}
	rs := make([]Receipt, n)
	for i := range rs {
		d.Receipt(&rs[i])
	}
	if d.err != nil {
		return nil
	}
	return rs
}
