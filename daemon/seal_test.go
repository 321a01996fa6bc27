package daemon_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// TestPayloadsSealedAtRest sends messages both ways with distinctive
// payloads (one a drill canary, one retried under its idempotency key
// through another node), reads them at their destination (the exact
// bytes back), checks what `get` shows at the origin (the plaintext's
// size and SHA-256), has every node write a Raft snapshot, stops the
// nodes, and then finds none of the payloads in any file under any data
// directory (where it finds the messages' keys, stored in clear), and
// every file there readable by its owner only.
func TestPayloadsSealedAtRest(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	type sent struct {
		from, to, key string
		payload       []byte
		msg           *client.Message
	}
	var all []sent
	var canaries [][]byte
	for _, from := range daemon.LabSites {
		to := other(from)
		for i, node := range daemon.LabNodes(from) {
			p := distinctive(t, fmt.Sprintf("%s-to-%s-%d", from, to, i))
			key := fmt.Sprintf("seal-%s-%d", from, i)
			m, err := clustertest.SubmitRetrying(ctx, lab.Client(node), client.SubmitRequest{To: to, Key: key, Payload: p})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, sent{from, to, key, p, m})
		}
		if os.Getuid() == 0 { // drill traffic is for admins
			p := distinctive(t, "canary-"+from)
			if _, err := lab.Client(daemon.LabNodes(from)[0]).Submit(ctx, client.SubmitRequest{To: to, Drill: true, Payload: p}); err != nil {
				t.Fatalf("drill canary: %v", err)
			}
			canaries = append(canaries, p)
		}
	}

	// Retried with the same key and plaintext through another node: the
	// same message, although its new seal differs; another plaintext under
	// the key is a conflict.
	first := all[0]
	again, err := lab.Client(daemon.LabNodes(first.from)[2]).Submit(ctx, client.SubmitRequest{To: first.to, Key: first.key, Payload: first.payload})
	if err != nil || !again.Existing || again.ID != first.msg.ID {
		t.Fatalf("retried submit: %+v, %v; want existing %s", again, err, first.msg.ID)
	}
	_, err = lab.Client(daemon.LabNodes(first.from)[1]).Submit(ctx, client.SubmitRequest{To: first.to, Key: first.key, Payload: []byte("something else")})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != client.CodeKeyConflict {
		t.Fatalf("other plaintext under a used key: %v, want %s", err, client.CodeKeyConflict)
	}

	// The destination reads the plaintexts, exactly.
	for _, site := range daemon.LabSites {
		reader := daemon.LabNodes(site)[1]
		msgs := clustertest.DrainInbox(t, lab.Client(reader), 3, time.Minute)
		got := map[string][]byte{}
		for _, m := range msgs {
			if m.Error != "" {
				t.Errorf("%s: inbox message %s: %s", site, m.ID, m.Error)
			}
			got[m.ID] = m.Payload
		}
		for _, s := range all {
			if s.to == site && !bytes.Equal(got[s.msg.ID], s.payload) {
				t.Errorf("%s: message %s reads %q, sent %q", site, s.msg.ID, got[s.msg.ID], s.payload)
			}
		}
		clustertest.AckAll(ctx, t, lab.Client(reader), reader, msgs)
	}

	// At the origin, get shows the plaintext's size and hash, at the
	// destination too.
	for _, s := range all {
		sum := sha256.Sum256(s.payload)
		for _, node := range []string{daemon.LabNodes(s.from)[0], daemon.LabNodes(s.to)[0]} {
			m, err := lab.Client(node).Get(ctx, s.msg.ID)
			if err != nil {
				t.Fatalf("get %s at %s: %v", s.msg.ID, node, err)
			}
			if m.Size != len(s.payload) || m.PayloadSHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("get %s at %s: size %d sha256 %s, want %d %x", s.msg.ID, node, m.Size, m.PayloadSHA256, len(s.payload), sum)
			}
		}
	}

	// Every node snapshots its state (Raft's snapshot files hold it).
	for _, site := range daemon.LabSites {
		for _, node := range daemon.LabNodes(site) {
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			clustertest.Eventually(t, 30*time.Second, node+" applied everything", func() bool {
				return daemon.StoreOf(lab.Node(node)).AppliedIndex() >= daemon.StoreOf(lab.Node(lab.Leader(site))).AppliedIndex()
			})
			if err := daemon.RaftOf(lab.Node(node)).Snapshot(sctx); err != nil {
				t.Fatalf("snapshot of %s: %v", node, err)
			}
			scancel()
		}
	}
	for node := range lab.Configs {
		if err := lab.StopNode(node); err != nil {
			t.Errorf("stop %s: %v", node, err)
		}
	}

	secrets := canaries
	for _, s := range all {
		secrets = append(secrets, s.payload)
	}
	// The idempotency keys are stored in clear beside the payloads: the
	// walk finding them shows it reads where the payloads are.
	keysFound := map[string]bool{}
	snapshots := 0
	for node, c := range lab.Configs {
		err := filepath.WalkDir(c.DataDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, s := range secrets {
				if bytes.Contains(b, s) {
					t.Errorf("%s: %s holds the payload %q in plaintext", node, p, s)
				}
			}
			for _, s := range all {
				if bytes.Contains(b, []byte(s.key)) {
					keysFound[s.key] = true
				}
			}
			if info, err := d.Info(); err == nil && info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: %s has mode %v; data files are the daemon user's only", node, p, info.Mode().Perm())
			}
			if filepath.Base(p) == "state.bin" {
				snapshots++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(keysFound) != len(all) {
		t.Errorf("the walk found %d of the %d idempotency keys stored beside the payloads", len(keysFound), len(all))
	}
	if snapshots < len(lab.Configs) {
		t.Errorf("%d snapshots under the data dirs, want at least %d", snapshots, len(lab.Configs))
	}
}

// distinctive is a payload string no file holds by chance.
func distinctive(t *testing.T, what string) []byte {
	t.Helper()
	var r [12]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return []byte("PLAINTEXT-" + strings.ToUpper(what) + "-" + hex.EncodeToString(r[:]))
}

func other(site string) string {
	for _, s := range daemon.LabSites {
		if s != site {
			return s
		}
	}
	return ""
}

// TestSealedPayloadRefusals: an inbox message whose envelope was tampered
// with is never served as plaintext: the read names the error, the
// failure is counted and raised as an alarm until the message is
// acknowledged; a good one reads back exactly. An inbound batch with an
// unsealed payload, or one sealed to a key the site does not hold, is
// refused before anything is stored.
func TestSealedPayloadRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	lab := startSite(t, "alpha")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node := lab.Follower("alpha")
	ring, err := trust.LoadKeyring(lab.Configs[node].Trust.Keys)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(id string, seq uint64, payload []byte, flags uint32) queue.Message {
		return queue.Message{ID: id, Origin: "bravo", Dest: "alpha", Precedence: queue.Flash, Seq: seq,
			Payload: payload, Flags: flags, SubmittedAt: time.Now().UnixNano()}
	}
	seal := func(to, id string, pt []byte) []byte {
		k, err := ring.EncryptionKey(to)
		if err != nil {
			t.Fatal(err)
		}
		env, err := trust.Seal(k, trust.Binding{ID: id, Origin: "bravo", Dest: "alpha"}, pt)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	good := seal("alpha", "good-1", []byte("a sealed hello"))
	tampered := seal("alpha", "bad-2", []byte("a sealed secret"))
	tampered[len(tampered)-1] ^= 1
	receive(t, lab, "alpha", "bravo", msg("good-1", 1, good, queue.FlagSealed), msg("bad-2", 2, tampered, queue.FlagSealed))

	c := lab.Client(node)
	waitUnread(t, c, 2)
	for range 2 { // a second read counts no second failure
		in, err := c.ReadInbox(ctx, client.InboxRequest{Max: 10})
		if err != nil || len(in.Messages) != 2 {
			t.Fatalf("inbox: %+v, %v", in, err)
		}
		if m := in.Messages[0]; m.Error != "" || string(m.Payload) != "a sealed hello" {
			t.Fatalf("good message reads %q, error %q", m.Payload, m.Error)
		}
		if m := in.Messages[1]; len(m.Payload) != 0 || !strings.Contains(m.Error, "does not decrypt") {
			t.Fatalf("tampered message reads %q, error %q; want no payload and a decrypt error", m.Payload, m.Error)
		}
	}
	n := lab.Node(node)
	if v := decryptFailures(t, n, "read"); v != 1 {
		t.Errorf("hotline_decrypt_failures_total{stage=read} = %v, want 1", v)
	}
	if a := strings.Join(daemon.Alarms(n), "\n"); !strings.Contains(a, "bad-2 does not decrypt") {
		t.Errorf("alarms %q name no undecryptable message", a)
	}
	// The CLI names it on stderr and exits non-zero; it prints the good one.
	out, err := lab.Hotlinectl(t, node, "", "recv")
	if err == nil || !strings.Contains(out, "a sealed hello") || strings.Contains(out, "bad-2") {
		t.Errorf("recv: %q, %v; want the good message and an error", out, err)
	}
	if _, err := c.Ack(ctx, []string{"bad-2"}); err != nil {
		t.Fatal(err)
	}
	if a := strings.Join(daemon.Alarms(n), "\n"); strings.Contains(a, "does not decrypt") {
		t.Errorf("alarms after the message was acknowledged: %q", a)
	}

	// Refused before anything is stored, through a follower (its leader
	// checks the relayed command as the receiver checks a batch).
	for _, tc := range []struct {
		name string
		m    queue.Message
		want string
	}{
		{"unsealed", msg("plain-3", 3, []byte("plaintext"), 0), "not sealed"},
		{"sealed to bravo's key", msg("other-3", 3, seal("bravo", "other-3", []byte("x")), queue.FlagSealed), "does not hold"},
		{"not an envelope", msg("junk-3", 3, []byte("HLE1 but short"), queue.FlagSealed), "not a sealed payload"},
	} {
		_, err := daemon.Propose(n, ctx, &queue.Command{Op: queue.OpReceive, Time: time.Now().UnixNano(),
			Receive: &queue.Receive{Origin: "bravo", Precedence: queue.Flash, Messages: []queue.Message{tc.m}}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
		if _, err := daemon.StoreOf(n).LookupInbound(tc.m.ID); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("%s: stored after the refusal (%v)", tc.name, err)
		}
	}
	if v := decryptFailures(t, lab.Node(lab.Leader("alpha")), "receive"); v != 3 {
		t.Errorf("leader's hotline_decrypt_failures_total{stage=receive} = %v, want 3", v)
	}
}

// decryptFailures reads hotline_decrypt_failures_total{stage} of n.
func decryptFailures(t *testing.T, n *daemon.Node, stage string) float64 {
	t.Helper()
	mfs, err := daemon.Gather(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "hotline_decrypt_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == stage {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("hotline_decrypt_failures_total{stage=%q} not found", stage)
	return 0
}

// TestReadmeEnvelopeOverhead: the README's limits name the envelope's
// overhead as package trust has it.
func TestReadmeEnvelopeOverhead(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("max_message_size + %d", trust.EnvelopeOverhead); !bytes.Contains(readme, []byte(want)) {
		t.Errorf("README does not say %q", want)
	}
}
