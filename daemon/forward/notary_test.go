package forward

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/trust"
)

// testNotaries makes new keys for sites and returns each site's Notary
// (its key, a keyring pinning everyone's).
func testNotaries(t testing.TB, sites ...string) map[string]*Notary {
	t.Helper()
	ns, err := newNotaries(sites...)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func newNotaries(sites ...string) (map[string]*Notary, error) {
	var lines []byte
	keys := map[string]*trust.SigningKey{}
	for _, s := range sites {
		k, err := trust.GenerateSigningKey(s)
		if err != nil {
			return nil, err
		}
		d, err := trust.GenerateDecryptionKey(s)
		if err != nil {
			return nil, err
		}
		keys[s] = k
		lines = append(lines, trust.PublicLines(k.Public(), d.Public())...)
	}
	ring, err := trust.ParseKeyring(lines)
	if err != nil {
		return nil, err
	}
	out := map[string]*Notary{}
	for s, k := range keys {
		out[s] = &Notary{Key: k, Ring: ring}
	}
	return out, nil
}

func testBatch(from, to string, p queue.Precedence, first uint64, n int) *transport.Batch {
	b := &transport.Batch{Kind: transport.BatchMessages, From: from, To: to, Precedence: p}
	for i := range n {
		seq := first + uint64(i)
		b.Messages = append(b.Messages, queue.Message{ID: fmt.Sprintf("m%d", seq), Origin: from, Dest: to, Precedence: p,
			Seq: seq, SubmittedAt: int64(seq), Payload: []byte(fmt.Sprintf("payload %d", seq))})
	}
	return b
}

// A messages batch signed at the origin is accepted at the destination
// with its evidence, whose delivery proof the origin accepts; anything
// changed on the way is refused, naming the site, key and what failed.
func TestNotaryMessages(t *testing.T) {
	ns := testNotaries(t, "alpha", "bravo", "charlie")
	alpha, bravo := ns["alpha"], ns["bravo"]
	now := time.Now().UnixNano()

	b := testBatch("alpha", "bravo", queue.Immediate, 11, 5)
	leaves, err := alpha.Sign(b, now)
	if err != nil || len(leaves) != 5 || len(b.Proof) == 0 {
		t.Fatalf("Sign: %d leaves, proof %d bytes, %v", len(leaves), len(b.Proof), err)
	}
	cmd, err := bravo.Command(b, now)
	if err != nil {
		t.Fatalf("bravo refused alpha's batch: %v", err)
	}
	ev := cmd.Receive.Evidence
	if ev == nil || ev.First != 11 || len(ev.Leaves) != 5 || !bytes.Equal(ev.Statement, b.Proof) {
		t.Fatalf("evidence %+v", ev)
	}
	if err := bravo.CheckCommand(cmd); err != nil {
		t.Fatalf("the leader refused the command its follower built: %v", err)
	}
	// Each leaf's proof verifies against the statement alone.
	s, _ := trust.DecodeSigned(ev.Statement)
	for i, l := range ev.Leaves {
		p, err := trust.Prove(toHashes(ev.Leaves), i)
		if err != nil || trust.CheckInclusion(s.Root, int64(s.Count), int64(i), l, p) != nil {
			t.Fatalf("leaf %d: %v", i, err)
		}
	}

	// A proof as the state keeps it holds for its message, and for no
	// other, nor tampered with.
	p := queue.Proof{Kind: queue.ProofReceived, Statement: ev.Statement, Index: 2, Leaves: ev.Leaves}
	if err := verifyStored(bravo, p, &b.Messages[2], 0); err != nil {
		t.Fatalf("stored proof: %v", err)
	}
	other := b.Messages[2]
	other.Payload = []byte("another payload")
	flipped := p
	flipped.Statement = bytes.Clone(p.Statement)
	flipped.Statement[len(flipped.Statement)-1] ^= 1
	delivered := p
	delivered.Kind = queue.ProofDelivered
	for name, c := range map[string]struct {
		p    queue.Proof
		m    *queue.Message
		want error
	}{"another message": {p, &b.Messages[1], trust.ErrNoEvidence}, "another payload": {p, &other, trust.ErrNoEvidence},
		"a flipped byte": {flipped, &b.Messages[2], trust.ErrBadSignature}, "another kind": {delivered, &b.Messages[2], trust.ErrMismatch}} {
		if err := verifyStored(bravo, c.p, c.m, 0); !errors.Is(err, c.want) {
			t.Errorf("stored proof with %s: %v, want %v", name, err, c.want)
		}
	}

	// Bravo committed up to 13 of 11..15: its proof covers 11..13.
	proof, err := bravo.SignDelivered(cmd, 13, now)
	if err != nil || len(proof) == 0 {
		t.Fatal(err)
	}
	d, err := alpha.CheckDelivered(b, leaves, &transport.Ack{Last: 13, Proof: proof})
	if err != nil {
		t.Fatalf("alpha refused bravo's delivery proof: %v", err)
	}
	if d.UpTo != 13 || d.Evidence.First != 11 || len(d.Evidence.Leaves) != 3 || len(d.Sent.Leaves) != 5 || !bytes.Equal(d.Sent.Statement, b.Proof) {
		t.Fatalf("delivery %+v", d)
	}
	if err := alpha.CheckCommand(&queue.Command{Op: queue.OpDelivered, Delivered: &queue.DeliveredCmd{
		Dest: "bravo", Precedence: queue.Immediate, UpTo: 13, Proofs: []queue.DeliveredProof{{Evidence: d.Evidence, Sent: d.Sent}}}}); err != nil {
		t.Fatalf("the delivered command: %v", err)
	}
	// An ack below the batch proves nothing and needs no proof.
	if d, err := alpha.CheckDelivered(b, leaves, &transport.Ack{Last: 10}); d != nil || err != nil {
		t.Fatalf("ack below the batch: %+v, %v", d, err)
	}
	if p, err := bravo.SignDelivered(cmd, 10, now); p != nil || err != nil {
		t.Fatalf("a proof of nothing: %d bytes, %v", len(p), err)
	}

	// Refusals.
	flip := func(p []byte, i int) []byte {
		q := bytes.Clone(p)
		q[i] ^= 1
		return q
	}
	charlieSigned := testBatch("alpha", "bravo", queue.Immediate, 11, 5)
	if _, err := ns["charlie"].Sign(charlieSigned, now); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(b *transport.Batch)
		reason string
		text   string
	}{
		{"no proof", func(b *transport.Batch) { b.Proof = nil }, "missing", "no signed statement"},
		{"a flipped signature byte", func(b *transport.Batch) { b.Proof = flip(b.Proof, len(b.Proof)-10) }, "bad_signature", "ML-DSA-65 half (key"},
		{"a flipped Ed25519 byte", func(b *transport.Batch) { b.Proof = flip(b.Proof, len(b.Proof)-trust.SignatureSize+3) }, "bad_signature", "Ed25519 half"},
		{"a changed payload", func(b *transport.Batch) { b.Messages[2].Payload = []byte("forged") }, "mismatch", "Merkle root"},
		{"another precedence", func(b *transport.Batch) { b.Precedence = queue.Routine; setPrec(b) }, "mismatch", "not about these items"},
		{"a truncated proof", func(b *transport.Batch) { b.Proof = b.Proof[:100] }, "malformed", "malformed"},
		{"signed by another site", func(b *transport.Batch) { b.Proof = charlieSigned.Proof }, "mismatch", "signed a messages statement of charlie"},
		{"one message less", func(b *transport.Batch) { b.Messages = b.Messages[:4] }, "mismatch", "not about these items"},
	} {
		c := testBatch("alpha", "bravo", queue.Immediate, 11, 5)
		if _, err := alpha.Sign(c, now); err != nil {
			t.Fatal(err)
		}
		tc.change(c)
		_, err := bravo.Command(c, now)
		if err == nil || Reason(err) != tc.reason || !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), "alpha") {
			t.Errorf("%s: %v (reason %q), want reason %q naming alpha and %q", tc.name, err, Reason(err), tc.reason, tc.text)
		}
		if !errors.Is(err, trust.ErrBadSignature) && !errors.Is(err, trust.ErrMalformed) {
			t.Errorf("%s: %v wraps none of trust's errors", tc.name, err)
		}
	}

	// A key the keyring does not pin.
	rogue, err := trust.GenerateSigningKey("alpha")
	if err != nil {
		t.Fatal(err)
	}
	c := testBatch("alpha", "bravo", queue.Immediate, 11, 5)
	if _, err := (&Notary{Key: rogue, Ring: alpha.Ring}).Sign(c, now); err != nil {
		t.Fatal(err)
	}
	if _, err := bravo.Command(c, now); Reason(err) != "unknown_key" || !strings.Contains(err.Error(), rogue.ID().String()) {
		t.Errorf("a rogue key: %v, want unknown_key naming key %s", err, rogue.ID())
	}

	// Delivery proofs: bravo's own messages statement, a flipped byte,
	// none, or a proof of other messages are refused at alpha.
	for name, ack := range map[string]*transport.Ack{
		"none":          {Last: 13},
		"flipped":       {Last: 13, Proof: flip(proof, len(proof)-1)},
		"wrong kind":    {Last: 13, Proof: b.Proof},
		"another range": {Last: 15, Proof: proof},
	} {
		if _, err := alpha.CheckDelivered(b, leaves, ack); Reason(err) == "" || !strings.Contains(err.Error(), "bravo") {
			t.Errorf("delivery proof %s: %v, want a refusal naming bravo", name, err)
		}
	}
}

func setPrec(b *transport.Batch) {
	for i := range b.Messages {
		b.Messages[i].Precedence = b.Precedence
	}
}

// A reader site's receipts are signed by its ReceiptSender and checked by
// the origin, and a relayed command whose evidence is not about its items
// is refused by the leader's check.
func TestNotaryReceiptsAndRelayedCommands(t *testing.T) {
	ns := testNotaries(t, "alpha", "bravo")
	alpha, bravo := ns["alpha"], ns["bravo"]
	now := time.Now().UnixNano()
	rb := &transport.Batch{Kind: transport.BatchReceipts, From: "bravo", To: "alpha", Receipts: []queue.Receipt{
		{RSeq: 4, Precedence: queue.Flash, Seq: 1, ID: "m1", ReadAt: 99}, {RSeq: 5, Precedence: queue.Routine, Seq: 7, ID: "m7", ReadAt: 100}}}
	if _, err := bravo.Sign(rb, now); err != nil {
		t.Fatal(err)
	}
	cmd, err := alpha.Command(rb, now)
	if err != nil {
		t.Fatalf("alpha refused bravo's receipts: %v", err)
	}
	if ev := cmd.Receipts.Evidence; ev == nil || ev.First != 4 || len(ev.Leaves) != 2 || alpha.CheckCommand(cmd) != nil {
		t.Fatalf("receipts evidence %+v", ev)
	}
	forged := *cmd.Receipts
	forged.Receipts = append([]queue.Receipt(nil), cmd.Receipts.Receipts...)
	forged.Receipts[1].ReadAt = 1 // claims it was read earlier
	if err := alpha.CheckCommand(&queue.Command{Op: queue.OpReceipts, Receipts: &forged}); Reason(err) != "mismatch" {
		t.Fatalf("a receipt changed after the check: %v", err)
	}

	// A stored read proof holds for its message read at its time, and for
	// no other message or time.
	ev := cmd.Receipts.Evidence
	m7 := queue.Message{ID: "m7", Origin: "alpha", Dest: "bravo", Precedence: queue.Routine, Seq: 7}
	read := queue.Proof{Kind: queue.ProofRead, Statement: ev.Statement, Index: 1, Leaves: ev.Leaves}
	if err := verifyStored(alpha, read, &m7, 100); err != nil {
		t.Fatalf("stored read proof: %v", err)
	}
	m1 := queue.Message{ID: "m1", Origin: "alpha", Dest: "bravo", Precedence: queue.Flash, Seq: 1}
	for name, c := range map[string]struct {
		m      *queue.Message
		readAt int64
	}{"another message": {&m1, 100}, "another read time": {&m7, 1}} {
		if err := verifyStored(alpha, read, c.m, c.readAt); !errors.Is(err, trust.ErrNoEvidence) {
			t.Errorf("stored read proof of %s: %v, want no evidence of it", name, err)
		}
	}

	// Empty batches (resync probes) carry no proof and need none.
	if cmd, err := alpha.Command(&transport.Batch{Kind: transport.BatchReceipts, From: "bravo", To: "alpha"}, now); err != nil || cmd.Receipts.Evidence != nil {
		t.Fatalf("empty batch: %+v, %v", cmd, err)
	}

	// A relayed receive: without evidence, with evidence of other
	// messages, with leaves that do not match, or signed by the wrong
	// site, it is refused.
	b := testBatch("bravo", "alpha", queue.Flash, 1, 3)
	if _, err := bravo.Sign(b, now); err != nil {
		t.Fatal(err)
	}
	good, err := alpha.Command(b, now)
	if err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(r *queue.Receive){
		"no evidence":     func(r *queue.Receive) { r.Evidence = nil },
		"another payload": func(r *queue.Receive) { r.Messages[0].Payload = []byte("forged") },
		"leaves shifted":  func(r *queue.Receive) { r.Evidence.First = 2 },
		"other leaves":    func(r *queue.Receive) { r.Evidence.Leaves[1][0] ^= 1 },
		"signed by alpha": func(r *queue.Receive) {
			c := testBatch("bravo", "alpha", queue.Flash, 1, 3)
			leaves := trust.MessageLeaves(c.Messages)
			st, _ := trust.NewStatement(trust.KindMessages, "alpha", queue.Flash, 1, 3, leaves, now)
			s, _ := trust.SignStatement(alpha.Key, st) // alpha's own key, as a stolen node key would sign
			r.Evidence.Statement = s.Encode()
		},
	} {
		r := *good.Receive
		r.Messages = append([]queue.Message(nil), r.Messages...)
		ev := *r.Evidence
		ev.Leaves = append([][32]byte(nil), ev.Leaves...)
		r.Evidence = &ev
		change(&r)
		if err := alpha.CheckCommand(&queue.Command{Op: queue.OpReceive, Receive: &r}); Reason(err) == "" {
			t.Errorf("relayed receive with %s: %v, want a refusal", name, err)
		}
	}
}

// verifyStored checks a proof the state keeps of message m (read at
// readAt) as an auditor does: as the one proof of m's evidence bundle,
// with trust.VerifyBundle and n's keyring. A proof whose leaf is not m's
// is left out of the bundle, which then holds no evidence.
func verifyStored(n *Notary, p queue.Proof, m *queue.Message, readAt int64) error {
	b, err := trust.NewBundle(&queue.Status{Message: *m, ReadAt: readAt}, []queue.Proof{p}, nil)
	if err != nil {
		return err
	}
	_, err = trust.VerifyBundle(b, n.Ring.(*trust.Keyring))
	return err
}
