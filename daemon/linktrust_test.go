package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/daemon/forward"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
	"github.com/hotline-link/hotline/transport/trust"
)

// TestLinkSignatures runs the two-site lab: messages both ways are
// delivered and read with every batch signed and checked, and each keeps
// its proofs (received at its destination; sent, delivered and read at
// its origin), which hold with the keyring; a batch from
// bravo carries bravo's signature and alpha's ack a delivery proof signed
// by alpha that holds with the keyring and covers the batch's messages;
// a batch whose signature does not hold (a flipped byte, none, a key not
// pinned) is refused with a code the sender branches on, nothing of it is
// applied, and it is counted and raises the bad_signature alarm; and a
// follower that relays a forged receive (a stolen node key: it can sign
// nothing as bravo) has it refused by the leader.
func TestLinkSignatures(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the six-node lab")
	}
	lab := clustertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pkiDir := filepath.Join(lab.Dir, "pki")
	ring, err := trust.LoadKeyring(filepath.Join(pkiDir, trust.KeyringFile))
	if err != nil {
		t.Fatal(err)
	}
	bravoKey, err := trust.LoadSigningKey(filepath.Join(pkiDir, trust.SigningKeyFile("bravo")))
	if err != nil {
		t.Fatal(err)
	}

	// Messages both ways, delivered, read, and the receipts back: every
	// batch on the way was signed and its signature held.
	const each = 12
	g := clustertest.NewLedger()
	for i := range each {
		for _, dir := range [][2]string{{"alpha", "bravo"}, {"bravo", "alpha"}} {
			node := daemon.LabNodes(dir[0])[i%3]
			prec := queue.Precedences[i%len(queue.Precedences)].String()
			if prec == "priority" {
				prec = "routine" // priority bravo->alpha is the forgeries' channel below
			}
			m, err := clustertest.SubmitRetrying(ctx, lab.Client(node), client.SubmitRequest{To: dir[1], Precedence: prec,
				Key: fmt.Sprintf("sig-%s-%d", dir[0], i), Payload: []byte(fmt.Sprintf("signed %s %d", dir[0], i))})
			if err != nil {
				t.Fatal(err)
			}
			g.Add(clustertest.Sent{Key: fmt.Sprintf("sig-%s-%d", dir[0], i), ID: m.ID, From: dir[0], To: dir[1], Precedence: prec})
		}
	}
	received := map[string][]queue.Message{} // by destination, as it holds them
	for _, site := range []string{"alpha", "bravo"} {
		node := daemon.LabNodes(site)[1]
		msgs := clustertest.DrainInbox(t, lab.Client(node), each, time.Minute)
		g.CheckArrivals(t, site, msgs)
		items, err := daemon.StoreOf(lab.Node(node)).Inbox(0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			received[site] = append(received[site], it.Message)
		}
		clustertest.AckAll(ctx, t, lab.Client(node), node, msgs)
	}
	g.WaitRead(ctx, t, func(site string) *client.Client { return lab.Client(daemon.LabNodes(site)[0]) }, daemon.Retryable)

	// Every message has its proofs, each holding with the keyring and
	// naming the message's leaf (the offline verifier's check of it as the
	// one proof of the message's bundle): received at its destination;
	// sent, delivered and read at its origin.
	for dest, msgs := range received {
		for _, m := range msgs {
			for _, side := range []struct {
				node  string
				kinds []string
			}{{daemon.LabNodes(dest)[1], []string{queue.ProofReceived}},
				{daemon.LabNodes(m.Origin)[0], []string{queue.ProofSent, queue.ProofDelivered, queue.ProofRead}}} {
				clustertest.Eventually(t, 30*time.Second, fmt.Sprintf("%v proofs of %s at %s", side.kinds, m.ID, side.node), func() bool {
					ps, err := daemon.StoreOf(lab.Node(side.node)).Proofs(m.ID)
					if err != nil {
						t.Fatalf("proofs of %s at %s: %v", m.ID, side.node, err)
					}
					var got []string
					for _, p := range ps {
						var readAt int64 // a read proof is of the read the origin records
						if st, err := daemon.StoreOf(lab.Node(side.node)).Lookup(m.ID); err == nil && p.Kind == queue.ProofRead {
							readAt = st.ReadAt
						}
						b, err := trust.NewBundle(&queue.Status{Message: m, ReadAt: readAt}, []queue.Proof{p}, nil)
						if err == nil {
							_, err = trust.VerifyBundle(b, ring)
						}
						if err != nil {
							t.Fatalf("at %s: %v", side.node, err)
						}
						got = append(got, p.Kind)
					}
					for _, k := range side.kinds {
						if !slices.Contains(got, k) {
							return false
						}
					}
					return true
				})
			}
		}
	}
	for _, n := range append(daemon.LabNodes("alpha"), daemon.LabNodes("bravo")...) {
		if hasAlarm(lab, n, "signature on the link") {
			t.Errorf("%s raised a signature alarm while all went well: %q", n, daemon.Alarms(lab.Node(n)))
		}
	}
	if got := refusedBatches(t, lab, "bravo", ""); got != 0 {
		t.Errorf("%v batches refused while all went well", got)
	}

	// A client holding bravo-1's certificate sends batches to alpha's
	// leader on the priority channel, which nothing else uses.
	leader := lab.Leader("alpha")
	send := bravoSender(t, lab, leader)
	next := func() uint64 {
		for _, ch := range daemon.StoreOf(lab.Node(leader)).Inbound() {
			if ch.Origin == "bravo" && ch.Precedence == queue.Priority {
				return ch.Last + 1
			}
		}
		return 1
	}
	toAlpha, err := ring.EncryptionKey("alpha")
	if err != nil {
		t.Fatal(err)
	}
	batch := func(id string) *transport.Batch {
		env, err := trust.Seal(toAlpha, trust.Binding{ID: id, Origin: "bravo", Dest: "alpha"}, []byte("forged? "+id))
		if err != nil {
			t.Fatal(err)
		}
		return &transport.Batch{Kind: transport.BatchMessages, From: "bravo", To: "alpha", Precedence: queue.Priority,
			Messages: []queue.Message{{ID: id, Origin: "bravo", Dest: "alpha", Precedence: queue.Priority, Seq: next(),
				SubmittedAt: time.Now().UnixNano(), Flags: queue.FlagSealed, Payload: env}}}
	}
	sign := func(b *transport.Batch, key *trust.SigningKey) *transport.Batch {
		if _, err := (&forward.Notary{Key: key, Ring: ring}).Sign(b, time.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
		return b
	}
	flipped := sign(batch("sig-flipped"), bravoKey)
	flipped.Proof[len(flipped.Proof)-7] ^= 0x10
	rogue, err := trust.GenerateSigningKey("bravo")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		b      *transport.Batch
		is     error
		reason string
	}{
		{flipped, trust.ErrBadSignature, "bad_signature"},
		{batch("sig-none"), forward.ErrNoProof, "missing"},
		{sign(batch("sig-rogue"), rogue), trust.ErrUnknownKey, "unknown_key"},
	} {
		id := tc.b.Messages[0].ID
		before := refusedBatches(t, lab, "bravo", tc.reason)
		ack, err := send.SendBatch(ctx, tc.b)
		if err != nil {
			t.Fatal(err)
		}
		err = daemon.AckErr(ack)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), "bravo") || ack.Proof != nil {
			t.Fatalf("%s: ack %+v: %v; want a refusal wrapping %v naming bravo, without a proof", id, ack, err, tc.is)
		}
		if tc.reason != "missing" && !strings.Contains(err.Error(), "key ") {
			t.Errorf("%s: %v does not name the key", id, err)
		}
		if got := refusedBatches(t, lab, "bravo", tc.reason); got != before+1 {
			t.Errorf("%s: hotline_refused_batches_total{from=bravo,reason=%s} went from %v to %v", id, tc.reason, before, got)
		}
		for _, n := range daemon.LabNodes("alpha") {
			if _, err := daemon.StoreOf(lab.Node(n)).Lookup(id); err == nil {
				t.Fatalf("%s: refused, but %s holds it", id, n)
			}
		}
	}
	if !hasAlarm(lab, leader, "batches from bravo") {
		t.Errorf("%s's alarms %q lack the refusals", leader, daemon.Alarms(lab.Node(leader)))
	}
	// The refusals are in alpha's audit log: one record while they go on.
	clustertest.Eventually(t, 20*time.Second, "the refusal in alpha's audit log", func() bool {
		return refusalRecords(t, daemon.StoreOf(lab.Node(leader))) == 1
	})

	// The same batch signed right is applied, and the ack proves it.
	good := sign(batch("sig-good"), bravoKey)
	ack, err := send.SendBatch(ctx, good)
	if err != nil || daemon.AckErr(ack) != nil {
		t.Fatalf("a good batch: %+v, %v, %v", ack, err, daemon.AckErr(ack))
	}
	s, err := trust.DecodeSigned(ack.Proof)
	if err != nil {
		t.Fatalf("the ack's proof: %v", err)
	}
	seq := good.Messages[0].Seq
	if s.Kind != trust.KindDelivered || s.Site != "alpha" || s.Peer != "bravo" || s.Precedence != queue.Priority ||
		s.First != seq || s.Last != seq || ack.Last != seq {
		t.Fatalf("ack %d with a proof of %s %s->%s %s %d..%d", ack.Last, s.Kind, s.Site, s.Peer, s.Precedence, s.First, s.Last)
	}
	if err := ring.Verify(s); err != nil {
		t.Fatalf("alpha's delivery proof does not verify: %v", err)
	}
	if err := s.Covers(trust.MessageLeaves(good.Messages)); err != nil {
		t.Fatalf("alpha's delivery proof is not about the batch: %v", err)
	}
	if _, err := daemon.StoreOf(lab.Node(leader)).Lookup("sig-good"); err != nil {
		t.Fatalf("the good batch is not applied: %v", err)
	}

	// Another message resent under that sequence, signed right: a
	// duplicate, acknowledged, but alpha signs no delivery of it (it holds
	// sig-good there, not this one).
	other := batch("sig-other")
	other.Messages[0].Seq = seq
	ack, err = send.SendBatch(ctx, sign(other, bravoKey))
	if err != nil || daemon.AckErr(ack) != nil || ack.Last != seq {
		t.Fatalf("another message under seq %d: %+v, %v, %v", seq, ack, err, daemon.AckErr(ack))
	}
	if len(ack.Proof) != 0 {
		s, _ := trust.DecodeSigned(ack.Proof)
		t.Fatalf("alpha signed delivery of a message it does not hold: %+v", s)
	}
	// The same batch again: alpha holds it as sent, and proves it again.
	ack, err = send.SendBatch(ctx, good)
	if err != nil || daemon.AckErr(ack) != nil {
		t.Fatalf("the good batch again: %+v, %v, %v", ack, err, daemon.AckErr(ack))
	}
	if s, err := trust.DecodeSigned(ack.Proof); err != nil || s.Covers(trust.MessageLeaves(good.Messages)) != nil {
		t.Fatalf("the good batch again: proof %v", err)
	}

	// A follower relays forged receives, as a stolen node key would: it
	// can sign as alpha, never as bravo. The leader refuses each.
	var follower string
	for _, n := range daemon.LabNodes("alpha") {
		if n != leader {
			follower = n
		}
	}
	alphaKey, err := trust.LoadSigningKey(filepath.Join(pkiDir, trust.SigningKeyFile("alpha")))
	if err != nil {
		t.Fatal(err)
	}
	replayed := sign(batch("sig-replayed"), bravoKey) // a real proof of bravo, of other messages
	for _, tc := range []struct {
		id string
		ev func(r *queue.Receive) *queue.Evidence
	}{
		{"sig-relayed-bare", func(*queue.Receive) *queue.Evidence { return nil }},
		{"sig-relayed-alpha-signed", func(r *queue.Receive) *queue.Evidence {
			b := &transport.Batch{Kind: transport.BatchMessages, From: "alpha", To: "bravo", Precedence: queue.Priority, Messages: r.Messages}
			return evidence(sign(b, alphaKey).Proof, r.Messages)
		}},
		{"sig-relayed-replayed", func(r *queue.Receive) *queue.Evidence { return evidence(replayed.Proof, r.Messages) }},
	} {
		r := &queue.Receive{Origin: "bravo", Precedence: queue.Priority, Messages: batch(tc.id).Messages}
		r.Evidence = tc.ev(r)
		data, err := (&queue.Command{Op: queue.OpReceive, Time: time.Now().UnixNano(), Receive: r}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		before := refusedBatches(t, lab, "bravo", "")
		err = daemon.Relay(lab.Node(follower), ctx, leader, data)
		if !errors.Is(err, trust.ErrBadSignature) || !strings.Contains(err.Error(), "proof of bravo") {
			t.Errorf("relayed receive %s: %v; want it refused (its signature's code) naming bravo's proof", tc.id, err)
		}
		if got := refusedBatches(t, lab, "bravo", ""); got != before+1 {
			t.Errorf("relayed receive %s: refusals went from %v to %v", tc.id, before, got)
		}
		if _, err := daemon.StoreOf(lab.Node(leader)).Lookup(tc.id); err == nil {
			t.Errorf("relayed receive %s: applied", tc.id)
		}
	}
}

func evidence(proof []byte, ms []queue.Message) *queue.Evidence {
	ev := &queue.Evidence{Statement: proof, First: ms[0].Seq}
	for _, l := range trust.MessageLeaves(ms) {
		ev.Leaves = append(ev.Leaves, l)
	}
	return ev
}

// bravoSender is a link holding bravo-1's certificate whose only peer is
// alpha's node to.
func bravoSender(t *testing.T, lab *clustertest.Lab, to string) *transport.Link {
	t.Helper()
	dir := filepath.Join(lab.Dir, "pki")
	b, err := pki.Load(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "bravo-1.crt"), filepath.Join(dir, "bravo-1.key"))
	if err != nil {
		t.Fatal(err)
	}
	addrs := daemon.NodeConfigOf(lab.Configs[to], to).Paths
	l, err := transport.New(transport.Config{
		TLS:   b,
		Paths: []transport.Path{{Name: "fiber", Listen: "127.0.0.1:0"}},
		Peers: []transport.Peer{{Site: "alpha", Node: to, Addrs: map[string]string{"fiber": addrs["fiber"]}}},
		Handler: transport.HandlerFunc(func(context.Context, pki.Identity, *transport.Batch) (*transport.Ack, error) {
			return nil, errors.New("no")
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// refusedBatches sums hotline_refused_batches_total{from, reason} over
// alpha's nodes ("" reason: every reason).
func refusedBatches(t *testing.T, lab *clustertest.Lab, from, reason string) float64 {
	t.Helper()
	var sum float64
	for _, n := range daemon.LabNodes("alpha") {
		fams, err := daemon.Gather(lab.Node(n))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "hotline_refused_batches_total" {
				continue
			}
			for _, m := range f.Metric {
				labels := map[string]string{}
				for _, lp := range m.Label {
					labels[lp.GetName()] = lp.GetValue()
				}
				if labels["from"] == from && (reason == "" || labels["reason"] == reason) {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

func hasAlarm(lab *clustertest.Lab, node, text string) bool {
	for _, a := range daemon.Alarms(lab.Node(node)) {
		if strings.Contains(a, text) {
			return true
		}
	}
	return false
}

// TestLinkSignatureMismatch: alpha pins a key of bravo that is not the
// one bravo signs with (a rotation half done). Alpha refuses bravo's
// batches (unknown_key), and both ends raise the bad_signature alarm:
// alpha for the batches it refused, bravo for the refusals of its
// signature, which its forwarder does not take for a delivery. Once alpha
// pins the right key (its nodes restarted), bravo's retries get through.
func TestLinkSignatureMismatch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the six-node lab")
	}
	var good, bad string
	lab := clustertest.Start(t, func(c *daemon.Config) {
		if c.Site != "alpha" {
			return
		}
		if bad == "" {
			good, bad = c.Trust.Keys, wrongKeyring(t, c.Trust.Keys, "bravo")
		}
		c.Trust.Keys = bad
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := lab.Client("bravo-2").Submit(ctx, client.SubmitRequest{To: "alpha", Payload: []byte("signed with a key alpha does not pin")})
	if err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, 30*time.Second, "alarms at both ends", func() bool {
		return hasAlarm(lab, lab.Leader("bravo"), "alpha refused the signature of") &&
			refusedBatches(t, lab, "bravo", "unknown_key") > 0
	})
	for _, n := range daemon.LabNodes("alpha") {
		if refusedBatches(t, lab, "bravo", "unknown_key") > 0 && hasAlarm(lab, n, "batches from bravo") {
			break
		}
		if n == "alpha-3" {
			t.Errorf("no node of alpha raised the alarm")
		}
	}
	if got, err := lab.Client("bravo-2").Get(ctx, m.ID); err != nil || got.State != "queued" {
		t.Fatalf("bravo's message: %+v, %v; want it queued (not taken for delivered)", got, err)
	}

	for _, n := range daemon.LabNodes("alpha") {
		if err := lab.StopNode(n); err != nil {
			t.Fatal(err)
		}
		lab.Configs[n].Trust.Keys = good
	}
	for _, n := range daemon.LabNodes("alpha") {
		lab.StartNode(n)
	}
	clustertest.Eventually(t, time.Minute, "bravo's message delivered", func() bool {
		got, err := lab.Client("bravo-2").Get(ctx, m.ID)
		return err == nil && got.State == "delivered"
	})
}

// wrongKeyring writes, beside the keyring file keys, a keyring that pins
// a new signing key for site instead of its own, and returns its path.
func wrongKeyring(t *testing.T, keys, site string) string {
	t.Helper()
	ring, err := trust.LoadKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	var lines []byte
	for _, s := range ring.Sites() {
		kem, err := ring.EncryptionKey(s)
		if err != nil {
			t.Fatal(err)
		}
		sign := ring.SigningKeys(s)[0]
		if s == site {
			k, err := trust.GenerateSigningKey(s)
			if err != nil {
				t.Fatal(err)
			}
			sign = k.Public()
		}
		lines = append(lines, trust.PublicLines(sign, kem)...)
	}
	p := filepath.Join(filepath.Dir(keys), "wrong-"+site+".pub")
	if err := os.WriteFile(p, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// refusalRecords counts the refused_signature operator records in a
// store's audit log.
func refusalRecords(t *testing.T, st *queue.Store) int {
	t.Helper()
	entries, _, err := st.AuditEntries(0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		r, err := queue.DecodeAuditRecord(e.Record)
		if err != nil {
			t.Fatal(err)
		}
		if r.Action == "refused_signature" {
			n++
		}
	}
	return n
}
