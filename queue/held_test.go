package queue

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var (
	alice = Actor{UID: 1001, User: "alice", PID: 10}
	bob   = Actor{UID: 1002, User: "bob", PID: 20}
)

func holdCmd(now int64, by Actor, items ...SubmitItem) Command {
	c := submitCmd(now, items...)
	c.Release = &Release{By: by, Node: "a1"}
	return c
}

func releaseCmd(now int64, id string, by Actor) Command {
	return Command{Op: OpRelease, Time: now, Release: &Release{ID: id, By: by, Node: "a2"}}
}

func certItem(id, key, payload string) SubmitItem {
	it := item(id, "bravo", Flash, payload)
	it.Key, it.From, it.Mailbox = key, "cert", "cert"
	return it
}

// auditOf returns the decoded audit records about id.
func auditOf(t *testing.T, s *Store, id string) []*AuditRecord {
	t.Helper()
	es, err := s.AuditEntriesOf(id)
	if err != nil {
		t.Fatal(err)
	}
	var out []*AuditRecord
	for _, e := range es {
		r, err := DecodeAuditRecord(e.Record)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestHeldSubmitAndRelease(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	res := l.apply(t, s, holdCmd(t1, alice, certItem("m1", "", "report")))
	if r := res[0].Submit[0]; r.ID != "m1" || r.Seq != 0 || r.Existing {
		t.Fatalf("hold result %+v", r)
	}
	st := mustStatus(t, s, "m1")
	if st.State != Held || st.Message.Seq != 0 || st.SubmittedAt != t1 || string(st.Message.Payload) != "report" || st.Message.From != "cert" {
		t.Fatalf("held status %+v", st)
	}
	// Not in the channel: a later message is sent first, nothing waits.
	if got := s.Outbound(); len(got) != 0 {
		t.Fatalf("a held message made a channel: %+v", got)
	}
	l.apply(t, s, submitCmd(t2, certItem("m2", "", "later")))
	if p, _ := s.Pending("bravo", Flash, 0, 0, 0); !reflect.DeepEqual(payloads(p), []string{"later"}) {
		t.Fatalf("pending %v", payloads(p))
	}
	held, more, err := s.Held(HeldQuery{})
	if err != nil || more || len(held) != 1 || held[0].By != alice || held[0].Node != "a1" || held[0].Status.Message.ID != "m1" || held[0].PayloadLen != 6 {
		t.Fatalf("Held() = %+v %v %v", held, more, err)
	}
	if n := s.HeldCount(); n["cert"] != 1 || len(n) != 1 {
		t.Fatalf("HeldCount %v", n)
	}

	// The submitter cannot release it; nothing changes.
	before := rawDump(t, s)
	r := s.Apply(l.add(t, releaseCmd(t3, "m1", Actor{UID: alice.UID, User: "alice", PID: 99})))[0]
	if !strings.HasPrefix(r.Err, ErrSelfRelease.Error()) {
		t.Fatalf("self release: %+v", r)
	}
	if r := s.Apply(l.add(t, releaseCmd(t3, "m1", NoActor)))[0]; !strings.HasPrefix(r.Err, ErrSelfRelease.Error()) {
		t.Fatalf("release by nobody known: %+v", r)
	}
	if after := rawDump(t, s); !reflect.DeepEqual(withoutApplied(before), withoutApplied(after)) {
		t.Fatal("a refused release changed the state")
	}

	// Another user releases it: next sequence, submitted at the release.
	res = l.apply(t, s, releaseCmd(t4, "m1", bob))
	if rr := res[0].Release; rr == nil || rr.ID != "m1" || rr.Seq != 2 {
		t.Fatalf("release result %+v", res[0])
	}
	st = mustStatus(t, s, "m1")
	if st.State != Queued || st.Message.Seq != 2 || st.SubmittedAt != t4 {
		t.Fatalf("released status %+v", st)
	}
	if p, _ := s.Pending("bravo", Flash, 0, 0, 0); !reflect.DeepEqual(payloads(p), []string{"later", "report"}) {
		t.Fatalf("pending %v", payloads(p))
	}
	if held, _, _ := s.Held(HeldQuery{}); len(held) != 0 {
		t.Fatalf("still held: %+v", held)
	}

	// Twice: not held any more.
	if r := s.Apply(l.add(t, releaseCmd(t4, "m1", bob)))[0]; !strings.HasPrefix(r.Err, ErrNotHeld.Error()) {
		t.Fatalf("second release: %+v", r)
	}
	if r := s.Apply(l.add(t, releaseCmd(t4, "nope", bob)))[0]; !strings.HasPrefix(r.Err, ErrNotHeld.Error()) {
		t.Fatalf("release of an unknown id: %+v", r)
	}

	// The audit log names both.
	recs := auditOf(t, s, "m1")
	if len(recs) != 2 {
		t.Fatalf("%d audit records: %+v", len(recs), recs)
	}
	sub, rel := recs[0], recs[1]
	if sub.Kind != AuditSubmitted || sub.Seq != 0 || sub.Actor != alice || sub.Node != "a1" || sub.Time != t1 || len(sub.PayloadHash) != 32 {
		t.Fatalf("submitted record %+v", sub)
	}
	if rel.Kind != AuditReleased || rel.Seq != 2 || rel.Actor != bob || rel.Node != "a2" || rel.Time != t4 || rel.Dest != "bravo" {
		t.Fatalf("released record %+v", rel)
	}
	// A message submitted without hold has no actor (none is known).
	if recs := auditOf(t, s, "m2"); len(recs) != 1 || recs[0].Actor != NoActor {
		t.Fatalf("m2's records %+v", recs)
	}
}

func TestHeldIdempotency(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, holdCmd(t1, alice, certItem("m1", "k1", "report")))

	// Same key and content (another ID, held or not): the held message.
	for _, c := range []Command{submitCmd(t2, certItem("m9", "k1", "report")), holdCmd(t2, alice, certItem("m9", "k1", "report"))} {
		r := l.apply(t, s, c)[0].Submit[0]
		if r.ID != "m1" || !r.Existing || r.Seq != 0 || r.Err != "" {
			t.Fatalf("repeat of a held message: %+v", r)
		}
	}
	// Same ID again: the held message.
	if r := l.apply(t, s, submitCmd(t2, certItem("m1", "k1", "report")))[0].Submit[0]; !r.Existing || r.Seq != 0 {
		t.Fatalf("retried id: %+v", r)
	}
	// Same key, other content: a conflict.
	if r := s.Apply(l.add(t, submitCmd(t2, certItem("m8", "k1", "other"))))[0].Submit[0]; r.Err != ErrKeyConflict.Error() {
		t.Fatalf("conflict: %+v", r)
	}
	st, err := s.LookupKey("k1")
	if err != nil || st.State != Held || st.Message.ID != "m1" {
		t.Fatalf("LookupKey = %+v, %v", st, err)
	}
	if !SameSubmission(st, &SubmitItem{Key: "k1", Dest: "bravo", Precedence: Flash, Payload: []byte("report"), Mailbox: "cert", From: "cert"}) ||
		SameSubmission(st, &SubmitItem{Key: "k1", Dest: "bravo", Precedence: Flash, Payload: []byte("other"), Mailbox: "cert", From: "cert"}) {
		t.Fatal("SameSubmission of a held message")
	}
	if _, err := s.Lookup("m9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a repeat was stored: %v", err)
	}

	// Released: the key moves with it.
	l.apply(t, s, releaseCmd(t3, "m1", bob))
	r := l.apply(t, s, holdCmd(t4, alice, certItem("m7", "k1", "report")))[0].Submit[0]
	if r.ID != "m1" || !r.Existing || r.Seq != 1 {
		t.Fatalf("repeat after release: %+v", r)
	}
	if st, err := s.LookupKey("k1"); err != nil || st.State != Queued || st.Message.Seq != 1 {
		t.Fatalf("LookupKey after release = %+v, %v", st, err)
	}
	if n := countKeys(t, s, bucketHeldKeys) + countKeys(t, s, bucketHeld); n != 0 {
		t.Fatalf("%d held entries left", n)
	}
	// A key of a queued message held again: the queued one.
	l.apply(t, s, submitCmd(t4, certItem("m3", "k3", "x")))
	if r := l.apply(t, s, holdCmd(t4, alice, certItem("m4", "k3", "x")))[0].Submit[0]; r.ID != "m3" || !r.Existing || r.Seq != 2 {
		t.Fatalf("hold repeating a queued message: %+v", r)
	}
}

func TestHeldSurvivesPurgeSnapshotAndReopen(t *testing.T) {
	s, path := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s,
		holdCmd(t1, alice, certItem("h1", "kh", "held one")),
		submitCmd(t1, item("m1", "bravo", Flash, "sent")),
		deliveredCmd(t2, "bravo", Flash, 1),
		expireCmd(t4+1e12),
		purgeCmd(t4+1e12, t4+1e12, 0))
	if _, err := s.Lookup("m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("m1 not purged: %v", err)
	}
	if st := mustStatus(t, s, "h1"); st.State != Held {
		t.Fatalf("after purge: %+v", st)
	}

	// A snapshot restored elsewhere holds it, and it releases there.
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	b, _ := openStore(t, "alpha")
	if err := b.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	assertSameRaw(t, rawDump(t, s), rawDump(t, b))
	if held, _, err := b.Held(HeldQuery{Mailboxes: []string{"cert"}}); err != nil || len(held) != 1 {
		t.Fatalf("restored Held = %+v, %v", held, err)
	}
	if held, _, _ := b.Held(HeldQuery{Mailboxes: []string{""}}); len(held) != 0 {
		t.Fatalf("held of the default mailbox: %+v", held)
	}
	bl := cmdLog{next: l.next}
	if r := bl.apply(t, b, releaseCmd(t4, "h1", bob))[0].Release; r.Seq != 2 {
		t.Fatalf("release after restore: %+v", r)
	}

	// Reopened, the original still holds it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if st, err := s2.LookupKey("kh"); err != nil || st.State != Held {
		t.Fatalf("reopened: %+v %v", st, err)
	}
}

func TestHeldApplyIsDeterministic(t *testing.T) {
	var l cmdLog
	entries := l.add(t,
		holdCmd(t1, alice, certItem("h1", "k1", "one"), certItem("h2", "", "two")),
		submitCmd(t1, certItem("m1", "", "plain")),
		releaseCmd(t2, "h2", alice),
		releaseCmd(t2, "h2", bob),
		holdCmd(t2, bob, certItem("h3", "k1", "one")),
		releaseCmd(t3, "h2", bob),
		deliveredCmd(t3, "bravo", Flash, 2),
		releaseCmd(t4, "h1", bob))
	one, _ := openStore(t, "alpha")
	for _, e := range entries {
		one.Apply([]Entry{e})
	}
	all, _ := openStore(t, "alpha")
	all.Apply(entries)
	all.Apply(entries) // a replay changes nothing
	assertSameRaw(t, rawDump(t, one), rawDump(t, all))
	if st := mustStatus(t, all, "h1"); st.State != Queued || st.Message.Seq != 3 {
		t.Fatalf("h1 %+v", st)
	}
}

func TestReleaseCodec(t *testing.T) {
	for _, c := range []Command{
		holdCmd(t1, alice, certItem("m1", "k", "x")),
		releaseCmd(t2, "m1", bob),
		releaseCmd(t2, "m1", Actor{UID: -1, PID: -1, Peer: "alpha/a2"}),
	} {
		enc, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeCommand(enc)
		if err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
		if !reflect.DeepEqual(plain(got), c) {
			t.Fatalf("round trip\n got %+v\nwant %+v", *got, c)
		}
		if hint := c.sizeHint(); hint < len(enc) || hint > len(enc)+10 {
			t.Errorf("%s: size hint %d for %d bytes", c.Op, hint, len(enc))
		}
	}
	for name, c := range map[string]Command{
		"release without id":  releaseCmd(t2, "", bob),
		"hold naming an id":   {Op: OpSubmit, Time: t1, Submit: &Submit{Origin: "alpha"}, Release: &Release{ID: "m1", By: bob}},
		"release on a purge":  {Op: OpPurge, Time: t1, Purge: &Purge{Before: 1}, Release: &Release{By: bob}},
		"release on an audit": {Op: OpExpire, Time: t1, Release: &Release{ID: "x", By: bob}},
	} {
		enc, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeCommand(enc); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: decode: %v", name, err)
		}
		// Built in memory, apply refuses it too and changes nothing.
		s, _ := openStore(t, "alpha")
		if r := s.Apply([]Entry{{Index: 1, Data: enc}})[0]; r.Err == "" {
			t.Errorf("%s: applied", name)
		}
		if held, _, _ := s.Held(HeldQuery{}); len(held) != 0 {
			t.Errorf("%s: held %+v", name, held)
		}
	}
}
