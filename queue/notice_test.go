package queue

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestNoticeOnExpiry: a message that expires undelivered puts one notice
// into its sending mailbox's inbox at the origin; a second expiry, a
// link test and a drill put none.
func TestNoticeOnExpiry(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	exp := item("m1", "bravo", Flash, "one")
	exp.ExpiresAt, exp.From, exp.Mailbox = t2, "cert", "watch"
	dlv := item("m2", "bravo", Flash, "two")
	dlv.ExpiresAt = t2
	lt := item("lt", "bravo", Routine, "x")
	lt.ExpiresAt, lt.Flags = t2, FlagLinkTest
	dr := item("dr", "bravo", Routine, "x")
	dr.ExpiresAt, dr.Flags = t2, FlagDrill
	l.apply(t, s, submitCmd(t0, exp), submitCmd(t0, dlv, lt, dr))
	l.apply(t, s, expireCmd(t3))
	l.apply(t, s, expireCmd(t4)) // nothing more expires

	items, err := s.Inbox(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, it := range items {
		ids = append(ids, it.Message.ID)
	}
	if strings.Join(ids, ",") != "notice-m1,notice-m2" {
		t.Fatalf("inbox = %q, want the notices of m1 and m2 only", ids)
	}
	n := items[0].Message
	if n.Origin != "alpha" || n.Dest != "alpha" || n.Mailbox != "cert" || n.Type != NoticeType ||
		n.Flags != FlagNotice || n.Precedence != Flash || n.SubmittedAt != t3 {
		t.Fatalf("notice = %+v", n)
	}
	var body Notice
	if err := json.Unmarshal(n.Payload, &body); err != nil {
		t.Fatal(err)
	}
	want := Notice{ID: "m1", To: "bravo", Mailbox: "watch", Precedence: "flash",
		SubmittedAt: time.Unix(0, t0).UTC(), ExpiredAt: time.Unix(0, t3).UTC(), Reason: ReasonExpired}
	if body != want {
		t.Fatalf("notice payload = %+v, want %+v", body, want)
	}
	if items[1].Message.Mailbox != "" {
		t.Fatalf("notice of m2 in mailbox %q, want the default", items[1].Message.Mailbox)
	}
	if got := s.MailboxUnread(); got["cert"] != 1 || got[DefaultMailbox] != 1 {
		t.Fatalf("mailbox unread = %v", got)
	}
	if in := s.Inbound(); len(in) != 0 {
		t.Fatalf("Inbound lists the notices' channel: %+v", in)
	}
	st := mustStatus(t, s, "notice-m1")
	if st.Direction != Inbound || st.State != Delivered {
		t.Fatalf("notice status = %+v", st)
	}
}

// TestNoticeReadWithoutReceipt: acknowledging a notice queues no read
// receipt to anyone, and the read notice is purged like a read message.
func TestNoticeReadWithoutReceipt(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	exp := item("m1", "bravo", Routine, "one")
	exp.ExpiresAt = t1
	l.apply(t, s, submitCmd(t0, exp), expireCmd(t2))
	res := l.apply(t, s, markReadCmd(t3, "notice-m1"))
	if e := res[0].MarkRead.Errs[0]; e != "" {
		t.Fatalf("mark read: %q", e)
	}
	if q := s.ReceiptQueues(); len(q) != 0 {
		t.Fatalf("receipt queues after reading a notice: %+v", q)
	}
	if s.InboxUnread() != 0 || mustStatus(t, s, "notice-m1").State != Read {
		t.Fatalf("notice not read: unread %d", s.InboxUnread())
	}
	l.apply(t, s, deliveredCmd(t3, "bravo", Routine, 1)) // the tombstone, acknowledged
	if got := purged(t, &l, s, t4+1, 0); got.Purged != 2 {
		t.Fatalf("purge = %+v, want the read notice and the acknowledged tombstone", got)
	}
	assertPurged(t, s, "notice-m1")
}

// TestNoticeSurvivesSnapshotRestore: notices are state like any other.
func TestNoticeSurvivesSnapshotRestore(t *testing.T) {
	a, _ := openStore(t, "alpha")
	var l cmdLog
	exp := item("m1", "bravo", Immediate, "one")
	exp.ExpiresAt = t1
	l.apply(t, a, submitCmd(t0, exp), expireCmd(t2))
	snap := snapshotBytes(t, a)
	b, _ := openStore(t, "alpha")
	if err := b.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	items, err := b.InboxOf(InboxQuery{Mailboxes: []string{""}})
	if err != nil || len(items.Items) != 1 || items.Items[0].Message.ID != "notice-m1" {
		t.Fatalf("restored inbox = %+v, %v", items, err)
	}
	assertSameRaw(t, rawDump(t, a), rawDump(t, b))
}

// TestNoticeLongID: a notice's ID stays within MaxIDLen.
func TestNoticeLongID(t *testing.T) {
	long := strings.Repeat("x", MaxIDLen)
	id := NoticeID(long)
	if len(id) > MaxIDLen || !strings.HasPrefix(id, "notice-sha256-") || NoticeID(long) != id {
		t.Fatalf("NoticeID(long) = %q", id)
	}
	if NoticeID("m1") != "notice-m1" {
		t.Fatal(NoticeID("m1"))
	}
	it := item("n", "bravo", Flash, "x")
	it.Flags = FlagNotice
	if err := it.Validate(); err == nil {
		t.Fatal("a submitted notice validated")
	}
}
