package queue

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Bounds of a command's evidence, checked when it is encoded, decoded,
// validated and applied.
const (
	// MaxStatementLen is the longest signed statement (Evidence.Statement)
	// a command may carry. A hybrid-signed statement of package
	// transport/trust is about 3.5 KiB.
	MaxStatementLen = 16 << 10
	// MaxEvidenceLeaves is the most leaves an Evidence may carry: a
	// batch's items (package transport's MaxBatchItems, which this
	// package cannot import).
	MaxEvidenceLeaves = 10000
	// MaxDeliveredProofs is the most proofs a DeliveredCmd may carry:
	// a committer with more waiting commits them in several commands.
	MaxDeliveredProofs = 64
)

// Proof kinds (Proof.Kind), in the order Store.Proofs returns them.
const (
	ProofSent      = "sent"      // the origin's own statement of the batch it sent (origin side)
	ProofReceived  = "received"  // the origin's statement of the batch, as received (destination side)
	ProofDelivered = "delivered" // the destination's statement that it holds the message (origin side)
	ProofRead      = "read"      // the reader site's receipt statement (origin side)
)

// Proof is one signed statement about a message: the statement (opaque
// here; package transport/trust decodes and checks it), the message's
// leaf and all the statement's leaves, from which an inclusion proof of
// leaf Index is computed.
type Proof struct {
	Kind      string     `json:"kind"`
	Statement []byte     `json:"statement"`
	Index     int        `json:"index"`
	Leaves    [][32]byte `json:"leaves"`
}

// fault says why e is not a well-formed evidence (nil if it is): a
// statement of 1 to MaxStatementLen bytes, 1 to MaxEvidenceLeaves leaves,
// and a sequence range First..First+len-1 within 1..MaxUint64. With
// items >= 0 it must also cover exactly the command's items, the first
// of which has sequence (RSeq) first. The callers wrap ErrInvalid.
func (e *Evidence) fault(items int, first uint64) error {
	n := len(e.Leaves)
	switch {
	case len(e.Statement) == 0 || len(e.Statement) > MaxStatementLen:
		return fmt.Errorf("statement of %d bytes (1 to %d)", len(e.Statement), MaxStatementLen)
	case n == 0 || n > MaxEvidenceLeaves:
		return fmt.Errorf("%d leaves (1 to %d)", n, MaxEvidenceLeaves)
	case e.First == 0 || e.First-1 > math.MaxUint64-uint64(n):
		return fmt.Errorf("%d leaves from sequence %d: out of range", n, e.First)
	case items >= 0 && n != items:
		return fmt.Errorf("%d leaves for %d items", n, items)
	case items > 0 && e.First != first:
		return fmt.Errorf("leaves start at sequence %d, the items at %d", e.First, first)
	}
	return nil
}

// itemsFault checks the evidence e (nil: none) of a batch of items whose
// first has sequence (RSeq) first: a leaf per item.
func itemsFault(e *Evidence, items int, first uint64) error {
	if e == nil {
		return nil
	}
	if err := e.fault(items, first); err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	return nil
}

// evidenceFault: a Receive's evidence has a leaf per message.
func (r *Receive) evidenceFault() error {
	var first uint64
	if len(r.Messages) > 0 {
		first = r.Messages[0].Seq
	}
	return itemsFault(r.Evidence, len(r.Messages), first)
}

// evidenceFault: a Receipts' evidence has a leaf per receipt.
func (r *Receipts) evidenceFault() error {
	var first uint64
	if len(r.Receipts) > 0 {
		first = r.Receipts[0].RSeq
	}
	return itemsFault(r.Evidence, len(r.Receipts), first)
}

// evidenceFault: a Delivered's proofs (at most MaxDeliveredProofs) each
// have the destination's evidence; ordered by their first message, each
// continues the run before it (First at most its end + 1) and extends it,
// and the run ends at UpTo: a Delivered records no message without its
// proof. A batch's own statement (Sent) covers a range of its own.
func (d *DeliveredCmd) evidenceFault() error {
	if len(d.Proofs) > MaxDeliveredProofs {
		return fmt.Errorf("%d proofs (at most %d)", len(d.Proofs), MaxDeliveredProofs)
	}
	var end uint64
	for i, p := range d.Proofs {
		if p.Evidence == nil {
			return fmt.Errorf("proof %d: no evidence", i)
		}
		if err := p.Evidence.fault(-1, 0); err != nil {
			return fmt.Errorf("proof %d evidence: %w", i, err)
		}
		if p.Sent != nil {
			if err := p.Sent.fault(-1, 0); err != nil {
				return fmt.Errorf("proof %d sent evidence: %w", i, err)
			}
		}
		first, last := p.Evidence.First, p.Evidence.last()
		if i > 0 && (first > end+1 || last <= end) {
			return fmt.Errorf("proof %d covers %d..%d, which does not continue the run ending at %d", i, first, last, end)
		}
		end = last
	}
	if len(d.Proofs) > 0 && end != d.UpTo {
		return fmt.Errorf("proofs end at %d, not at up_to %d", end, d.UpTo)
	}
	return nil
}

// last is the sequence of e's last leaf (e passed fault).
func (e *Evidence) last() uint64 { return e.First + uint64(len(e.Leaves)) - 1 }

// evidenceFault says why the evidence of one of c's bodies is malformed
// (nil if none is). Encode, DecodeCommand and Apply refuse such a
// command (wrapping ErrInvalid), so it changes nothing.
func (c *Command) evidenceFault() error {
	if r := c.Receive; r != nil {
		if err := r.evidenceFault(); err != nil {
			return fmt.Errorf("receive %w", err)
		}
	}
	if r := c.Receipts; r != nil {
		if err := r.evidenceFault(); err != nil {
			return fmt.Errorf("receipts %w", err)
		}
	}
	if d := c.Delivered; d != nil {
		if err := d.evidenceFault(); err != nil {
			return fmt.Errorf("delivered %w", err)
		}
	}
	return nil
}

// The evidence section of a version 4 log entry, before version 3's
// body (so that the two versions share the body's code):
//
//	evidence = present:byte, then each present part in bit order:
//	           0 Receive.Evidence:one, 1 Receipts.Evidence:one,
//	           2 Delivered.Proofs:proofs
//	proofs   = count:uvarint (1 to MaxDeliveredProofs), then each:
//	           sent:byte (0 or 1) evidence:one [sent:one]
//	one      = statement:bytes first:uvarint leaves:list(32 bytes)
//
// A bit may be set only when its body is present; statements and leaf
// lists are never empty (nil evidence is a clear bit), and the evidence
// must pass evidenceFault.
const (
	evBitReceive = 1 << iota
	evBitReceipts
	evBitDelivered
	evBitAll = 1<<iota - 1
)

// evidences returns c's single evidences (Receive's, Receipts') in bit
// order, nil where absent.
func (c *Command) evidences() [2]*Evidence {
	var e [2]*Evidence
	if c.Receive != nil {
		e[0] = c.Receive.Evidence
	}
	if c.Receipts != nil {
		e[1] = c.Receipts.Evidence
	}
	return e
}

// proofs is c's Delivered proofs (nil: none).
func (c *Command) proofs() []DeliveredProof {
	if c.Delivered == nil {
		return nil
	}
	return c.Delivered.Proofs
}

// appendEvidence appends c's evidence section.
func (c *Command) appendEvidence(b []byte) []byte {
	evs := c.evidences()
	var present byte
	for i, e := range evs {
		if e != nil {
			present |= 1 << i
		}
	}
	ps := c.proofs()
	if len(ps) > 0 {
		present |= evBitDelivered
	}
	b = append(b, present)
	for _, e := range evs {
		if e != nil {
			b = appendOneEvidence(b, e)
		}
	}
	if len(ps) > 0 {
		b = binary.AppendUvarint(b, uint64(len(ps)))
		for _, p := range ps {
			if p.Sent == nil {
				b = appendOneEvidence(append(b, 0), p.Evidence)
			} else {
				b = appendOneEvidence(appendOneEvidence(append(b, 1), p.Evidence), p.Sent)
			}
		}
	}
	return b
}

func appendOneEvidence(b []byte, e *Evidence) []byte {
	b = AppendBytes(b, e.Statement)
	b = binary.AppendUvarint(b, e.First)
	b = binary.AppendUvarint(b, uint64(len(e.Leaves)))
	for i := range e.Leaves {
		b = append(b, e.Leaves[i][:]...)
	}
	return b
}

func oneEvidenceLen(e *Evidence) int {
	return stringLen(len(e.Statement)) + uvarintLen(e.First) + uvarintLen(uint64(len(e.Leaves))) + 32*len(e.Leaves)
}

// evidenceLen is the size of c's evidence section.
func (c *Command) evidenceLen() int {
	n := 1
	for _, e := range c.evidences() {
		if e != nil {
			n += oneEvidenceLen(e)
		}
	}
	if ps := c.proofs(); len(ps) > 0 {
		n += uvarintLen(uint64(len(ps)))
		for _, p := range ps {
			n += 1 + oneEvidenceLen(p.Evidence)
			if p.Sent != nil {
				n += oneEvidenceLen(p.Sent)
			}
		}
	}
	return n
}

// decodeCommand4 reads the body of version 4: the evidence section, then
// version 3's body.
func decodeCommand4(d *Decoder) (*Command, error) {
	present := d.Byte()
	if d.err == nil && present&^evBitAll != 0 {
		d.fail("unknown evidence 0x%02x", present)
	}
	var evs [2]*Evidence
	for i := range evs {
		if present&(1<<i) != 0 {
			evs[i] = d.oneEvidence()
		}
	}
	var ps []DeliveredProof
	if present&evBitDelivered != 0 {
		ps = d.deliveredProofs()
	}
	if d.err != nil {
		return nil, d.err
	}
	c, err := decodeCommand3(d)
	if err != nil {
		return nil, err
	}
	for i, e := range evs {
		switch {
		case e == nil:
		case i == 0 && c.Receive != nil:
			c.Receive.Evidence = e
		case i == 1 && c.Receipts != nil:
			c.Receipts.Evidence = e
		default:
			return nil, fmt.Errorf("evidence 0x%02x for an absent body", 1<<i)
		}
	}
	if ps != nil {
		if c.Delivered == nil {
			return nil, fmt.Errorf("evidence 0x%02x for an absent body", evBitDelivered)
		}
		c.Delivered.Proofs = ps
	}
	return c, c.evidenceFault()
}

// deliveredProofs reads a Delivered's proofs, checking their count
// before it allocates.
func (d *Decoder) deliveredProofs() []DeliveredProof {
	n := d.Uvarint()
	if d.err == nil && (n == 0 || n > MaxDeliveredProofs) {
		d.fail("%d proofs (at most %d)", n, MaxDeliveredProofs)
	}
	if d.err != nil {
		return nil
	}
	ps := make([]DeliveredProof, n)
	for i := range ps {
		sent := d.Byte()
		if d.err == nil && sent > 1 {
			d.fail("delivery proof %d: sent flag %d", i, sent)
		}
		ps[i].Evidence = d.oneEvidence()
		if sent == 1 {
			ps[i].Sent = d.oneEvidence()
		}
		if d.err != nil {
			return nil
		}
	}
	return ps
}

// oneEvidence reads one evidence, checking the bounds before it
// allocates.
func (d *Decoder) oneEvidence() *Evidence {
	e := &Evidence{Statement: d.Bytes()}
	if d.err == nil && len(e.Statement) > MaxStatementLen {
		d.fail("statement of %d bytes exceeds the limit of %d", len(e.Statement), MaxStatementLen)
	}
	e.First = d.Uvarint()
	if n := d.Count(32, MaxEvidenceLeaves); n > 0 {
		e.Leaves = make([][32]byte, n)
		for i := range e.Leaves {
			copy(e.Leaves[i][:], d.b[:32])
			d.b = d.b[32:]
		}
	}
	return e
}
