package queue

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// queueReceipt queues rc (without RSeq) to origin with the next RSeq.
func (a *applier) queueReceipt(origin string, rc Receipt) error {
	ok := []byte(origin)
	last, acked := getPair(a.rcptQueues.Get(ok))
	rc.RSeq = last + 1
	q, err := seqBucket(a.rcptOut, ok)
	if err != nil {
		return err
	}
	if err := q.Put(u64(rc.RSeq), encodeReceipt(ok, rc)); err != nil {
		return err
	}
	return a.rcptQueues.Put(ok, pair(rc.RSeq, acked))
}

// receipts applies read receipts from reader site r.From, from its last
// applied RSeq + 1; see OpReceipts.
func (a *applier) receipts(now int64, r *Receipts) (*ReceiptsResult, error) {
	from := []byte(r.From)
	last := getU64(a.rcptIn, from)
	start := last
	if len(r.Receipts) > 0 {
		var err error
		if last, err = a.jumpReceipts(from, last, r.Receipts[0].RSeq); err != nil { // backup.go
			return nil, err
		}
	}
	for _, rc := range r.Receipts {
		if rc.RSeq <= last {
			continue
		}
		if rc.RSeq > last+1 {
			break
		}
		last = rc.RSeq
		if err := a.applyReceipt(now, r.From, rc); err != nil {
			return nil, err
		}
	}
	if err := a.receiptsEvidence(r, last); err != nil { // evidence_store.go
		return nil, err
	}
	if last != start {
		if err := a.rcptIn.Put(from, u64(last)); err != nil {
			return nil, err
		}
	}
	return &ReceiptsResult{Last: last}, nil
}

// applyReceipt marks outbound message rc.Seq of channel (site, reader,
// rc.Precedence) read. A receipt for an unknown message, or naming another
// message ID, changes nothing.
func (a *applier) applyReceipt(now int64, reader string, rc Receipt) error {
	if !rc.Precedence.Valid() {
		return nil
	}
	ck := chanKey(reader, rc.Precedence)
	msgs := a.out.Bucket(ck)
	if msgs == nil {
		return nil
	}
	k := u64(rc.Seq)
	v := msgs.Get(k)
	if v == nil {
		return nil
	}
	l := loc{finOut, ck, rc.Seq}
	rec, err := decodeMeta(v, l)
	if err != nil {
		return err
	}
	if (rc.ID != "" && rc.ID != rec.id) || rec.state == Read || rec.state == Refused {
		return nil
	}
	if rec.state == Queued {
		if err := a.unexpire(v, rc.Seq, ck); err != nil {
			return err
		}
	}
	readAt := rc.ReadAt
	if readAt == 0 {
		readAt = now
	}
	if rc.Refused != "" {
		return a.applyRefusal(now, ck, rc, v, readAt)
	}
	nv, err := patchRecord(v, l, Read, offRead, readAt)
	if err != nil {
		return err
	}
	if rec.deliveredAt == 0 {
		if nv, err = patchRecord(nv, l, Read, offDelivered, readAt); err != nil {
			return err
		}
	}
	// Acknowledged messages move in the finalized index to ReadAt.
	_, acked := getPair(a.outChans.Get(ck))
	if err := a.reindex(finOut, ck, rc.Seq, acked, v, nv); err != nil {
		return err
	}
	msgs.FillPercent = seqFill
	if err := a.auditMsg(AuditRead, true, now, ck, rc.Seq, rec.id, rec.flags, nil); err != nil {
		return err
	}
	if err := a.unreadPut(false, finOut, ck, rc.Seq, &rec); err != nil { // unread.go
		return err
	}
	return msgs.Put(k, nv)
}

// receiptsAcked drops receipts the origin acknowledged.
func (a *applier) receiptsAcked(ack *ReceiptsAcked) error {
	ok := []byte(ack.Origin)
	if a.fenced(fenceRcptOut, ok) {
		return a.resyncReceipts(ack.Origin, ack.UpTo) // backup.go
	}
	last, acked := getPair(a.rcptQueues.Get(ok))
	upTo := min(ack.UpTo, last)
	if upTo <= acked {
		return nil
	}
	if q := a.rcptOut.Bucket(ok); q != nil {
		for rseq := acked + 1; rseq <= upTo; rseq++ {
			if err := q.Delete(u64(rseq)); err != nil {
				return err
			}
		}
	}
	return a.rcptQueues.Put(ok, pair(last, upTo))
}

// PendingReceipts returns the receipts queued to origin with RSeq greater
// than after and not yet acknowledged, ascending, at most max of them
// (max <= 0: no limit).
func (s *Store) PendingReceipts(origin string, after uint64, max int) ([]Receipt, error) {
	var out []Receipt
	ok := []byte(origin)
	err := s.view(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketRcptOut).Bucket(ok)
		if q == nil {
			return nil
		}
		c := q.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
			if max > 0 && len(out) >= max {
				break
			}
			rc, err := decodeReceipt(ok, be.Uint64(k), v)
			if err != nil {
				return err
			}
			out = append(out, rc)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: pending receipts to %s: %w", origin, s.note(err))
	}
	return out, nil
}

// ReceiptQueues lists the receipt queues to every origin site that had a
// receipt, sorted by origin. It returns nil on a closed store.
func (s *Store) ReceiptQueues() []ReceiptQueue {
	var out []ReceiptQueue
	_ = s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRcptQueues).ForEach(func(k, v []byte) error {
			last, acked := getPair(v)
			out = append(out, ReceiptQueue{Origin: string(k), Last: last, Acked: acked})
			return nil
		})
	})
	return out
}
