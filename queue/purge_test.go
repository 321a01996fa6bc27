package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func assertPurged(t testing.TB, s *Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if st, err := s.Lookup(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) = %+v, %v; want ErrNotFound", id, st, err)
		}
	}
}

func assertKept(t testing.TB, s *Store, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := s.Lookup(id); err != nil {
			t.Errorf("Lookup(%q): %v, want kept", id, err)
		}
	}
}

func purged(t testing.TB, l *cmdLog, s *Store, before int64, max int) PurgeResult {
	t.Helper()
	return *l.apply(t, s, purgeCmd(before, before, max))[0].Purge
}

// TestPurgeOutbound: acknowledged messages in a final state go once their
// final time is before the cutoff; everything else, and every cursor,
// stays.
func TestPurgeOutbound(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	keyed := item("m1", "bravo", Routine, "one")
	keyed.Key = "k1"
	exp := item("m3", "bravo", Routine, "three")
	exp.ExpiresAt = t1 + 10
	exp5 := item("m5", "bravo", Routine, "five")
	exp5.ExpiresAt = t1 + 20
	l.apply(t, s, submitCmd(t1, keyed, item("m2", "bravo", Routine, "two"), exp,
		item("m4", "bravo", Routine, "four"), exp5, item("m6", "bravo", Routine, "six")))
	l.apply(t, s, expireCmd(t1+20))                      // m3, m5 expire at t1+20
	l.apply(t, s, deliveredCmd(t2, "bravo", Routine, 3)) // m1, m2 delivered at t2; m3 acked
	l.apply(t, s, receiptsCmd(t3, "bravo",               // m2 read at t3; m4 read before its ack
		Receipt{RSeq: 1, Precedence: Routine, Seq: 2, ID: "m2", ReadAt: t3},
		Receipt{RSeq: 2, Precedence: Routine, Seq: 4, ID: "m4", ReadAt: t3}))
	before := s.Outbound()

	// Nothing ended before t1+20.
	if got := purged(t, &l, s, t1+20, 0); got != (PurgeResult{}) {
		t.Fatalf("purge before t1+20 = %+v", got)
	}
	// m3 expired at t1+20 and is acked; m5 expired too but is not acked.
	if got := purged(t, &l, s, t2, 0); got != (PurgeResult{Purged: 1}) {
		t.Fatalf("purge before t2 = %+v", got)
	}
	assertPurged(t, s, "m3")
	assertKept(t, s, "m1", "m2", "m4", "m5", "m6")
	// m1 was delivered at t2 and never read: final from our side. m2 was
	// delivered at t2 too, but read at t3: it moved to t3.
	if got := purged(t, &l, s, t3, 0); got != (PurgeResult{Purged: 1}) {
		t.Fatalf("purge before t3 = %+v", got)
	}
	assertPurged(t, s, "m1")
	if _, err := s.LookupKey("k1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LookupKey of a purged message: %v", err)
	}
	// m4 (read) and m5 (expired) wait for the ack, m6 is queued.
	if got := purged(t, &l, s, t4, 0); got != (PurgeResult{Purged: 1}) {
		t.Fatalf("purge before t4 = %+v", got)
	}
	assertPurged(t, s, "m2")
	assertKept(t, s, "m4", "m5", "m6")
	if got := s.Outbound(); !reflect.DeepEqual(got, before) {
		t.Fatalf("Outbound changed by purge: %+v, want %+v", got, before)
	}
	if msgs, _ := s.Pending("bravo", Routine, 3, 0, 0); !reflect.DeepEqual(seqs(msgs), []uint64{4, 5, 6}) {
		t.Fatalf("pending after purge = %v", seqs(msgs))
	}

	// The ack makes m4 (read at t3) and m5 (expired at t1+20) purgeable at
	// their own times; m6 is delivered now, at t4.
	l.apply(t, s, deliveredCmd(t4, "bravo", Routine, 6))
	if got := purged(t, &l, s, t4, 0); got != (PurgeResult{Purged: 2}) {
		t.Fatalf("purge after ack = %+v", got)
	}
	assertPurged(t, s, "m4", "m5")
	if got := purged(t, &l, s, t4+1, 0); got != (PurgeResult{Purged: 1}) {
		t.Fatalf("purge of m6 = %+v", got)
	}
	if n := countKeys(t, s, bucketFin); n != 0 {
		t.Fatalf("finalized index has %d entries left", n)
	}
	if n := countKeys(t, s, bucketOutIDs) + countKeys(t, s, bucketOutKeys); n != 0 {
		t.Fatalf("%d id/key index entries left", n)
	}

	// A late receipt for a purged message is skipped; its RSeq counts.
	res := l.apply(t, s, receiptsCmd(t4+2, "bravo", Receipt{RSeq: 3, Precedence: Routine, Seq: 1, ID: "m1", ReadAt: t4}))
	if got := res[0].Receipts.Last; got != 3 {
		t.Fatalf("receipts last = %d, want 3", got)
	}
	assertPurged(t, s, "m1")
	// The key and ID are free again: a new message, on the next sequence.
	again := item("m1", "bravo", Routine, "other")
	again.Key = "k1"
	res = l.apply(t, s, submitCmd(t4+3, again))
	if got := res[0].Submit[0]; got != (SubmitResult{ID: "m1", Seq: 7}) {
		t.Fatalf("resubmit after purge = %+v", got)
	}
	if st, err := s.LookupKey("k1"); err != nil || st.Message.Seq != 7 {
		t.Fatalf("LookupKey after resubmit = %+v, %v", st, err)
	}
}

// TestPurgeInbound: read messages and those that never entered the inbox
// go; unread ones, channel cursors and inbox positions stay.
func TestPurgeInbound(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	batch := specialBatch()
	l.apply(t, s, receiveCmd(t1, "alpha", Routine, batch...))
	l.apply(t, s, receiveCmd(t2, "alpha", Flash, inMsg("alpha", Flash, 1, "f1", "flash")))
	l.apply(t, s, markReadCmd(t3, "m1", "f1"))

	if got := purged(t, &l, s, t1, 0); got != (PurgeResult{}) {
		t.Fatalf("purge before t1 = %+v", got)
	}
	if got := purged(t, &l, s, t2, 0); got != (PurgeResult{Purged: 3}) {
		t.Fatalf("purge before t2 = %+v (want tombstone, link test, drill)", got)
	}
	assertPurged(t, s, "t2", "l3", "d4")
	assertKept(t, s, "m1", "m5", "f1")
	if got := purged(t, &l, s, t4, 0); got != (PurgeResult{Purged: 2}) {
		t.Fatalf("purge before t4 = %+v (want m1, f1)", got)
	}
	assertPurged(t, s, "m1", "f1")
	st := mustStatus(t, s, "m5")
	if st.State != Delivered || st.InboxPos != 2 {
		t.Fatalf("unread m5 = %+v", st)
	}
	if s.InboxUnread() != 1 {
		t.Fatalf("unread = %d, want 1", s.InboxUnread())
	}
	wantIn := []InChannel{{Origin: "alpha", Precedence: Flash, Last: 1}, {Origin: "alpha", Precedence: Routine, Last: 5}}
	if got := s.Inbound(); !reflect.DeepEqual(got, wantIn) {
		t.Fatalf("Inbound = %+v", got)
	}
	// The receipts owed for m1 and f1 are still queued.
	if rcs, _ := s.PendingReceipts("alpha", 0, 0); len(rcs) != 2 {
		t.Fatalf("pending receipts = %+v", rcs)
	}
	// A resent batch is still a duplicate; the next message takes the
	// next inbox position.
	res := l.apply(t, s, receiveCmd(t4, "alpha", Routine, append(batch, inMsg("alpha", Routine, 6, "m6", "six"))...))
	if got := *res[0].Receive; got != (ReceiveResult{Last: 6, Applied: 1}) {
		t.Fatalf("resend after purge = %+v", got)
	}
	assertPurged(t, s, "m1", "t2")
	if st := mustStatus(t, s, "m6"); st.InboxPos != 4 {
		t.Fatalf("m6 inbox position = %d, want 4", st.InboxPos)
	}
	res = l.apply(t, s, markReadCmd(t4, "m1"))
	if got := res[0].MarkRead.Errs; !reflect.DeepEqual(got, []string{errUnknownMessage}) {
		t.Fatalf("mark read of a purged message: %q", got)
	}
}

// TestPurgeInboundSharedID: inbound IDs need not be unique (two origins
// may use the same); the ID index names the first message received, and
// purging another message with that ID leaves it.
func TestPurgeInboundSharedID(t *testing.T) {
	s, _ := openStore(t, "bravo")
	var l cmdLog
	l.apply(t, s, receiveCmd(t1, "alpha", Routine, inMsg("alpha", Routine, 1, "x", "first")))
	drill := inMsg("charlie", Routine, 1, "x", "drill")
	drill.Flags = FlagDrill
	l.apply(t, s, receiveCmd(t1, "charlie", Routine, drill))
	l.apply(t, s, markReadCmd(t2, "x")) // reads the first
	if got := purged(t, &l, s, t2, 0); got != (PurgeResult{Purged: 1}) {
		t.Fatalf("purge of the drill = %+v", got)
	}
	if st := mustStatus(t, s, "x"); string(st.Message.Payload) != "first" {
		t.Fatalf("x = %+v, want the first message", st)
	}
	if got := purged(t, &l, s, t3, 0); got != (PurgeResult{Purged: 1}) {
		t.Fatalf("purge of the read one = %+v", got)
	}
	assertPurged(t, s, "x")
}

// TestPurgeMax: the limit bounds each command and More says to go on.
func TestPurgeMax(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	var items []SubmitItem
	for i := range 10 {
		items = append(items, item(string(rune('a'+i)), "bravo", Precedence(i%4), "x"))
	}
	l.apply(t, s, submitCmd(t1, items...))
	for _, p := range Precedences {
		l.apply(t, s, deliveredCmd(t2, "bravo", p, 10))
	}
	want := []PurgeResult{{Purged: 4, More: true}, {Purged: 4, More: true}, {Purged: 2}, {}}
	for i, w := range want {
		if got := purged(t, &l, s, t3, 4); got != w {
			t.Fatalf("purge %d = %+v, want %+v", i, got, w)
		}
	}
	// Exactly Max left: no More.
	l.apply(t, s, submitCmd(t3, item("k", "bravo", Routine, "x"), item("l", "bravo", Routine, "x")))
	l.apply(t, s, deliveredCmd(t3, "bravo", Routine, 10))
	if got := purged(t, &l, s, t4, 2); got != (PurgeResult{Purged: 2}) {
		t.Fatalf("purge of exactly max = %+v", got)
	}
	res := s.Apply(l.add(t, purgeCmd(t4, t4, -1)))
	if !strings.Contains(res[0].Err, "negative max") {
		t.Fatalf("negative max: %+v", res[0])
	}
	res = s.Apply(l.add(t, Command{Op: OpPurge, Time: t4}))
	if !strings.Contains(res[0].Err, "without its body") {
		t.Fatalf("purge without body: %+v", res[0])
	}
}

// TestPurgeNegativeTimes: a receipt's ReadAt comes from another site and
// may be anything; the index still orders it by time.
func TestPurgeNegativeTimes(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "x"), item("m2", "bravo", Routine, "x")))
	l.apply(t, s, deliveredCmd(t2, "bravo", Routine, 2))
	l.apply(t, s, receiptsCmd(t3, "bravo", Receipt{RSeq: 1, Precedence: Routine, Seq: 1, ID: "m1", ReadAt: -5}))
	if got := purged(t, &l, s, 0, 0); got != (PurgeResult{Purged: 1}) {
		t.Fatalf("purge before 0 = %+v", got)
	}
	assertPurged(t, s, "m1")
	assertKept(t, s, "m2")
}

// TestFinalizedIndexIsAFunctionOfTheRecords: the index maintained command
// by command equals the one rebuilt from the records, as when a format 1
// file is opened; that rebuild is the upgrade path.
func TestFinalizedIndexIsAFunctionOfTheRecords(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		s, path := openStore(t, "alpha")
		s.Apply(script(t, seed, 300))
		if countKeys(t, s, bucketFin) == 0 {
			t.Fatalf("seed %d: empty finalized index", seed)
		}
		assertUpgrades(t, s, path, 1)
	}
}

// assertUpgrades closes s (the store at path), turns its file into
// format version (downgradeTo), opens it again and checks that the upgrade
// gives back the same raw state and the same view.
func assertUpgrades(t testing.TB, s *Store, path string, version uint64) {
	t.Helper()
	want, wantView := rawDump(t, s), readView(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	downgradeTo(t, path, version)
	s2, err := Open(path, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertSameRaw(t, want, rawDump(t, s2))
	assertSameView(t, wantView, readView(t, s2))
	_ = s2.Close()
}

// downgrade turns a store file into format 1: no finalized index, and
// the records and receipts of format 2.
func downgrade(t testing.TB, path string) { downgradeTo(t, path, 1) }

// downgradeTo turns a store file into format 1 or 2: records of version 1
// and receipts without checksums, no duplicate ID index and, for format
// 1, no finalized index.
func downgradeTo(t testing.TB, path string, version uint64) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		if version == 1 {
			if err := tx.DeleteBucket(bucketFin); err != nil {
				return err
			}
		}
		if err := tx.DeleteBucket(bucketInDups); err != nil {
			return err
		}
		for _, d := range []struct {
			parent []byte
			kind   byte
		}{{bucketOut, finOut}, {bucketIn, finIn}} {
			parent := tx.Bucket(d.parent)
			err := parent.ForEachBucket(func(ck []byte) error {
				b := parent.Bucket(ck)
				var ks, vs [][]byte
				err := b.ForEach(func(k, v []byte) error {
					rec, err := parseRecord(v, loc{d.kind, ck, be.Uint64(k)}, true, true)
					if err != nil {
						return err
					}
					if rec.mailbox != "" || rec.from != "" || rec.mtype != "" {
						return nil // no older encoding (expiry notices): kept, as an upgrade does
					}
					ks, vs = append(ks, clone(k)), append(vs, encodeRecord1(&rec))
					return nil
				})
				for i := range ks {
					if err == nil {
						err = b.Put(ks[i], vs[i])
					}
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		out := tx.Bucket(bucketRcptOut)
		err := out.ForEachBucket(func(origin []byte) error {
			q := out.Bucket(origin)
			var ks, vs [][]byte
			_ = q.ForEach(func(k, v []byte) error {
				ks, vs = append(ks, clone(k)), append(vs, clone(v[:len(v)-rcptSumLen]))
				return nil
			})
			for i := range ks {
				if err := q.Put(ks[i], vs[i]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaVersion, u64(version))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// encodeRecord1 is the record encoding of formats 1 and 2.
func encodeRecord1(r *record) []byte {
	b := make([]byte, recHeader1)
	b[offVersion] = recVersion1
	b[offState] = byte(r.state)
	be.PutUint32(b[offFlags:], r.flags)
	be.PutUint64(b[offSubmitted:], uint64(r.submittedAt))
	be.PutUint64(b[offExpires:], uint64(r.expiresAt))
	be.PutUint64(b[offDelivered:], uint64(r.deliveredAt))
	be.PutUint64(b[offRead:], uint64(r.readAt))
	be.PutUint64(b[offExpired:], uint64(r.expiredAt))
	be.PutUint64(b[offInboxPos:], r.inboxPos)
	b = binary.AppendUvarint(b, uint64(len(r.id)))
	b = append(b, r.id...)
	b = binary.AppendUvarint(b, uint64(len(r.key)))
	b = append(b, r.key...)
	b = append(b, byte(len(r.hash)))
	b = append(b, r.hash...)
	return append(b, r.payload...)
}

// TestOpenUpgradesFormat2: records and receipts get their checksums and
// the state is byte for byte what a format 3 store built by the same
// commands holds.
func TestOpenUpgradesFormat2(t *testing.T) {
	for _, seed := range []uint64{4, 5} {
		s, path := openStore(t, "alpha")
		s.Apply(script(t, seed, 300))
		assertUpgrades(t, s, path, 2)
	}
}

// TestRestoreUpgradesFormat1: a snapshot of a format 1 store is accepted
// and indexed.
func TestRestoreUpgradesFormat1(t *testing.T) {
	a, pathA := openStore(t, "alpha")
	a.Apply(script(t, 5, 200))
	want := rawDump(t, a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	downgrade(t, pathA)
	snap, err := os.ReadFile(pathA)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := openStore(t, "alpha")
	if err := b.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore of a format 1 snapshot: %v", err)
	}
	assertSameRaw(t, want, rawDump(t, b))
}

func TestOpenRefusesNewerFormat(t *testing.T) {
	s, path := openStore(t, "alpha")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaVersion, u64(maxFormatVersion+1)) })
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := "state file format 9 is newer than this build reads (1 to 8): run a newer build"
	if _, err := Open(path, "alpha", Options{}); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open of a newer format: %v; want %q", err, want)
	}
}

func TestNextExpiry(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	if got := s.NextExpiry(); got != 0 {
		t.Fatalf("empty store: %d", got)
	}
	exp := func(id string, p Precedence, at int64) SubmitItem {
		it := item(id, "bravo", p, "x")
		it.ExpiresAt = at
		return it
	}
	l.apply(t, s, submitCmd(t1, exp("m1", Routine, t4), exp("m2", Flash, t3), exp("m3", Routine, 0), exp("m4", Routine, t2)))
	if got := s.NextExpiry(); got != t2 {
		t.Fatalf("NextExpiry = %d, want t2", got)
	}
	l.apply(t, s, expireCmd(t2)) // m4 expires
	if got := s.NextExpiry(); got != t3 {
		t.Fatalf("after expiry: %d, want t3", got)
	}
	l.apply(t, s, deliveredCmd(t2, "bravo", Flash, 1)) // m2 delivered
	if got := s.NextExpiry(); got != t4 {
		t.Fatalf("after delivery: %d, want t4", got)
	}
	l.apply(t, s, receiptsCmd(t2, "bravo", Receipt{RSeq: 1, Precedence: Routine, Seq: 1, ID: "m1"})) // m1 read before its ack
	if got := s.NextExpiry(); got != 0 {
		t.Fatalf("nothing left to expire: %d", got)
	}
	_ = s.Close()
	if got := s.NextExpiry(); got != 0 {
		t.Fatalf("closed store: %d", got)
	}
}
