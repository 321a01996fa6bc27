package trust

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hotline-link/hotline/queue"
)

// TestMessageLeafPinned pins MessageLeaf's encoding (statements already
// signed depend on it) and checks that MessageLeafOfHash, which reads the
// payload's hash instead of the payload, gives the same leaf.
func TestMessageLeafPinned(t *testing.T) {
	for _, tc := range []struct {
		m    queue.Message
		want string
	}{
		{queue.Message{ID: "m1", Origin: "alpha", Dest: "bravo", Precedence: queue.Immediate, Seq: 7, Key: "k",
			Payload: []byte("sealed"), Flags: queue.FlagSealed, SubmittedAt: 1700000000123456789, ExpiresAt: 1700003600000000000},
			"6a9ef880eab3b870833ad2410dcb1d8037736596dca1d7e43380f757c943ad9f"},
		{queue.Message{ID: "t", Origin: "alpha", Dest: "bravo", Seq: 1, Flags: queue.FlagTombstone},
			"67490bb06e008803af4db20b286e6092f725cf458b0711f4f9e811c8c7c0eeb7"},
	} {
		got := MessageLeaf(&tc.m)
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("MessageLeaf(%s) = %x, want %s", tc.m.ID, got[:], tc.want)
		}
		sum := sha256.Sum256(tc.m.Payload)
		m := tc.m
		m.Payload = nil
		if MessageLeafOfHash(&m, sum) != got {
			t.Errorf("MessageLeafOfHash(%s) differs from MessageLeaf", tc.m.ID)
		}
	}
}

// TestReceiptLeafPinned pins ReceiptLeaf: a read receipt has the leaf it
// had before refusals existed (statements already signed depend on it); a
// refusal receipt's leaf covers its reason.
func TestReceiptLeafPinned(t *testing.T) {
	r := queue.Receipt{RSeq: 3, Precedence: queue.Flash, Seq: 9, ID: "m9", ReadAt: 1700000000123456789}
	refused := r
	refused.Refused = `no mailbox "nosuch" here`
	for _, tc := range []struct {
		r    queue.Receipt
		want string
	}{
		{r, "2e9aa92368394f8fad229ae14bc7bf7840d8fd5453eab303752ae4f33c7a29bf"},
		{refused, "04d7cbb763b3c71791fdb53a18cd7b30e62320932139cab6083d56c85ba5d6b5"},
	} {
		if got := ReceiptLeaf("bravo", "alpha", &tc.r); hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("ReceiptLeaf(%+v) = %x, want %s", tc.r, got[:], tc.want)
		}
	}
}

// labEvidence is a message of alpha to bravo (seq 2 of a batch 1..3,
// sealed), the statements alpha and bravo signed about it, and alpha's
// audit log of five records, records 1 and 3 about it.
type labEvidence struct {
	ring   *Keyring
	status *queue.Status
	proofs []queue.Proof
	audit  []StoredAudit
}

// change, if given, is applied to the three messages before anything is
// signed (to make them tombstones, or not sealed).
func newLabEvidence(t testing.TB, change ...func(*queue.Message)) *labEvidence {
	t.Helper()
	return newLabEvidenceRefused(t, "", change...)
}

// newLabEvidenceRefused is newLabEvidence; with a reason, bravo refused
// m2 (its receipt is a refusal receipt, its status Refused).
func newLabEvidenceRefused(t testing.TB, reason string, change ...func(*queue.Message)) *labEvidence {
	t.Helper()
	dir := t.TempDir()
	ask, _ := siteKeys(t, dir, "alpha")
	bsk, _ := siteKeys(t, dir, "bravo")
	ring := keyring(t, dir, "alpha", "bravo")
	to, err := ring.EncryptionKey("bravo")
	if err != nil {
		t.Fatal(err)
	}
	const t0 = int64(1754000000000000000)
	ms := make([]queue.Message, 3)
	for i := range ms {
		id := fmt.Sprintf("m%d", i+1)
		env, err := Seal(to, Binding{ID: id, Origin: "alpha", Dest: "bravo"}, []byte("report "+id))
		if err != nil {
			t.Fatal(err)
		}
		ms[i] = queue.Message{ID: id, Origin: "alpha", Dest: "bravo", Precedence: queue.Priority, Seq: uint64(i + 1),
			Payload: env, Flags: queue.FlagSealed, SubmittedAt: t0 + int64(i), ExpiresAt: t0 + 3600e9}
		for _, c := range change {
			c(&ms[i])
		}
	}
	leaves := MessageLeaves(ms)
	// A KindRead statement names no precedence of its own (the daemon's
	// is flash): its receipts are of any.
	sign := func(key *SigningKey, kind Kind, peer string, first, last uint64, ls []Hash) []byte {
		prec := queue.Priority
		if kind == KindRead {
			prec = queue.Flash
		}
		st, err := NewStatement(kind, peer, prec, first, last, ls, t0+1e9)
		if err != nil {
			t.Fatal(err)
		}
		s, err := SignStatement(key, st)
		if err != nil {
			t.Fatal(err)
		}
		return s.Encode()
	}
	sent := sign(ask, KindMessages, "bravo", 1, 3, leaves)
	readAt := t0 + 5e9
	rs := []queue.Receipt{
		{RSeq: 4, Precedence: queue.Routine, Seq: 9, ID: "other", ReadAt: readAt},
		{RSeq: 5, Precedence: queue.Priority, Seq: 2, ID: "m2", ReadAt: readAt, Refused: reason},
	}
	rleaves := ReceiptLeaves("bravo", "alpha", rs)
	stored := []queue.Proof{
		{Kind: ProofSent, Statement: sent, Index: 1, Leaves: raw(leaves)},
		{Kind: ProofReceived, Statement: sent, Index: 1, Leaves: raw(leaves)},
		{Kind: ProofDelivered, Statement: sign(bsk, KindDelivered, "alpha", 1, 3, leaves), Index: 1, Leaves: raw(leaves)},
		{Kind: ProofRead, Statement: sign(bsk, KindRead, "alpha", 4, 5, rleaves), Index: 1, Leaves: raw(rleaves)},
	}

	// alpha's audit log: an operator record, m2 submitted, m1 submitted,
	// m2 delivered, m2 read.
	about := func(kind queue.AuditKind, m *queue.Message, at int64) *queue.AuditRecord {
		r := &queue.AuditRecord{Kind: kind, Time: at, ID: m.ID, Origin: m.Origin, Dest: m.Dest, Precedence: m.Precedence,
			Seq: m.Seq, Flags: m.Flags, Actor: queue.NoActor}
		if kind == queue.AuditSubmitted {
			sum := sha256.Sum256(m.Payload)
			r.PayloadHash = sum[:]
		}
		return r
	}
	var records [][]byte
	var rh []Hash
	for _, r := range []*queue.AuditRecord{
		{Kind: queue.AuditOperator, Time: t0, Node: "alpha-1", Actor: queue.NoActor, Action: "path_down", Detail: "fiber"},
		about(queue.AuditSubmitted, &ms[1], t0+1), about(queue.AuditSubmitted, &ms[0], t0+2),
		about(queue.AuditDelivered, &ms[1], t0+3e9), about(queue.AuditRead, &ms[1], readAt),
	} {
		rec := r.Encode()
		records = append(records, rec)
		rh = append(rh, tlog.RecordHash(rec))
	}
	root, err := Root(rh)
	if err != nil {
		t.Fatal(err)
	}
	note, err := SignCheckpoint(ask, Checkpoint{Site: "alpha", Size: int64(len(rh)), Root: root})
	if err != nil {
		t.Fatal(err)
	}
	var audit []StoredAudit
	for _, i := range []int{0, 1, 2, 3, 4} { // NewBundle keeps 1, 3 and 4
		p, err := Prove(rh, i)
		if err != nil {
			t.Fatal(err)
		}
		audit = append(audit, StoredAudit{Record: records[i], Index: int64(i), Proof: p, Checkpoint: note})
	}
	st := &queue.Status{Message: ms[1], State: queue.Read, ReadAt: readAt}
	if reason != "" {
		st.State, st.ReadAt, st.RefusedAt, st.RefusedReason = queue.Refused, 0, readAt, reason
	}
	return &labEvidence{ring: ring, status: st, proofs: stored, audit: audit}
}

func raw(hs []Hash) [][32]byte {
	out := make([][32]byte, len(hs))
	for i, h := range hs {
		out[i] = h
	}
	return out
}

func (e *labEvidence) bundle(t testing.TB) *Bundle {
	t.Helper()
	b, err := NewBundle(e.status, e.proofs, e.audit)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBundleVerifies builds a bundle from stored proofs, writes and reads
// it as JSON, and verifies every part of it offline.
func TestBundleVerifies(t *testing.T) {
	e := newLabEvidence(t)
	// A stored proof about another message with the same id is left out.
	other := e.proofs[0]
	other.Index = 0
	e.proofs = append(e.proofs, other)
	data, err := e.bundle(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	r, err := VerifyBundle(b, e.ring)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range r.Checks {
		got = append(got, c.What)
	}
	want := "envelope sent received delivered read audit 0 audit 1 audit 2"
	if strings.Join(got, " ") != want {
		t.Fatalf("checks %q, want %q", got, want)
	}
	if !strings.Contains(r.Checks[4].Detail, "receipt 5") || !strings.Contains(r.Checks[1].Detail, "alpha (key") ||
		!strings.HasPrefix(r.Checks[5].Detail, "submitted at ") || !strings.HasPrefix(r.Checks[7].Detail, "read at ") {
		t.Fatalf("details: %+v", r.Checks)
	}
	// The envelope proves the plaintext: its hash is what the sender and
	// the reader hold, and nothing else is.
	plain := sha256.Sum256([]byte("report m2"))
	if r.Plaintext == nil || *r.Plaintext != plain || !strings.Contains(r.Checks[0].Detail, fmt.Sprintf("plaintext sha256 %x", plain)) {
		t.Fatalf("plaintext %v, envelope check %q; want %x", r.Plaintext, r.Checks[0].Detail, plain)
	}
	if err := r.CheckPlaintext(plain); err != nil {
		t.Fatal(err)
	}
	if err := r.CheckPlaintext(sha256.Sum256([]byte("report m1"))); !errors.Is(err, ErrPlaintext) || !strings.Contains(err.Error(), hex.EncodeToString(plain[:])) {
		t.Fatalf("another plaintext: %v", err)
	}
	if bytes.Contains(data, []byte("report m2")) {
		t.Fatal("the bundle holds the plaintext")
	}
	t.Logf("%s", data)
}

// TestBundlePlaintextNotProven checks bundles that prove no plaintext: an
// envelope left out, a tombstone. They verify, with a note saying so, and
// no plaintext matches. A payload that is not sealed is its plaintext.
func TestBundlePlaintextNotProven(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*queue.Message)
		drop   bool
		note   string // "" if the plaintext is proven
	}{
		{name: "envelope left out", drop: true, note: "not proven: the bundle holds the sealed payload's SHA-256, not the envelope"},
		{name: "tombstone", change: func(m *queue.Message) { m.Flags, m.Payload = queue.FlagTombstone, nil }, note: "not proven: a tombstone"},
		{name: "not sealed", change: func(m *queue.Message) { m.Flags, m.Payload = 0, []byte("report "+m.ID) }},
	} {
		var e *labEvidence
		if tc.change != nil {
			e = newLabEvidence(t, tc.change)
		} else {
			e = newLabEvidence(t)
		}
		b := e.bundle(t)
		if tc.drop {
			b.Message.Envelope = nil
		}
		if b.Message.Envelope != nil {
			t.Fatalf("%s: bundle holds an envelope", tc.name)
		}
		data, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if b, err = ParseBundle(data); err != nil {
			t.Fatal(err)
		}
		r, err := VerifyBundle(b, e.ring)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		c := r.Checks[0]
		plain := sha256.Sum256([]byte("report m2"))
		perr := r.CheckPlaintext(plain)
		if tc.note != "" {
			if c.What != "plaintext" || !c.Note || !strings.HasPrefix(c.Detail, tc.note) || r.Plaintext != nil || !errors.Is(perr, ErrPlaintext) {
				t.Errorf("%s: %+v, plaintext %v, CheckPlaintext %v", tc.name, c, r.Plaintext, perr)
			}
		} else if c.What != "plaintext" || c.Note || perr != nil {
			t.Errorf("%s: %+v, CheckPlaintext %v", tc.name, c, perr)
		}
		t.Logf("%s: %s %s; CheckPlaintext: %v", tc.name, c.What, c.Detail, perr)
	}
}

// TestBundleTamper changes each value of a bundle's JSON in turn (a
// character of every string at its start, middle and end, every number
// by one, the last hash of every path dropped) and checks that the bundle no
// longer parses or no longer verifies, naming the part.
func TestBundleTamper(t *testing.T) {
	e := newLabEvidence(t)
	data, err := e.bundle(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	n, parsed := 0, 0
	seen := map[string]bool{}
	for _, m := range mutations(doc, "") {
		seen[m.path] = true
		n++
		out, err := json.Marshal(m.doc)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseBundle(out)
		if err != nil {
			continue
		}
		parsed++
		if _, err := VerifyBundle(b, e.ring); err == nil {
			t.Errorf("%s: tampered bundle (%s) verifies", m.path, m.how)
		}
	}
	// Most changes must reach the verifier (not only the parser).
	if n < 100 || parsed < n/2 {
		t.Fatalf("%d mutations, %d of them parsed", n, parsed)
	}
	for _, p := range []string{"message.envelope.plaintext_sha256", "message.envelope.key_id", "message.envelope.bytes", "message.flags"} {
		if !seen[p] {
			t.Errorf("%s was not changed", p)
		}
	}
	t.Logf("%d mutations, %d parsed, none verifies", n, parsed)
}

// TestBundleByteFlips flips one bit (the case bit 0x20, which
// encoding/json ignores in keys, and the low bit) of each byte of a
// bundle's JSON in turn, and checks that no flipped bundle verifies. In a
// run of base64 or hex it flips only the first and last four characters
// (the last ones hold base64's padding bits): the bytes between are alike
// and would take a minute.
func TestBundleByteFlips(t *testing.T) {
	e := newLabEvidence(t)
	data, err := e.bundle(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	inRun := func(c byte) bool {
		return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/'
	}
	var at []int
	for i := 0; i < len(data); {
		j := i
		for j < len(data) && inRun(data[j]) {
			j++
		}
		if j == i {
			at = append(at, i)
			i++
			continue
		}
		for k := i; k < j; k++ {
			if k < i+4 || k >= j-4 {
				at = append(at, k)
			}
		}
		i = j
	}
	n, parsed := 0, 0
	for _, i := range at {
		for _, bit := range []byte{0x20, 0x01} {
			out := bytes.Clone(data)
			out[i] ^= bit
			n++
			b, err := ParseBundle(out)
			if err != nil {
				continue
			}
			parsed++
			if _, err := VerifyBundle(b, e.ring); err == nil {
				t.Fatalf("byte %d (%q in %q) ^ %#x: the bundle verifies", i, data[i], data[max(i-20, 0):min(i+20, len(data))], bit)
			}
		}
	}
	t.Logf("%d bytes, %d flipped, %d flips, %d parsed, none verifies", len(data), len(at), n, parsed)
}

type mutation struct {
	path, how string
	doc       any
}

// mutations returns copies of doc, each with one value changed.
func mutations(doc any, path string) []mutation {
	var out []mutation
	switch v := doc.(type) {
	case map[string]any:
		for k, x := range v {
			p := strings.TrimPrefix(path+"."+k, ".")
			for _, m := range mutations(x, p) {
				c := make(map[string]any, len(v))
				for k2, x2 := range v {
					c[k2] = x2
				}
				c[k] = m.doc
				out = append(out, mutation{m.path, m.how, c})
			}
		}
	case []any:
		if len(v) > 0 && strings.HasSuffix(path, "path") {
			out = append(out, mutation{path, "last element dropped", append([]any(nil), v[:len(v)-1]...)})
		}
		for i, x := range v {
			for _, m := range mutations(x, fmt.Sprintf("%s[%d]", path, i)) {
				c := append([]any(nil), v...)
				c[i] = m.doc
				out = append(out, mutation{m.path, m.how, c})
			}
		}
	case json.Number:
		i, _ := v.Int64()
		out = append(out, mutation{path, "plus one", json.Number(fmt.Sprint(i + 1))})
	case string:
		for _, at := range []int{0, len(v) / 2, len(v) - 1} {
			if at < 0 {
				continue
			}
			s := []byte(v)
			if s[at] == 'A' || s[at] == 'a' {
				s[at] = 'B' // not a case variant: "flash" and "flAsh" are one precedence
			} else {
				s[at] = 'A'
			}
			out = append(out, mutation{path, fmt.Sprintf("character %d changed", at), string(s)})
		}
	}
	return out
}

// TestBundleRefused checks what a verifier refuses outright.
func TestBundleRefused(t *testing.T) {
	e := newLabEvidence(t)
	b := e.bundle(t)

	none := *b
	none.Proofs = nil
	if _, err := VerifyBundle(&none, e.ring); !errors.Is(err, ErrNoEvidence) {
		t.Fatalf("bundle without statements: %v", err)
	}

	other := keyringOf(t, "alpha", "bravo") // the same sites, other keys
	if _, err := VerifyBundle(b, other); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "sent: ") {
		t.Fatalf("bundle against another keyring: %v", err)
	}

	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"unknown field":   bytes.Replace(data, []byte(`"version"`), []byte(`"versions"`), 1),
		"trailing data":   append(append([]byte(nil), data...), "{}"...),
		"uppercase hex":   bytes.Replace(data, []byte(hex.EncodeToString(b.Message.PayloadSHA256[:])), []byte(strings.ToUpper(hex.EncodeToString(b.Message.PayloadSHA256[:]))), 1),
		"too large":       bytes.Repeat([]byte(" "), MaxBundleSize+1),
		"not json":        []byte("hello"),
		"too many proofs": []byte(`{"version":1,"proofs":[` + strings.TrimSuffix(strings.Repeat(`{},`, MaxBundleProofs+1), ",") + `]}`),
	} {
		if _, err := ParseBundle(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: ParseBundle = %v", name, err)
		}
	}
}

func keyringOf(t *testing.T, sites ...string) *Keyring {
	dir := t.TempDir()
	for _, s := range sites {
		siteKeys(t, dir, s)
	}
	return keyring(t, dir, sites...)
}

// TestBundleRelabelGainsNothing: "sent" and "received" are the same
// statement, the origin's: relabelling one as the other verifies only as
// the origin's signature over the message, never as proof of receipt;
// relabelling it as "delivered" (or "delivered" as "received") fails.
func TestBundleRelabelGainsNothing(t *testing.T) {
	e := newLabEvidence(t)
	b := e.bundle(t)
	r, err := VerifyBundle(b, e.ring)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Checks {
		switch c.What {
		case ProofSent, ProofReceived:
			if !strings.Contains(c.Detail, "the origin's signature over the message") || strings.Contains(c.Proves, "(proof of receipt)") ||
				!strings.HasSuffix(c.Detail, c.Proves) {
				t.Errorf("%s: %q (proves %q); want the origin's signature, not proof of receipt", c.What, c.Detail, c.Proves)
			}
		case ProofDelivered:
			if !strings.Contains(c.Proves, "proof of receipt") {
				t.Errorf("delivered proves %q", c.Proves)
			}
		}
		if strings.Contains(c.Detail, " 1 leaves") {
			t.Errorf("%s: %q", c.What, c.Detail)
		}
	}
	if !strings.Contains(r.Checks[2].Proves, "not proof of receipt") {
		t.Errorf("received proves %q; want it to say it is not proof of receipt", r.Checks[2].Proves)
	}
	for _, tc := range []struct {
		from, to string
		ok       bool
	}{
		{ProofSent, ProofReceived, true}, {ProofReceived, ProofSent, true},
		{ProofSent, ProofDelivered, false}, {ProofDelivered, ProofReceived, false}, {ProofDelivered, ProofSent, false},
	} {
		b := e.bundle(t)
		var kept []BundleProof
		for _, p := range b.Proofs {
			if p.Kind == tc.from {
				p.Kind = tc.to
				kept = append(kept, p)
			}
		}
		b.Proofs = kept
		r, err := VerifyBundle(b, e.ring)
		if !tc.ok {
			if !errors.Is(err, ErrMismatch) {
				t.Errorf("%s relabelled %s: %v; want ErrMismatch", tc.from, tc.to, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s relabelled %s: %v", tc.from, tc.to, err)
		}
		c := r.Checks[1]
		if !strings.Contains(c.Proves, "the origin's signature over the message") || strings.Contains(c.Proves, "(proof of receipt)") {
			t.Errorf("%s relabelled %s proves %q", tc.from, tc.to, c.Proves)
		}
	}
}

// TestLeavesWording: one leaf, not "1 leaves".
func TestLeavesWording(t *testing.T) {
	if leaves(1) != "1 leaf" || leaves(3) != "3 leaves" {
		t.Fatalf("%q, %q", leaves(1), leaves(3))
	}
}
