package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// encodeHeld1 is how format 6 stored a held record (version 1), to make
// files of that format: one checksum over the header and the payload
// inside the item.
func encodeHeld1(h *heldRec) []byte {
	b := []byte{heldVersion1}
	b = binary.AppendVarint(b, h.submittedAt)
	b = AppendString(b, h.node)
	b = appendActor(b, h.by)
	b = AppendBytes(b, h.sum)
	b = appendSubmitItem(b, &h.item)
	return be.AppendUint32(b, heldSum(h.item.ID, b))
}

func heldIDs(hs []HeldMessage) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Status.Message.ID)
	}
	return out
}

func boxItem(id, from string, payload string) SubmitItem {
	it := item(id, "bravo", Priority, payload)
	it.From = from
	return it
}

// holdScript holds messages from three mailboxes over a few commands and
// releases some: IDs deliberately not in submission order.
func holdScript(t *testing.T, s *Store, l *cmdLog) {
	t.Helper()
	l.apply(t, s,
		holdCmd(t1, alice, boxItem("z1", "cert", "one"), boxItem("b1", "watch", "two"), boxItem("y1", "cert", "three")),
		holdCmd(t2, bob, boxItem("a2", "cert", "four"), boxItem("c2", "", "five")),
		releaseCmd(t3, "y1", bob),
		holdCmd(t3, alice, boxItem("m3", "watch", "six"), boxItem("a3", "cert", "")),
		releaseCmd(t4, "b1", bob),
	)
}

// TestHeldListsBySubmission: Held lists a mailbox's (or several, or
// every mailbox's) held messages in submission order, then by ID within
// one hold, and HeldCount counts them; both follow releases.
func TestHeldListsBySubmission(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	holdScript(t, s, &l)
	for _, tc := range []struct {
		q    HeldQuery
		want []string
		more bool
	}{
		{HeldQuery{}, []string{"z1", "a2", "c2", "a3", "m3"}, false},
		{HeldQuery{Mailboxes: []string{"cert"}}, []string{"z1", "a2", "a3"}, false},
		{HeldQuery{Mailboxes: []string{"watch", "cert", "watch"}}, []string{"z1", "a2", "a3", "m3"}, false},
		{HeldQuery{Mailboxes: []string{""}}, []string{"c2"}, false},
		{HeldQuery{Mailboxes: []string{"cert"}, Max: 2}, []string{"z1", "a2"}, true},
		{HeldQuery{Max: 4}, []string{"z1", "a2", "c2", "a3"}, true},
		{HeldQuery{Mailboxes: []string{"nosuch"}}, nil, false},
		{HeldQuery{Mailboxes: []string{}}, nil, false},
	} {
		got, more, err := s.Held(tc.q)
		if err != nil || !slices.Equal(heldIDs(got), tc.want) || more != tc.more {
			t.Errorf("Held(%+v) = %v more %v, %v; want %v more %v", tc.q, heldIDs(got), more, err, tc.want, tc.more)
		}
	}
	all, _, _ := s.Held(HeldQuery{})
	if h := all[0]; h.PayloadLen != 3 || h.By != alice || h.Node != "a1" || h.Status.Message.From != "cert" || h.Status.Message.Payload != nil || h.Status.SubmittedAt != t1 {
		t.Errorf("z1 listed as %+v", h)
	}
	if got, want := s.HeldCount(), map[string]int{"cert": 3, "watch": 1, DefaultMailbox: 1}; !maps.Equal(got, want) {
		t.Errorf("HeldCount = %v, want %v", got, want)
	}
	l.apply(t, s, releaseCmd(t4, "m3", bob), releaseCmd(t4, "c2", alice))
	if got, want := s.HeldCount(), map[string]int{"cert": 3}; !maps.Equal(got, want) {
		t.Errorf("HeldCount after releases = %v, want %v", got, want)
	}
	if n := countKeys(t, s, bucketHeldMbox); n != 3 {
		t.Errorf("%d index entries for 3 held messages", n)
	}
}

// TestHeldListingReadsNoPayload: a held record whose payload is damaged
// is listed (its header is intact and checked) but never served
// (Lookup, release: ErrCorrupt); a damaged header fails the listing.
func TestHeldListingReadsNoPayload(t *testing.T) {
	s, path := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, holdCmd(t1, alice, boxItem("h1", "cert", "payload one"), boxItem("h2", "cert", "payload two")))
	flip := func(id string, at func(v []byte) int) {
		editClosed(t, s, path, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketHeld)
			v := clone(b.Get([]byte(id)))
			v[at(v)] ^= 0x20
			return b.Put([]byte(id), v)
		})
		var err error
		if s, err = Open(path, "alpha", Options{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
	}
	flip("h1", func(v []byte) int { return len(v) - 6 }) // in "payload one"
	held, _, err := s.Held(HeldQuery{Mailboxes: []string{"cert"}})
	if err != nil || !slices.Equal(heldIDs(held), []string{"h1", "h2"}) || held[0].PayloadLen != len("payload one") {
		t.Fatalf("Held with a damaged payload = %v, %v", heldIDs(held), err)
	}
	if _, err := s.Lookup("h1"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Lookup of a damaged payload: %v", err)
	}
	if st := mustStatus(t, s, "h2"); string(st.Message.Payload) != "payload two" {
		t.Fatalf("h2: %+v", st)
	}
	flip("h2", func(v []byte) int { return 5 }) // in the header
	if _, _, err := s.Held(HeldQuery{Mailboxes: []string{"cert"}}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Held with a damaged header: %v", err)
	}
}

// TestHeldListingIsBounded: listing a mailbox's held messages, or
// counting them, does not read the other mailboxes' (nor, listing, the
// payloads).
func TestHeldListingIsBounded(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	const busy = 2000
	big := string(make([]byte, 4096))
	var items []SubmitItem
	for i := range busy {
		items = append(items, boxItem(fmt.Sprintf("c%d", i), "cert", big))
	}
	l.apply(t, s, holdCmd(t1, alice, items...), holdCmd(t2, alice, boxItem("w1", "watch", big)))
	if held, more, err := s.Held(HeldQuery{Mailboxes: []string{"watch"}}); err != nil || more || !slices.Equal(heldIDs(held), []string{"w1"}) {
		t.Fatalf("Held(watch) = %v %v %v", heldIDs(held), more, err)
	}
	if n := s.HeldCount(); n["cert"] != busy || n["watch"] != 1 {
		t.Fatalf("HeldCount = %v", n)
	}
	for name, fn := range map[string]func(){
		"Held(watch)": func() { _, _, _ = s.Held(HeldQuery{Mailboxes: []string{"watch"}}) },
		"HeldCount":   func() { s.HeldCount() },
	} {
		// Decoding a record allocates: reading the busy mailbox's
		// would cost thousands.
		if allocs := testing.AllocsPerRun(5, fn); allocs > 100 {
			t.Errorf("%s: %.0f allocations with %d held messages in another mailbox", name, allocs, busy)
		}
	}
}

// makeFormat6 turns the closed store's file into what format 6 stored:
// held records of version 1 (all, or every other one: an upgrade
// interrupted after rewriting some), no held index or counts.
func makeFormat6(t *testing.T, s *Store, path string, partly bool) {
	t.Helper()
	editClosed(t, s, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHeld)
		var keys, vals [][]byte
		i := 0
		err := b.ForEach(func(k, v []byte) error {
			if i++; partly && i%2 == 0 {
				return nil
			}
			h, err := decodeHeld(string(k), v, true)
			if err != nil {
				return err
			}
			keys, vals = append(keys, clone(k)), append(vals, encodeHeld1(&h))
			return nil
		})
		if err != nil {
			return err
		}
		for i := range keys {
			if err := b.Put(keys[i], vals[i]); err != nil {
				return err
			}
		}
		if !partly {
			for _, name := range [][]byte{bucketHeldMbox, bucketHeldCount} {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketMeta).Put(metaVersion, u64(6))
	})
}

// TestHeldUpgradeFormat6: a file of format 6 (held records of version 1,
// no held index) upgrades to exactly the bytes apply builds, whether the
// upgrade starts afresh or resumes after rewriting some records; a
// damaged version 1 record stops it.
func TestHeldUpgradeFormat6(t *testing.T) {
	for _, partly := range []bool{false, true} {
		s, path := openStore(t, "alpha")
		s.Apply(script(t, 1, 200))
		l := cmdLog{next: s.AppliedIndex()}
		holdScript(t, s, &l)
		if countKeys(t, s, bucketHeld) == 0 {
			t.Fatal("nothing held")
		}
		want, wantView := rawDump(t, s), readView(t, s)
		wantHeld, _, err := s.Held(HeldQuery{})
		if err != nil {
			t.Fatal(err)
		}
		makeFormat6(t, s, path, partly)
		s2, err := Open(path, "alpha", Options{})
		if err != nil {
			t.Fatalf("partly %v: %v", partly, err)
		}
		assertSameRaw(t, want, rawDump(t, s2))
		if got := readView(t, s2); !reflect.DeepEqual(got, wantView) {
			t.Fatalf("partly %v: view differs after the upgrade", partly)
		}
		if got, _, err := s2.Held(HeldQuery{}); err != nil || !reflect.DeepEqual(got, wantHeld) {
			t.Fatalf("partly %v: Held after the upgrade = %+v, %v", partly, got, err)
		}
		// It goes on as apply would: a release from the upgraded file.
		if r := (&cmdLog{next: l.next}).apply(t, s2, releaseCmd(t4+1, "z1", bob))[0].Release; r == nil || r.ID != "z1" {
			t.Fatalf("release after the upgrade: %+v", r)
		}
		_ = s2.Close()
	}

	s, path := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, holdCmd(t1, alice, boxItem("h1", "cert", "x")))
	makeFormat6(t, s, path, false)
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHeld)
		v := clone(b.Get([]byte("h1")))
		v[3] ^= 1
		return b.Put([]byte("h1"), v)
	})
	_ = db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, "alpha", Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a format 6 file with a damaged held record: %v", err)
	}
}
