package queue

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Refusals at the destination. The node that takes an inbound batch
// decides which of its messages this site refuses (a mailbox it does not
// have, a type the mailbox does not take) and says so in the command
// (Receive.Refused), so that every node applies the same decision. Apply
// stores a refused message like any other (its sequence counts, a resend
// is a duplicate, the delivery proof covers it) in state Refused, never
// in the inbox, and queues a refusal receipt (Receipt.Refused) to its
// origin, which sets the outbound message Refused with the reason.

// Refusal marks message Index of a Receive as refused for Reason.
type Refusal struct {
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

// MaxRefusalLen is the longest refusal reason, in bytes.
const MaxRefusalLen = 256

// bodyRefused is the body bit of Receive.Refused in the log entry format
// (command_codec.go), after MarkReadBy's:
//
//	Refused = refusals:list(index:uvarint reason:string)
//
// present exactly when a Receive has refusals, in ascending index order.
const bodyRefused = 1 << 12

// minRefusalLen is the smallest encoded refusal: an index and an empty
// reason (which the apply refuses).
const minRefusalLen = 2

// validRefusals is Receive.valid's check of r.Refused: indices of r's
// messages, ascending, none a tombstone, link-test or drill message (they
// never enter an inbox, so there is nothing to refuse), each with a
// printable reason of 1 to MaxRefusalLen bytes.
func (r *Receive) validRefusals() error {
	prev := -1
	for i, f := range r.Refused {
		switch {
		case f.Index <= prev || f.Index >= len(r.Messages):
			return fmt.Errorf("%w: refusal %d: index %d is not ascending within the batch's %d messages", ErrInvalid, i, f.Index, len(r.Messages))
		case f.Reason == "":
			return fmt.Errorf("%w: refusal %d: empty reason", ErrInvalid, i)
		case r.Messages[f.Index].Flags&(FlagTombstone|FlagLinkTest|FlagDrill) != 0:
			return fmt.Errorf("%w: refusal %d: message %d (id %q) is not for an inbox", ErrInvalid, i, f.Index, r.Messages[f.Index].ID)
		}
		if err := validText("refusal reason", f.Reason, MaxRefusalLen); err != nil {
			return fmt.Errorf("refusal %d: %w", i, err)
		}
		prev = f.Index
	}
	return nil
}

// refusal returns the reason message i of r is refused for, or "". next
// is the position in r.Refused to look from (its indices ascend), advanced
// past refusals of messages before i.
func (r *Receive) refusal(i int, next *int) string {
	for *next < len(r.Refused) && r.Refused[*next].Index < i {
		*next++
	}
	if *next < len(r.Refused) && r.Refused[*next].Index == i {
		return r.Refused[*next].Reason
	}
	return ""
}

func (r *Receive) hasRefused() bool { return r != nil && len(r.Refused) > 0 }

func appendRefused(b []byte, r *Receive) []byte {
	if !r.hasRefused() {
		return b
	}
	b = binary.AppendUvarint(b, uint64(len(r.Refused)))
	for _, f := range r.Refused {
		b = binary.AppendUvarint(b, uint64(f.Index))
		b = AppendString(b, f.Reason)
	}
	return b
}

func refusedSize(r *Receive) int {
	if !r.hasRefused() {
		return 0
	}
	n := uvarintLen(uint64(len(r.Refused)))
	for _, f := range r.Refused {
		n += uvarintLen(uint64(f.Index)) + stringLen(len(f.Reason))
	}
	return n
}

// refusalsFault reports a refusal that has no encoding (a negative or
// huge index); the rest is the apply's check (validRefusals).
func (r *Receive) refusalsFault() error {
	if r == nil {
		return nil
	}
	for i, f := range r.Refused {
		if f.Index < 0 || f.Index > math.MaxInt32 {
			return fmt.Errorf("refusal %d: index %d", i, f.Index)
		}
	}
	return nil
}

// decodeRefused reads what appendRefused writes; the indices' order and
// range are the apply's check (validRefusals), a non-empty list the
// decoder's (canonical: a Receive without refusals has no such body).
func decodeRefused(d *Decoder, c *Command, bodies uint64) {
	if bodies&bodyRefused == 0 {
		return
	}
	if c.Receive == nil {
		d.fail("refusals without a receive body")
		return
	}
	n := d.Count(minRefusalLen, 0)
	if d.Err() == nil && n == 0 {
		d.fail("empty refusals body")
		return
	}
	c.Receive.Refused = make([]Refusal, n)
	for i := range c.Receive.Refused {
		f := &c.Receive.Refused[i]
		idx := d.Uvarint()
		if idx > math.MaxInt32 {
			d.fail("refusal %d: index %d", i, idx)
			return
		}
		f.Index, f.Reason = int(idx), d.limited("refusal reason", MaxRefusalLen)
	}
	if d.Err() != nil {
		c.Receive.Refused = nil
	}
}

// applyRefusal sets outbound message rc.Seq of channel ck, stored as v
// (Queued, Delivered or Expired), Refused for rc.Refused at refusedAt:
// the record is rewritten with the reason (a version 3 record, codec.go).
func (a *applier) applyRefusal(now int64, ck []byte, rc Receipt, v []byte, refusedAt int64) error {
	l := loc{finOut, ck, rc.Seq}
	rec, err := parseRecord(v, l, true, true)
	if err != nil {
		return err
	}
	rec.state, rec.readAt, rec.refused = Refused, refusedAt, rc.Refused
	if rec.deliveredAt == 0 {
		rec.deliveredAt = refusedAt // the destination holds it
	}
	nv := rec.encode(l)
	_, acked := getPair(a.outChans.Get(ck))
	if err := a.reindex(finOut, ck, rc.Seq, acked, v, nv); err != nil {
		return err
	}
	if err := a.auditMsgDetail(AuditRefused, true, now, ck, rc.Seq, rec.id, rec.flags, nil, rc.Refused); err != nil {
		return err
	}
	if err := a.unreadPut(false, finOut, ck, rc.Seq, &rec); err != nil { // unread.go: refused is final
		return err
	}
	msgs := a.out.Bucket(ck)
	msgs.FillPercent = seqFill
	return msgs.Put(u64(rc.Seq), nv)
}
