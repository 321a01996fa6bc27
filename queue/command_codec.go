package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math/bits"
)

// Log entry formats. The first byte of an encoded command names its
// format, so that entries written by an older version stay readable:
//
//	'{'   the JSON encoding of Command (read only: early logs)
//	0x01  binary version 1 (read only: logs written before version 2)
//	0x02  binary version 2, written by Encode: version 1's body, then
//	      the CRC32C (Castagnoli) of every byte before it, 4 bytes
//	      big-endian
//
// DecodeCommand checks a version 2 entry's checksum: a damaged entry (a
// flipped byte in raft.db, on the wire or in memory) is an error wrapping
// [ErrCorrupt], and Apply stops rather than skip it. Entries of the JSON
// format and version 1 carry no checksum: they are decoded unchecked.
//
// The body (version 1 and 2), after the version byte (integers: uvarint unless noted;
// "i64" is 8 bytes big-endian two's complement; a string is its length
// and its bytes; a "list" or "bytes" is 0 for nil, else length+1 and the
// elements, so that nil and empty survive a round trip):
//
//	command  = op:string time:i64 bodies:byte body...
//	bodies   = bit set of the bodies present, each then encoded in bit
//	           order: 0 Submit, 1 Delivered, 2 Receive, 3 MarkRead,
//	           4 Receipts, 5 ReceiptsAcked, 6 Purge
//	Submit   = origin:string items:list(item)
//	item     = id:string key:string dest:string precedence:byte
//	           payload:bytes flags expires_at:i64
//	Delivered= dest:string precedence:byte up_to
//	Receive  = origin:string precedence:byte messages:list(message)
//	message  = id:string origin:string dest:string precedence:byte seq
//	           key:string payload:bytes flags submitted_at:i64 expires_at:i64
//	MarkRead = ids:list(string)
//	Receipts = from:string receipts:list(receipt)
//	receipt  = rseq precedence:byte seq id:string read_at:i64
//	ReceiptsAcked = origin:string up_to
//	Purge    = before:i64 max:varint (zig-zag)
//
// The encoding is canonical: varints are minimal, precedences valid, no
// unknown body bits and no trailing bytes, so every command has exactly
// one encoding and a decoder accepts nothing else.
const (
	cmdVersion1 = 0x01
	cmdVersion2 = 0x02
	cmdSumLen   = 4
)

// Body bits of version 1.
const (
	bodySubmit = 1 << iota
	bodyDelivered
	bodyReceive
	bodyMarkRead
	bodyReceipts
	bodyReceiptsAcked
	bodyPurge
	bodyAll = 1<<iota - 1
)

// Smallest encodings of list elements, to bound a list's length by the
// input left before allocating it.
const (
	minItemLen    = 3 + 1 + 1 + 1 + 8          // 3 strings, precedence, payload, flags, expiry
	minMessageLen = 3 + 1 + 1 + 1 + 1 + 1 + 16 // 3 strings, precedence, seq, key, payload, flags, 2 times
	minReceiptLen = 1 + 1 + 1 + 1 + 8          // rseq, precedence, seq, id, time
	minStringLen  = 1
)

// Encode returns the command's log representation (binary version 2). It
// fails only for an invalid precedence.
func (c *Command) Encode() ([]byte, error) {
	e := encoder{b: make([]byte, 0, c.sizeHint())}
	e.b = append(e.b, cmdVersion2)
	e.str(string(c.Op))
	e.i64(c.Time)
	var bodies byte
	for i, present := range []bool{c.Submit != nil, c.Delivered != nil, c.Receive != nil,
		c.MarkRead != nil, c.Receipts != nil, c.ReceiptsAcked != nil, c.Purge != nil} {
		if present {
			bodies |= 1 << i
		}
	}
	e.b = append(e.b, bodies)
	if s := c.Submit; s != nil {
		e.str(s.Origin)
		e.list(len(s.Items), s.Items == nil)
		for i := range s.Items {
			it := &s.Items[i]
			e.str(it.ID)
			e.str(it.Key)
			e.str(it.Dest)
			e.prec(it.Precedence)
			e.bytes(it.Payload)
			e.uvarint(uint64(it.Flags))
			e.i64(it.ExpiresAt)
		}
	}
	if d := c.Delivered; d != nil {
		e.str(d.Dest)
		e.prec(d.Precedence)
		e.uvarint(d.UpTo)
	}
	if r := c.Receive; r != nil {
		e.str(r.Origin)
		e.prec(r.Precedence)
		e.list(len(r.Messages), r.Messages == nil)
		for i := range r.Messages {
			m := &r.Messages[i]
			e.str(m.ID)
			e.str(m.Origin)
			e.str(m.Dest)
			e.prec(m.Precedence)
			e.uvarint(m.Seq)
			e.str(m.Key)
			e.bytes(m.Payload)
			e.uvarint(uint64(m.Flags))
			e.i64(m.SubmittedAt)
			e.i64(m.ExpiresAt)
		}
	}
	if mr := c.MarkRead; mr != nil {
		e.list(len(mr.IDs), mr.IDs == nil)
		for _, id := range mr.IDs {
			e.str(id)
		}
	}
	if r := c.Receipts; r != nil {
		e.str(r.From)
		e.list(len(r.Receipts), r.Receipts == nil)
		for _, rc := range r.Receipts {
			e.uvarint(rc.RSeq)
			e.prec(rc.Precedence)
			e.uvarint(rc.Seq)
			e.str(rc.ID)
			e.i64(rc.ReadAt)
		}
	}
	if ra := c.ReceiptsAcked; ra != nil {
		e.str(ra.Origin)
		e.uvarint(ra.UpTo)
	}
	if p := c.Purge; p != nil {
		e.i64(p.Before)
		e.b = binary.AppendVarint(e.b, int64(p.Max))
	}
	if e.err != nil {
		return nil, fmt.Errorf("queue: encode %s command: %w", c.Op, e.err)
	}
	return be.AppendUint32(e.b, crc32.Checksum(e.b, castagnoli)), nil
}

// sizeHint returns the encoded size (or a few bytes more), so that Encode
// allocates once.
func (c *Command) sizeHint() int {
	n := 1 + strLen(len(c.Op)) + 8 + 1 + cmdSumLen // version, op, time, bodies, checksum
	if s := c.Submit; s != nil {
		n += strLen(len(s.Origin)) + uvarintLen(uint64(len(s.Items)))
		for i := range s.Items {
			it := &s.Items[i]
			n += strLen(len(it.ID)) + strLen(len(it.Key)) + strLen(len(it.Dest)) + 1 +
				bytesLen(it.Payload) + uvarintLen(uint64(it.Flags)) + 8
		}
	}
	if r := c.Receive; r != nil {
		n += strLen(len(r.Origin)) + 1 + uvarintLen(uint64(len(r.Messages)))
		for i := range r.Messages {
			m := &r.Messages[i]
			n += strLen(len(m.ID)) + strLen(len(m.Origin)) + strLen(len(m.Dest)) + 1 + uvarintLen(m.Seq) +
				strLen(len(m.Key)) + bytesLen(m.Payload) + uvarintLen(uint64(m.Flags)) + 16
		}
	}
	if mr := c.MarkRead; mr != nil {
		n += uvarintLen(uint64(len(mr.IDs)))
		for _, id := range mr.IDs {
			n += strLen(len(id))
		}
	}
	if r := c.Receipts; r != nil {
		n += strLen(len(r.From)) + uvarintLen(uint64(len(r.Receipts)))
		for _, rc := range r.Receipts {
			n += uvarintLen(rc.RSeq) + 1 + uvarintLen(rc.Seq) + strLen(len(rc.ID)) + 8
		}
	}
	if d := c.Delivered; d != nil {
		n += strLen(len(d.Dest)) + 1 + uvarintLen(d.UpTo)
	}
	if ra := c.ReceiptsAcked; ra != nil {
		n += strLen(len(ra.Origin)) + uvarintLen(ra.UpTo)
	}
	if c.Purge != nil {
		n += 8 + binary.MaxVarintLen64
	}
	return n
}

// strLen is the encoded size of a string of n bytes.
func strLen(n int) int { return uvarintLen(uint64(n)) + n }

// bytesLen is the encoded size of a byte string.
func bytesLen(b []byte) int { return uvarintLen(uint64(len(b))+1) + len(b) }

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// encoder appends the version 1 encoding to b; the first invalid value
// sets err.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }

func (e *encoder) i64(v int64) { e.b = be.AppendUint64(e.b, uint64(v)) }

func (e *encoder) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) bytes(b []byte) {
	if b == nil {
		e.b = append(e.b, 0)
		return
	}
	e.uvarint(uint64(len(b)) + 1)
	e.b = append(e.b, b...)
}

func (e *encoder) list(n int, isNil bool) {
	if isNil {
		e.b = append(e.b, 0)
		return
	}
	e.uvarint(uint64(n) + 1)
}

func (e *encoder) prec(p Precedence) {
	if !p.Valid() && e.err == nil {
		e.err = fmt.Errorf("invalid precedence %d", uint8(p))
	}
	e.b = append(e.b, byte(p))
}

// DecodeCommand parses a log entry written by Encode (or an entry of an
// earlier format). A version 2 entry whose checksum does not match gets a
// [*CorruptError] (wrapping [ErrCorrupt]); other malformed input gets an
// error wrapping [ErrInvalid]. Decoding allocates at most a small multiple
// of len(b). The command does not alias b: its payloads share one copy of
// it.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("queue: decode command: %w: empty entry", ErrInvalid)
	}
	switch b[0] {
	case '{':
		var c Command
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("queue: decode command: %w", err)
		}
		return &c, nil
	case cmdVersion2:
		if len(b) < 1+cmdSumLen {
			return nil, &CorruptError{Record: "log entry", Reason: fmt.Sprintf("entry of %d bytes", len(b)), entry: true}
		}
		body := b[:len(b)-cmdSumLen]
		if got, want := crc32.Checksum(body, castagnoli), be.Uint32(b[len(body):]); got != want {
			return nil, &CorruptError{Record: "log entry", Reason: fmt.Sprintf("checksum %08x, stored %08x", got, want), entry: true}
		}
		d := decoder{b: bytes.Clone(body[1:]), n: len(body)}
		c := d.command()
		if d.err != nil {
			return nil, fmt.Errorf("queue: decode command: %w", d.err)
		}
		return c, nil
	case cmdVersion1:
		d := decoder{b: bytes.Clone(b[1:]), n: len(b)}
		c := d.command()
		if d.err != nil {
			return nil, fmt.Errorf("queue: decode command: %w", d.err)
		}
		return c, nil
	default:
		return nil, fmt.Errorf("queue: decode command: %w: unknown format version 0x%02x", ErrInvalid, b[0])
	}
}

// decoder reads the body of version 1 or 2 from b, the rest of the input (n bytes in all).
// After the first error every read returns a zero value.
type decoder struct {
	b   []byte
	n   int
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s at byte %d", ErrInvalid, what, d.n-len(d.b))
	}
	d.b = nil
}

func (d *decoder) command() *Command {
	c := &Command{Op: d.op()}
	c.Time = d.i64()
	bodies := d.byte1()
	if bodies&^bodyAll != 0 {
		d.fail(fmt.Sprintf("unknown bodies 0x%02x", bodies))
	}
	if bodies&bodySubmit != 0 {
		c.Submit = d.submit()
	}
	if bodies&bodyDelivered != 0 {
		c.Delivered = &DeliveredCmd{Dest: d.str(), Precedence: d.prec(), UpTo: d.uvarint()}
	}
	if bodies&bodyReceive != 0 {
		c.Receive = d.receive()
	}
	if bodies&bodyMarkRead != 0 {
		c.MarkRead = d.markRead()
	}
	if bodies&bodyReceipts != 0 {
		c.Receipts = d.receipts()
	}
	if bodies&bodyReceiptsAcked != 0 {
		c.ReceiptsAcked = &ReceiptsAcked{Origin: d.str(), UpTo: d.uvarint()}
	}
	if bodies&bodyPurge != 0 {
		c.Purge = &Purge{Before: d.i64(), Max: d.int()}
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil
	}
	return c
}

// ops are the known command names, returned without allocating.
var ops = []Op{OpSubmit, OpDelivered, OpReceive, OpMarkRead, OpReceipts, OpReceiptsAcked, OpExpire, OpPurge}

func (d *decoder) op() Op {
	b := d.raw(d.length(minStringLen))
	for _, op := range ops {
		if string(b) == string(op) {
			return op
		}
	}
	return Op(b)
}

func (d *decoder) submit() *Submit {
	s := &Submit{Origin: d.str()}
	n, isNil := d.list(minItemLen)
	if isNil {
		return s
	}
	s.Items = make([]SubmitItem, n)
	dest := ""
	for i := range s.Items {
		it := &s.Items[i]
		it.ID = d.str()
		it.Key = d.str()
		dest = d.strLike(dest)
		it.Dest = dest
		it.Precedence = d.prec()
		it.Payload = d.bytes()
		it.Flags = d.u32()
		it.ExpiresAt = d.i64()
	}
	return s
}

func (d *decoder) receive() *Receive {
	r := &Receive{Origin: d.str(), Precedence: d.prec()}
	n, isNil := d.list(minMessageLen)
	if isNil {
		return r
	}
	r.Messages = make([]Message, n)
	origin, dest := r.Origin, ""
	for i := range r.Messages {
		m := &r.Messages[i]
		m.ID = d.str()
		origin = d.strLike(origin)
		dest = d.strLike(dest)
		m.Origin, m.Dest = origin, dest
		m.Precedence = d.prec()
		m.Seq = d.uvarint()
		m.Key = d.str()
		m.Payload = d.bytes()
		m.Flags = d.u32()
		m.SubmittedAt = d.i64()
		m.ExpiresAt = d.i64()
	}
	return r
}

func (d *decoder) markRead() *MarkRead {
	mr := &MarkRead{}
	n, isNil := d.list(minStringLen)
	if isNil {
		return mr
	}
	mr.IDs = make([]string, n)
	for i := range mr.IDs {
		mr.IDs[i] = d.str()
	}
	return mr
}

func (d *decoder) receipts() *Receipts {
	r := &Receipts{From: d.str()}
	n, isNil := d.list(minReceiptLen)
	if isNil {
		return r
	}
	r.Receipts = make([]Receipt, n)
	for i := range r.Receipts {
		rc := &r.Receipts[i]
		rc.RSeq = d.uvarint()
		rc.Precedence = d.prec()
		rc.Seq = d.uvarint()
		rc.ID = d.str()
		rc.ReadAt = d.i64()
	}
	return r
}

func (d *decoder) byte1() byte {
	if len(d.b) < 1 {
		d.fail("truncated")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

// uvarint reads a minimal unsigned varint.
func (d *decoder) uvarint() uint64 {
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

func (d *decoder) u32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail("flags overflow 32 bits")
		return 0
	}
	return uint32(v)
}

// int reads a zig-zag varint that must fit an int.
func (d *decoder) int() int {
	u := d.uvarint()
	v := int64(u>>1) ^ -int64(u&1)
	if int64(int(v)) != v {
		d.fail("integer overflows int")
		return 0
	}
	return int(v)
}

func (d *decoder) i64() int64 {
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := int64(be.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *decoder) prec() Precedence {
	p := Precedence(d.byte1())
	if d.err == nil && !p.Valid() {
		d.fail(fmt.Sprintf("invalid precedence %d", uint8(p)))
		return 0
	}
	return p
}

// length reads a length that the rest of the input can hold, counting
// minLen bytes per unit.
func (d *decoder) length(minLen int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/minLen) {
		d.fail("length beyond the end of the input")
		return 0
	}
	return int(v)
}

// list reads a list length (0: nil) that the rest of the input can hold
// at minLen bytes per element.
func (d *decoder) list(minLen int) (n int, isNil bool) {
	v := d.uvarint()
	if d.err != nil {
		return 0, true
	}
	if v == 0 {
		return 0, true
	}
	if v-1 > uint64(len(d.b)/minLen) {
		d.fail("list longer than the input")
		return 0, true
	}
	return int(v - 1), false
}

// raw returns the next n bytes (n was checked by length).
func (d *decoder) raw(n int) []byte {
	if d.err != nil {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.raw(d.length(minStringLen))) }

// strLike reads a string and returns prev, without allocating, when equal:
// site names repeat in every item of a batch.
func (d *decoder) strLike(prev string) string {
	b := d.raw(d.length(minStringLen))
	if string(b) == prev {
		return prev
	}
	return string(b)
}

// bytes reads a byte string (0: nil) as a slice of the decoder's copy of
// the input.
func (d *decoder) bytes() []byte {
	v := d.uvarint()
	if d.err != nil || v == 0 {
		return nil
	}
	if v-1 > uint64(len(d.b)) {
		d.fail("length beyond the end of the input")
		return nil
	}
	return d.raw(int(v - 1))
}
