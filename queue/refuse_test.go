package queue

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	reasonNoSuch = "mailbox nosuch does not exist"
	reasonType   = "mailbox cert does not accept type text/plain"
)

// refusedBatch is a batch of channel (alpha -> bravo, Routine): m1 for a
// mailbox bravo does not have, m2 for cert, m3 of a type cert does not
// take; the receiving node refused m1 and m3.
func refusedBatch() Command {
	m1 := inMsg("alpha", Routine, 1, "m1", "one")
	m1.Mailbox = "nosuch"
	m2 := inMsg("alpha", Routine, 2, "m2", "two")
	m2.Mailbox = "cert"
	m3 := inMsg("alpha", Routine, 3, "m3", "three")
	m3.Mailbox, m3.Type = "cert", "text/plain"
	c := receiveCmd(t2, "alpha", Routine, m1, m2, m3)
	c.Receive.Refused = []Refusal{{0, reasonNoSuch}, {2, reasonType}}
	return c
}

func auditKindsOf(t testing.TB, s *Store, id string) []string {
	t.Helper()
	es, err := s.AuditEntriesOf(id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		r, err := DecodeAuditRecord(e.Record)
		if err != nil {
			t.Fatal(err)
		}
		k := r.Kind.String()
		if r.Detail != "" {
			k += ":" + r.Detail
		}
		out = append(out, k)
	}
	return out
}

// TestReceiveRefused: a refused message is stored (its sequence counts,
// the delivery proof covers it) in state refused, never in the inbox, and
// a refusal receipt with the reason goes back to its origin, once; a
// resend is a duplicate.
func TestReceiveRefused(t *testing.T) {
	bravo, _ := openStore(t, "bravo")
	var l cmdLog
	res := l.apply(t, bravo, refusedBatch())[0].Receive
	if res.Last != 3 || res.Applied != 3 || res.Held != 3 {
		t.Fatalf("receive = %+v, want last 3, 3 applied and held", res)
	}
	for _, tc := range []struct {
		id, reason string
	}{{"m1", reasonNoSuch}, {"m3", reasonType}} {
		st := mustStatus(t, bravo, tc.id)
		if st.State != Refused || st.RefusedReason != tc.reason || st.RefusedAt != t2 || st.DeliveredAt != t2 || st.ReadAt != 0 || st.InboxPos != 0 {
			t.Errorf("%s = %+v, want refused at t2 for %q", tc.id, st, tc.reason)
		}
		if string(st.Message.Payload) == "" {
			t.Errorf("%s: payload not kept", tc.id)
		}
	}
	if st := mustStatus(t, bravo, "m2"); st.State != Delivered || st.InboxPos == 0 || st.RefusedReason != "" {
		t.Errorf("m2 = %+v, want delivered into the inbox", st)
	}
	inbox, err := bravo.Inbox(0, 0)
	if err != nil || len(inbox) != 1 || inbox[0].Message.ID != "m2" || bravo.InboxUnread() != 1 {
		t.Fatalf("inbox = %+v (%v), unread %d; want m2 alone", inbox, err, bravo.InboxUnread())
	}
	want := []Receipt{
		{RSeq: 1, Precedence: Routine, Seq: 1, ID: "m1", ReadAt: t2, Refused: reasonNoSuch},
		{RSeq: 2, Precedence: Routine, Seq: 3, ID: "m3", ReadAt: t2, Refused: reasonType},
	}
	if rcs, err := bravo.PendingReceipts("alpha", 0, 0); err != nil || !reflect.DeepEqual(rcs, want) {
		t.Fatalf("receipts = %+v (%v), want %+v", rcs, err, want)
	}
	if got := auditKindsOf(t, bravo, "m1"); !reflect.DeepEqual(got, []string{"received", "refused:" + reasonNoSuch}) {
		t.Errorf("audit of m1 = %q", got)
	}
	// A refused message cannot be acknowledged: it is not in the inbox.
	if r := l.apply(t, bravo, markReadCmd(t3, "m1"))[0].MarkRead; r.Errs[0] != errNotInbox {
		t.Errorf("mark read of a refused message: %q", r.Errs)
	}

	// The origin resends (its ack was lost), with or without the
	// refusals (a node of another configuration took it): duplicates.
	before := withoutApplied(rawDump(t, bravo))
	again := refusedBatch()
	plainResend := refusedBatch()
	plainResend.Receive.Refused = nil
	otherReasons := refusedBatch()
	otherReasons.Receive.Refused = []Refusal{{1, "changed my mind"}}
	for _, c := range []Command{again, plainResend, otherReasons} {
		res := l.apply(t, bravo, c)[0].Receive
		if res.Last != 3 || res.Applied != 0 || res.Held != 3 {
			t.Fatalf("resend = %+v, want a duplicate of 3 held messages", res)
		}
	}
	assertSameRaw(t, before, withoutApplied(rawDump(t, bravo)))

	// A resend that overlaps new messages: only the new one's refusal
	// counts (index 3, m4), with its receipt, the third.
	overlap := refusedBatch()
	m4 := inMsg("alpha", Routine, 4, "m4", "four")
	m4.Mailbox = "nosuch"
	overlap.Time = t3
	overlap.Receive.Messages = append(overlap.Receive.Messages, m4)
	overlap.Receive.Refused = append(overlap.Receive.Refused, Refusal{3, reasonNoSuch})
	if res := l.apply(t, bravo, overlap)[0].Receive; res.Last != 4 || res.Applied != 1 || res.Held != 4 {
		t.Fatalf("overlapping resend = %+v", res)
	}
	if st := mustStatus(t, bravo, "m4"); st.State != Refused || st.RefusedAt != t3 {
		t.Fatalf("m4 = %+v", st)
	}
	if rcs, _ := bravo.PendingReceipts("alpha", 0, 0); len(rcs) != 3 || rcs[2].ID != "m4" || rcs[2].Refused != reasonNoSuch {
		t.Fatalf("receipts = %+v", rcs)
	}

	// The sequence is not stuck: message 5, to cert, goes to the inbox.
	m5 := inMsg("alpha", Routine, 5, "m5", "five")
	m5.Mailbox = "cert"
	if res := l.apply(t, bravo, receiveCmd(t3, "alpha", Routine, m5))[0].Receive; res.Last != 5 || res.Applied != 1 {
		t.Fatalf("next message = %+v", res)
	}
	if bravo.InboxUnread() != 2 {
		t.Fatalf("unread = %d, want 2", bravo.InboxUnread())
	}
}

// TestRefusalReceiptAtOrigin: applying a refusal receipt makes the
// outbound message refused with the reason, whether or not the delivery
// ack came first; a repeated receipt, or a read receipt after it, changes
// nothing; purge deletes refused messages like read ones on both sides.
func TestRefusalReceiptAtOrigin(t *testing.T) {
	alpha, _ := openStore(t, "alpha")
	bravo, _ := openStore(t, "bravo")
	var la, lb cmdLog
	m1, m2 := item("m1", "bravo", Routine, "one"), item("m2", "bravo", Routine, "two")
	m1.Mailbox, m2.Mailbox = "nosuch", "cert"
	m3 := item("m3", "bravo", Routine, "three")
	m3.Mailbox, m3.Type, m3.ExpiresAt = "cert", "text/plain", t4
	la.apply(t, alpha, submitCmd(t1, m1, m2, m3))

	msgs, err := alpha.Pending("bravo", Routine, 0, 100, 1<<20)
	if err != nil || len(msgs) != 3 {
		t.Fatalf("pending = %d, %v", len(msgs), err)
	}
	c := receiveCmd(t2, "alpha", Routine, msgs...)
	c.Receive.Refused = []Refusal{{0, reasonNoSuch}, {2, reasonType}}
	lb.apply(t, bravo, c)
	rcs, _ := bravo.PendingReceipts("alpha", 0, 0)

	// m3's refusal arrives before the delivery ack: queued -> refused,
	// and it no longer expires.
	if r := la.apply(t, alpha, receiptsCmd(t2+3, "bravo", rcs[1:]...))[0].Receipts; r.Last != 0 {
		t.Fatalf("a receipt after a gap applied: %+v", r)
	}
	res := la.apply(t, alpha, receiptsCmd(t2+5, "bravo", rcs...))[0].Receipts
	if res.Last != 2 {
		t.Fatalf("receipts = %+v", res)
	}
	for _, tc := range []struct {
		id, reason string
	}{{"m1", reasonNoSuch}, {"m3", reasonType}} {
		st := mustStatus(t, alpha, tc.id)
		if st.State != Refused || st.RefusedReason != tc.reason || st.RefusedAt != t2 || st.DeliveredAt != t2 || st.ReadAt != 0 {
			t.Errorf("alpha %s = %+v, want refused at t2 for %q", tc.id, st, tc.reason)
		}
	}
	if at := alpha.NextExpiry(); at != 0 {
		t.Errorf("next expiry %d: a refused message still expires", at)
	}
	// Refused is final: only m2 waits to be read, at both ends (unread.go).
	if n, m := countKeys(t, alpha, bucketUnread), countKeys(t, bravo, bucketUnread); n != 1 || m != 1 {
		t.Errorf("unread index: alpha %d, bravo %d entries; want m2's alone at each", n, m)
	}
	if got := auditKindsOf(t, alpha, "m3"); !reflect.DeepEqual(got, []string{"submitted", "refused:" + reasonType}) {
		t.Errorf("audit of m3 = %q", got)
	}
	la.apply(t, alpha, deliveredCmd(t3, "bravo", Routine, 3), expireCmd(t4+1))
	if st := mustStatus(t, alpha, "m2"); st.State != Delivered {
		t.Fatalf("m2 = %+v", st)
	}
	// The same receipts again, and a forged read receipt of m1: nothing.
	la.apply(t, alpha, receiptsCmd(t3, "bravo", rcs...))
	la.apply(t, alpha, receiptsCmd(t3, "bravo", Receipt{RSeq: 3, Precedence: Routine, Seq: 1, ID: "m1", ReadAt: t3}))
	if st := mustStatus(t, alpha, "m1"); st.State != Refused || st.RefusedReason != reasonNoSuch {
		t.Fatalf("m1 after more receipts = %+v", st)
	}
	if got := auditKindsOf(t, alpha, "m1"); !reflect.DeepEqual(got, []string{"submitted", "refused:" + reasonNoSuch, "delivered"}) {
		t.Errorf("audit of m1 = %q", got)
	}

	// Purge: refused messages are final on both sides.
	if r := purged(t, &la, alpha, t3+1, 0); r.Purged != 3 {
		t.Fatalf("alpha purged %+v, want m1, m2 (delivered), m3", r)
	}
	assertPurged(t, alpha, "m1", "m2", "m3")
	if r := purged(t, &lb, bravo, t3, 0); r.Purged != 2 {
		t.Fatalf("bravo purged %+v, want m1 and m3", r)
	}
	assertPurged(t, bravo, "m1", "m3")
	assertKept(t, bravo, "m2") // unread
}

// TestReceiveRefusalsValidated: refusals that do not fit the batch are
// refused with the command, nothing stored.
func TestReceiveRefusalsValidated(t *testing.T) {
	tests := []struct {
		name    string
		refused []Refusal
		want    string
	}{
		{"index beyond", []Refusal{{3, "x"}}, "index 3 is not ascending"},
		{"negative", []Refusal{{-1, "x"}}, "index -1"},
		{"not ascending", []Refusal{{2, "x"}, {0, "y"}}, "index 0 is not ascending"},
		{"repeated", []Refusal{{0, "x"}, {0, "y"}}, "index 0 is not ascending"},
		{"empty reason", []Refusal{{0, ""}}, "empty reason"},
		{"control character", []Refusal{{0, "a\nb"}}, "control character"},
		{"too long", []Refusal{{0, strings.Repeat("x", MaxRefusalLen+1)}}, "256"},
		{"tombstone", []Refusal{{1, "x"}}, "not for an inbox"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bravo, _ := openStore(t, "bravo")
			tomb := Message{ID: "t2", Origin: "alpha", Dest: "bravo", Precedence: Routine, Seq: 2, Flags: FlagTombstone, SubmittedAt: t0}
			c := receiveCmd(t2, "alpha", Routine, inMsg("alpha", Routine, 1, "m1", "one"), tomb, inMsg("alpha", Routine, 3, "m3", "three"))
			c.Receive.Refused = tc.refused
			if err := c.Receive.Validate("bravo", 0); err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
			if tc.refused[0].Index < 0 {
				if _, err := c.Encode(); err == nil {
					t.Fatal("a negative index encodes")
				}
				return
			}
			var l cmdLog
			res := bravo.Apply(l.add(t, c))
			if !strings.Contains(res[0].Err, tc.want) {
				t.Fatalf("apply: %q, want %q", res[0].Err, tc.want)
			}
			if in := bravo.Inbound(); len(in) != 0 {
				t.Fatalf("stored %+v", in)
			}
		})
	}
}

// TestRefusedBodyDecoding: the refusals body is canonical and bounded.
func TestRefusedBodyDecoding(t *testing.T) {
	withReceive := func() *Command {
		return &Command{Receive: &Receive{Messages: make([]Message, 2)}}
	}
	tests := []struct {
		name string
		c    *Command
		in   []byte
		want string
	}{
		{"no receive", &Command{}, []byte{1, 0, 1, 'x'}, "without a receive body"},
		{"empty list", withReceive(), []byte{0}, "empty refusals"},
		{"forged count", withReceive(), []byte{0xff, 0xff, 0x03, 0, 1, 'x'}, "list longer"},
		{"truncated", withReceive(), []byte{2, 0, 1, 'x', 1, 5, 'y'}, "beyond the end"},
		{"huge index", withReceive(), []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 'x'}, "index"},
		{"long reason", withReceive(), append([]byte{1, 0, 0x81, 0x02}, bytes.Repeat([]byte{'x'}, 257)...), "at most 256"},
	}
	for _, tc := range tests {
		d := NewDecoder(tc.in)
		decodeRefused(d, tc.c, bodyRefused)
		if err := d.Finish(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	c := withReceive()
	d := NewDecoder([]byte{2, 0, 1, 'x', 1, 1, 'y'})
	decodeRefused(d, c, bodyRefused)
	if err := d.Finish(); err != nil || !reflect.DeepEqual(c.Receive.Refused, []Refusal{{0, "x"}, {1, "y"}}) {
		t.Fatalf("decode = %+v, %v", c.Receive.Refused, err)
	}
}

// TestRefusalReceiptEncodings: a refusal receipt round-trips on the wire
// (AppendReceipt) and in storage (encodeReceipt); a read receipt encodes
// as before refusals existed, and a refusal flag without a reason is
// refused.
func TestRefusalReceiptEncodings(t *testing.T) {
	read := Receipt{RSeq: 4, Precedence: Flash, Seq: 9, ID: "m9", ReadAt: t2}
	refused := read
	refused.Refused = reasonType
	// A read receipt's wire bytes: as before (rseq, precedence, seq, id, time).
	if got, want := AppendReceipt(nil, &read), []byte{4, byte(Flash), 9, 2, 'm', '9'}; !bytes.HasPrefix(got, want) || len(got) != ReceiptLen(&read) {
		t.Fatalf("read receipt = %x", got)
	}
	for _, rc := range []Receipt{read, refused} {
		b := AppendReceipt(nil, &rc)
		if len(b) != ReceiptLen(&rc) {
			t.Errorf("ReceiptLen %d, encoded %d", ReceiptLen(&rc), len(b))
		}
		var got Receipt
		d := NewDecoder(b)
		d.Receipt(&got)
		if err := d.Finish(); err != nil || got != rc {
			t.Errorf("wire round trip: %+v, %v; want %+v", got, err, rc)
		}
		got, err := decodeReceipt([]byte("alpha"), rc.RSeq, encodeReceipt([]byte("alpha"), rc))
		if err != nil || got != rc {
			t.Errorf("stored round trip: %+v, %v; want %+v", got, err, rc)
		}
	}
	// The flag without a reason, and an invalid precedence under the flag.
	for _, b := range [][]byte{
		append(AppendReceipt(nil, &read)[:1:1], append([]byte{byte(Flash) | rcptRefused}, AppendReceipt(nil, &read)[2:]...)...),
		{1, 4 | rcptRefused, 1, 0, 0, 1, 'x'},
	} {
		var got Receipt
		d := NewDecoder(b)
		d.Receipt(&got)
		if d.Finish() == nil {
			t.Errorf("%x decodes to %+v", b, got)
		}
	}
	// Receipts.Validate checks the reason like an ID.
	bad := Receipts{From: "bravo", Receipts: []Receipt{{RSeq: 1, Precedence: Flash, ID: "m", Refused: "a\x1bb"}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "refusal reason") {
		t.Errorf("Validate = %v", err)
	}
}

// TestRefusedRecordEncoding: a refused record carries its reason (version
// 3); every other record stays version 2.
func TestRefusedRecordEncoding(t *testing.T) {
	l := loc{finOut, chanKey("bravo", Routine), 3}
	r := record{state: Refused, id: "m3", mailbox: "cert", mtype: "text/plain", readAt: t2, refused: reasonType, payload: []byte("three")}
	v := r.encode(l)
	if v[offVersion] != recVersionRefused {
		t.Fatalf("version %d", v[offVersion])
	}
	got, err := decodeRecord(v, l)
	if err != nil || got.refused != reasonType || got.state != Refused || string(got.payload) != "three" {
		t.Fatalf("decode = %+v, %v", got, err)
	}
	r.refused, r.state = "", Delivered
	if v := r.encode(l); v[offVersion] != recVersion {
		t.Fatalf("a record without a reason has version %d", v[offVersion])
	}
}
