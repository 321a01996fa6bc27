package queue

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeRecord: a stored record of any bytes is refused with
// ErrCorrupt or decodes to fields that encode back to the same bytes (the
// checksum admits nothing else); never a panic.
func FuzzDecodeRecord(f *testing.F) {
	ck := chanKey("alpha", Routine)
	for _, r := range []record{
		{state: Queued, id: "a", payload: []byte("payload")},
		{state: Read, flags: FlagDrill, submittedAt: t1, readAt: t2, inboxPos: 7, id: "0190c6a2-7b3e", key: "k", hash: make([]byte, 32), payload: bytes.Repeat([]byte{0xff}, 100)},
		{state: Expired, flags: FlagTombstone, id: "x"},
		{state: Refused, readAt: t2, id: "r", mailbox: "nosuch", refused: `no mailbox "nosuch" here`, payload: []byte("p")},
	} {
		f.Add(r.encode(loc{finIn, ck, 3}), uint64(3))
	}
	f.Add([]byte{recVersion}, uint64(1))
	f.Fuzz(func(t *testing.T, v []byte, seq uint64) {
		l := loc{finIn, ck, seq}
		r, err := decodeRecord(v, l)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if got := r.encode(l); !bytes.Equal(got, v) {
			t.Fatalf("decoded record encodes differently:\n%x\n%x", v, got)
		}
		if _, err := patchRecord(v, l, Read, offRead, t4); err != nil {
			t.Fatalf("a valid record does not patch: %v", err)
		}
	})
}

// FuzzDecodeReceipt: a stored receipt of any bytes is refused with
// ErrCorrupt or encodes back to the same bytes.
func FuzzDecodeReceipt(f *testing.F) {
	origin := []byte("alpha")
	f.Add(encodeReceipt(origin, Receipt{RSeq: 4, Precedence: Flash, Seq: 9, ID: "m9", ReadAt: t2}), uint64(4))
	f.Add(encodeReceipt(origin, Receipt{RSeq: 1}), uint64(1))
	f.Add(encodeReceipt(origin, Receipt{RSeq: 5, Precedence: Routine, Seq: 3, ID: "m3", ReadAt: t2, Refused: "no mailbox"}), uint64(5))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, v []byte, rseq uint64) {
		rc, err := decodeReceipt(origin, rseq, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if got := encodeReceipt(origin, rc); !bytes.Equal(got, v) {
			t.Fatalf("decoded receipt encodes differently:\n%x\n%x", v, got)
		}
	})
}

// FuzzKeys: the parsers of channel keys, refs, expiry keys and
// finalized-index keys accept exactly what the encoders make of what they
// return.
func FuzzKeys(f *testing.F) {
	ck := chanKey("bravo", Priority)
	f.Add(ck)
	f.Add(ref(5, ck))
	f.Add(expiryKey(t1, 5, ck))
	f.Add(makeFinKey(-t1, finOut, 5, ck))
	f.Add([]byte{0, 1})
	f.Fuzz(func(t *testing.T, k []byte) {
		if site, p, ok := parseChanKey(k); ok && !bytes.Equal(chanKey(site, p), k) {
			t.Fatalf("chanKey %x round trip: %x", k, chanKey(site, p))
		}
		if seq, c, ok := parseRef(k); ok && !bytes.Equal(ref(seq, c), k) {
			t.Fatalf("ref %x round trip", k)
		}
		if at, seq, c, ok := parseExpiryKey(k); ok {
			if _, _, ok := parseChanKey(c); !ok || !bytes.Equal(expiryKey(at, seq, c), k) {
				t.Fatalf("expiry key %x round trip", k)
			}
		}
		if at, kind, r, ok := parseFinKey(k); ok {
			seq, c, ok := parseRef(r)
			if !ok || !bytes.Equal(makeFinKey(int64(at^1<<63), kind, seq, c), k) {
				t.Fatalf("finalized key %x round trip", k)
			}
		}
	})
}

// FuzzRestore: Restore of any bytes fails cleanly and leaves the store as
// it was, or (bytes that are a valid snapshot) succeeds with a store
// that reads without panicking; never a panic.
func FuzzRestore(f *testing.F) {
	// A small store keeps the inputs small (a few pages) so that the
	// fuzzer mutates the structure, not free space.
	src, _ := openStore(f, "alpha")
	var sl cmdLog
	sl.apply(f, src, submitCmd(t1, item("m", "bravo", Flash, "payload")),
		receiveCmd(t2, "bravo", Routine, Message{ID: "i", Origin: "bravo", Dest: "alpha", Precedence: Routine, Seq: 1, Payload: []byte("in")}))
	snap, err := src.Snapshot()
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		f.Fatal(err)
	}
	snap.Release()
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:4096])
	f.Add([]byte("not a snapshot"))
	f.Add([]byte{})
	s, _ := openStore(f, "alpha")
	var l cmdLog
	l.apply(f, s, submitCmd(t1, item("before", "bravo", Flash, "kept")))
	f.Fuzz(func(t *testing.T, data []byte) {
		before := rawDump(t, s)
		if err := s.Restore(bytes.NewReader(data)); err != nil {
			if s.Err() != nil {
				t.Fatalf("failed Restore left the store failed: %v", s.Err())
			}
			assertSameRaw(t, before, rawDump(t, s))
			return
		}
		// A valid snapshot: reads work (or report damage); then a known
		// state for the next input.
		for _, oc := range s.Outbound() {
			_, _ = s.Pending(oc.Dest, oc.Precedence, 0, 0, 0)
		}
		_, _ = s.Inbox(0, 0)
		if err := s.Restore(bytes.NewReader(buf.Bytes())); err != nil {
			t.Fatal(err)
		}
	})
}
