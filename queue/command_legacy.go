package queue

// Versions 1 and 2 of the log entry format, read only: version 2 was
// written until version 3 (the shared encoding of messages and receipts)
// and raft.db files keep such entries until Raft compacts them; version 1
// was written before 2026-11-28.
//
// The body (after the version byte; integers: uvarint unless noted; "i64"
// is 8 bytes big-endian two's complement; a string is its length and its
// bytes; a "list" or "bytes" is 0 for nil, else length+1 and the
// elements, so that nil and empty are told apart):
//
//	command  = op:string time:i64 bodies:byte body...
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
// with the body bits of version 3. Decoding is as strict as for version 3.

// Smallest version 1 encodings of list elements.
const (
	minItemLen1    = 3 + 1 + 1 + 1 + 8          // 3 strings, precedence, payload, flags, expiry
	minMessageLen1 = 3 + 1 + 1 + 1 + 1 + 1 + 16 // 3 strings, precedence, seq, key, payload, flags, 2 times
	minReceiptLen1 = 1 + 1 + 1 + 1 + 8          // rseq, precedence, seq, id, time
)

// decodeCommand1 reads the body of version 1 or 2.
func decodeCommand1(d *Decoder) (*Command, error) {
	c := &Command{Op: d.op()}
	c.Time = d.i64()
	bodies := d.Byte()
	if bodies&^bodyAll != 0 {
		d.fail("unknown bodies 0x%02x", bodies)
	}
	if bodies&bodySubmit != 0 {
		c.Submit = d.submit1()
	}
	if bodies&bodyDelivered != 0 {
		c.Delivered = &DeliveredCmd{Dest: d.Str(), Precedence: d.Precedence(), UpTo: d.Uvarint()}
	}
	if bodies&bodyReceive != 0 {
		c.Receive = d.receive1()
	}
	if bodies&bodyMarkRead != 0 {
		c.MarkRead = d.markRead1()
	}
	if bodies&bodyReceipts != 0 {
		c.Receipts = d.receipts1()
	}
	if bodies&bodyReceiptsAcked != 0 {
		c.ReceiptsAcked = &ReceiptsAcked{Origin: d.Str(), UpTo: d.Uvarint()}
	}
	if bodies&bodyPurge != 0 {
		c.Purge = &Purge{Before: d.i64(), Max: d.int()}
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return c, nil
}

func (d *Decoder) submit1() *Submit {
	s := &Submit{Origin: d.Str()}
	n, isNil := d.list1(minItemLen1)
	if isNil {
		return s
	}
	s.Items = make([]SubmitItem, n)
	dest := ""
	for i := range s.Items {
		it := &s.Items[i]
		it.ID = d.Str()
		it.Key = d.Str()
		dest = d.strLike(dest)
		it.Dest = dest
		it.Precedence = d.Precedence()
		it.Payload = d.bytes1()
		it.Flags = d.legacyFlags()
		it.ExpiresAt = d.i64()
	}
	return s
}

func (d *Decoder) receive1() *Receive {
	r := &Receive{Origin: d.Str(), Precedence: d.Precedence()}
	n, isNil := d.list1(minMessageLen1)
	if isNil {
		return r
	}
	r.Messages = make([]Message, n)
	origin, dest := r.Origin, ""
	for i := range r.Messages {
		m := &r.Messages[i]
		m.ID = d.Str()
		origin = d.strLike(origin)
		dest = d.strLike(dest)
		m.Origin, m.Dest = origin, dest
		m.Precedence = d.Precedence()
		m.Seq = d.Uvarint()
		m.Key = d.Str()
		m.Payload = d.bytes1()
		m.Flags = d.legacyFlags()
		m.SubmittedAt = d.i64()
		m.ExpiresAt = d.i64()
	}
	return r
}

func (d *Decoder) markRead1() *MarkRead {
	mr := &MarkRead{}
	n, isNil := d.list1(minStringLen)
	if isNil {
		return mr
	}
	mr.IDs = make([]string, n)
	for i := range mr.IDs {
		mr.IDs[i] = d.Str()
	}
	return mr
}

func (d *Decoder) receipts1() *Receipts {
	r := &Receipts{From: d.Str()}
	n, isNil := d.list1(minReceiptLen1)
	if isNil {
		return r
	}
	r.Receipts = make([]Receipt, n)
	for i := range r.Receipts {
		rc := &r.Receipts[i]
		rc.RSeq = d.Uvarint()
		rc.Precedence = d.Precedence()
		rc.Seq = d.Uvarint()
		rc.ID = d.Str()
		rc.ReadAt = d.i64()
	}
	return r
}

// i64 reads 8 bytes big-endian.
func (d *Decoder) i64() int64 {
	if len(d.b) < 8 {
		d.fail("truncated")
		return 0
	}
	v := int64(be.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// list1 reads a version 1 list length (0: nil) that the rest of the
// input can hold at minLen bytes per element.
func (d *Decoder) list1(minLen int) (n int, isNil bool) {
	v := d.Uvarint()
	if d.err != nil || v == 0 {
		return 0, true
	}
	if v-1 > uint64(len(d.b)/minLen) {
		d.fail("list longer than the input")
		return 0, true
	}
	return int(v - 1), false
}

// bytes1 reads a version 1 byte string (0: nil) aliasing the input.
func (d *Decoder) bytes1() []byte {
	v := d.Uvarint()
	if d.err != nil || v == 0 {
		return nil
	}
	if v-1 > uint64(len(d.b)) {
		d.fail("length beyond the end of the input")
		return nil
	}
	p := d.b[: v-1 : v-1]
	d.b = d.b[v-1:]
	return p
}
