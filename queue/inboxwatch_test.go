package queue

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestInboxBytes checks the byte budget of InboxBytes: it stops before the
// message that would exceed it, yet always returns a first message however
// large, and never reads more than it returns.
func TestInboxBytes(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	sizes := []int{100, 100, 1000, 100, 50}
	var msgs []Message
	for i, n := range sizes {
		seq := uint64(i + 1)
		msgs = append(msgs, inMsg("alpha", Routine, seq, fmt.Sprintf("m%d", seq), strings.Repeat("x", n)))
	}
	l.apply(t, s, receiveCmd(t1, "alpha", Routine, msgs...))
	// Each message costs its payload plus its ID (2 bytes here).
	tests := []struct {
		after    uint64
		max      int
		maxBytes int64
		want     []uint64
	}{
		{0, 0, 0, []uint64{1, 2, 3, 4, 5}},
		{0, 0, 204, []uint64{1, 2}},
		{0, 0, 203, []uint64{1}},
		{0, 0, 1, []uint64{1}},  // the first is returned even over budget
		{2, 0, 10, []uint64{3}}, // the 1000-byte one alone
		{2, 0, 1002 + 102, []uint64{3, 4}},
		{0, 1, 1 << 20, []uint64{1}}, // max still applies
		{3, 0, 152, []uint64{4}},     // 102 + 52 = 154 > 152
		{3, 0, 154, []uint64{4, 5}},
		{5, 0, 1, nil},
	}
	for _, tc := range tests {
		items, err := s.InboxBytes(tc.after, tc.max, tc.maxBytes)
		if err != nil {
			t.Fatal(err)
		}
		if got := inboxPositions(items); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("InboxBytes(%d, %d, %d) = %v, want %v", tc.after, tc.max, tc.maxBytes, got, tc.want)
		}
		for _, it := range items {
			if len(it.Message.Payload) != sizes[it.Pos-1] {
				t.Errorf("message %d has %d payload bytes, want %d", it.Pos, len(it.Message.Payload), sizes[it.Pos-1])
			}
		}
	}
}

// TestInboxChanged checks that inbox readers are woken when the inbox gains
// a message or the state is restored, and not by commits that leave the
// inbox alone (an acknowledgement, an outbound submit).
func TestInboxChanged(t *testing.T) {
	s, path := openStore(t, "bravo")
	var l cmdLog
	if s.InboxLast() != 0 {
		t.Fatalf("new store: InboxLast = %d", s.InboxLast())
	}
	woken := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}

	ch := s.InboxChanged()
	l.apply(t, s, submitFrom("bravo", t1, SubmitItem{ID: "o1", Dest: "alpha", Precedence: Flash, Payload: []byte("out")}))
	if woken(ch) || s.InboxLast() != 0 {
		t.Fatalf("an outbound submit woke inbox readers (InboxLast %d)", s.InboxLast())
	}
	l.apply(t, s, receiveCmd(t1, "alpha", Routine, inMsg("alpha", Routine, 1, "m1", "a"), inMsg("alpha", Routine, 2, "m2", "b")))
	if !woken(ch) || s.InboxLast() != 2 {
		t.Fatalf("a receive did not wake inbox readers (InboxLast %d)", s.InboxLast())
	}

	ch = s.InboxChanged()
	l.apply(t, s, markReadCmd(t2, "m1"))
	l.apply(t, s, receiveCmd(t2, "alpha", Routine, inMsg("alpha", Routine, 2, "m2", "b"))) // a duplicate
	if woken(ch) {
		t.Fatal("an ack or a duplicate receive woke inbox readers")
	}

	// A restore wakes them whatever it holds; InboxLast follows the file.
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	l.apply(t, s, receiveCmd(t3, "alpha", Routine, inMsg("alpha", Routine, 3, "m3", "c")))
	if s.InboxLast() != 3 {
		t.Fatalf("InboxLast = %d, want 3", s.InboxLast())
	}
	ch = s.InboxChanged()
	if err := s.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if !woken(ch) || s.InboxLast() != 2 {
		t.Fatalf("restore: woken %v, InboxLast %d (want 2)", woken(ch), s.InboxLast())
	}

	// Reopening reads the position from the file.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, "bravo", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.InboxLast() != 2 {
		t.Fatalf("reopened: InboxLast = %d, want 2", s2.InboxLast())
	}
}
