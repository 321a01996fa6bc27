package queue

import (
	bolt "go.etcd.io/bbolt"
	"reflect"
	"strings"
	"testing"
)

// TestTwoSiteFlow carries messages from alpha to bravo and receipts back,
// the way the forwarder and receiver drive the two state machines.
func TestTwoSiteFlow(t *testing.T) {
	alpha, _ := openStore(t, "alpha")
	bravo, _ := openStore(t, "bravo")
	var la, lb cmdLog
	la.apply(t, alpha, submitCmd(t1, item("m1", "bravo", Priority, "one"), item("m2", "bravo", Priority, "two")))

	// Forward: alpha's pending batch becomes bravo's Receive; bravo's Last is the ack.
	msgs, err := alpha.Pending("bravo", Priority, 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	res := lb.apply(t, bravo, receiveCmd(t2, "alpha", Priority, msgs...))
	la.apply(t, alpha, deliveredCmd(t2+5, "bravo", Priority, res[0].Receive.Last))
	if st := mustStatus(t, alpha, "m2"); st.State != Delivered || st.DeliveredAt != t2+5 {
		t.Fatalf("alpha m2 = %+v", st)
	}
	if st := mustStatus(t, bravo, "m2"); st.State != Delivered || st.DeliveredAt != t2 || st.SubmittedAt != t1 {
		t.Fatalf("bravo m2 = %+v", st)
	}

	// A client at bravo reads m2; its receipt travels back.
	lb.apply(t, bravo, markReadCmd(t3, "m2"))
	rcs, _ := bravo.PendingReceipts("alpha", 0, 10)
	res = la.apply(t, alpha, receiptsCmd(t3+5, "bravo", rcs...))
	if res[0].Receipts.Last != 1 {
		t.Fatalf("receipts result = %+v", res[0].Receipts)
	}
	lb.apply(t, bravo, receiptsAckedCmd(t3+9, "alpha", res[0].Receipts.Last))

	if st := mustStatus(t, alpha, "m2"); st.State != Read || st.ReadAt != t3 || st.DeliveredAt != t2+5 {
		t.Fatalf("alpha m2 after receipt = %+v", st)
	}
	if st := mustStatus(t, alpha, "m1"); st.State != Delivered {
		t.Fatalf("alpha m1 = %+v", st)
	}
	if rcs, _ := bravo.PendingReceipts("alpha", 0, 10); len(rcs) != 0 {
		t.Fatalf("receipts still queued after ack: %+v", rcs)
	}
	if q := bravo.ReceiptQueues(); !reflect.DeepEqual(q, []ReceiptQueue{{Origin: "alpha", Last: 1, Acked: 1}}) {
		t.Fatalf("queues = %+v", q)
	}
}

func TestReceiptsSequencing(t *testing.T) {
	rc := func(rseq, seq uint64, id string) Receipt {
		return Receipt{RSeq: rseq, Precedence: Routine, Seq: seq, ID: id, ReadAt: t2 + int64(rseq)}
	}
	tests := []struct {
		name     string
		batches  [][]Receipt
		wantLast []uint64
		wantRead []string // outbound IDs in state Read at the end
	}{
		{"in order", [][]Receipt{{rc(1, 1, "m1"), rc(2, 3, "m3")}}, []uint64{2}, []string{"m1", "m3"}},
		{"duplicate", [][]Receipt{{rc(1, 1, "m1")}, {rc(1, 1, "m1"), rc(2, 2, "m2")}}, []uint64{1, 2}, []string{"m1", "m2"}},
		{"gap stops", [][]Receipt{{rc(1, 1, "m1"), rc(3, 3, "m3")}}, []uint64{1}, []string{"m1"}},
		{"gap first", [][]Receipt{{rc(2, 2, "m2")}}, []uint64{0}, nil},
		{"unknown message advances", [][]Receipt{{rc(1, 99, "zz"), rc(2, 2, "m2")}}, []uint64{2}, []string{"m2"}},
		{"mismatched id advances", [][]Receipt{{rc(1, 1, "m2"), rc(2, 3, "m3")}}, []uint64{2}, []string{"m3"}},
		{"bad precedence advances", [][]Receipt{{{RSeq: 1, Precedence: 7, Seq: 1, ID: "m1"}, rc(2, 2, "m2")}}, []uint64{2}, []string{"m2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openStore(t, "alpha")
			var l cmdLog
			l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "1"), item("m2", "bravo", Routine, "2"), item("m3", "bravo", Routine, "3")))
			for i, b := range tc.batches {
				cmd := receiptsCmd(t3, "bravo", b...)
				if strings.Contains(tc.name, "precedence") {
					// Precedence 7 cannot be JSON-encoded: apply the command directly.
					res, err := s.applyDirect(t, cmd)
					if err != nil || res.Receipts.Last != tc.wantLast[i] {
						t.Fatalf("batch %d: %+v %v", i, res, err)
					}
					continue
				}
				res := l.apply(t, s, cmd)
				if res[0].Receipts.Last != tc.wantLast[i] {
					t.Fatalf("batch %d: last = %d, want %d", i, res[0].Receipts.Last, tc.wantLast[i])
				}
			}
			var read []string
			for _, id := range []string{"m1", "m2", "m3"} {
				st := mustStatus(t, s, id)
				if st.State == Read {
					read = append(read, id)
					if st.ReadAt != st.DeliveredAt || st.ReadAt <= t2 {
						t.Errorf("%s: read at %d delivered at %d", id, st.ReadAt, st.DeliveredAt)
					}
				} else if st.ReadAt != 0 || st.DeliveredAt != 0 {
					t.Errorf("%s: not read but %+v", id, st)
				}
			}
			if !reflect.DeepEqual(read, tc.wantRead) {
				t.Fatalf("read = %v, want %v", read, tc.wantRead)
			}
		})
	}
}

// applyDirect applies one command in its own transaction without going
// through the log encoding, for commands JSON cannot carry.
func (s *Store) applyDirect(t testing.TB, c Command) (Result, error) {
	t.Helper()
	var res Result
	err := s.h.db.Update(func(tx *bolt.Tx) error {
		a := newApplier(tx, s.site)
		var err error
		if res, err = a.applySafe(&c); err != nil {
			return err
		}
		return a.aud.flush(a.meta)
	})
	return res, err
}

func TestReceiptBeforeAckAndLaterAck(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "1"), item("m2", "bravo", Routine, "2")))
	// The ack was lost, the receipt for m2 arrives first.
	l.apply(t, s, receiptsCmd(t3, "bravo", Receipt{RSeq: 1, Precedence: Routine, Seq: 2, ID: "m2", ReadAt: t2}))
	st := mustStatus(t, s, "m2")
	if st.State != Read || st.ReadAt != t2 || st.DeliveredAt != t2 {
		t.Fatalf("m2 = %+v", st)
	}
	l.apply(t, s, deliveredCmd(t4, "bravo", Routine, 2))
	if st := mustStatus(t, s, "m2"); st.State != Read || st.DeliveredAt != t2 {
		t.Fatalf("ack changed a read message: %+v", st)
	}
	if st := mustStatus(t, s, "m1"); st.State != Delivered || st.DeliveredAt != t4 {
		t.Fatalf("m1 = %+v", st)
	}
	// A receipt without ReadAt takes the command's time.
	l.apply(t, s, receiptsCmd(t4+1, "bravo", Receipt{RSeq: 2, Precedence: Routine, Seq: 1, ID: "m1"}))
	if st := mustStatus(t, s, "m1"); st.State != Read || st.ReadAt != t4+1 || st.DeliveredAt != t4 {
		t.Fatalf("m1 = %+v", st)
	}
}

func TestReceiptsAcked(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	var msgs []Message
	var ids []string
	for seq := uint64(1); seq <= 4; seq++ {
		id := "m" + string(rune('0'+seq))
		msgs = append(msgs, inMsg("alpha", Routine, seq, id, "x"))
		ids = append(ids, id)
	}
	l.apply(t, s, receiveCmd(t1, "alpha", Routine, msgs...), markReadCmd(t2, ids...))
	rseqs := func(after uint64, max int) []uint64 {
		rcs, err := s.PendingReceipts("alpha", after, max)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, rc := range rcs {
			out = append(out, rc.RSeq)
		}
		return out
	}
	if got := rseqs(0, 0); !reflect.DeepEqual(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("pending = %v", got)
	}
	if got := rseqs(1, 2); !reflect.DeepEqual(got, []uint64{2, 3}) {
		t.Fatalf("pending(1, 2) = %v", got)
	}
	steps := []struct {
		upTo      uint64
		wantAcked uint64
		wantLeft  []uint64
	}{
		{2, 2, []uint64{3, 4}},
		{1, 2, []uint64{3, 4}},
		{9, 4, nil},
	}
	for _, st := range steps {
		l.apply(t, s, receiptsAckedCmd(t3, "alpha", st.upTo))
		if q := s.ReceiptQueues()[0]; q.Acked != st.wantAcked || q.Last != 4 {
			t.Fatalf("ack %d: queue %+v", st.upTo, q)
		}
		if got := rseqs(0, 0); !reflect.DeepEqual(got, st.wantLeft) {
			t.Fatalf("ack %d: pending %v, want %v", st.upTo, got, st.wantLeft)
		}
	}
	// Unknown origin: no-op, nothing created.
	l.apply(t, s, receiptsAckedCmd(t3, "zulu", 5))
	if n := len(s.ReceiptQueues()); n != 1 {
		t.Fatalf("queues = %d", n)
	}
	if rcs, err := s.PendingReceipts("zulu", 0, 0); err != nil || rcs != nil {
		t.Fatalf("unknown origin: %v %v", rcs, err)
	}
}
