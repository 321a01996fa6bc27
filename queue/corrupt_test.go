package queue

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hotline-link/hotline/internal/boltcheck"
)

// corruptFixture is a closed store file of site bravo with one queued
// outbound message, one unread inbox message and one queued receipt, each
// with a payload that can be found in the file.
func corruptFixture(t *testing.T) (path string) {
	t.Helper()
	s, path := openStore(t, "bravo")
	var l cmdLog
	l.apply(t, s,
		submitFrom("bravo", t1, item("out-1", "alpha", Routine, "OUTBOUND-PAYLOAD-0123456789")),
		receiveCmd(t2, "alpha", Routine,
			inMsg("alpha", Routine, 1, "in-1", "INBOX-PAYLOAD-0123456789"),
			inMsg("alpha", Routine, 2, "in-2", "READ-PAYLOAD-0123456789")),
		markReadCmd(t3, "in-2"),
	)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// flipAt flips the bits of mask at offset off of the file.
func flipAt(t *testing.T, path string, off int, mask byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= mask
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// offsetOf returns the offset of the only occurrence of s in the file.
func offsetOf(t *testing.T, path, s string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(s))
	if i < 0 || bytes.Contains(b[i+1:], []byte(s)) {
		t.Fatalf("%q found %d times in %s", s, bytes.Count(b, []byte(s)), path)
	}
	return i
}

// wantCorrupt checks that err is a CorruptError naming the file and the
// record.
func wantCorrupt(t *testing.T, what string, err error, path, record string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: %v; want a CorruptError", what, err)
	}
	if ce.File != path || !strings.Contains(err.Error(), record) || !strings.Contains(err.Error(), path) {
		t.Fatalf("%s: %v; want it to name %s and %q", what, err, path, record)
	}
}

func TestCorruptPayloadIsNeverServed(t *testing.T) {
	t.Run("outbound", func(t *testing.T) {
		path := corruptFixture(t)
		flipAt(t, path, offsetOf(t, path, "OUTBOUND-PAYLOAD")+3, 0x01)
		s, err := Open(path, "bravo", Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		msgs, err := s.Pending("alpha", Routine, 0, 0, 0)
		wantCorrupt(t, "Pending", err, path, "bucket out, channel alpha/routine, seq 1")
		if msgs != nil {
			t.Fatalf("Pending returned %v with the error", msgs)
		}
		_, err = s.Lookup("out-1")
		wantCorrupt(t, "Lookup", err, path, "seq 1")
		if n, last := s.Corruption(); n != 1 || last == nil {
			t.Fatalf("Corruption() = %d, %v; want one record", n, last)
		}
		// A state change of the damaged message still applies (its
		// payload checksum is kept), and the payload stays refused.
		var l cmdLog
		l.next = s.AppliedIndex()
		l.apply(t, s, deliveredCmd(t4, "alpha", Routine, 1))
		if _, err := s.Lookup("out-1"); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Lookup after the ack: %v", err)
		}
	})
	t.Run("inbox", func(t *testing.T) {
		path := corruptFixture(t)
		flipAt(t, path, offsetOf(t, path, "INBOX-PAYLOAD")+5, 0x20)
		s, err := Open(path, "bravo", Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		items, err := s.Inbox(0, 0)
		wantCorrupt(t, "Inbox", err, path, "bucket in, channel alpha/routine, seq 1")
		if items != nil {
			t.Fatalf("Inbox returned %v", items)
		}
		_, err = s.LookupInbound("in-1")
		wantCorrupt(t, "LookupInbound", err, path, "seq 1")
		// The message that was read is intact.
		if st, err := s.LookupInbound("in-2"); err != nil || string(st.Message.Payload) != "READ-PAYLOAD-0123456789" {
			t.Fatalf("LookupInbound(in-2) = %+v, %v", st, err)
		}
	})
}

func TestCorruptRecordHeaderIsRefused(t *testing.T) {
	path := corruptFixture(t)
	// The record of in-1: header, id length, id.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec int
	for i := 0; ; i++ {
		j := bytes.Index(b[i:], []byte("in-1"))
		if j < 0 {
			t.Fatal("record of in-1 not found")
		}
		i += j
		if i >= recHeader+1 && b[i-1] == 4 && b[i-1-recHeader] == recVersion {
			rec = i - 1 - recHeader
			break
		}
	}
	for _, off := range []int{offState, offSubmitted + 7, offInboxPos + 7, offSum} {
		t.Run(fmt.Sprint("offset ", off), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			flipAt(t, p, rec+off, 0x01)
			s, err := Open(p, "bravo", Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.Inbox(0, 0)
			wantCorrupt(t, "Inbox", err, p, "seq 1")
			_, err = s.LookupInbound("in-1")
			wantCorrupt(t, "LookupInbound", err, p, "seq 1")
			// Applying a change to it stops the store rather than
			// rewriting it with a fresh checksum.
			var l cmdLog
			l.next = s.AppliedIndex()
			res := s.Apply(l.add(t, markReadCmd(t4, "in-1")))
			if !strings.Contains(res[0].Err, "corrupt") || !errors.Is(s.Err(), ErrCorrupt) {
				t.Fatalf("mark read of the damaged record: %+v, store error %v", res[0], s.Err())
			}
		})
	}
}

func TestCorruptReceiptIsRefused(t *testing.T) {
	path := corruptFixture(t)
	// The receipt of in-2 queued to alpha: precedence(1) seq(8) readAt(8) id sum(4).
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var at int
	for i := 0; ; i++ {
		j := bytes.Index(b[i:], []byte("in-2"))
		if j < 0 {
			t.Fatal("receipt not found")
		}
		i += j
		if i >= 17 && b[i-17] == byte(Routine) && be.Uint64(b[i-16:]) == 2 && be.Uint64(b[i-8:]) == uint64(t3) {
			at = i - 8
			break
		}
	}
	flipAt(t, path, at, 0x40)
	s, err := Open(path, "bravo", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.PendingReceipts("alpha", 0, 0)
	wantCorrupt(t, "PendingReceipts", err, path, `origin "alpha", rseq 1`)
}

// TestCorruptFileRefusedAtOpen: damage to the file's structure is a clear
// error at Open, never a panic.
func TestCorruptFileRefusedAtOpen(t *testing.T) {
	path := corruptFixture(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := os.Getpagesize()
	tests := []struct {
		name string
		off  int
		mask byte
	}{
		{"both meta pages", 16, 0xff}, // magic of meta 0, then meta 1 below
		{"page id in a header", 2*ps + 1, 0x40},
		{"page type", 2*ps + 8, 0x08},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.db")
			c := bytes.Clone(b)
			c[tc.off] ^= tc.mask
			if tc.name == "both meta pages" {
				c[ps+16] ^= 0xff
			}
			if err := os.WriteFile(p, c, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Open(p, "bravo", Options{})
			if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), "queue: open "+p+": file is corrupt: ") {
				t.Fatalf("Open: %v; want queue: open %s: file is corrupt: ...", err, p)
			}
		})
	}
}

// TestRandomFlipsNeverServed flips 8 random bytes of a realistic store
// file, many times: Open refuses with an error, or every read returns
// either the original data or an error (ErrCorrupt, or ErrNotFound for a
// damaged index key); nothing panics.
func TestRandomFlipsNeverServed(t *testing.T) {
	s, path := openStore(t, "alpha")
	s.Apply(script(t, 7, 400))
	orig := readView(t, s)
	want := map[string][]byte{} // ID -> payload, all messages
	for id, st := range orig.Status {
		if st != nil {
			want[id] = st.Message.Payload
		}
	}
	wantPos := map[uint64][]byte{} // inbox position -> payload
	for _, it := range orig.Inbox {
		wantPos[it.Pos] = it.Message.Payload
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clean, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Flip only inside the pages in use: beyond bbolt's high-water mark
	// the file is preallocated space nothing reads.
	inUse, err := boltcheck.InUse(path)
	if err != nil {
		t.Fatal(err)
	}
	used := int(inUse)
	seeds := 200
	if testing.Short() {
		seeds = 40
	}
	if n, err := strconv.Atoi(os.Getenv("QUEUE_FLIP_SEEDS")); err == nil {
		seeds = n // a longer run
	}
	var refused, detected, silent int
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(uint64(seed), 99))
		b := bytes.Clone(clean)
		at := rng.IntN(used - 8)
		for i := range 8 {
			b[at+i] ^= byte(1 + rng.IntN(255))
		}
		p := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(p, "alpha", Options{})
		if err != nil {
			refused++
			if !errors.Is(err, ErrCorrupt) && !strings.Contains(err.Error(), "queue: open") {
				t.Fatalf("seed %d: Open: %v", seed, err)
			}
			continue
		}
		check := func(what string, err error) {
			if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound) {
				t.Fatalf("seed %d (offset %d): %s: %v", seed, at, what, err)
			}
		}
		checkMsg := func(what string, m Message) {
			if p, ok := want[m.ID]; ok && !bytes.Equal(p, m.Payload) {
				t.Fatalf("seed %d (offset %d): %s served %q for %q, stored %q", seed, at, what, m.Payload, m.ID, p)
			}
		}
		for _, oc := range s.Outbound() {
			msgs, err := s.Pending(oc.Dest, oc.Precedence, 0, 0, 0)
			check("Pending", err)
			for _, m := range msgs {
				checkMsg("Pending", m)
			}
		}
		items, err := s.Inbox(0, 0)
		check("Inbox", err)
		for _, it := range items {
			// By position: expiry notices of an ID used again after a
			// purge share their ID.
			if p, ok := wantPos[it.Pos]; ok && !bytes.Equal(p, it.Message.Payload) {
				t.Fatalf("seed %d (offset %d): Inbox served %q at %d, stored %q", seed, at, it.Message.Payload, it.Pos, p)
			}
		}
		for id := range orig.Status {
			st, err := s.Lookup(id)
			check("Lookup", err)
			if err == nil {
				checkMsg("Lookup", st.Message)
			}
		}
		for _, q := range orig.Queues {
			_, err := s.PendingReceipts(q.Origin, 0, 0)
			check("PendingReceipts", err)
		}
		if n, _ := s.Corruption(); n > 0 {
			detected++
		} else {
			silent++
		}
		// Applying more commands never panics either.
		more := script(t, 8, 100)
		for i := range more {
			more[i].Index += 1000
		}
		s.Apply(more)
		_ = s.Close()
	}
	t.Logf("%d random 8-byte flips in the %d bytes in use of a %d-byte file: %d refused at Open, %d opened and reported corruption on read, %d opened with nothing damaged found (free space, index keys, counters)",
		seeds, used, len(clean), refused, detected, silent)
}
