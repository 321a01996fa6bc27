package transport

import (
	"encoding/binary"

	"github.com/hotline-link/hotline/queue"
)

// Body encoding, in queue's encoding of messages and receipts
// (queue/encoding.go: uvarints, zig-zag varints, length-prefixed strings
// and bytes, lists as a count and the elements) with kind and precedence
// as one byte:
//
//	batch:   kind, from, to, precedence, list(message), list(receipt)
//	         [, proof]
//	         (a message's origin, dest and precedence are the batch's;
//	         proof only when not empty, so that a batch without one reads
//	         as it did before proofs existed)
//	ack:     last, leader, error [, code [, proof]]
//	         (code when it or a proof is not empty, proof only when not
//	         empty, so that an ack without them reads as it did before
//	         they existed)
//	call:    op, body
//	reply:   body, error [, code, leader]
//	         (code and leader only when either is not empty, so that a
//	         reply without them reads as it did before they existed)
//
// A decoder accepts exactly this: no trailing bytes, no truncation, counts
// that fit the remaining bytes and MaxBatchItems, valid kinds and
// precedences, only the items of the batch's kind, proofs of 1 to
// MaxProof bytes. Counts are checked
// before anything is allocated for them, so a batch body of n bytes
// decodes into at most n bytes of strings (payloads alias the body) plus
// MaxBatchItems × 128 bytes of structs. Whether the items are acceptable
// (ids, sequence numbers, sizes) is the receiver's business:
// queue.Receive.Validate and queue.Receipts.Validate.

// appendBatch encodes b, which must have passed b.check().
func appendBatch(buf []byte, b *Batch) []byte {
	buf = append(buf, byte(b.Kind))
	buf = queue.AppendString(buf, b.From)
	buf = queue.AppendString(buf, b.To)
	buf = append(buf, byte(b.Precedence))
	buf = queue.AppendMessages(buf, b.Messages)
	buf = queue.AppendReceipts(buf, b.Receipts)
	if len(b.Proof) > 0 {
		buf = queue.AppendBytes(buf, b.Proof)
	}
	return buf
}

// batchSizeHint estimates the encoded size of b.
func batchSizeHint(b *Batch) int {
	n := 24 + len(b.From) + len(b.To) + len(b.Proof)
	for i := range b.Messages {
		n += queue.MessageLen(&b.Messages[i])
	}
	for i := range b.Receipts {
		n += queue.ReceiptLen(&b.Receipts[i])
	}
	return n
}

func decodeBatch(p []byte) (*Batch, error) {
	d := queue.NewDecoder(p)
	b := &Batch{Kind: BatchKind(d.Byte())}
	b.From = d.Str()
	b.To = d.Str()
	b.Precedence = d.Precedence()
	b.Messages = d.Messages(queue.Channel{Origin: b.From, Dest: b.To, Precedence: b.Precedence}, MaxBatchItems)
	b.Receipts = d.Receipts(MaxBatchItems)
	if d.Err() == nil && !d.Empty() {
		if b.Proof = d.Bytes(); d.Err() == nil && len(b.Proof) == 0 {
			return nil, protocolErr("malformed batch: empty proof (it is left out when empty)")
		}
	}
	if err := d.Finish(); err != nil {
		return nil, protocolErr("malformed batch: %v", err)
	}
	if err := b.checkShape(); err != nil { // the decoder checked the items
		return nil, protocolErr("malformed batch: %v", err)
	}
	return b, nil
}

func appendAck(buf []byte, a *Ack) []byte {
	buf = binary.AppendUvarint(buf, a.Last)
	buf = queue.AppendString(buf, a.Leader)
	buf = queue.AppendString(buf, a.Error)
	if a.Code != "" || len(a.Proof) > 0 {
		buf = queue.AppendString(buf, a.Code)
	}
	if len(a.Proof) > 0 {
		buf = queue.AppendBytes(buf, a.Proof)
	}
	return buf
}

// ackSizeHint estimates the encoded size of a.
func ackSizeHint(a *Ack) int {
	return 24 + len(a.Leader) + len(a.Error) + len(a.Code) + len(a.Proof)
}

func decodeAck(p []byte) (*Ack, error) {
	d := queue.NewDecoder(p)
	a := &Ack{Last: d.Uvarint(), Leader: d.Str(), Error: d.Str()}
	if d.Err() == nil && !d.Empty() {
		a.Code = d.Str()
		if d.Err() == nil && !d.Empty() {
			if a.Proof = d.Bytes(); d.Err() == nil && len(a.Proof) == 0 {
				return nil, protocolErr("malformed ack: empty proof (it is left out when empty)")
			}
		}
		if d.Err() == nil && a.Code == "" && len(a.Proof) == 0 {
			return nil, protocolErr("malformed ack: empty code (it is left out when empty)")
		}
	}
	if len(a.Proof) > MaxProof {
		return nil, protocolErr("malformed ack: proof of %d bytes (at most %d)", len(a.Proof), MaxProof)
	}
	if err := d.Finish(); err != nil {
		return nil, protocolErr("malformed ack: %v", err)
	}
	return a, nil
}

func appendCall(buf []byte, c *Call) []byte {
	buf = queue.AppendString(buf, c.Op)
	return queue.AppendBytes(buf, c.Body)
}

func decodeCall(p []byte) (*Call, error) {
	d := queue.NewDecoder(p)
	c := &Call{Op: d.Str(), Body: d.Bytes()}
	if err := d.Finish(); err != nil {
		return nil, protocolErr("malformed call: %v", err)
	}
	return c, nil
}

func appendReply(buf []byte, r *Reply) []byte {
	buf = queue.AppendBytes(buf, r.Body)
	buf = queue.AppendString(buf, r.Error)
	if r.Code != "" || r.Leader != "" {
		buf = queue.AppendString(buf, r.Code)
		buf = queue.AppendString(buf, r.Leader)
	}
	return buf
}

func decodeReply(p []byte) (*Reply, error) {
	d := queue.NewDecoder(p)
	r := &Reply{Body: d.Bytes(), Error: d.Str()}
	if d.Err() == nil && !d.Empty() {
		r.Code, r.Leader = d.Str(), d.Str()
		if d.Err() == nil && r.Code == "" && r.Leader == "" {
			return nil, protocolErr("malformed reply: empty code and leader (they are left out when empty)")
		}
	}
	if err := d.Finish(); err != nil {
		return nil, protocolErr("malformed reply: %v", err)
	}
	return r, nil
}
