package queue

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// format5Corpus is every kind of command without a body of version 6,
// and the entries of two apply scripts.
func format5Corpus(t testing.TB) [][]byte {
	t.Helper()
	cmds := codecCommands()
	cmds = append(cmds,
		holdCmd(t1, alice, certItem("h1", "k", "x")),
		releaseCmd(t2, "h1", bob),
		auditCmd(t3, "drill", "detail"),
		checkpointCmd(t4, "bravo", 3, tlog.Hash{1, 2}, []tlog.Hash{{3}}),
		Command{Op: Op("site_version"), Time: t1},
	)
	var out [][]byte
	for i, c := range cmds {
		enc, err := c.Encode()
		if err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
		out = append(out, enc)
	}
	for _, seed := range []uint64{1, 2} {
		for _, e := range script(t, seed, 200) {
			out = append(out, e.Data)
		}
	}
	return out
}

func corpusSum(corpus [][]byte) string {
	h := sha256.New()
	for _, b := range corpus {
		h.Write(binary.AppendUvarint(nil, uint64(len(b))))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// format5Sum is corpusSum(format5Corpus) as the previous release (commit
// 493fdae, which wrote log format 5 only) computes it.
const format5Sum = "747826ea9d3de1a9df447137899a72a45b07abca2e069737a65230a9f5763bf4"

// TestEncodeWritesFormat5: every command without a body of version 6
// encodes as version 5, byte for byte as the previous release encodes it,
// so that it reads everything a site of mixed builds writes.
func TestEncodeWritesFormat5(t *testing.T) {
	corpus := format5Corpus(t)
	for i, b := range corpus {
		if b[0] != cmdVersion5 && b[0] != '{' { // the scripts hold a malformed JSON entry
			t.Fatalf("entry %d: version byte %#x, want 5", i, b[0])
		}
	}
	if got := corpusSum(corpus); got != format5Sum {
		t.Fatalf("the encodings differ from the previous release's: sum %s, want %s", got, format5Sum)
	}
}

func siteVersionCmd(now int64, v uint64) Command {
	return Command{Op: OpSiteVersion, Time: now, SiteVersion: &SiteVersionCmd{Version: v}}
}

// reversion returns the binary entry b with its version byte set to v and
// its checksum made right again.
func reversion(b []byte, v byte) []byte {
	b = bytes.Clone(b[:len(b)-cmdSumLen])
	b[0] = v
	return be.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// TestSiteVersionCodec: a command with a SiteVersion body is a version 6
// entry that round-trips; a version-6 body anywhere else is refused.
func TestSiteVersionCodec(t *testing.T) {
	for _, v := range []uint64{0, 1, 2, 3, math.MaxUint64} {
		c := siteVersionCmd(t2, v)
		enc, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if enc[0] != cmdVersion6 {
			t.Fatalf("version %d: version byte %#x, want 6", v, enc[0])
		}
		if hint := c.sizeHint(); hint < len(enc) || hint > len(enc)+10 {
			t.Errorf("version %d: size hint %d for %d bytes", v, hint, len(enc))
		}
		got, err := DecodeCommand(enc)
		if err != nil || !reflect.DeepEqual(plain(got), c) {
			t.Fatalf("version %d: round trip %+v, %v", v, got, err)
		}
		if again, err := got.Encode(); err != nil || !bytes.Equal(again, enc) {
			t.Fatalf("version %d: re-encoding differs (%v)", v, err)
		}
		// The same bytes labelled as an earlier format: refused.
		for _, old := range []byte{cmdVersion3, cmdVersion4, cmdVersion5} {
			if got, err := DecodeCommand(reversion(enc, old)); !errors.Is(err, ErrInvalid) || got != nil {
				t.Fatalf("version %d in an entry of format %d: %+v, %v", v, old, got, err)
			}
		}
	}
	body := func(c Command) []byte {
		enc, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	withBody := submitCmd(t1, item("m1", "bravo", Routine, "x"))
	withBody.SiteVersion = &SiteVersionCmd{Version: 2}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"in format 5", reversion(body(siteVersionCmd(t1, 2)), cmdVersion5), "site version body in an entry of version 5"},
		{"format 6 without it", reversion(body(expireCmd(t1)), cmdVersion6), "entry of version 6 without a body of version 6"},
		{"on another command", body(withBody), "site version body on a submit command"},
		{"newer format", []byte{cmdVersion6 + 1, 0}, "log entry format 7 is newer than this build reads (6)"},
	}
	for _, tc := range tests {
		got, err := DecodeCommand(tc.in)
		if got != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %+v, %v; want an error containing %q", tc.name, got, err, tc.want)
		}
	}
}

// TestSiteVersionInJSONIsIgnored: 0.1.0 decodes a JSON entry's
// "site_version" key as an unknown field and ignores it, so this build
// does too: the expire below is applied as on 0.1.0 (a site version
// body there would have been refused and the entry skipped, and the two
// builds' states would part), and a JSON site_version command changes
// nothing.
func TestSiteVersionInJSONIsIgnored(t *testing.T) {
	for _, in := range []string{
		`{"op":"expire","time":5,"site_version":{"version":2}}`,
		`{"op":"site_version","time":5,"site_version":{"version":2}}`,
	} {
		c, err := DecodeCommand([]byte(in))
		if err != nil || c.SiteVersion != nil {
			t.Fatalf("%s: %+v, %v; want the command without its site version", in, c, err)
		}
	}
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "x")))
	before := rawDump(t, s)
	res := s.Apply([]Entry{{Index: s.AppliedIndex() + 1, Data: []byte(`{"op":"site_version","time":5,"site_version":{"version":2}}`)}})
	if res[0].Err == "" || res[0].SiteVersion != nil {
		t.Fatalf("JSON site_version: %+v; want a refusal in the result", res[0])
	}
	if s.SiteVersion() != 1 || metaFormat(t, s) != formatVersion {
		t.Fatalf("after a JSON site_version: site version %d, format %d; want 1, %d", s.SiteVersion(), metaFormat(t, s), formatVersion)
	}
	applied := string(bucketMeta) + "/" + hex.EncodeToString(metaApplied) + "="
	notApplied := func(lines []string) []string {
		return slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, applied) })
	}
	if after := rawDump(t, s); !slices.Equal(notApplied(before), notApplied(after)) {
		t.Fatalf("a JSON site_version command changed the state (besides the applied index):\nbefore %v\nafter  %v", notApplied(before), notApplied(after))
	}
}

// metaFormat reads the state file format of an open store.
func metaFormat(t testing.TB, s *Store) uint64 {
	t.Helper()
	var v uint64
	if err := s.view(func(tx *bolt.Tx) error { v = getU64(tx.Bucket(bucketMeta), metaVersion); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestSiteVersionRaise: a new store is at site version 1, format 7;
// raising to 2 moves the file to format 8, and both survive a reopen; the
// same raise again, or a lower one, changes nothing and says so.
func TestSiteVersionRaise(t *testing.T) {
	s, path := openStore(t, "alpha")
	if s.SiteVersion() != 1 || metaFormat(t, s) != formatVersion {
		t.Fatalf("new store: site version %d, format %d; want 1, 7", s.SiteVersion(), metaFormat(t, s))
	}
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "x")))
	res := l.apply(t, s, siteVersionCmd(t2, 2))
	if r := res[0].SiteVersion; r == nil || *r != (SiteVersionResult{Version: 2, Raised: true}) {
		t.Fatalf("raise to 2: %+v", res[0])
	}
	if s.SiteVersion() != 2 || metaFormat(t, s) != 8 {
		t.Fatalf("after the raise: site version %d, format %d; want 2, 8", s.SiteVersion(), metaFormat(t, s))
	}
	want := rawDump(t, s)
	for _, v := range []uint64{2, 1, 0} {
		res := l.apply(t, s, siteVersionCmd(t3, v))
		if r := res[0].SiteVersion; r == nil || *r != (SiteVersionResult{Version: 2}) {
			t.Fatalf("raise to %d again: %+v", v, res[0])
		}
	}
	// Only the applied index moved.
	got := rawDump(t, s)
	for i := range want {
		if strings.HasPrefix(want[i], "meta/"+hex.EncodeToString(metaApplied)+"=") {
			want[i], got[i] = "", ""
		}
	}
	assertSameRaw(t, want, got)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path, "alpha", Options{})
	if err != nil {
		t.Fatalf("Open of a format 8 file: %v", err)
	}
	defer s2.Close()
	if s2.SiteVersion() != 2 || metaFormat(t, s2) != 8 || s2.AppliedIndex() != l.next {
		t.Fatalf("reopened: site version %d, format %d, applied %d", s2.SiteVersion(), metaFormat(t, s2), s2.AppliedIndex())
	}
	if _, err := s2.Lookup("m1"); err != nil {
		t.Fatalf("reopened: %v", err)
	}
	// An OpSiteVersion without its body is refused, as any such command.
	if res := s2.Apply((&cmdLog{next: l.next}).add(t, Command{Op: OpSiteVersion, Time: t4})); !strings.Contains(res[0].Err, "without its body") {
		t.Fatalf("site_version without a body: %+v", res[0])
	}
}

// TestSiteVersionTooNewStopsApply: an OpSiteVersion above MaxSiteVersion
// stops Apply (like an entry of a newer format): nothing of its batch is
// applied, the store refuses later batches, and it names what to do.
func TestSiteVersionTooNewStopsApply(t *testing.T) {
	s, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "x")))
	before := rawDump(t, s)
	res := s.Apply(l.add(t, submitCmd(t2, item("m2", "bravo", Routine, "x")), siteVersionCmd(t3, 3)))
	want := "raft log entry 3: site version 3 is newer than this build understands (2): run a newer build"
	if len(res) != 2 || !strings.Contains(res[1].Err, want) || !strings.Contains(res[0].Err, want) {
		t.Fatalf("results %+v; want both entries failed with %q", res, want)
	}
	var nv *NewerSiteVersionError
	if !errors.As(s.Err(), &nv) || nv.Version != 3 {
		t.Fatalf("store error %v; want a *NewerSiteVersionError", s.Err())
	}
	if s.AppliedIndex() != 1 || s.SiteVersion() != 1 {
		t.Fatalf("applied %d, site version %d; want 1, 1", s.AppliedIndex(), s.SiteVersion())
	}
	assertSameRaw(t, before, rawDump(t, s))
}

// TestOpenRefusesNewerSiteVersion: a state file whose site version is
// above MaxSiteVersion (of a newer build, in a format this one reads) is
// refused at Open and as a snapshot.
func TestOpenRefusesNewerSiteVersion(t *testing.T) {
	s, path := openStore(t, "alpha")
	editClosed(t, s, path, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(metaSiteVersion, u64(3)); err != nil {
			return err
		}
		return meta.Put(metaVersion, u64(8))
	})
	snap, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var nv *NewerSiteVersionError
	if _, err := Open(path, "alpha", Options{}); !errors.As(err, &nv) || !strings.Contains(err.Error(), "site version 3 is newer than this build understands (2)") {
		t.Fatalf("Open: %v", err)
	}
	b, _ := openStore(t, "alpha")
	if err := b.Restore(bytes.NewReader(snap)); !errors.As(err, &nv) {
		t.Fatalf("Restore: %v", err)
	}
	if b.Err() != nil || b.SiteVersion() != 1 {
		t.Fatalf("after a refused restore: %v, site version %d", b.Err(), b.SiteVersion())
	}
}

// TestSiteVersionSnapshot: a snapshot before the raise is of format 7
// (what a node of the previous release opens), one after it of format 8;
// each restores with its site version, whatever the store held before.
func TestSiteVersionSnapshot(t *testing.T) {
	a, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, a, submitCmd(t1, item("m1", "bravo", Routine, "x")))
	snap7 := snapshotBytes(t, a)
	l.apply(t, a, siteVersionCmd(t2, 2))
	snap8 := snapshotBytes(t, a)

	b, _ := openStore(t, "alpha")
	if err := b.Restore(bytes.NewReader(snap8)); err != nil {
		t.Fatalf("Restore of a format 8 snapshot: %v", err)
	}
	if b.SiteVersion() != 2 || metaFormat(t, b) != 8 || b.AppliedIndex() != 2 {
		t.Fatalf("after restoring format 8: site version %d, format %d, applied %d", b.SiteVersion(), metaFormat(t, b), b.AppliedIndex())
	}
	assertSameRaw(t, rawDump(t, a), rawDump(t, b))
	if err := b.Restore(bytes.NewReader(snap7)); err != nil {
		t.Fatalf("Restore of a format 7 snapshot: %v", err)
	}
	if b.SiteVersion() != 1 || metaFormat(t, b) != 7 || b.AppliedIndex() != 1 {
		t.Fatalf("after restoring format 7: site version %d, format %d, applied %d", b.SiteVersion(), metaFormat(t, b), b.AppliedIndex())
	}
	// Raft resends the raise after the snapshot.
	if res := b.Apply(l.entries[1:]); res[0].SiteVersion == nil || !res[0].SiteVersion.Raised || b.SiteVersion() != 2 {
		t.Fatalf("raise after restore: %+v, site version %d", res[0], b.SiteVersion())
	}
}
