package queue

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
)

// Log entry formats. The first byte of an encoded command names its
// format, so that entries written by an older version stay readable:
//
//	'{'   the JSON encoding of Command (read only: logs begun before the
//	      binary codec, 2026-11-24, whose state file is of format 1)
//	0x01  binary version 1 (read only: logs written before version 2,
//	      2026-11-28; see command_legacy.go)
//	0x02  binary version 2 (read only: logs written before version 3;
//	      version 1's body and a checksum)
//	0x03  binary version 3 (read only: logs written before version 4,
//	      which lacks the evidence; the body below and a checksum)
//	0x04  binary version 4 (read only: logs written before version 5,
//	      which lacks the mailbox bodies and message attributes)
//	0x05  binary version 5, written by Encode for every command without
//	      a body of version 6: the evidence section (evidence.go), the
//	      body below, then the CRC32C (Castagnoli) of every byte before
//	      it, 4 bytes big-endian; version 4's layout, with the bodies of
//	      bits 9 to 12 and the attribute sections
//	0x06  binary version 6, written by Encode only for a command with a
//	      body of version 6 (bit 13, SiteVersion: siteversion.go);
//	      version 5's layout
//
// Encode writes the lowest version that represents the command, so that
// a build that reads only up to version 5 reads every entry but those
// only a newer build may propose (OpSiteVersion, proposed once every
// node runs such a build). A version-6 body in an entry of an earlier
// version or of the JSON format, and a version 6 entry without one, are
// refused (ErrInvalid), so that an older build and this one apply every
// entry alike.
//
// A version above 6 (below 0x20) is a log written by a newer build:
// DecodeCommand returns a *NewerFormatError and Apply stops there rather
// than skip an entry the other nodes apply.
//
// DecodeCommand checks the checksum of versions 2 to 6: a damaged entry
// (a flipped byte in raft.db, on the wire or in memory) is an error
// wrapping [ErrCorrupt], and Apply stops rather than skip it. Entries of
// the JSON format and version 1 carry no checksum: they are decoded
// unchecked. Every node of a site decodes an entry of any of these
// formats to the same command, so a log mixing them replays the same
// everywhere.
//
// The body of versions 3 to 6, after the version byte (and, from version
// 4, the evidence section), in the encoding of
// messages and receipts (encoding.go: uvarints, zig-zag varints for
// times and signed numbers, length-prefixed strings and bytes, lists as
// a count and the elements, nil and empty alike):
//
//	command  = op:string time:varint bodies:uvarint body...
//	bodies   = uvarint bit set of the bodies present, each then encoded in
//	           bit order: 0 Submit, 1 Delivered, 2 Receive, 3 MarkRead,
//	           4 Receipts, 5 ReceiptsAcked, 6 Purge, 7 Audit, 8 Checkpoint
//	           (audit.go; below bit 7 the uvarint is the one byte it was),
//	           9 MarkReadBy (mailbox.go), 10 Release (held.go), 12 Refused
//	           (refuse.go), 13 SiteVersion (siteversion.go; version 6)
//	Submit   = origin:string items:list(item)
//	item     = id:string key:string dest:string precedence:byte
//	           payload:bytes flags:uvarint expires_at:varint
//	           [mailbox:string from:string type:string]
//	           (the attribute section as in a message: present exactly
//	           when flags has bit 31 set, encoding.go)
//	Delivered= dest:string precedence:byte up_to:uvarint
//	Receive  = origin:string precedence:byte
//	           messages:list(origin:string dest:string precedence:byte message)
//	MarkRead = ids:list(string)
//	Receipts = from:string receipts:list(receipt)
//	ReceiptsAcked = origin:string up_to:uvarint
//	Purge    = before:varint max:varint
//
// A Receive's message carries its own channel before the shared fields,
// so that a command naming a message of another channel still encodes
// and is refused when applied (Receive.valid), as in every version.
//
// The encoding is canonical: varints are minimal, precedences valid, no
// unknown body bits and no trailing bytes, so every command has exactly
// one encoding and a decoder accepts nothing else.
const (
	cmdVersion1 = 0x01
	cmdVersion2 = 0x02
	cmdVersion3 = 0x03
	cmdVersion4 = 0x04
	cmdVersion5 = 0x05
	cmdVersion6 = 0x06
	// cmdVersion is the newest format this build reads and writes;
	// Encode writes cmdVersion5 unless the command needs it.
	cmdVersion = cmdVersion6
	cmdSumLen  = 4
)

// NewerFormatError is DecodeCommand's error for an entry of a format
// newer than this build reads.
type NewerFormatError struct{ Version byte }

func (e *NewerFormatError) Error() string {
	return fmt.Sprintf("queue: decode command: log entry format %d is newer than this build reads (%d): run the build that wrote it, or a newer one", e.Version, cmdVersion)
}

// hasAttrs reports whether c holds a message or submit item with
// attributes (a mailbox, sender mailbox or type).
func (c *Command) hasAttrs() bool {
	if c.Submit != nil {
		for i := range c.Submit.Items {
			if m := c.Submit.Items[i].attrs(); m.HasAttrs() {
				return true
			}
		}
	}
	if c.Receive != nil {
		for i := range c.Receive.Messages {
			if c.Receive.Messages[i].HasAttrs() {
				return true
			}
		}
	}
	return false
}

// Body bits (every binary version).
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

// Smallest version 3 encodings of the command's own list elements.
const (
	minItemLen      = 7                 // 3 strings, precedence, payload, flags, expiry
	minInMessageLen = 3 + minMessageLen // channel, then the message
)

// Encode returns the command's log representation: binary version 6 for
// a command with a SiteVersion body, else version 5. It fails only for an
// invalid precedence or malformed evidence (wrapping ErrInvalid).
func (c *Command) Encode() ([]byte, error) {
	if err := c.checkPrecedences(); err != nil {
		return nil, fmt.Errorf("queue: encode %s command: %w", c.Op, err)
	}
	if err := c.evidenceFault(); err != nil {
		return nil, fmt.Errorf("queue: encode %s command: %w: %w", c.Op, ErrInvalid, err)
	}
	if err := c.Receive.refusalsFault(); err != nil { // refuse.go
		return nil, fmt.Errorf("queue: encode %s command: %w: %w", c.Op, ErrInvalid, err)
	}
	b := make([]byte, 0, c.sizeHint())
	b = append(b, c.minVersion())
	b = c.appendEvidence(b) // evidence.go
	b = AppendString(b, string(c.Op))
	b = binary.AppendVarint(b, c.Time)
	var bodies uint64
	for i, present := range []bool{c.Submit != nil, c.Delivered != nil, c.Receive != nil,
		c.MarkRead != nil, c.Receipts != nil, c.ReceiptsAcked != nil, c.Purge != nil,
		c.Audit != nil, c.Checkpoint != nil, c.MarkRead.hasBy(), c.Release != nil} {
		if present {
			bodies |= 1 << i
		}
	}
	if c.Receive.hasRefused() {
		bodies |= bodyRefused // refuse.go
	}
	if c.SiteVersion != nil {
		bodies |= bodySiteVersion // siteversion.go
	}
	b = binary.AppendUvarint(b, bodies)
	if s := c.Submit; s != nil {
		b = AppendString(b, s.Origin)
		b = binary.AppendUvarint(b, uint64(len(s.Items)))
		for i := range s.Items {
			b = appendSubmitItem(b, &s.Items[i])
		}
	}
	if d := c.Delivered; d != nil {
		b = AppendString(b, d.Dest)
		b = append(b, byte(d.Precedence))
		b = binary.AppendUvarint(b, d.UpTo)
	}
	if r := c.Receive; r != nil {
		b = AppendString(b, r.Origin)
		b = append(b, byte(r.Precedence))
		b = binary.AppendUvarint(b, uint64(len(r.Messages)))
		for i := range r.Messages {
			m := &r.Messages[i]
			b = AppendString(b, m.Origin)
			b = AppendString(b, m.Dest)
			b = append(b, byte(m.Precedence))
			b = AppendMessage(b, m)
		}
	}
	if mr := c.MarkRead; mr != nil {
		b = binary.AppendUvarint(b, uint64(len(mr.IDs)))
		for _, id := range mr.IDs {
			b = AppendString(b, id)
		}
	}
	if r := c.Receipts; r != nil {
		b = AppendString(b, r.From)
		b = AppendReceipts(b, r.Receipts)
	}
	if ra := c.ReceiptsAcked; ra != nil {
		b = AppendString(b, ra.Origin)
		b = binary.AppendUvarint(b, ra.UpTo)
	}
	if p := c.Purge; p != nil {
		b = binary.AppendVarint(b, p.Before)
		b = binary.AppendVarint(b, int64(p.Max))
	}
	b = appendAudit(b, c)
	b = appendMarkReadBy(b, c.MarkRead) // mailbox.go
	b = appendRelease(b, c.Release)     // held.go
	b = appendRefused(b, c.Receive)     // refuse.go
	b = appendSiteVersion(b, c.SiteVersion)
	return be.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// minVersion returns the lowest log entry format that represents c.
func (c *Command) minVersion() byte {
	if c.SiteVersion != nil {
		return cmdVersion6
	}
	return cmdVersion5
}

// checkPrecedences reports the first invalid precedence: the encoding
// has no room for one.
func (c *Command) checkPrecedences() error {
	if s := c.Submit; s != nil {
		for i := range s.Items {
			if err := encodable(s.Items[i].Precedence); err != nil {
				return err
			}
		}
	}
	if d := c.Delivered; d != nil {
		if err := encodable(d.Precedence); err != nil {
			return err
		}
	}
	if r := c.Receive; r != nil {
		if err := encodable(r.Precedence); err != nil {
			return err
		}
		for i := range r.Messages {
			if err := encodable(r.Messages[i].Precedence); err != nil {
				return err
			}
		}
	}
	if r := c.Receipts; r != nil {
		for i := range r.Receipts {
			if err := encodable(r.Receipts[i].Precedence); err != nil {
				return err
			}
		}
	}
	return nil
}

// encodable refuses an invalid precedence, which has no encoding.
func encodable(p Precedence) error {
	if !p.Valid() {
		return fmt.Errorf("invalid precedence %d", uint8(p))
	}
	return nil
}

// sizeHint returns the encoded size (or a few bytes more), so that Encode
// allocates once.
func (c *Command) sizeHint() int {
	n := 1 + stringLen(len(c.Op)) + varintLen(c.Time) + 2 + cmdSumLen + auditSizeHint(c) + markReadBySize(c.MarkRead) + releaseSize(c.Release) + refusedSize(c.Receive) + siteVersionSize(c.SiteVersion) // version, op, time, bodies, checksum, audit bodies
	n += c.evidenceLen()
	if s := c.Submit; s != nil {
		n += stringLen(len(s.Origin)) + uvarintLen(uint64(len(s.Items)))
		for i := range s.Items {
			it := &s.Items[i]
			n += stringLen(len(it.ID)) + stringLen(len(it.Key)) + stringLen(len(it.Dest)) + 1 +
				stringLen(len(it.Payload)) + varintLen(it.ExpiresAt)
			m := it.attrs()
			n += uvarintLen(uint64(m.encFlags())) + attrsLen(&m)
		}
	}
	if r := c.Receive; r != nil {
		n += stringLen(len(r.Origin)) + 1 + uvarintLen(uint64(len(r.Messages)))
		for i := range r.Messages {
			m := &r.Messages[i]
			n += stringLen(len(m.Origin)) + stringLen(len(m.Dest)) + 1 + MessageLen(m)
		}
	}
	if mr := c.MarkRead; mr != nil {
		n += uvarintLen(uint64(len(mr.IDs)))
		for _, id := range mr.IDs {
			n += stringLen(len(id))
		}
	}
	if r := c.Receipts; r != nil {
		n += stringLen(len(r.From)) + uvarintLen(uint64(len(r.Receipts)))
		for i := range r.Receipts {
			n += ReceiptLen(&r.Receipts[i])
		}
	}
	if d := c.Delivered; d != nil {
		n += stringLen(len(d.Dest)) + 1 + uvarintLen(d.UpTo)
	}
	if ra := c.ReceiptsAcked; ra != nil {
		n += stringLen(len(ra.Origin)) + uvarintLen(ra.UpTo)
	}
	if p := c.Purge; p != nil {
		n += varintLen(p.Before) + varintLen(int64(p.Max))
	}
	return n
}

// DecodeCommand parses a log entry written by Encode (or an entry of an
// earlier format). An entry whose checksum does not match gets a
// [*CorruptError] (wrapping [ErrCorrupt]); other malformed input gets an
// error wrapping [ErrInvalid]. Decoding allocates at most a small multiple
// of len(b). The command does not alias b: its payloads share one copy of
// it.
func DecodeCommand(b []byte) (*Command, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("queue: decode command: %w: empty entry", ErrInvalid)
	}
	var c *Command
	var err error
	switch b[0] {
	case '{':
		c = new(Command)
		if err := json.Unmarshal(b, c); err != nil {
			return nil, fmt.Errorf("queue: decode command: %w", err)
		}
		// No build writes a site version in JSON, and 0.1.0 decodes the
		// key as an unknown field and ignores it: so does this build,
		// so that both apply the entry alike (a site_version command
		// without its body changes nothing on either).
		c.SiteVersion = nil
		c.format = '{'
		return c, nil
	case cmdVersion6, cmdVersion5, cmdVersion4, cmdVersion3, cmdVersion2:
		if len(b) < 1+cmdSumLen {
			return nil, &CorruptError{Record: "log entry", Reason: fmt.Sprintf("entry of %d bytes", len(b)), entry: true}
		}
		body := b[:len(b)-cmdSumLen]
		if got, want := crc32.Checksum(body, castagnoli), be.Uint32(b[len(body):]); got != want {
			return nil, &CorruptError{Record: "log entry", Reason: fmt.Sprintf("checksum %08x, stored %08x", got, want), entry: true}
		}
		d := &Decoder{b: bytes.Clone(body[1:]), n: len(body)}
		switch b[0] {
		case cmdVersion6, cmdVersion5, cmdVersion4:
			c, err = decodeCommand4(d) // evidence.go
		case cmdVersion3:
			c, err = decodeCommand3(d)
		default:
			c, err = decodeCommand1(d)
		}
	case cmdVersion1:
		c, err = decodeCommand1(&Decoder{b: bytes.Clone(b[1:]), n: len(b)})
	default:
		if b[0] > cmdVersion && b[0] < 0x20 {
			return nil, &NewerFormatError{Version: b[0]}
		}
		return nil, fmt.Errorf("queue: decode command: %w: unknown format version 0x%02x", ErrInvalid, b[0])
	}
	switch {
	case err != nil:
	case b[0] < cmdVersion4 && (c.Audit != nil || c.Checkpoint != nil):
		err = fmt.Errorf("audit bodies in an entry of version %d", b[0]) // version 4 brought them
	case b[0] < cmdVersion5 && (c.MarkRead.hasBy() || c.Release != nil || c.Receive.hasRefused() || c.hasAttrs()):
		err = fmt.Errorf("mailbox bodies or message attributes in an entry of version %d", b[0]) // version 5 brought them
	case b[0] < cmdVersion6 && c.SiteVersion != nil:
		err = fmt.Errorf("site version body in an entry of version %d", b[0]) // version 6 brought it
	case b[0] == cmdVersion6 && c.minVersion() != cmdVersion6:
		err = errors.New("entry of version 6 without a body of version 6") // Encode writes version 5: one encoding per command
	}
	if err != nil {
		return nil, fmt.Errorf("queue: decode command: %w: %w", ErrInvalid, err)
	}
	c.format = b[0]
	return c, nil
}

// decodeCommand3 reads the body of version 3 (and of version 4, after
// its evidence section).
func decodeCommand3(d *Decoder) (*Command, error) {
	c := &Command{Op: d.op()}
	c.Time = d.Varint()
	bodies := d.Uvarint()
	if bodies&^(bodyAllAudit|bodyMarkReadBy|bodyRelease|bodyRefused|bodySiteVersion) != 0 {
		d.fail("unknown bodies 0x%02x", bodies)
	}
	if bodies&bodySubmit != 0 {
		c.Submit = &Submit{Origin: d.Str()}
		if n := d.Count(minItemLen, 0); n > 0 {
			c.Submit.Items = make([]SubmitItem, n)
			dest := ""
			for i := range c.Submit.Items {
				d.submitItem(&c.Submit.Items[i], dest)
				dest = c.Submit.Items[i].Dest
			}
		}
	}
	if bodies&bodyDelivered != 0 {
		c.Delivered = &DeliveredCmd{Dest: d.Str(), Precedence: d.Precedence(), UpTo: d.Uvarint()}
	}
	if bodies&bodyReceive != 0 {
		r := &Receive{Origin: d.Str(), Precedence: d.Precedence()}
		if n := d.Count(minInMessageLen, 0); n > 0 {
			r.Messages = make([]Message, n)
			origin, dest := r.Origin, ""
			for i := range r.Messages {
				m := &r.Messages[i]
				origin = d.strLike(origin)
				dest = d.strLike(dest)
				m.Origin, m.Dest, m.Precedence = origin, dest, d.Precedence()
				d.Message(m)
			}
		}
		c.Receive = r
	}
	if bodies&bodyMarkRead != 0 {
		c.MarkRead = &MarkRead{}
		if n := d.Count(minStringLen, 0); n > 0 {
			c.MarkRead.IDs = make([]string, n)
			for i := range c.MarkRead.IDs {
				c.MarkRead.IDs[i] = d.Str()
			}
		}
	}
	if bodies&bodyReceipts != 0 {
		c.Receipts = &Receipts{From: d.Str(), Receipts: d.Receipts(0)}
	}
	if bodies&bodyReceiptsAcked != 0 {
		c.ReceiptsAcked = &ReceiptsAcked{Origin: d.Str(), UpTo: d.Uvarint()}
	}
	if bodies&bodyPurge != 0 {
		c.Purge = &Purge{Before: d.Varint(), Max: d.int()}
	}
	decodeAudit(d, c, bodies)
	decodeMarkReadBy(d, c, bodies)  // mailbox.go
	decodeRelease(d, c, bodies)     // held.go
	decodeRefused(d, c, bodies)     // refuse.go
	decodeSiteVersion(d, c, bodies) // siteversion.go
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return c, nil
}

// appendSubmitItem appends one Submit item (item above); the held
// messages' records hold the same bytes (held.go).
func appendSubmitItem(b []byte, it *SubmitItem) []byte {
	b = AppendString(b, it.ID)
	b = AppendString(b, it.Key)
	b = AppendString(b, it.Dest)
	b = append(b, byte(it.Precedence))
	b = AppendBytes(b, it.Payload)
	m := it.attrs()
	b = binary.AppendUvarint(b, uint64(m.encFlags()))
	b = binary.AppendVarint(b, it.ExpiresAt)
	if m.HasAttrs() {
		b = AppendString(b, m.Mailbox)
		b = AppendString(b, m.From)
		b = AppendString(b, m.Type)
	}
	return b
}

// submitItem reads what appendSubmitItem wrote into it; dest is the
// previous item's destination, shared when equal.
func (d *Decoder) submitItem(it *SubmitItem, dest string) {
	it.ID = d.Str()
	it.Key = d.Str()
	it.Dest = d.strLike(dest)
	it.Precedence = d.Precedence()
	it.Payload = d.Bytes()
	it.Flags = d.flags()
	it.ExpiresAt = d.Varint()
	if it.Flags&flagAttrs != 0 {
		it.Flags &^= flagAttrs
		it.Mailbox, it.From, it.Type = d.Str(), d.Str(), d.Str()
		if m := it.attrs(); d.err == nil && !m.HasAttrs() {
			d.fail("submit item %q: attribute section with no attribute", it.ID)
		}
	}
}

// ops are the known command names, returned without allocating.
var ops = []Op{OpSubmit, OpDelivered, OpReceive, OpMarkRead, OpReceipts, OpReceiptsAcked, OpExpire, OpPurge, OpAudit, OpCheckpoint, OpRelease, OpSiteVersion}

// op reads a command's name.
func (d *Decoder) op() Op {
	b := d.raw()
	for _, op := range ops {
		if string(b) == string(op) {
			return op
		}
	}
	return Op(b)
}

// int reads a zig-zag varint that must fit an int.
func (d *Decoder) int() int {
	v := d.Varint()
	if int64(int(v)) != v {
		d.fail("integer overflows int")
		return 0
	}
	return int(v)
}
