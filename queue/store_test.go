package queue

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// script generates a deterministic mix of every command, with retries,
// duplicates, gaps, conflicts and undecodable entries, for site alpha
// talking to bravo and charlie.
func script(t testing.TB, seed uint64, n int) []Entry {
	t.Helper()
	return scriptWith(t, seed, n, false)
}

// scriptWith is script, with refusals (refuse.go) when refuse is set: the
// inbound messages of sequence 4 mod 7 are refused, and the receipts of
// even RSeq are refusal receipts. The random draws are the same either way.
// (A store of an older format never holds refusals: the format upgrade
// tests use script.)
func scriptWith(t testing.TB, seed uint64, n int, refuse bool) []Entry {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	var l cmdLog
	now := t0
	sites := []string{"bravo", "charlie"}
	var ids, keys, inIDs []string
	inLast := map[string]uint64{}
	for i := 0; i < n; i++ {
		now += int64(rng.IntN(1e9))
		site := sites[rng.IntN(2)]
		p := Precedence(rng.IntN(4))
		switch op := rng.IntN(9); op {
		case 0, 1, 2:
			var items []SubmitItem
			for range 1 + rng.IntN(5) {
				it := item(fmt.Sprintf("o%d", len(ids)), site, p, fmt.Sprintf("payload %d", rng.IntN(3)))
				switch r := rng.IntN(10); {
				case r == 0 && len(ids) > 0:
					it.ID = ids[rng.IntN(len(ids))] // retried ID
				case r < 3:
					it.Key = fmt.Sprintf("key%d", rng.IntN(len(keys)+1)) // new or reused key
					keys = append(keys, it.Key)
				}
				if rng.IntN(3) == 0 {
					it.ExpiresAt = now + int64(rng.IntN(5e9))
				}
				ids = append(ids, it.ID)
				items = append(items, it)
			}
			l.add(t, submitCmd(now, items...))
		case 3:
			l.add(t, deliveredCmd(now, site, p, uint64(rng.IntN(12))))
		case 4:
			ck := site + p.String()
			lo := max(1, int(inLast[ck])-2+rng.IntN(5))
			var msgs []Message
			for seq := uint64(lo); seq < uint64(lo+rng.IntN(6)); seq++ {
				id := fmt.Sprintf("in-%s-%d", ck, seq)
				m := Message{ID: id, Origin: site, Dest: "alpha", Precedence: p, Seq: seq, Payload: []byte(id), SubmittedAt: t0}
				switch seq % 7 {
				case 3:
					m.Flags, m.Payload = FlagTombstone, nil
				case 5:
					m.Flags = FlagLinkTest
				}
				msgs = append(msgs, m)
				inIDs = append(inIDs, id)
				inLast[ck] = max(inLast[ck], seq)
			}
			var refused []Refusal
			for i := range msgs {
				if refuse && msgs[i].Seq%7 == 4 {
					refused = append(refused, Refusal{Index: i, Reason: "mailbox nosuch does not exist"})
				}
			}
			l.add(t, Command{Op: OpReceive, Time: now, Receive: &Receive{Origin: site, Precedence: p, Messages: msgs, Refused: refused}})
		case 5:
			var read []string
			for range 1 + rng.IntN(4) {
				if len(inIDs) > 0 && rng.IntN(5) > 0 {
					read = append(read, inIDs[rng.IntN(len(inIDs))])
				} else if len(ids) > 0 {
					read = append(read, ids[rng.IntN(len(ids))])
				}
			}
			l.add(t, markReadCmd(now, read...))
		case 6:
			var rcs []Receipt
			lo := uint64(1 + rng.IntN(8))
			for rs := lo; rs < lo+uint64(rng.IntN(4)); rs++ {
				rcs = append(rcs, Receipt{RSeq: rs, Precedence: p, Seq: uint64(1 + rng.IntN(8)), ReadAt: now - 1})
				if refuse && rs%2 == 0 {
					rcs[len(rcs)-1].Refused = "mailbox cert does not accept type text/plain"
				}
			}
			l.add(t, receiptsCmd(now, site, rcs...))
		case 7:
			switch rng.IntN(3) {
			case 0:
				l.add(t, receiptsAckedCmd(now, site, uint64(rng.IntN(6))))
			case 1:
				l.add(t, expireCmd(now))
			default: // retention of about a minute, a few messages at a time
				l.add(t, purgeCmd(now, now-40e9-int64(rng.IntN(40e9)), rng.IntN(4)))
			}
		case 8:
			l.next++
			l.entries = append(l.entries, Entry{Index: l.next, Data: []byte(`{"op":"submit","submit":`)})
		}
	}
	return l.entries
}

// applyInBatches applies entries in batches of the given sizes (cycled).
func applyInBatches(s *Store, entries []Entry, sizes ...int) []Result {
	var res []Result
	for i, j := 0, 0; i < len(entries); j++ {
		n := min(sizes[j%len(sizes)], len(entries)-i)
		res = append(res, s.Apply(entries[i:i+n])...)
		i += n
	}
	return res
}

func TestApplyIsDeterministicAndReplaySafe(t *testing.T) {
	testDeterministic(t, script(t, 7, 400))
}

// TestApplyRefusalsDeterministic: the same with refused messages and
// refusal receipts.
func TestApplyRefusalsDeterministic(t *testing.T) {
	entries := scriptWith(t, 7, 400, true)
	testDeterministic(t, entries)
	s, _ := openStore(t, "alpha")
	s.Apply(entries)
	refused := map[string]int{} // by origin: alpha's were refused elsewhere
	es, _, err := s.AuditEntries(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if r, err := DecodeAuditRecord(e.Record); err == nil && r.Kind == AuditRefused {
			refused[r.Origin]++
		}
	}
	if refused["alpha"] == 0 || len(refused) < 2 {
		t.Fatalf("the script refused %v: want some of both directions", refused)
	}
}

func testDeterministic(t *testing.T, entries []Entry) {
	a, pathA := openStore(t, "alpha")
	b, _ := openStore(t, "alpha")
	c, _ := openStore(t, "alpha")
	resA := a.Apply(entries)
	resB := applyInBatches(b, entries, 1)
	resC := applyInBatches(c, entries, 3, 17, 1, 64)

	errs, purged := 0, 0
	for i := range resA {
		if !reflect.DeepEqual(resA[i], resB[i]) || !reflect.DeepEqual(resA[i], resC[i]) {
			t.Fatalf("entry %d: results differ: %+v / %+v / %+v", i, resA[i], resB[i], resC[i])
		}
		if resA[i].Skipped {
			t.Fatalf("entry %d skipped on first apply", i)
		}
		if resA[i].Err != "" {
			errs++
		}
		if p := resA[i].Purge; p != nil {
			purged += p.Purged
		}
	}
	if purged == 0 {
		t.Fatal("the script should purge some messages")
	}
	if errs == 0 || errs > len(entries)/5 {
		t.Fatalf("%d entries failed: the script should exercise a few decode errors", errs)
	}
	rawA, viewA := rawDump(t, a), readView(t, a)
	if len(viewA.Status) < 50 || len(viewA.Inbox) == 0 || len(viewA.Queues) == 0 {
		t.Fatalf("script produced too little state: %d messages, inbox %d", len(viewA.Status), len(viewA.Inbox))
	}
	assertSameRaw(t, rawA, rawDump(t, b))
	assertSameRaw(t, rawA, rawDump(t, c))
	assertSameView(t, viewA, readView(t, b))
	assertSameView(t, viewA, readView(t, c))

	// Reopen A and replay the whole log, as Raft does after a restart.
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := Open(pathA, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if a.AppliedIndex() != uint64(len(entries)) {
		t.Fatalf("applied index after reopen = %d, want %d", a.AppliedIndex(), len(entries))
	}
	changed := a.Changed()
	for i, r := range applyInBatches(a, entries, 50) {
		if !r.Skipped || r.Err != "" || r.Submit != nil {
			t.Fatalf("replayed entry %d: %+v, want skipped", i, r)
		}
	}
	select {
	case <-changed:
		t.Fatal("Changed woke for a replay that changed nothing")
	default:
	}
	assertSameRaw(t, rawA, rawDump(t, a))
	assertSameView(t, viewA, readView(t, a))
}

func TestApplyOverlappingBatches(t *testing.T) {
	entries := script(t, 11, 120)
	a, _ := openStore(t, "alpha")
	b, _ := openStore(t, "alpha")
	a.Apply(entries)
	// b sees the log in overlapping windows, as after a restart mid-batch.
	b.Apply(entries[:60])
	res := b.Apply(entries[40:90])
	for i, r := range res {
		if r.Skipped != (i < 20) {
			t.Fatalf("entry %d: skipped=%v", 40+i, r.Skipped)
		}
	}
	b.Apply(entries[85:])
	assertSameRaw(t, rawDump(t, a), rawDump(t, b))
}

func TestApplyBadEntries(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	good := l.add(t, submitCmd(t1, item("m1", "bravo", Routine, "x")))[0]
	entries := []Entry{
		good,
		{Index: 2, Data: []byte("not json")},
		{Index: 3, Data: nil},
		{Index: 4, Data: []byte(`{"op":"launch"}`)},
		{Index: 5, Data: []byte(`{"op":"submit"}`)},
		{Index: 6, Data: []byte(`{"op":"submit","submit":{"items":[{"id":"a","dest":"b","precedence":9}]}}`)},
		{Index: 7, Data: []byte(`{"op":"receipts","receipts":{"from":""}}`)},
		{Index: 8, Data: []byte(`{"op":"receipts_acked","receipts_acked":{"origin":""}}`)},
	}
	l.next = 8
	entries = append(entries, l.add(t, submitCmd(t2, item("m2", "bravo", Routine, "y")))...)
	res := s.Apply(entries)
	wantErr := []string{"", "decode", "decode", "unknown command", "without its body", "decode", "from", "origin", ""}
	for i, r := range res {
		if (wantErr[i] == "") != (r.Err == "") || !strings.Contains(r.Err, wantErr[i]) {
			t.Errorf("entry %d: err %q, want %q", i, r.Err, wantErr[i])
		}
	}
	if res[8].Submit[0].Seq != 2 {
		t.Fatalf("entry after bad ones: %+v", res[8])
	}
	if s.AppliedIndex() != 9 {
		t.Fatalf("applied = %d, want 9", s.AppliedIndex())
	}
	if res := s.Apply(nil); len(res) != 0 {
		t.Fatalf("Apply(nil) = %v", res)
	}
}

func TestChangedWakes(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	ch := s.Changed()
	ch2 := s.Changed()
	select {
	case <-ch:
		t.Fatal("Changed closed before any Apply")
	default:
	}
	entries := l.add(t, submitCmd(t1, item("m1", "bravo", Routine, "x")))
	s.Apply(entries)
	for _, c := range []<-chan struct{}{ch, ch2} {
		select {
		case <-c:
		default:
			t.Fatal("Changed not closed after Apply")
		}
	}
	next := s.Changed()
	if next == ch {
		t.Fatal("Changed returned the closed channel again")
	}
	s.Apply(entries) // replay: nothing committed
	select {
	case <-next:
		t.Fatal("Changed woke for a skipped batch")
	default:
	}
	// A waiter in another goroutine wakes too.
	done := make(chan struct{})
	go func() {
		<-next
		close(done)
	}()
	l.apply(t, s, expireCmd(t2))
	<-done
}

func TestPersistenceAcrossReopen(t *testing.T) {
	s, path := openStore(t, "alpha")
	s.Apply(script(t, 3, 150))
	want := readView(t, s)
	raw := rawDump(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	if _, err := Open(path, "bravo", Options{}); err == nil || !strings.Contains(err.Error(), "belongs to site") {
		t.Fatalf("Open for another site: %v", err)
	}
	s2, err := Open(path, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	assertSameView(t, want, readView(t, s2))
	assertSameRaw(t, raw, rawDump(t, s2))
}

func TestClosedStore(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	entries := l.add(t, submitCmd(t1, item("m1", "bravo", Routine, "x")))
	s.Apply(entries)
	s.Close()
	entries = l.add(t, expireCmd(t2))
	if res := s.Apply(entries); !strings.Contains(res[0].Err, "closed") {
		t.Fatalf("Apply after Close: %+v", res)
	}
	checks := map[string]error{}
	_, checks["Lookup"] = s.Lookup("m1")
	_, checks["LookupKey"] = s.LookupKey("k")
	_, checks["Pending"] = s.Pending("bravo", Routine, 0, 1, 1)
	_, checks["Inbox"] = s.Inbox(0, 1)
	_, checks["PendingReceipts"] = s.PendingReceipts("bravo", 0, 1)
	_, checks["Snapshot"] = s.Snapshot()
	checks["Restore"] = s.Restore(strings.NewReader(""))
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if s.Outbound() != nil || s.Inbound() != nil || s.ReceiptQueues() != nil || s.InboxUnread() != 0 {
		t.Error("list methods after Close returned data")
	}
	if s.Site() != "alpha" || s.AppliedIndex() != 1 {
		t.Errorf("Site %q AppliedIndex %d", s.Site(), s.AppliedIndex())
	}
}

func TestOpenRejectsBadSite(t *testing.T) {
	for _, site := range []string{"", "a\x00b", strings.Repeat("s", MaxNameLen+1)} {
		if _, err := Open(t.TempDir()+"/state.db", site, Options{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(site %q): %v", site, err)
		}
	}
}

// TestStorageFailureIsSticky: when a batch cannot be committed, it and
// every later batch fail until a Restore, so the store never applies an
// entry without the ones before it.
func TestStorageFailureIsSticky(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "x")))
	snap := snapshotBytes(t, s)

	_ = s.h.db.Close() // the database fails underneath the store
	res := s.Apply(l.add(t, submitCmd(t2, item("m2", "bravo", Routine, "y"))))
	if !strings.Contains(res[0].Err, "queue: apply") || s.Err() == nil {
		t.Fatalf("Apply on a failed database: %+v, Err %v", res, s.Err())
	}
	if s.AppliedIndex() != 1 {
		t.Fatalf("applied index moved to %d", s.AppliedIndex())
	}
	res = s.Apply(append(l.entries[:1:1], l.add(t, expireCmd(t3))...))
	if !res[0].Skipped || res[1].Err == "" {
		t.Fatalf("Apply after failure: %+v", res)
	}

	if err := s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if s.Err() != nil {
		t.Fatalf("Err after Restore: %v", s.Err())
	}
	// Raft resends everything after the snapshot.
	res = s.Apply(l.entries[1:])
	if res[0].Submit[0].Seq != 2 || res[1].Expire == nil {
		t.Fatalf("Apply after Restore: %+v", res)
	}
}

// TestApplyStopsAtNewerFormat: an entry of a log format newer than this
// build reads stops Apply with an error naming the entry and the format,
// and nothing of its batch is applied: skipping it, as a malformed
// entry is, would diverge from the nodes that run the newer build.
func TestApplyStopsAtNewerFormat(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	entries := l.add(t, submitCmd(t1, item("m1", "bravo", Routine, "x")))
	entries = append(entries, Entry{Index: 2, Data: []byte{cmdVersion + 1, 0, 0, 0, 0, 0}})
	res := s.Apply(entries)
	if len(res) != 2 || !strings.Contains(res[1].Err, "raft log entry 2") || !strings.Contains(res[1].Err, "newer than this build reads") {
		t.Fatalf("results %+v; want entry 2 refused as a newer format", res)
	}
	if s.AppliedIndex() != 0 || s.Err() == nil {
		t.Fatalf("applied %d, store error %v; want nothing applied and the store stopped", s.AppliedIndex(), s.Err())
	}
}

// lastTxID is the id of the store's last committed write transaction.
func lastTxID(t testing.TB, s *Store) int {
	t.Helper()
	var id int
	if err := s.h.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestApplyBoundsEachTransaction: a batch that modifies more than
// maxTxNodes B+tree nodes is applied in several transactions, each ending
// at an entry, with the same results and the same state as in one.
func TestApplyBoundsEachTransaction(t *testing.T) {
	entries := script(t, 11, 400)
	whole, _ := openStore(t, "alpha")
	before := lastTxID(t, whole)
	resWhole := whole.Apply(entries)
	if n := lastTxID(t, whole) - before; n != 1 {
		t.Fatalf("the batch took %d transactions under the default bound, want 1", n)
	}

	old := maxTxNodes
	maxTxNodes = 16
	t.Cleanup(func() { maxTxNodes = old })
	split, _ := openStore(t, "alpha")
	before = lastTxID(t, split)
	resSplit := split.Apply(entries)
	if n := lastTxID(t, split) - before; n < 10 {
		t.Fatalf("the batch took %d transactions with at most 16 nodes each, want 10 or more", n)
	}
	for i := range resWhole {
		if !reflect.DeepEqual(resWhole[i], resSplit[i]) {
			t.Fatalf("entry %d: results differ: %+v / %+v", i, resWhole[i], resSplit[i])
		}
	}
	assertSameRaw(t, rawDump(t, whole), rawDump(t, split))
	assertSameView(t, readView(t, whole), readView(t, split))
	if got, want := split.AppliedIndex(), entries[len(entries)-1].Index; got != want {
		t.Fatalf("applied index %d, want %d", got, want)
	}
}
