package trust

import (
	"crypto/sha256"
	"encoding/binary"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hotline-link/hotline/queue"
)

// Leaves are the hashes statements sign (through a Merkle root). Each is
// tlog's record hash of a canonical encoding that names what it is about,
// so a leaf of one kind never reads as another's.

// MessageLeaf is the leaf of a message: its id, channel, sequence, flags,
// times, the SHA-256 of its payload as carried (the sealed envelope,
// which holds the plaintext's hash; empty for a tombstone) and, when it
// has any, its attributes (destination mailbox, sending mailbox, media
// type; a message without them has the leaf it had before mailboxes
// existed, and the flag bit 31 in the leaf tells the two apart). A message
// statement (KindMessages) and a delivered receipt (KindDelivered) both
// sign these leaves.
func MessageLeaf(m *queue.Message) Hash {
	return MessageLeafOfHash(m, sha256.Sum256(m.Payload))
}

// MessageLeafOfHash is MessageLeaf of the message whose metadata is m's
// and whose payload (as carried) has SHA-256 payloadSum; m.Payload is not
// read, so a verifier that holds only the hash recomputes the leaf.
func MessageLeafOfHash(m *queue.Message, payloadSum [sha256.Size]byte) Hash {
	b := make([]byte, 0, 128+len(m.ID)+len(m.Origin)+len(m.Dest))
	b = append(b, "hotline/message/v1\x00"...)
	b = appendString(b, m.ID)
	b = appendString(b, m.Origin)
	b = appendString(b, m.Dest)
	b = append(b, byte(m.Precedence))
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	flags := m.Flags &^ leafAttrs
	if m.HasAttrs() {
		flags |= leafAttrs
	}
	b = binary.BigEndian.AppendUint32(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(m.SubmittedAt))
	b = binary.BigEndian.AppendUint64(b, uint64(m.ExpiresAt))
	b = append(b, payloadSum[:]...)
	if m.HasAttrs() {
		b = appendString(b, m.Mailbox)
		b = appendString(b, m.From)
		b = appendString(b, m.Type)
	}
	return tlog.RecordHash(b)
}

// leafAttrs is the flag bit set in a message leaf that ends with the
// message's attributes.
const leafAttrs uint32 = 1 << 31

// ReceiptLeaf is the leaf of a read receipt that site reader sends to
// site origin (the message's origin): the receipt's RSeq, the message's
// id, precedence and sequence, and when it was read. A refusal receipt's
// leaf ends with the reason; a read receipt has the leaf it had before
// refusals existed (the leaf's length tells the two apart: a reason is
// never empty).
func ReceiptLeaf(reader, origin string, r *queue.Receipt) Hash {
	b := make([]byte, 0, 96+len(r.ID)+len(reader)+len(origin)+len(r.Refused))
	b = append(b, "hotline/read/v1\x00"...)
	b = appendString(b, reader)
	b = appendString(b, origin)
	b = binary.BigEndian.AppendUint64(b, r.RSeq)
	b = appendString(b, r.ID)
	b = append(b, byte(r.Precedence))
	b = binary.BigEndian.AppendUint64(b, r.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(r.ReadAt))
	if r.Refused != "" {
		b = appendString(b, r.Refused)
	}
	return tlog.RecordHash(b)
}

// MessageLeaves returns the leaves of ms, in order.
func MessageLeaves(ms []queue.Message) []Hash {
	out := make([]Hash, len(ms))
	for i := range ms {
		out[i] = MessageLeaf(&ms[i])
	}
	return out
}

// ReceiptLeaves returns the leaves of rs, in order.
func ReceiptLeaves(reader, origin string, rs []queue.Receipt) []Hash {
	out := make([]Hash, len(rs))
	for i := range rs {
		out[i] = ReceiptLeaf(reader, origin, &rs[i])
	}
	return out
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}
