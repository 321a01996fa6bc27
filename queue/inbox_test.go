package queue

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestReceiveSequencing(t *testing.T) {
	m := func(seq uint64) Message {
		return inMsg("alpha", Routine, seq, "id"+string(rune('0'+seq)), "p"+string(rune('0'+seq)))
	}
	tests := []struct {
		name        string
		batches     [][]uint64 // sequences of each Receive command, in order
		wantLast    []uint64   // ReceiveResult.Last after each batch
		wantApplied []int
		wantHeld    []int    // ReceiveResult.Held: every message here is held as sent
		wantInbox   []uint64 // sequences in the inbox, in Pos order
	}{
		{"in order", [][]uint64{{1, 2, 3}}, []uint64{3}, []int{3}, []int{3}, []uint64{1, 2, 3}},
		{"duplicate batch", [][]uint64{{1, 2}, {1, 2}}, []uint64{2, 2}, []int{2, 0}, []int{2, 2}, []uint64{1, 2}},
		{"overlapping batch", [][]uint64{{1, 2}, {2, 3, 4}}, []uint64{2, 4}, []int{2, 2}, []int{2, 3}, []uint64{1, 2, 3, 4}},
		{"gap stops", [][]uint64{{1, 2}, {4, 5}}, []uint64{2, 2}, []int{2, 0}, []int{2, 0}, []uint64{1, 2}},
		{"gap inside batch", [][]uint64{{1, 2, 4, 5}}, []uint64{2}, []int{2}, []int{2}, []uint64{1, 2}},
		{"gap then fill", [][]uint64{{1}, {3}, {2, 3}}, []uint64{1, 1, 3}, []int{1, 0, 2}, []int{1, 0, 2}, []uint64{1, 2, 3}},
		{"out of order batch", [][]uint64{{2, 1}, {1, 2}}, []uint64{0, 2}, []int{0, 2}, []int{0, 2}, []uint64{1, 2}},
		{"repeated in batch", [][]uint64{{1, 1, 2, 2}}, []uint64{2}, []int{2}, []int{4}, []uint64{1, 2}},
		{"not from 1", [][]uint64{{5}}, []uint64{0}, []int{0}, []int{0}, nil},
		{"empty batch", [][]uint64{{}}, []uint64{0}, []int{0}, []int{0}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openStore(t, "bravo")
			var l cmdLog
			for i, batch := range tc.batches {
				var msgs []Message
				for _, seq := range batch {
					msgs = append(msgs, m(seq))
				}
				res := l.apply(t, s, receiveCmd(t1+int64(i), "alpha", Routine, msgs...))
				if got := *res[0].Receive; got != (ReceiveResult{Last: tc.wantLast[i], Applied: tc.wantApplied[i], Held: tc.wantHeld[i]}) {
					t.Fatalf("batch %d: result %+v, want last %d applied %d held %d", i, got, tc.wantLast[i], tc.wantApplied[i], tc.wantHeld[i])
				}
			}
			inbox, err := s.Inbox(0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for i, it := range inbox {
				if it.Pos != uint64(i+1) {
					t.Fatalf("inbox positions not gap-free: %+v", inbox)
				}
				got = append(got, it.Message.Seq)
			}
			if !reflect.DeepEqual(got, tc.wantInbox) {
				t.Fatalf("inbox seqs = %v, want %v", got, tc.wantInbox)
			}
			if s.InboxUnread() != len(tc.wantInbox) {
				t.Fatalf("unread = %d, want %d", s.InboxUnread(), len(tc.wantInbox))
			}
		})
	}
}

func TestReceiveStoresMessage(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	in := inMsg("alpha", Flash, 1, "x1", "hello")
	in.Key, in.ExpiresAt = "k", t4
	l.apply(t, s, receiveCmd(t2, "alpha", Flash, in))
	inbox, _ := s.Inbox(0, 0)
	want := []InboxItem{{Pos: 1, Message: in, ReceivedAt: t2}}
	if !reflect.DeepEqual(inbox, want) {
		t.Fatalf("inbox = %+v, want %+v", inbox, want)
	}
	st := mustStatus(t, s, "x1")
	wantSt := Status{Message: in, Direction: Inbound, State: Delivered, SubmittedAt: t0, DeliveredAt: t2, InboxPos: 1}
	if !reflect.DeepEqual(*st, wantSt) {
		t.Fatalf("status = %+v, want %+v", *st, wantSt)
	}
	if got := s.Inbound(); !reflect.DeepEqual(got, []InChannel{{Origin: "alpha", Precedence: Flash, Last: 1}}) {
		t.Fatalf("Inbound = %+v", got)
	}
	// Inbound keys are not outbound idempotency keys.
	if _, err := s.LookupKey("k"); err == nil {
		t.Fatal("LookupKey found an inbound message")
	}
}

func TestReceiveSpecialMessagesSkipInbox(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	res := l.apply(t, s, receiveCmd(t1, "alpha", Routine, specialBatch()...))
	if got := *res[0].Receive; got != (ReceiveResult{Last: 5, Applied: 5, Held: 5}) {
		t.Fatalf("result = %+v", got)
	}
	inbox, _ := s.Inbox(0, 0)
	if len(inbox) != 2 || inbox[0].Message.ID != "m1" || inbox[1].Message.ID != "m5" || inbox[1].Pos != 2 {
		t.Fatalf("inbox = %+v", inbox)
	}
	if st := mustStatus(t, s, "t2"); st.State != Expired || st.InboxPos != 0 || !st.Message.Tombstone() {
		t.Fatalf("tombstone status = %+v", st)
	}
	if st := mustStatus(t, s, "l3"); st.State != Delivered || st.InboxPos != 0 || st.DeliveredAt != t1 {
		t.Fatalf("link test status = %+v", st)
	}
	res = l.apply(t, s, markReadCmd(t2, "l3", "d4", "t2"))
	if want := []string{errNotInbox, errNotInbox, errNotInbox}; !reflect.DeepEqual(res[0].MarkRead.Errs, want) {
		t.Fatalf("mark read of non-inbox messages = %q", res[0].MarkRead.Errs)
	}
}

func TestReceiveRejectsForeignChannel(t *testing.T) {
	good := func(seq uint64) Message { return inMsg("alpha", Routine, seq, "g"+string(rune('0'+seq)), "x") }
	bad := []struct {
		name   string
		modify func(*Message)
		want   string
	}{
		{"other origin", func(m *Message) { m.Origin = "charlie" }, "channel"},
		{"other dest", func(m *Message) { m.Dest = "delta" }, "channel"},
		{"other precedence", func(m *Message) { m.Precedence = Flash }, "channel"},
		{"empty id", func(m *Message) { m.ID = "" }, "empty message id"},
		{"seq zero", func(m *Message) { m.Seq = 0 }, "sequence 0"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openStore(t, "bravo")
			var l cmdLog
			m2 := good(2)
			tc.modify(&m2)
			res := s.Apply(l.add(t, receiveCmd(t1, "alpha", Routine, good(1), m2, good(3))))
			if !strings.Contains(res[0].Err, tc.want) || res[0].Receive != nil {
				t.Fatalf("result = %+v, want error containing %q", res[0], tc.want)
			}
			if n := len(s.Inbound()); n != 0 || s.InboxUnread() != 0 {
				t.Fatalf("batch partly applied: %+v", s.Inbound())
			}
		})
	}
	s, _ := openStore(t, "bravo")
	var l cmdLog
	res := s.Apply(l.add(t, receiveCmd(t1, "", Routine)))
	if !strings.Contains(res[0].Err, "origin") {
		t.Fatalf("empty origin: %+v", res[0])
	}
}

func TestInboxPaging(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	var msgs []Message
	for seq := uint64(1); seq <= 5; seq++ {
		msgs = append(msgs, inMsg("alpha", Routine, seq, "m"+string(rune('0'+seq)), "x"))
	}
	l.apply(t, s, receiveCmd(t1, "alpha", Routine, msgs...))
	l.apply(t, s, markReadCmd(t2, "m2"))
	tests := []struct {
		after uint64
		max   int
		want  []uint64
	}{
		{0, 0, []uint64{1, 3, 4, 5}},
		{0, 2, []uint64{1, 3}},
		{1, 2, []uint64{3, 4}},
		{3, 0, []uint64{4, 5}},
		{5, 0, nil},
	}
	for _, tc := range tests {
		items, err := s.Inbox(tc.after, tc.max)
		if err != nil {
			t.Fatal(err)
		}
		if got := inboxPositions(items); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Inbox(%d, %d) = %v, want %v", tc.after, tc.max, got, tc.want)
		}
	}
	if s.InboxUnread() != 4 {
		t.Fatalf("unread = %d", s.InboxUnread())
	}
}

func TestMarkRead(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	l.apply(t, s,
		submitFrom("", t0, item("out1", "alpha", Routine, "outbound")), // empty origin: the local site
		receiveCmd(t1, "alpha", Flash, inMsg("alpha", Flash, 1, "f1", "x")),
		receiveCmd(t1, "alpha", Routine, inMsg("alpha", Routine, 1, "r1", "x"), inMsg("alpha", Routine, 2, "r2", "x")),
		receiveCmd(t1, "charlie", Routine, Message{ID: "c1", Origin: "charlie", Dest: "bravo", Precedence: Routine, Seq: 1}),
	)
	res := l.apply(t, s, markReadCmd(t2, "r2", "nope", "out1", "f1", "r2", ""))
	want := []string{"", errUnknownMessage, errNotInbox, "", "", errUnknownMessage}
	if got := res[0].MarkRead.Errs; !reflect.DeepEqual(got, want) {
		t.Fatalf("errs = %q, want %q", got, want)
	}
	st := mustStatus(t, s, "r2")
	if st.State != Read || st.ReadAt != t2 || st.DeliveredAt != t1 {
		t.Fatalf("r2 = %+v", st)
	}
	// Already read: no-op, ReadAt kept, no second receipt.
	res = l.apply(t, s, markReadCmd(t3, "r2", "c1"))
	if got := res[0].MarkRead.Errs; !reflect.DeepEqual(got, []string{"", ""}) {
		t.Fatalf("errs = %q", got)
	}
	if st := mustStatus(t, s, "r2"); st.ReadAt != t2 {
		t.Fatalf("ReadAt changed: %+v", st)
	}
	inbox, _ := s.Inbox(0, 0)
	if len(inbox) != 1 || inbox[0].Message.ID != "r1" || s.InboxUnread() != 1 {
		t.Fatalf("inbox = %+v, unread %d", inbox, s.InboxUnread())
	}
	wantQ := []ReceiptQueue{{Origin: "alpha", Last: 2}, {Origin: "charlie", Last: 1}}
	if got := s.ReceiptQueues(); !reflect.DeepEqual(got, wantQ) {
		t.Fatalf("receipt queues = %+v, want %+v", got, wantQ)
	}
	rcs, err := s.PendingReceipts("alpha", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantR := []Receipt{
		{RSeq: 1, Precedence: Routine, Seq: 2, ID: "r2", ReadAt: t2},
		{RSeq: 2, Precedence: Flash, Seq: 1, ID: "f1", ReadAt: t2},
	}
	if !reflect.DeepEqual(rcs, wantR) {
		t.Fatalf("receipts = %+v, want %+v", rcs, wantR)
	}
}

// Arrivals lists flagged inbound messages of one channel, bounded by max
// and by how much it scans, and never shows them in the inbox.
func TestArrivals(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	var msgs []Message
	for seq := uint64(1); seq <= 10; seq++ {
		m := inMsg("alpha", Routine, seq, fmt.Sprintf("id%d", seq), "x")
		m.Key = fmt.Sprintf("k%d", seq)
		if seq%2 == 0 {
			m.Flags = FlagDrill
		}
		msgs = append(msgs, m)
	}
	l.apply(t, s, receiveCmd(t0+5, "alpha", Routine, msgs...))

	got, next, last, err := s.Arrivals("alpha", Routine, 0, FlagDrill, 100, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || next != 10 || last != 10 {
		t.Fatalf("got %d arrivals, next %d, last %d; want 5, 10, 10", len(got), next, last)
	}
	for i, a := range got {
		if want := uint64(2 * (i + 1)); a.Seq != want || a.Key != fmt.Sprintf("k%d", want) || a.ArrivedAt != t0+5 || a.SubmittedAt != t0 {
			t.Fatalf("arrival %d = %+v", i, a)
		}
	}
	// Paged by max, then by scan.
	got, next, _, _ = s.Arrivals("alpha", Routine, 0, FlagDrill, 2, 1000)
	if len(got) != 2 || next != 4 {
		t.Fatalf("max 2: %d arrivals, next %d", len(got), next)
	}
	got, next, _, _ = s.Arrivals("alpha", Routine, next, FlagDrill, 100, 3)
	if len(got) != 1 || got[0].Seq != 6 || next != 7 {
		t.Fatalf("scan 3 after 4: %+v next %d", got, next)
	}
	// Only the unflagged half reached the inbox.
	if n := s.InboxUnread(); n != 5 {
		t.Fatalf("inbox unread %d, want 5", n)
	}
	// An unknown channel is empty, not an error.
	if got, next, last, err := s.Arrivals("charlie", Flash, 0, FlagDrill, 10, 10); err != nil || len(got) != 0 || next != 0 || last != 0 {
		t.Fatalf("unknown channel: %v %d %d %v", got, next, last, err)
	}
}

// TestReceiveHeld checks ReceiveResult.Held, what a destination signs
// delivery of: the leading messages it holds exactly as the command
// carries them, new or duplicate; it stops at a duplicate that differs
// from what is held (another id, another payload) or that purge removed.
func TestReceiveHeld(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	m1 := inMsg("alpha", Routine, 1, "m1", "one")
	m2 := inMsg("alpha", Routine, 2, "m2", "two")
	m3 := inMsg("alpha", Routine, 3, "m3", "three")
	held := func(msgs ...Message) (int, uint64) {
		t.Helper()
		r := l.apply(t, s, receiveCmd(t1, "alpha", Routine, msgs...))[0].Receive
		return r.Held, r.Last
	}
	if h, last := held(m1, m2); h != 2 || last != 2 {
		t.Fatalf("new messages: held %d, last %d; want 2, 2", h, last)
	}
	// Duplicates as received, then a new one: all held.
	if h, last := held(m1, m2, m3); h != 3 || last != 3 {
		t.Fatalf("duplicates and a new message: held %d, last %d; want 3, 3", h, last)
	}
	// A different message under sequence 2 (another payload, then
	// another id): held stops before it, although Last covers it.
	evil := m2
	evil.Payload = []byte("not two")
	if h, last := held(m1, evil, m3); h != 1 || last != 3 {
		t.Fatalf("another payload under seq 2: held %d, last %d; want 1, 3", h, last)
	}
	evil = m2
	evil.ID = "m2-forged"
	if h, _ := held(evil, m3); h != 0 {
		t.Fatalf("another id under seq 2: held %d; want 0", h)
	}
	// What is held is unchanged.
	if st := mustStatus(t, s, "m2"); string(st.Message.Payload) != "two" {
		t.Fatalf("m2 now holds %q", st.Message.Payload)
	}
}
