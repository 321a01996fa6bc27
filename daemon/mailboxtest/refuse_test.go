package mailboxtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/daemon/ctl"
	"github.com/hotline-link/hotline/transport/trust"
)

// startOriginFirst is clustertest.Start with bravo's nodes configured but
// not started: alpha is settled and bravo is down, so alpha cannot know
// bravo's mailboxes and every message to bravo is judged at bravo.
func startOriginFirst(t *testing.T, opts ...clustertest.Option) *clustertest.Lab {
	t.Helper()
	dir := t.TempDir()
	if err := daemon.EnsureLabPKIFor(dir, daemon.LabSites); err != nil {
		t.Fatal(err)
	}
	cfgs := daemon.LabConfigsFor(dir, daemon.LabSites, []string{"fiber", "sat"}, func(s, i int) (string, map[string]string) {
		ip := fmt.Sprintf("127.0.%d.%d", 21+s, 1+i)
		return clustertest.FreeAddr(t, ip), map[string]string{
			"fiber": clustertest.FreeAddr(t, ip),
			"sat":   clustertest.FreeAddr(t, fmt.Sprintf("127.0.%d.%d", 31+s, 1+i)),
		}
	})
	lab := clustertest.New(t, dir, daemon.LabSites)
	for _, c := range cfgs {
		clustertest.ShortTimeouts(c)
		c.LogLevel = "warn"
		lab.Add(c, opts...)
		if c.Site == "alpha" {
			lab.StartNode(c.Node)
		}
	}
	lab.Settled("alpha")
	return lab
}

// startSite starts every node of site and waits until it is settled.
func startSite(lab *clustertest.Lab, site string) {
	for _, n := range daemon.LabNodes(site) {
		lab.StartNode(n)
	}
	lab.Settled(site)
}

// TestMailboxRefused: bravo has the mailbox cert only (and the default
// one). alpha sends to bravo/nosuch while bravo is down, so only bravo
// can judge it: bravo stores it refused (never in an inbox), its refusal
// receipt makes it refused at alpha with the reason, once, a `send --wait
// read` of another such message ends with the refusal, and a message to
// bravo/cert in the same channel after them is delivered.
func TestMailboxRefused(t *testing.T) {
	lab := startOriginFirst(t, func(c *daemon.Config) {
		if c.Site == "bravo" {
			c.Mailboxes = []daemon.MailboxConfig{{Name: "cert", Send: []string{"*"}, Read: []string{"*"}, Ack: []string{"*"}}}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	alpha := lab.Client(lab.Leader("alpha"))
	const reason = "mailbox nosuch does not exist"

	m1, err := alpha.Submit(ctx, client.SubmitRequest{To: "bravo/nosuch", Payload: []byte("to nobody")})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := alpha.Submit(ctx, client.SubmitRequest{To: "bravo/cert", Payload: []byte("to cert")})
	if err != nil {
		t.Fatal(err)
	}
	// A sender that waits for read: its wait ends with the refusal.
	type sent struct {
		out string
		err error
	}
	waited := make(chan sent, 1)
	go func() {
		out, err := lab.Hotlinectl(t, lab.Leader("alpha"), "wait for me", "send", "--to", "bravo/nosuch", "--wait", "read", "--timeout", "2m", "-")
		waited <- sent{out, err}
	}()
	clustertest.Eventually(t, 30*time.Second, "alpha stores the third message", func() bool {
		st, err := alpha.Status(ctx)
		return err == nil && len(st.Outbound) == 1 && st.Outbound[0].Last == 3
	})

	startSite(lab, "bravo")
	bravo := lab.Client(lab.Leader("bravo"))

	var got *client.Message
	clustertest.Eventually(t, 60*time.Second, "m1 refused at alpha", func() bool {
		got, err = alpha.Get(ctx, m1.ID)
		return err == nil && got.State == "refused"
	})
	if got.RefusedReason != reason || got.RefusedAt == nil || got.DeliveredAt == nil || got.ReadAt != nil {
		t.Fatalf("alpha's m1 = %+v, want refused for %q", got, reason)
	}
	var w sent
	select {
	case w = <-waited:
	case <-ctx.Done():
		t.Fatal("send --wait read did not return")
	}
	if !errors.Is(w.err, ctl.ErrNotReached) || !strings.Contains(w.err.Error(), `was refused by bravo: "`+reason+`"`) {
		t.Fatalf("send --wait read: %v, want the refusal", w.err)
	}
	m3ID := strings.TrimSpace(w.out)
	if st, err := alpha.Get(ctx, m3ID); err != nil || st.State != "refused" {
		t.Fatalf("m3 %q = %+v, %v", m3ID, st, err)
	}

	// bravo holds m1 refused, and only m2 is in an inbox.
	if st, err := bravo.Get(ctx, m1.ID); err != nil || st.State != "refused" || st.Direction != "inbound" || st.RefusedReason != reason {
		t.Fatalf("bravo's m1 = %+v, %v", st, err)
	}
	in, err := bravo.ReadInbox(ctx, client.InboxRequest{Wait: 10 * time.Second})
	if err != nil || len(in.Messages) != 1 || in.Messages[0].ID != m2.ID || in.Messages[0].Mailbox != "cert" {
		t.Fatalf("bravo's inbox = %+v, %v; want m2 alone", in, err)
	}

	// Once: one refusal in each site's audit log, whatever was resent.
	for _, c := range []struct {
		site string
		cl   *client.Client
	}{{"alpha", alpha}, {"bravo", bravo}} {
		es, err := c.cl.AuditEntriesOf(ctx, m1.ID)
		if err != nil {
			t.Fatal(err)
		}
		var refusals []string
		for _, e := range es.Entries {
			if e.Kind == "refused" {
				refusals = append(refusals, e.Detail)
			}
		}
		if len(refusals) != 1 || refusals[0] != reason {
			t.Errorf("%s's audit of m1: refusals %q, want one", c.site, refusals)
		}
	}
	out, err := lab.Hotlinectl(t, lab.Leader("alpha"), "", "get", m1.ID)
	if err != nil || !strings.Contains(out, `refused reason: "`+reason+`"`) || !strings.Contains(out, "state:          refused") {
		t.Fatalf("hotlinectl get: %v\n%s", err, out)
	}

	// The evidence bundle's read proof is bravo's signed refusal receipt,
	// and it verifies offline.
	proof := filepath.Join(t.TempDir(), "m1.json")
	if _, err := lab.Hotlinectl(t, lab.Leader("alpha"), "", "get", m1.ID, "--proof", proof); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(lab.Dir, "pki", trust.KeyringFile)
	out, err = lab.Hotlinectl(t, lab.Leader("alpha"), "", "--socket", filepath.Join(t.TempDir(), "no.sock"), "verify", proof, "--keys", keys)
	if err != nil || !strings.Contains(out, "\nok   read ") || !strings.Contains(out, reason) {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	t.Logf("verify %s:\n%s", filepath.Base(proof), out)
	// Another reason is not what bravo signed.
	data, err := os.ReadFile(proof)
	if err != nil {
		t.Fatal(err)
	}
	b, err := trust.ParseBundle(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b.Proofs {
		if r := b.Proofs[i].Receipt; r != nil {
			r.Refused = "mailbox nosuch is full"
		}
	}
	if data, err = json.Marshal(b); err != nil {
		t.Fatal(err)
	}
	forged := filepath.Join(t.TempDir(), "forged.json")
	if err := os.WriteFile(forged, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Hotlinectl(t, lab.Leader("alpha"), "", "--socket", filepath.Join(t.TempDir(), "no.sock"), "verify", forged, "--keys", keys); !errors.Is(err, trust.ErrNotCovered) {
		t.Fatalf("verify of another reason: %v, want %v", err, trust.ErrNotCovered)
	}

	// The channel is not stuck: the next message to cert is delivered.
	m4, err := alpha.Submit(ctx, client.SubmitRequest{To: "bravo/cert", Payload: []byte("after"), Wait: "delivered", Timeout: time.Minute})
	if err != nil || m4.State != "delivered" || m4.Seq != 4 {
		t.Fatalf("m4 = %+v, %v", m4, err)
	}
	if st, err := alpha.Get(ctx, m2.ID); err != nil || st.State != "delivered" {
		t.Fatalf("m2 = %+v, %v", st, err)
	}
}
