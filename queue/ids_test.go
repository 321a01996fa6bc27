package queue

import (
	"errors"
	"strings"
	"testing"
)

// An inbound ID equal to one of ours is found and acknowledged as the
// inbound message.
func TestInboundIDCollidesWithOutbound(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	l.apply(t, s,
		submitFrom("bravo", t1, item("same", "alpha", Routine, "ours")),
		receiveCmd(t2, "alpha", Routine, inMsg("alpha", Routine, 1, "same", "theirs")),
	)
	st, err := s.LookupInbound("same")
	if err != nil || st.Direction != Inbound || string(st.Message.Payload) != "theirs" {
		t.Fatalf("LookupInbound = %+v, %v", st, err)
	}
	if st := mustStatus(t, s, "same"); st.Direction != Outbound {
		t.Fatalf("Lookup prefers outbound: %+v", st)
	}
	res := l.apply(t, s, markReadCmd(t3, "same"))
	if res[0].MarkRead.Errs[0] != "" || s.InboxUnread() != 0 {
		t.Fatalf("mark read: %+v, unread %d", res[0].MarkRead, s.InboxUnread())
	}
	if _, err := s.LookupInbound("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LookupInbound(nope): %v", err)
	}
}

// Two inbound messages with one ID (two origins): acknowledging the ID
// marks both, each with its receipt; a repeated ID in one command is
// marked once; a purge of the indexed one keeps the other findable.
func TestDuplicateInboundIDs(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	l.apply(t, s,
		receiveCmd(t1, "alpha", Routine, inMsg("alpha", Routine, 1, "x", "from alpha")),
		receiveCmd(t1, "charlie", Flash, inMsg("charlie", Flash, 1, "x", "from charlie")),
	)
	if s.InboxUnread() != 2 {
		t.Fatalf("unread %d", s.InboxUnread())
	}
	res := l.apply(t, s, markReadCmd(t2, "x", "x", "x"))
	if errs := res[0].MarkRead.Errs; errs[0] != "" || errs[1] != "" || errs[2] != "" {
		t.Fatalf("errs %q", errs)
	}
	if s.InboxUnread() != 0 {
		t.Fatalf("unread %d after ack of the shared ID", s.InboxUnread())
	}
	for _, origin := range []string{"alpha", "charlie"} {
		rcs, err := s.PendingReceipts(origin, 0, 0)
		if err != nil || len(rcs) != 1 || rcs[0].ID != "x" {
			t.Fatalf("receipts to %s: %+v, %v", origin, rcs, err)
		}
	}
	first := mustStatus(t, s, "x").Message.Origin
	l.apply(t, s, purgeCmd(t3, t3, 1))
	st, err := s.LookupInbound("x")
	if err != nil || st.Message.Origin == first {
		t.Fatalf("after purging the first: %+v, %v", st, err)
	}
	l.apply(t, s, purgeCmd(t3, t3, 0))
	if _, err := s.LookupInbound("x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after purging both: %v", err)
	}
	if n := countKeys(t, s, bucketInDups); n != 0 {
		t.Fatalf("%d duplicate index entries left", n)
	}
}

func TestReceiveFromUnconfiguredSiteRefused(t *testing.T) {
	s, err := Open(t.TempDir()+"/state.db", "bravo", Options{Sites: []string{"alpha", "bravo"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var l cmdLog
	for _, origin := range []string{"charlie", "bravo"} {
		res := s.Apply(l.add(t, receiveCmd(t1, origin, Routine, Message{ID: "m", Origin: origin, Dest: "bravo", Precedence: Routine, Seq: 1, Payload: []byte("p")})))
		if !strings.Contains(res[0].Err, "not a configured site") {
			t.Fatalf("receive from %s: %+v", origin, res[0])
		}
	}
	if s.InboxUnread() != 0 || len(s.Inbound()) != 0 {
		t.Fatal("a refused receive stored something")
	}
	l.apply(t, s, receiveCmd(t1, "alpha", Routine, inMsg("alpha", Routine, 1, "m", "p")))
	if s.InboxUnread() != 1 {
		t.Fatal("receive from a configured site refused")
	}
}

func TestIDsMustBePrintable(t *testing.T) {
	for _, id := range []string{"a\x1b[31m", "line\nbreak", "cr\r", "nul\x00", "\xff\xfe", "del\x7f", "c1\u0085"} {
		if err := validID(id); !errors.Is(err, ErrInvalid) {
			t.Errorf("validID(%q) = %v", id, err)
		}
		if err := validKey(id); !errors.Is(err, ErrInvalid) {
			t.Errorf("validKey(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"0190c6a2-7b3e-7000-8a1b-4c2d3e4f5a6b", "order 42", "Bestellung-ü-✓"} {
		if err := validID(id); err != nil {
			t.Errorf("validID(%q) = %v", id, err)
		}
	}
	s, _ := openStore(t, "bravo")
	var l cmdLog
	res := s.Apply(l.add(t, receiveCmd(t1, "alpha", Routine, inMsg("alpha", Routine, 1, "evil\x1b]0;x\x07", "p"))))
	if !strings.Contains(res[0].Err, "control character") || s.InboxUnread() != 0 {
		t.Fatalf("receive of a control-character id: %+v", res[0])
	}
}
