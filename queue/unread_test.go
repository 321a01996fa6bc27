package queue

import (
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// overdueAt asks s which messages are overdue at now with objective obj
// for every group.
func overdueAt(t testing.TB, s *Store, now, obj int64) *OverdueReport {
	t.Helper()
	rep, err := s.Overdue(OverdueQuery{Now: now, Objective: func(UnreadGroup) int64 { return obj }})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func overdueIDs(rep *OverdueReport) []string {
	var out []string
	for _, it := range rep.Items {
		out = append(out, string(it.Direction)+":"+it.ID)
	}
	return out
}

// TestOverdueBothDirections: unread outbound (queued or delivered) and
// unread inbox messages are overdue once their objective passed; a read
// receipt, an expiry, an acknowledgement and a purge clear them; link
// tests, drills and notices never count.
func TestOverdueBothDirections(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	m1 := item("m1", "bravo", Flash, "one")
	m1.Mailbox = "watch"
	m2 := item("m2", "bravo", Flash, "two")
	m3 := item("m3", "bravo", Routine, "three")
	m3.ExpiresAt = t3
	lt := item("lt", "bravo", Flash, "x")
	lt.Flags = FlagLinkTest
	l.apply(t, s, submitCmd(t0, m1, m2, m3, lt))
	in := inMsg("bravo", Immediate, 1, "i1", "in")
	in.Dest, in.Mailbox = "alpha", "cert"
	in2 := inMsg("bravo", Immediate, 2, "i2", "in")
	in2.Dest, in2.SubmittedAt = "alpha", t1+5e8 // not yet overdue at t2
	l.apply(t, s, receiveCmd(t1, "bravo", Immediate, in, in2))
	l.apply(t, s, deliveredCmd(t1, "bravo", Flash, 4))

	if rep := overdueAt(t, s, t0+5e8, 1e9); len(rep.Items) != 0 {
		t.Fatalf("overdue before the objective: %v", overdueIDs(rep))
	}
	rep := overdueAt(t, s, t2, 1e9)
	want := []string{"inbound:i1", "outbound:m1", "outbound:m2", "outbound:m3"}
	if got := overdueIDs(rep); !sameSet(got, want) {
		t.Fatalf("overdue = %v, want %v", got, want)
	}
	if c := rep.Counts[UnreadGroup{Outbound, "bravo", "watch", Flash}]; c != 1 {
		t.Fatalf("counts = %v", rep.Counts)
	}
	if c := rep.Counts[UnreadGroup{Inbound, "bravo", "cert", Immediate}]; c != 1 {
		t.Fatalf("counts = %v", rep.Counts)
	}
	if it := rep.Items[0]; it.Due != it.SubmittedAt+1e9 {
		t.Fatalf("item = %+v", it)
	}
	// Max bounds the items, not the counts.
	small, err := s.Overdue(OverdueQuery{Now: t2, Max: 2, Objective: func(UnreadGroup) int64 { return 1e9 }})
	if err != nil || len(small.Items) != 2 || len(small.Counts) != 4 {
		t.Fatalf("max 2: %+v, %v", small, err)
	}
	// A group without an objective is skipped.
	none, err := s.Overdue(OverdueQuery{Now: t2, Objective: func(g UnreadGroup) int64 {
		if g.Direction == Inbound {
			return 0
		}
		return 1e9
	}})
	if err != nil || len(none.Items) != 3 {
		t.Fatalf("without inbound objectives: %v, %v", overdueIDs(none), err)
	}

	l.apply(t, s,
		receiptsCmd(t3, "bravo", Receipt{RSeq: 1, Precedence: Flash, Seq: 1, ID: "m1", ReadAt: t3}),
		markReadCmd(t3, "i1", "i2"),
		expireCmd(t4), // m3, queued
	)
	rep = overdueAt(t, s, t4, 1e9)
	if got := overdueIDs(rep); !sameSet(got, []string{"outbound:m2"}) {
		t.Fatalf("after reads and expiry: %v", got)
	}
	// m2, delivered and never read, leaves with its purge.
	l.apply(t, s, purgeCmd(t4+10e9, t4+10e9, 0))
	if rep := overdueAt(t, s, t4+20e9, 1e9); len(rep.Items) != 0 {
		t.Fatalf("after purge: %v", overdueIDs(rep))
	}
	if n := countKeys(t, s, bucketUnread); n != 0 {
		t.Fatalf("%d unread index entries left", n)
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
	}
	for _, v := range m {
		if v != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

// TestOverdueScanBound: past Scan entries the report says it is
// truncated.
func TestOverdueScanBound(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	var items []SubmitItem
	for i := range 20 {
		items = append(items, item(string(rune('a'+i)), "bravo", Routine, "x"))
	}
	l.apply(t, s, submitCmd(t0, items...))
	rep, err := s.Overdue(OverdueQuery{Now: t2, Scan: 5, Objective: func(UnreadGroup) int64 { return 1 }})
	if err != nil || !rep.Truncated || rep.Counts[UnreadGroup{Outbound, "bravo", "", Routine}] != 5 {
		t.Fatalf("scan 5: %+v, %v", rep, err)
	}
}

// TestUnreadIndexIsAFunctionOfTheRecords: the index kept command by
// command equals the one an upgrade from format 5 builds.
func TestUnreadIndexIsAFunctionOfTheRecords(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		s, path := openStore(t, "alpha")
		s.Apply(script(t, seed, 300))
		if countKeys(t, s, bucketUnread) == 0 {
			t.Fatalf("seed %d: empty unread index", seed)
		}
		want, wantView := rawDump(t, s), readView(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			if err := tx.DeleteBucket(bucketUnread); err != nil {
				return err
			}
			return tx.Bucket(bucketMeta).Put(metaVersion, u64(5))
		})
		_ = db.Close()
		if err != nil {
			t.Fatal(err)
		}
		s2, err := Open(path, "alpha", Options{})
		if err != nil {
			t.Fatal(err)
		}
		assertSameRaw(t, want, rawDump(t, s2))
		if got := readView(t, s2); !reflect.DeepEqual(got, wantView) {
			t.Fatalf("seed %d: view differs after the upgrade", seed)
		}
		_ = s2.Close()
	}
}
