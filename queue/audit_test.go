package queue

import (
	"bytes"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

func auditCmd(now int64, action, detail string) Command {
	return Command{Op: OpAudit, Time: now, Audit: &AuditCmd{Node: "alpha-1", Actor: Actor{UID: 0, User: "root", PID: 42}, Action: action, Detail: detail}}
}

func checkpointCmd(now int64, site string, size int64, root tlog.Hash, proof []tlog.Hash) Command {
	return Command{Op: OpCheckpoint, Time: now, Checkpoint: &CheckpointCmd{Site: site, Size: size, Root: root, Note: []byte("note of " + site), Proof: proof}}
}

// heldCmd is checkpointCmd of another site's checkpoint whose proof starts
// at the held checkpoint of size from.
func heldCmd(now int64, site string, size int64, root tlog.Hash, from int64, proof []tlog.Hash) Command {
	c := checkpointCmd(now, site, size, root, proof)
	c.Checkpoint.From = from
	return c
}

// auditKinds decodes every record of s and returns "kind id" per record.
func auditKinds(t *testing.T, s *Store) []string {
	t.Helper()
	es, size, err := s.AuditEntries(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(es)) != size {
		t.Fatalf("%d entries, size %d", len(es), size)
	}
	var out []string
	for i, e := range es {
		if e.Index != int64(i) {
			t.Fatalf("entry %d has index %d", i, e.Index)
		}
		r, err := DecodeAuditRecord(e.Record)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if !bytes.Equal(r.Encode(), e.Record) {
			t.Fatalf("entry %d: not canonical", i)
		}
		if tlog.RecordHash(e.Record) != e.Hash {
			t.Fatalf("entry %d: stored hash does not match the record", i)
		}
		out = append(out, r.Kind.String()+" "+r.ID+r.Action)
	}
	return out
}

func TestAuditRecordsEveryEvent(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	exp := item("m2", "bravo", Routine, "two")
	exp.ExpiresAt = t2
	l.apply(t, s,
		submitCmd(t0, item("m1", "bravo", Routine, "one"), exp),
		deliveredCmd(t1, "bravo", Routine, 1),
		receiptsCmd(t1, "bravo", Receipt{RSeq: 1, Precedence: Routine, Seq: 1, ID: "m1", ReadAt: t1}),
		expireCmd(t3),
		receiveCmd(t3, "bravo", Flash, Message{ID: "i1", Origin: "bravo", Dest: "alpha", Precedence: Flash, Seq: 1, Payload: []byte("in"), SubmittedAt: t0}),
		markReadCmd(t4, "i1"),
		auditCmd(t4, "path_down", "path fiber"),
		purgeCmd(t4+1e12, t4+1e12, 0),
	)
	want := []string{"submitted m1", "submitted m2", "delivered m1", "read m1", "expired m2", "received notice-m2", "received i1", "read i1", "operator path_down"}
	if got := auditKinds(t, s); !reflect.DeepEqual(got, want) {
		t.Fatalf("records = %q\nwant      %q", got, want)
	}
	if _, err := s.Lookup("m1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("m1 should be purged: %v", err)
	}
	es, err := s.AuditEntriesOf("m1")
	if err != nil || len(es) != 3 || es[0].Index != 0 || es[1].Index != 2 || es[2].Index != 3 {
		t.Fatalf("entries of m1 after purge = %+v, %v; want indices 0, 2, 3", es, err)
	}
	r, _ := DecodeAuditRecord(es[0].Record)
	if r.Origin != "alpha" || r.Dest != "bravo" || r.Seq != 1 || r.Time != t0 || len(r.PayloadHash) != 32 {
		t.Fatalf("submitted record = %+v", r)
	}
	ri, _ := s.AuditEntriesOf("i1")
	r, _ = DecodeAuditRecord(ri[0].Record)
	if r.Kind != AuditReceived || r.Origin != "bravo" || r.Dest != "alpha" || r.Precedence != Flash {
		t.Fatalf("received record = %+v", r)
	}
	op, _, _ := s.AuditEntries(8, 1) // after the expiry notice's record
	r, _ = DecodeAuditRecord(op[0].Record)
	if r.Actor.User != "root" || r.Actor.PID != 42 || r.Node != "alpha-1" || r.Detail != "path fiber" {
		t.Fatalf("operator record = %+v", r)
	}
}

// TestAuditProofs checks every record's inclusion proof and the
// consistency proofs between sizes with tlog's own checkers.
func TestAuditProofs(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	for i := range 13 {
		l.apply(t, s, auditCmd(t0+int64(i), "act", strings.Repeat("x", i)))
	}
	size := s.AuditSize()
	if size != 13 {
		t.Fatalf("size = %d", size)
	}
	es, _, _ := s.AuditEntries(0, 0)
	for n := int64(1); n <= size; n++ {
		th, err := s.AuditTreeHash(n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			p, err := s.AuditProveRecord(i, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, n, th, i, tlog.RecordHash(es[i].Record)); err != nil {
				t.Fatalf("record %d in tree %d: %v", i, n, err)
			}
		}
		full, _ := s.AuditTreeHash(size)
		p, err := s.AuditProveTree(size, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, size, full, n, th); err != nil {
			t.Fatalf("tree %d in %d: %v", n, size, err)
		}
	}
	if _, err := s.AuditProveRecord(13, 13); !errors.Is(err, ErrInvalid) {
		t.Fatalf("proof of a record beyond the tree: %v", err)
	}
	if _, err := s.AuditTreeHash(14); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tree hash beyond the log: %v", err)
	}
}

// TestAuditDeterministic: two stores applying the same entries, in other
// batches, hold the same log; a replay adds nothing.
func TestAuditDeterministic(t *testing.T) {
	entries := script(t, 11, 300)
	a, path := openStore(t, "alpha")
	b, _ := openStore(t, "alpha")
	a.Apply(entries)
	applyInBatches(b, entries, 1, 5, 33)
	size := a.AuditSize()
	if size < 100 || b.AuditSize() != size {
		t.Fatalf("sizes %d and %d", size, b.AuditSize())
	}
	ha, _ := a.AuditTreeHash(size)
	hb, _ := b.AuditTreeHash(size)
	if ha != hb {
		t.Fatal("tree hashes differ")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	a, err := Open(path, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	applyInBatches(a, entries, 7)
	if h, _ := a.AuditTreeHash(size); a.AuditSize() != size || h != ha {
		t.Fatalf("replay changed the log: size %d", a.AuditSize())
	}
}

func TestAuditOwnCheckpoint(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, auditCmd(t0, "a", ""), auditCmd(t0, "b", ""), auditCmd(t0, "c", ""))
	if _, err := s.AuditCheckpoint("alpha"); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("checkpoint before any: %v", err)
	}
	h2, _ := s.AuditTreeHash(2)
	h3, _ := s.AuditTreeHash(3)
	for _, bad := range []Command{
		checkpointCmd(t1, "alpha", 3, h2, nil), // wrong root
		checkpointCmd(t1, "alpha", 4, h3, nil), // beyond the log
		checkpointCmd(t1, "alpha", 0, h3, nil),
		{Op: OpCheckpoint, Time: t1, Checkpoint: &CheckpointCmd{Site: "alpha", Size: 3, Root: h3}}, // no note
	} {
		res := s.Apply(l.add(t, bad))
		if res[0].Err == "" || !strings.Contains(res[0].Err, "invalid") {
			t.Fatalf("%+v applied: %+v", bad.Checkpoint, res[0])
		}
	}
	if _, err := s.AuditCheckpoint("alpha"); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("a refused checkpoint was kept: %v", err)
	}
	l.apply(t, s, checkpointCmd(t1, "alpha", 2, h2, nil), checkpointCmd(t2, "alpha", 3, h3, nil))
	cp, err := s.AuditCheckpoint("alpha")
	if err != nil || cp.Size != 3 || cp.Root != h3 || string(cp.Note) != "note of alpha" || cp.Time != t2 {
		t.Fatalf("latest = %+v, %v", cp, err)
	}
	all, _ := s.AuditCheckpoints("alpha", false, 0, 0)
	if len(all) != 2 || all[0].Size != 2 {
		t.Fatalf("checkpoints = %+v", all)
	}
	cp, proof, err := s.AuditInclusion(1)
	es, _, _ := s.AuditEntries(1, 1)
	if err != nil || tlog.CheckRecord(proof, cp.Size, cp.Root, 1, tlog.RecordHash(es[0].Record)) != nil {
		t.Fatalf("inclusion of record 1: %v", err)
	}
	l.apply(t, s, auditCmd(t3, "d", ""))
	if _, _, err := s.AuditInclusion(3); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("inclusion of a record no checkpoint covers: %v", err)
	}
}

// TestAuditHeldCheckpoints: another site's checkpoints are held while each
// extends the last; one that does not is kept as a fork.
func TestAuditHeldCheckpoints(t *testing.T) {
	bravo, _ := openStore(t, "bravo")
	other, _ := openStore(t, "bravo") // a rewritten history of bravo
	var lb, lo cmdLog
	for i := range 9 {
		lb.apply(t, bravo, auditCmd(t0+int64(i), "act", "real"))
		lo.apply(t, other, auditCmd(t0+int64(i), "act", "rewritten"))
	}
	h4, _ := bravo.AuditTreeHash(4)
	h9, _ := bravo.AuditTreeHash(9)
	p49, _ := bravo.AuditProveTree(9, 4)
	f9, _ := other.AuditTreeHash(9)

	s, _ := openStore(t, "alpha")
	var l cmdLog
	res := l.apply(t, s, heldCmd(t1, "bravo", 4, h4, 0, nil), heldCmd(t2, "bravo", 9, h9, 4, p49))
	if res[0].Audit.Fork || res[1].Audit.Fork {
		t.Fatal("consistent checkpoints taken as forks")
	}
	held, err := s.AuditCheckpoint("bravo")
	if err != nil || held.Size != 9 || held.Prev != 4 || len(held.Proof) != len(p49) {
		t.Fatalf("held = %+v, %v", held, err)
	}
	// A fork at the same size, another with a bogus proof, and an old one.
	res = l.apply(t, s, heldCmd(t3, "bravo", 9, f9, 9, nil))
	if !res[0].Audit.Fork {
		t.Fatal("a different root at the held size is not a fork")
	}
	fo, _ := other.AuditProveTree(9, 4)
	res = l.apply(t, s, heldCmd(t3, "bravo", 9, f9, 9, fo))
	if !res[0].Audit.Fork {
		t.Fatal("a fork with a proof of another tree was held")
	}
	if r := s.Apply(l.add(t, heldCmd(t3, "bravo", 2, h4, 9, nil))); r[0].Err == "" {
		t.Fatal("a checkpoint older than the held one was applied")
	}
	if held, _ := s.AuditCheckpoint("bravo"); held.Size != 9 || held.Root != h9 {
		t.Fatalf("a fork moved the held chain: %+v", held)
	}
	n, latest, err := s.AuditForks()
	if err != nil || n != 1 || latest.Root != f9 || !latest.Fork || latest.Prev != 9 {
		t.Fatalf("forks = %d, %+v, %v (one fork: both were of one size and root)", n, latest, err)
	}
	for i := range 2 * maxForksPerSite {
		l.apply(t, s, heldCmd(t4, "bravo", 20+int64(i), f9, 9, nil))
	}
	if n, _, _ := s.AuditForks(); n != maxForksPerSite {
		t.Fatalf("%d forks kept, want at most %d", n, maxForksPerSite)
	}
}

func TestAuditCommandsEncodeAndRefuse(t *testing.T) {
	cmds := []Command{
		auditCmd(t0, "leader_transfer", "to alpha-2"),
		checkpointCmd(t1, "bravo", 9, tlog.Hash{1}, []tlog.Hash{{2}, {3}}),
		{Op: OpCheckpoint, Time: t1, Checkpoint: &CheckpointCmd{Site: "x", Size: 1, Note: []byte("n"), From: 1 << 40}},
	}
	for _, c := range cmds {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeCommand(b)
		if err != nil {
			t.Fatalf("%s: %v", c.Op, err)
		}
		if !reflect.DeepEqual(plain(got), c) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, c)
		}
	}
	// Over a limit: refused when decoded (the encoder writes what it is given).
	long := auditCmd(t0, "act", strings.Repeat("d", MaxAuditDetail+1))
	b, _ := long.Encode()
	if _, err := DecodeCommand(b); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "detail") {
		t.Fatalf("long detail: %v", err)
	}
	s, _ := openStore(t, "alpha")
	var l cmdLog
	for _, bad := range []*AuditCmd{
		{Node: "alpha-1", Action: ""},
		{Node: "alpha-1", Action: "x", Detail: "a\x1b[2Jb"},
		{Node: "", Action: "x"},
	} {
		if r := s.Apply(l.add(t, Command{Op: OpAudit, Time: t0, Audit: bad})); r[0].Err == "" {
			t.Fatalf("%+v applied", bad)
		}
	}
	if s.AuditSize() != 0 {
		t.Fatal("a refused audit command was recorded")
	}
}

func TestDecodeAuditRecordRejects(t *testing.T) {
	good := (&AuditRecord{Kind: AuditOperator, Time: t0, Action: "x", Actor: NoActor}).Encode()
	if _, err := DecodeAuditRecord(good); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":    nil,
		"version":  append([]byte{2}, good[1:]...),
		"kind":     append([]byte{1, 9}, good[2:]...),
		"trailing": append(bytes.Clone(good), 0),
		"huge":     make([]byte, MaxAuditRecord+1),
		"hash":     (&AuditRecord{Kind: AuditSubmitted, PayloadHash: []byte{1, 2}}).Encode(),
	} {
		if _, err := DecodeAuditRecord(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestOldEntriesAppendNoAuditRecords: entries of format 3 (kept as the
// previous version wrote them) apply without audit records, as they did
// on the nodes that applied them before the upgrade; the same command as
// a version 4 entry appends its record. A version 3 entry cannot carry
// the audit bodies, which version 4 brought.
func TestOldEntriesAppendNoAuditRecords(t *testing.T) {
	old, _ := openStore(t, "bravo")
	cur, _ := openStore(t, "bravo")
	for i, e := range v3Entries {
		b, _ := hex.DecodeString(e.hex)
		if res := old.Apply([]Entry{{Index: old.AppliedIndex() + 1, Data: b}}); res[0].Err != "" {
			t.Fatalf("v3 entry %d: %s", i, res[0].Err)
		}
		c, err := DecodeCommand(b)
		if err != nil {
			t.Fatal(err)
		}
		v4, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if res := cur.Apply([]Entry{{Index: cur.AppliedIndex() + 1, Data: v4}}); res[0].Err != "" {
			t.Fatalf("entry %d as v4: %s", i, res[0].Err)
		}
	}
	if _, err := old.Lookup("m1"); err != nil {
		t.Fatalf("the v3 receive was not applied: %v", err)
	}
	if n := old.AuditSize(); n != 0 {
		t.Fatalf("v3 entries appended %d audit records; want none", n)
	}
	if got := auditKinds(t, cur); !reflect.DeepEqual(got, []string{"received m1"}) {
		t.Fatalf("v4 entries appended %q; want the receive's record", got)
	}
	// An audit body in a version 3 entry does not decode, as it did not
	// before the upgrade; an OpAudit of the JSON format is refused.
	enc, err := (&Command{Op: OpAudit, Time: t1, Audit: auditCmd(t1, "x", "").Audit}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	v3 := append([]byte{cmdVersion3}, enc[2:len(enc)-cmdSumLen]...) // without the empty evidence section
	v3 = be.AppendUint32(v3, crc32.Checksum(v3, castagnoli))
	if _, err := DecodeCommand(v3); err == nil || !strings.Contains(err.Error(), "audit bodies in an entry of version 3") {
		t.Fatalf("v3 audit entry: %v", err)
	}
	js := []byte(`{"op":"audit","time":1,"audit":{"node":"bravo-1","actor":{"uid":0,"pid":1},"action":"x"}}`)
	if res := old.Apply([]Entry{{Index: old.AppliedIndex() + 1, Data: js}}); !strings.Contains(res[0].Err, "older format") || old.AuditSize() != 0 {
		t.Fatalf("JSON audit entry: %+v, %d records", res[0], old.AuditSize())
	}
}

// TestAuditCheckpointMoved: a checkpoint whose proof starts at another
// size than the held one's (the offer was answered from a lagging state,
// or another offer moved the held one since) is refused with
// ErrCheckpointMoved and changes nothing: no fork, nothing held. An
// honest checkpoint offered again from the right size is held.
func TestAuditCheckpointMoved(t *testing.T) {
	bravo, _ := openStore(t, "bravo")
	var lb cmdLog
	for i := range 9 {
		lb.apply(t, bravo, auditCmd(t0+int64(i), "act", "real"))
	}
	h4, _ := bravo.AuditTreeHash(4)
	h9, _ := bravo.AuditTreeHash(9)
	p49, _ := bravo.AuditProveTree(9, 4)

	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, heldCmd(t1, "bravo", 4, h4, 0, nil))
	before := rawDump(t, s)
	for _, c := range []Command{
		heldCmd(t2, "bravo", 9, h9, 0, nil), // answered from a state that held nothing yet
		heldCmd(t2, "bravo", 9, h9, 2, nil), // a proof from an older checkpoint
		heldCmd(t2, "bravo", 4, h9, 0, nil), // a different root at the held size, from the wrong size: not a fork either
	} {
		res := s.Apply(l.add(t, c))
		if !strings.Contains(res[0].Err, ErrCheckpointMoved.Error()) || res[0].Audit == nil || !res[0].Audit.Moved || res[0].Audit.Held != 4 {
			t.Fatalf("from %d: %+v", c.Checkpoint.From, res[0])
		}
	}
	after := rawDump(t, s)
	assertSameRaw(t, withoutApplied(before), withoutApplied(after))
	if n, _, _ := s.AuditForks(); n != 0 {
		t.Fatalf("%d forks kept of an honest site", n)
	}
	if res := l.apply(t, s, heldCmd(t3, "bravo", 9, h9, 4, p49)); res[0].Audit.Fork {
		t.Fatal("offered again: a fork")
	}
	if held, _ := s.AuditCheckpoint("bravo"); held.Size != 9 {
		t.Fatalf("held = %+v", held)
	}
}

// withoutApplied drops the applied index from a rawDump.
func withoutApplied(dump []string) []string {
	var out []string
	applied := string(bucketMeta) + "/" + hex.EncodeToString(metaApplied) + "="
	for _, l := range dump {
		if !strings.HasPrefix(l, applied) {
			out = append(out, l)
		}
	}
	return out
}

// TestAuditDamagedRecord: a stored record changed after it was appended no
// longer matches its leaf hash: reading it is a CorruptError naming it,
// counted once, and never returns the record.
func TestAuditDamagedRecord(t *testing.T) {
	s, path := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t0, item("m1", "bravo", Routine, "one")), auditCmd(t1, "path_down", "path fiber"))
	editClosed(t, s, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		v := bytes.Clone(b.Get(u64(0)))
		v[len(v)-1] ^= 1
		return b.Put(u64(0), v)
	})
	s, err := Open(path, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var ce *CorruptError
	es, _, err := s.AuditEntries(0, 0)
	if !errors.As(err, &ce) || ce.Record != "audit record 0" || es != nil {
		t.Fatalf("entries of a damaged log = %v, %v; want a CorruptError of audit record 0", es, err)
	}
	if es, err := s.AuditEntriesOf("m1"); !errors.Is(err, ErrCorrupt) || es != nil {
		t.Fatalf("entries of m1 = %v, %v; want ErrCorrupt", es, err)
	}
	if es, _, err := s.AuditEntries(1, 1); err != nil || len(es) != 1 {
		t.Fatalf("the undamaged record 1 = %v, %v", es, err)
	}
	if n, last := s.Corruption(); n != 1 || !errors.Is(last, ErrCorrupt) {
		t.Fatalf("corruption = %d, %v; want 1", n, last)
	}
}

// TestCheckpointApplyIgnoresSites: apply depends only on the state and the
// command: a store opened without site bravo in its Options applies a held
// checkpoint of bravo as one with it does (the daemon checks the site
// before it proposes).
func TestCheckpointApplyIgnoresSites(t *testing.T) {
	var got []*AuditCheckpoint
	for _, sites := range [][]string{{"alpha", "bravo"}, {"alpha"}} {
		s, err := Open(filepath.Join(t.TempDir(), "state.db"), "alpha", Options{Sites: sites})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var l cmdLog
		l.apply(t, s, heldCmd(t1, "bravo", 3, tlog.Hash{9}, 0, nil))
		cp, err := s.AuditCheckpoint("bravo")
		if err != nil {
			t.Fatalf("sites %q: %v", sites, err)
		}
		got = append(got, cp)
	}
	if !reflect.DeepEqual(got[0], got[1]) {
		t.Fatalf("held checkpoints differ: %+v and %+v", got[0], got[1])
	}
}
