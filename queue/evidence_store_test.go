package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// evidenceStore is a store of alpha holding evidence of every kind:
// out-1..out-4 sent to bravo (routine); bravo's ack up to 3 with alpha's
// "sent-A" and bravo's "deliv-A" statements of 1..4; bravo's receipts
// (RSeq 1, 2) for out-2 and out-3 with "read-A"; and in-1..in-3 from
// bravo with "recv-A".
func evidenceStore(t *testing.T) (*Store, string, *cmdLog) {
	t.Helper()
	s, path := openStore(t, "alpha")
	l := &cmdLog{}
	var items []SubmitItem
	for i := 1; i <= 4; i++ {
		items = append(items, item(fmt.Sprintf("out-%d", i), "bravo", Routine, "x"))
	}
	l.apply(t, s, submitCmd(t1, items...))
	l.apply(t, s, Command{Op: OpDelivered, Time: t2, Delivered: &DeliveredCmd{Dest: "bravo", Precedence: Routine, UpTo: 3,
		Proofs: []DeliveredProof{{Sent: testEvidence("sent-A", 1, 4), Evidence: testEvidence("deliv-A", 1, 3)}}}})
	l.apply(t, s, evReceiptsCmd(t2, "read-A", 1, 2, 3))
	l.apply(t, s, evReceiveCmd(t2, "recv-A", 1, 3))
	return s, path, l
}

// wantProofs checks Proofs(id): kinds in order, each "KIND:STATEMENT:INDEX",
// and that the leaves are the statement's (testEvidence's).
func wantProofs(t *testing.T, s *Store, id string, want ...string) {
	t.Helper()
	ps, err := s.Proofs(id)
	if err != nil {
		t.Fatalf("Proofs(%q): %v", id, err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%s:%s:%d", p.Kind, p.Statement, p.Index))
		if e := testEvidence(string(p.Statement), 1, len(p.Leaves)); !reflect.DeepEqual(e.Leaves, p.Leaves) {
			t.Fatalf("Proofs(%q): %s: leaves differ from the statement's", id, p.Kind)
		}
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Proofs(%q) = %v, want %v", id, got, want)
	}
}

func TestProofsOfEveryKind(t *testing.T) {
	s, _, l := evidenceStore(t)
	wantProofs(t, s, "out-1", "sent:sent-A:0", "delivered:deliv-A:0")
	wantProofs(t, s, "out-2", "sent:sent-A:1", "delivered:deliv-A:1", "read:read-A:0")
	wantProofs(t, s, "out-3", "sent:sent-A:2", "delivered:deliv-A:2", "read:read-A:1")
	wantProofs(t, s, "out-4") // above the ack
	wantProofs(t, s, "in-2", "received:recv-A:1")
	if ps, err := s.Proofs("nope"); !errors.Is(err, ErrNotFound) || ps != nil {
		t.Fatalf("Proofs of an unknown ID: %v, %v", ps, err)
	}
	if n := countKeys(t, s, bucketEvStmts); n != 4 {
		t.Fatalf("%d statements stored, want 4", n)
	}
	// The next ack, with the same sent statement: stored once, one more
	// reference.
	l.apply(t, s, Command{Op: OpDelivered, Time: t3, Delivered: &DeliveredCmd{Dest: "bravo", Precedence: Routine, UpTo: 4,
		Proofs: []DeliveredProof{{Sent: testEvidence("sent-A", 1, 4), Evidence: testEvidence("deliv-B", 4, 1)}}}})
	wantProofs(t, s, "out-4", "sent:sent-A:3", "delivered:deliv-B:0")
	wantProofs(t, s, "out-1", "sent:sent-A:0", "delivered:deliv-A:0")
	if n := countKeys(t, s, bucketEvStmts); n != 5 {
		t.Fatalf("%d statements stored, want 5", n)
	}
	if got := evCount(t, s, "sent-A"); got != 4 {
		t.Fatalf("sent-A has %d references, want 4", got)
	}
}

// evCount returns the reference count of statement stmt (0: not stored).
func evCount(t *testing.T, s *Store, stmt string) uint64 {
	t.Helper()
	var n uint64
	err := s.view(func(tx *bolt.Tx) error {
		sk := sha256Key(stmt)
		v := tx.Bucket(bucketEvCount).Get(sk)
		if v == nil {
			if tx.Bucket(bucketEvStmts).Get(sk) != nil {
				return errors.New("statement without count")
			}
			return nil
		}
		var err error
		n, err = decodeEvCount(sk, v)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEvidenceReplayChangesNothing: the same commands proposed again
// (retries, resends) and the same entries replayed leave the evidence as
// it was; the same log in other batches gives the same bytes.
func TestEvidenceReplayChangesNothing(t *testing.T) {
	s, _, l := evidenceStore(t)
	before := evDump(t, s)
	var again []Command
	for _, e := range l.entries {
		c, err := DecodeCommand(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		again = append(again, *c)
	}
	l.apply(t, s, again...)
	assertSameRaw(t, before, evDump(t, s))
	for _, r := range s.Apply(l.entries) {
		if !r.Skipped {
			t.Fatalf("replayed entry applied: %+v", r)
		}
	}
	assertSameRaw(t, before, evDump(t, s))

	one, _ := openStore(t, "alpha")
	applyInBatches(one, l.entries, 1)
	assertSameRaw(t, rawDump(t, s), rawDump(t, one))
}

// evDump is rawDump's evidence buckets.
func evDump(t *testing.T, s *Store) []string {
	var out []string
	for _, line := range rawDump(t, s) {
		if strings.HasPrefix(line, "ev_") {
			out = append(out, line)
		}
	}
	if len(out) < 6 {
		t.Fatalf("evidence dump has %d lines", len(out))
	}
	return out
}

// TestDuplicateResendKeepsFirstEvidence: a resend signed again keeps the
// first statement of the messages already held; the new ones get the
// new statement.
func TestDuplicateResendKeepsFirstEvidence(t *testing.T) {
	s, _, l := evidenceStore(t)
	res := l.apply(t, s, evReceiveCmd(t3, "recv-B-2", 2, 3)) // in-2..in-4
	if res[0].Receive.Applied != 1 || res[0].Receive.Last != 4 {
		t.Fatalf("resend: %+v", res[0].Receive)
	}
	wantProofs(t, s, "in-2", "received:recv-A:1")
	wantProofs(t, s, "in-3", "received:recv-A:2")
	wantProofs(t, s, "in-4", "received:recv-B-2:2")
	if a, b := evCount(t, s, "recv-A"), evCount(t, s, "recv-B-2"); a != 3 || b != 1 {
		t.Fatalf("references: recv-A %d, recv-B-2 %d; want 3 and 1", a, b)
	}
	// Receipts resent with another statement: the first kept.
	l.apply(t, s, evReceiptsCmd(t3, "read-B", 1, 2, 3))
	wantProofs(t, s, "out-2", "sent:sent-A:1", "delivered:deliv-A:1", "read:read-A:0")
	if n := evCount(t, s, "read-B"); n != 0 {
		t.Fatalf("read-B stored with %d references", n)
	}
	// A receipt naming another message's ID, and one for an unknown
	// message, refer to nothing.
	c := evReceiptsCmd(t3, "read-C", 3, 4, 9)
	c.Receipts.Receipts[0].ID = "someone-else"
	l.apply(t, s, c)
	wantProofs(t, s, "out-4")
	if n := evCount(t, s, "read-C"); n != 0 {
		t.Fatalf("read-C stored with %d references", n)
	}
}

// TestPurgeFreesEvidence: purging messages drops their references, and a
// statement goes with its last one.
func TestPurgeFreesEvidence(t *testing.T) {
	s, _, l := evidenceStore(t)
	l.apply(t, s, markReadCmd(t3, "in-1", "in-2", "in-3"))
	// out-2 (read at t2-1) goes first.
	res := l.apply(t, s, purgeCmd(t4, t4, 1))
	if res[0].Purge.Purged != 1 {
		t.Fatalf("purge: %+v", res[0].Purge)
	}
	if a, b, c := evCount(t, s, "sent-A"), evCount(t, s, "deliv-A"), evCount(t, s, "read-A"); a != 2 || b != 2 || c != 1 {
		t.Fatalf("after purging out-2: sent-A %d, deliv-A %d, read-A %d references; want 2, 2, 1", a, b, c)
	}
	if _, err := s.Proofs("out-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Proofs of a purged message: %v", err)
	}
	l.apply(t, s, purgeCmd(t4, t4+1, 0))
	for _, b := range [][]byte{bucketEvStmts, bucketEvCount, bucketEvRefs} {
		if n := countKeys(t, s, b); n != 0 {
			t.Fatalf("%d keys left in %s", n, b)
		}
	}
	if n := countKeys(t, s, bucketOutIDs) + countKeys(t, s, bucketInIDs); n != 1 {
		t.Fatalf("%d messages left, want out-4 (never acked)", n)
	}
}

func TestSnapshotAndBackupKeepProofs(t *testing.T) {
	s, _, _ := evidenceStore(t)
	want := map[string][]Proof{}
	for _, id := range []string{"out-1", "out-2", "out-3", "in-1", "in-3"} {
		ps, err := s.Proofs(id)
		if err != nil || len(ps) == 0 {
			t.Fatalf("Proofs(%q): %v, %v", id, ps, err)
		}
		want[id] = ps
	}
	check := func(what string, s2 *Store) {
		t.Helper()
		for id, ps := range want {
			got, err := s2.Proofs(id)
			if err != nil || !reflect.DeepEqual(got, ps) {
				t.Fatalf("%s: Proofs(%q) = %v, %v", what, id, got, err)
			}
		}
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	s2, _ := openStore(t, "alpha")
	if err := s2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	check("snapshot", s2)

	data, _ := backupBytes(t, s)
	s3, _, err := restoreFrom(t, data, "alpha", "bravo")
	if err != nil {
		t.Fatal(err)
	}
	check("backup", s3)
}

// TestOpenUpgradesFormat3: a file of format 3 gets the evidence buckets
// and nothing else changes (its records and receipts already have their
// checksums).
func TestOpenUpgradesFormat3(t *testing.T) {
	s, path := openStore(t, "alpha")
	s.Apply(script(t, 3, 300))
	want := rawDump(t, s)
	wantView := readView(t, s)
	editClosed(t, s, path, func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvStmts, bucketEvCount, bucketEvRefs} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(metaVersion, u64(3))
	})
	s2, err := Open(path, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	assertSameRaw(t, want, rawDump(t, s2))
	assertSameView(t, wantView, readView(t, s2))
	// Entries of format 3 apply as before, without evidence.
	for i, e := range v3Entries[1:] {
		b, _ := hex.DecodeString(e.hex)
		res := s2.Apply([]Entry{{Index: s2.AppliedIndex() + 1, Data: b}})
		if res[0].Err != "" {
			t.Fatalf("v3 entry %d: %s", i, res[0].Err)
		}
	}
}

// TestCorruptEvidenceIsRefused: a damaged reference, count or statement is
// reported as corruption, counted, and never served; a purge that must
// change it stops the store.
func TestCorruptEvidenceIsRefused(t *testing.T) {
	for _, tc := range []struct {
		bucket []byte
		key    func() []byte
		id     string // whose Proofs read it
		off    int    // byte to flip, from the end when negative
		stops  bool   // a purge must read it
	}{
		{bucketEvRefs, func() []byte { return evRefKey(evRead, ref(2, chanKey("bravo", Routine))) }, "out-2", 5, true},
		{bucketEvStmts, func() []byte { return sha256Key("deliv-A") }, "out-1", -7, false}, // in the statement
		{bucketEvStmts, func() []byte { return sha256Key("deliv-A") }, "out-1", 20, false}, // in a leaf
		{bucketEvCount, func() []byte { return sha256Key("recv-A") }, "", 7, true},
		{bucketEvRefs, func() []byte { return evRefKey(evReceived, ref(1, chanKey("bravo", Routine))) }, "in-1", -1, true},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.bucket, tc.off), func(t *testing.T) {
			s, path, l := evidenceStore(t)
			editClosed(t, s, path, func(tx *bolt.Tx) error {
				b := tx.Bucket(tc.bucket)
				v := clone(b.Get(tc.key()))
				if v == nil {
					return fmt.Errorf("no key %x", tc.key())
				}
				off := tc.off
				if off < 0 {
					off += len(v)
				}
				v[off] ^= 0x04
				return b.Put(tc.key(), v)
			})
			s, err := Open(path, "alpha", Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if tc.id != "" {
				ps, err := s.Proofs(tc.id)
				wantCorrupt(t, "Proofs", err, path, string(tc.bucket))
				if ps != nil {
					t.Fatalf("damaged proof served: %v", ps)
				}
				if n, _ := s.Corruption(); n != 1 {
					t.Fatalf("Corruption() = %d", n)
				}
			}
			// A purge that must read the damaged record stops the store
			// rather than diverge; a damaged statement is only deleted.
			l.apply(t, s, markReadCmd(t3, "in-1", "in-2", "in-3"))
			res := s.Apply(l.add(t, purgeCmd(t4, t4+1, 0)))
			if tc.stops != (strings.Contains(res[0].Err, "corrupt") && s.Err() != nil) {
				t.Fatalf("purge over a damaged evidence record: %+v, store error %v", res[0], s.Err())
			}
			if !tc.stops && countKeys(t, s, bucketEvStmts) != 0 {
				t.Fatal("purge left statements")
			}
		})
	}
}

func sha256Key(stmt string) []byte {
	h := sha256.Sum256([]byte(stmt))
	return h[:]
}

// evidenceScript is a random mix of submits, acks, receipts and inbound
// batches with evidence (resends, gaps, stale statements), reads and
// purges, for site alpha talking to bravo.
func evidenceScript(t testing.TB, seed uint64, n int) []Entry {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	var l cmdLog
	now := t0
	out, in, rseq := 0, uint64(0), uint64(0)
	for i := range n {
		now += int64(rng.IntN(1e9))
		stmt := fmt.Sprintf("stmt-%d", i)
		switch rng.IntN(6) {
		case 0:
			var items []SubmitItem
			for range 1 + rng.IntN(4) {
				out++
				items = append(items, item(fmt.Sprintf("out-%d", out), "bravo", Routine, "x"))
			}
			l.add(t, submitCmd(now, items...))
		case 1:
			upTo := uint64(1 + rng.IntN(out+2))
			c := deliveredCmd(now, "bravo", Routine, upTo)
			if rng.IntN(3) > 0 { // else a resync's, without proofs
				first := uint64(1 + rng.IntN(int(upTo)))
				p := DeliveredProof{Evidence: testEvidence(stmt+"-held", first, int(upTo-first+1))}
				if rng.IntN(3) > 0 {
					p.Sent = testEvidence(stmt+"-sent", first, 1+rng.IntN(5))
				}
				c.Delivered.Proofs = []DeliveredProof{p}
			}
			l.add(t, c)
		case 2:
			first := max(1, rseq+1-uint64(rng.IntN(3)))
			var seqs []uint64
			for range 1 + rng.IntN(3) {
				seqs = append(seqs, uint64(1+rng.IntN(max(out, 1))))
			}
			rseq = max(rseq, first+uint64(len(seqs))-1)
			l.add(t, evReceiptsCmd(now, stmt, first, seqs...))
		case 3:
			first := max(1, in+1-uint64(rng.IntN(3))+uint64(rng.IntN(2))) // resends and gaps
			k := 1 + rng.IntN(4)
			if first <= in+1 {
				in = max(in, first+uint64(k)-1)
			}
			l.add(t, evReceiveCmd(now, stmt, first, k))
		case 4:
			l.add(t, markReadCmd(now, fmt.Sprintf("in-%d", 1+rng.IntN(int(in)+1)), fmt.Sprintf("in-%d", 1+rng.IntN(int(in)+1))))
		case 5:
			l.add(t, purgeCmd(now, now-60e9-int64(rng.IntN(60e9)), rng.IntN(4)))
		}
	}
	return l.entries
}

// checkEvidenceInvariants: every reference names a stored message and a
// stored statement, whose count is its number of references; nothing
// else is stored.
func checkEvidenceInvariants(t *testing.T, s *Store) (refs int) {
	t.Helper()
	err := s.view(func(tx *bolt.Tx) error {
		counted := map[string]uint64{}
		err := tx.Bucket(bucketEvRefs).ForEach(func(k, v []byte) error {
			sk, idx, err := decodeEvRef(k, v)
			if err != nil {
				return err
			}
			seq, ck, _ := parseRef(k[1:])
			parent := bucketOut
			if k[0] == evReceived.b {
				parent = bucketIn
			}
			if b := tx.Bucket(parent).Bucket(ck); b == nil || b.Get(u64(seq)) == nil {
				return fmt.Errorf("reference %x to a message not stored", k)
			}
			st, err := decodeEvStmt(sk, tx.Bucket(bucketEvStmts).Get(sk))
			if err != nil || idx >= len(st.leaves)/32 {
				return fmt.Errorf("reference %x: statement %v, leaf %d", k, err, idx)
			}
			counted[string(sk)]++
			refs++
			return nil
		})
		if err != nil {
			return err
		}
		if n := tx.Bucket(bucketEvStmts).Stats().KeyN; n != len(counted) {
			return fmt.Errorf("%d statements stored, %d referred to", n, len(counted))
		}
		return tx.Bucket(bucketEvCount).ForEach(func(k, v []byte) error {
			if n, err := decodeEvCount(k, v); err != nil || n != counted[string(k)] {
				return fmt.Errorf("statement %x: count %d (%v), %d references", k, n, err, counted[string(k)])
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

// TestEvidenceIsDeterministicAndBounded: the script gives the same bytes
// in any batches, its references and counts agree, and purging every
// finished message leaves only the evidence of those kept.
func TestEvidenceIsDeterministicAndBounded(t *testing.T) {
	entries := evidenceScript(t, 9, 400)
	a, _ := openStore(t, "alpha")
	b, _ := openStore(t, "alpha")
	resA := a.Apply(entries)
	resB := applyInBatches(b, entries, 1, 7, 64)
	if !reflect.DeepEqual(resA, resB) {
		t.Fatal("results differ between batchings")
	}
	for i, r := range resA {
		if r.Err != "" {
			t.Fatalf("entry %d: %s", i, r.Err)
		}
	}
	assertSameRaw(t, rawDump(t, a), rawDump(t, b))
	if n := checkEvidenceInvariants(t, a); n < 100 {
		t.Fatalf("the script made only %d references", n)
	}
	var l cmdLog
	l.next = uint64(len(entries))
	for more := true; more; {
		more = l.apply(t, a, purgeCmd(t4*2, t4*2, 0))[0].Purge.More
	}
	checkEvidenceInvariants(t, a)
	kept := countKeys(t, a, bucketOutIDs) + countKeys(t, a, bucketInIDs)
	if refs := countKeys(t, a, bucketEvRefs); refs > 3*kept {
		t.Fatalf("%d references for %d messages kept", refs, kept)
	}
}

// FuzzDecodeEvidenceRecords: a stored reference, count or statement of
// any bytes is refused with ErrCorrupt or encodes back to the same bytes;
// never a panic.
func FuzzDecodeEvidenceRecords(f *testing.F) {
	e := testEvidence("statement", 3, 2)
	sk := sha256Key("statement")
	key := evRefKey(evSent, ref(4, chanKey("bravo", Routine)))
	f.Add(encodeEvRef(key, sk, 1))
	f.Add(encodeEvCount(sk, 7))
	f.Add(encodeEvStmt(sk, e))
	f.Add([]byte{evStmtVersion})
	f.Fuzz(func(t *testing.T, v []byte) {
		if sk2, idx, err := decodeEvRef(key, v); err == nil {
			if !bytes.Equal(encodeEvRef(key, sk2, idx), v) {
				t.Fatalf("reference %x re-encodes differently", v)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("reference: %v", err)
		}
		if n, err := decodeEvCount(sk, v); err == nil {
			if !bytes.Equal(encodeEvCount(sk, n), v) {
				t.Fatalf("count %x re-encodes differently", v)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("count: %v", err)
		}
		if st, err := decodeEvStmt(sk, v); err == nil {
			got := &Evidence{Statement: st.statement, First: st.first, Leaves: make([][32]byte, len(st.leaves)/32)}
			for i := range got.Leaves {
				copy(got.Leaves[i][:], st.leaves[32*i:])
			}
			if !bytes.Equal(encodeEvStmt(sk, got), v) {
				t.Fatalf("statement %x re-encodes differently", v)
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("statement: %v", err)
		}
	})
}

// editClosed closes s and changes its file at path with fn.
func editClosed(t *testing.T, s *Store, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}
