package queue

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// mboxBoxes are the mailboxes of the messages at inbox positions 1 to 7
// (message i has ID "m<i>", payload "p<i>": 4 bytes each in a budget).
var mboxBoxes = []string{"cert", "watch", "", "cert", "watch", "cert", ""}

// receiveMailboxes receives one message into each of mboxBoxes, in order.
func receiveMailboxes(t *testing.T) (*Store, string, *cmdLog) {
	t.Helper()
	s, path := openStore(t, "bravo")
	var l cmdLog
	var msgs []Message
	for i, mb := range mboxBoxes {
		seq := uint64(i + 1)
		m := inMsg("alpha", Routine, seq, "m"+string(rune('0'+seq)), "p"+string(rune('0'+seq)))
		m.Mailbox, m.From, m.Type = mb, "cert", "text/plain"
		msgs = append(msgs, m)
	}
	l.apply(t, s, receiveCmd(t1, "alpha", Routine, msgs...))
	return s, path, &l
}

func TestMailboxInboxOf(t *testing.T) {
	s, _, _ := receiveMailboxes(t)
	if got, want := s.MailboxUnread(), map[string]int{"cert": 3, "watch": 2, DefaultMailbox: 2}; !maps.Equal(got, want) {
		t.Fatalf("MailboxUnread = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name     string
		q        InboxQuery
		want     []uint64 // positions
		wantNext uint64   // the last item's position, or the last one a query of several mailboxes passes over
	}{
		{"one", InboxQuery{Mailboxes: []string{"cert"}}, []uint64{1, 4, 6}, 6},
		{"one after", InboxQuery{Mailboxes: []string{"cert"}, After: 1}, []uint64{4, 6}, 6},
		{"one max", InboxQuery{Mailboxes: []string{"cert"}, Max: 2}, []uint64{1, 4}, 4},
		{"one max bytes", InboxQuery{Mailboxes: []string{"cert"}, MaxBytes: 9}, []uint64{1, 4}, 4},
		{"one over budget gets the first", InboxQuery{Mailboxes: []string{"watch"}, MaxBytes: 1}, []uint64{2}, 2},
		{"default", InboxQuery{Mailboxes: []string{""}}, []uint64{3, 7}, 7},
		{"none of it", InboxQuery{Mailboxes: []string{"nosuch"}, After: 2}, nil, 2},
		{"several", InboxQuery{Mailboxes: []string{"watch", "cert"}}, []uint64{1, 2, 4, 5, 6}, 7}, // 7 scanned, not wanted
		{"several after max", InboxQuery{Mailboxes: []string{"cert", "watch"}, After: 2, Max: 2}, []uint64{4, 5}, 5},
		{"several max bytes", InboxQuery{Mailboxes: []string{"cert", "watch"}, MaxBytes: 9}, []uint64{1, 2}, 3}, // 3 passed over, 4 over budget
		{"several skip to the end", InboxQuery{Mailboxes: []string{"", "nosuch"}, After: 3}, []uint64{7}, 7},
		{"several, none of them", InboxQuery{Mailboxes: []string{"x", "y"}}, nil, 7},
		{"several, none after", InboxQuery{Mailboxes: []string{"x", "cert"}, After: 9}, nil, 9},
		{"one named twice", InboxQuery{Mailboxes: []string{"cert", "cert"}}, []uint64{1, 4, 6}, 6},
		{"all", InboxQuery{}, []uint64{1, 2, 3, 4, 5, 6, 7}, 7},
		{"all max after", InboxQuery{After: 5, Max: 1}, []uint64{6}, 6},
		{"all max bytes", InboxQuery{MaxBytes: 12}, []uint64{1, 2, 3}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, err := s.InboxOf(tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := inboxPositions(page.Items); !slices.Equal(got, tc.want) || page.Next != tc.wantNext {
				t.Fatalf("positions %v next %d, want %v next %d", got, page.Next, tc.want, tc.wantNext)
			}
			for _, it := range page.Items {
				m := it.Message
				if want := mboxBoxes[it.Pos-1]; m.Mailbox != want || m.From != "cert" || m.Type != "text/plain" || string(m.Payload) != "p"+m.ID[1:] {
					t.Errorf("pos %d: mailbox %q from %q type %q payload %q; want mailbox %q", it.Pos, m.Mailbox, m.From, m.Type, m.Payload, want)
				}
			}
		})
	}
}

// TestMailboxInboxOfIsBounded: a reader of two mailboxes, one quiet and
// one with a message at each end of a long inbox of another mailbox's,
// reads that mailbox's two index entries, not the inbox between them:
// the cost does not grow with the other mailboxes' messages.
func TestMailboxInboxOfIsBounded(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	const busy = 3000
	var msgs []Message
	for seq := uint64(1); seq <= busy+2; seq++ {
		m := inMsg("alpha", Routine, seq, fmt.Sprintf("m%d", seq), "p")
		m.Mailbox = "watch"
		if seq == 1 || seq == busy+2 {
			m.Mailbox = "cert"
		}
		msgs = append(msgs, m)
	}
	l.apply(t, s, receiveCmd(t1, "alpha", Routine, msgs...))
	for _, tc := range []struct {
		q        InboxQuery
		want     []uint64
		wantNext uint64
	}{
		{InboxQuery{Mailboxes: []string{"cert", "quiet"}}, []uint64{1, busy + 2}, busy + 2},
		{InboxQuery{Mailboxes: []string{"cert", "quiet"}, Max: 1}, []uint64{1}, busy + 1},
		{InboxQuery{Mailboxes: []string{"quiet", "cert"}, After: 1}, []uint64{busy + 2}, busy + 2},
	} {
		page, err := s.InboxOf(tc.q)
		if err != nil || !slices.Equal(inboxPositions(page.Items), tc.want) || page.Next != tc.wantNext {
			t.Fatalf("%+v: %v next %d, %v; want %v next %d", tc.q, inboxPositions(page.Items), page.Next, err, tc.want, tc.wantNext)
		}
		// Reading a record allocates: reading the busy mailbox's
		// would cost thousands.
		allocs := testing.AllocsPerRun(5, func() {
			if _, err := s.InboxOf(tc.q); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 200 {
			t.Errorf("%+v: %.0f allocations for %d items among %d messages of another mailbox", tc.q, allocs, len(tc.want), busy)
		}
	}
}

// TestMailboxMarkRead: an ack limited to mailboxes marks only the
// messages in them (the others are left unread: errNotMailbox), keeps the
// index and counts, and its read records name who acknowledged.
func TestMailboxMarkRead(t *testing.T) {
	s, _, l := receiveMailboxes(t)
	by := &Actor{UID: 1001, User: "hlcert", PID: 4242}
	res := l.apply(t, s, Command{Op: OpMarkRead, Time: t2, MarkRead: &MarkRead{
		IDs: []string{"m1", "m2", "m4", "nosuch"}, By: by, Node: "bravo-1", Mailboxes: []string{"cert"}}})
	if want := []string{"", errNotMailbox, "", errUnknownMessage}; !reflect.DeepEqual(res[0].MarkRead.Errs, want) {
		t.Fatalf("errs %q, want %q", res[0].MarkRead.Errs, want)
	}
	if got, want := s.MailboxUnread(), map[string]int{"cert": 1, "watch": 2, DefaultMailbox: 2}; !maps.Equal(got, want) {
		t.Fatalf("MailboxUnread = %v, want %v", got, want)
	}
	if page, _ := s.InboxOf(InboxQuery{Mailboxes: []string{"cert"}}); !slices.Equal(inboxPositions(page.Items), []uint64{6}) {
		t.Fatalf("cert unread at %v, want [6]", inboxPositions(page.Items))
	}
	if page, _ := s.InboxOf(InboxQuery{Mailboxes: []string{"watch"}}); !slices.Equal(inboxPositions(page.Items), []uint64{2, 5}) {
		t.Fatalf("watch unread at %v, want [2 5] (m2 left unread)", inboxPositions(page.Items))
	}
	if st := mustStatus(t, s, "m2"); st.State == Read || st.ReadAt != 0 {
		t.Errorf("m2 (watch) was marked read by an ack limited to cert")
	}
	for id, reader := range map[string]*Actor{"m1": by, "m4": by, "m2": nil} {
		ents, err := s.AuditEntriesOf(id)
		if err != nil {
			t.Fatal(err)
		}
		var reads []*AuditRecord
		for _, e := range ents {
			r, err := DecodeAuditRecord(e.Record)
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind == AuditRead {
				reads = append(reads, r)
			}
		}
		switch {
		case reader == nil && len(reads) != 0:
			t.Errorf("%s: read records %+v; want none", id, reads)
		case reader != nil && (len(reads) != 1 || reads[0].Actor != *reader || reads[0].Node != "bravo-1"):
			t.Errorf("%s: read records %+v; want one by %+v on bravo-1", id, reads, *reader)
		}
	}
	// An unscoped ack (root) marks every mailbox's; the counts reach 0.
	res = l.apply(t, s, markReadCmd(t3, "m2", "m3", "m5", "m6", "m7"))
	if want := []string{"", "", "", "", ""}; !reflect.DeepEqual(res[0].MarkRead.Errs, want) {
		t.Fatalf("errs %q, want none", res[0].MarkRead.Errs)
	}
	if got := s.MailboxUnread(); len(got) != 0 {
		t.Fatalf("MailboxUnread = %v after reading every message, want none", got)
	}
	if page, _ := s.InboxOf(InboxQuery{Mailboxes: []string{"cert", "watch", ""}}); len(page.Items) != 0 {
		t.Fatalf("unread after reading every message: %v", inboxPositions(page.Items))
	}
}

// TestMailboxUpgradeFormat4: a file of format 4 (no index by mailbox)
// gets the index and counts built from its inbox at Open: the same bytes
// a store of format 5 holds.
func TestMailboxUpgradeFormat4(t *testing.T) {
	s, path, l := receiveMailboxes(t)
	// Format 4 knew only the default mailbox, but the upgrade indexes
	// what it finds: receiveMailboxes' mailboxes show it does by
	// mailbox. Read one so that the index has a gap.
	l.apply(t, s, markReadCmd(t2, "m4"))
	want := rawDump(t, s)
	wantUnread := s.MailboxUnread()
	editClosed(t, s, path, func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMboxInbox, bucketMboxUnread} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(metaVersion, u64(4))
	})
	s2, err := Open(path, "bravo", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	assertSameRaw(t, want, rawDump(t, s2))
	if got := s2.MailboxUnread(); !maps.Equal(got, wantUnread) {
		t.Fatalf("MailboxUnread after the upgrade = %v, want %v", got, wantUnread)
	}
	page, err := s2.InboxOf(InboxQuery{Mailboxes: []string{"cert"}})
	if err != nil || !slices.Equal(inboxPositions(page.Items), []uint64{1, 6}) {
		t.Fatalf("cert after the upgrade: %v, %v; want positions [1 6]", page, err)
	}
}
