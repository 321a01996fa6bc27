package mailboxtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// objectivesLab starts the two-site lab with a mailbox "watch" at both
// sites (every caller may use it) whose flash messages must be read
// within 2s; the origin, not told the destination's mailbox list, uses
// its own mailbox of that name.
func objectivesLab(t *testing.T) *clustertest.Lab {
	return clustertest.Start(t, func(c *daemon.Config) {
		c.AuditCheckpointInterval.Duration = 200 * time.Millisecond
		c.Mailboxes = []daemon.MailboxConfig{{Name: "watch", Send: []string{"*"}, Read: []string{"*"}, Ack: []string{"*"},
			Objectives: map[string]daemon.Duration{"flash": {Duration: 2 * time.Second}}}}
	})
}

// overdueAt reports whether node's status lists id as overdue in
// direction and raises a read_overdue alarm.
func overdueAt(ctx context.Context, lab *clustertest.Lab, node, id, direction string) bool {
	st, err := lab.Client(node).Status(ctx)
	if err != nil {
		return false
	}
	listed := slices.ContainsFunc(st.Overdue, func(o client.Overdue) bool {
		return o.ID == id && o.Direction == direction && o.Mailbox == "watch" && o.Precedence == "flash" && o.Due.After(o.Submitted)
	})
	alarm := slices.ContainsFunc(st.Alarms, func(a string) bool { return strings.HasPrefix(a, "read objective missed") })
	return listed && alarm
}

// clearAt reports whether node's status has no overdue message and no
// read objective alarm.
func clearAt(ctx context.Context, lab *clustertest.Lab, node string) bool {
	st, err := lab.Client(node).Status(ctx)
	if err != nil {
		return false
	}
	return len(st.Overdue) == 0 && !slices.ContainsFunc(st.Alarms, func(a string) bool { return strings.HasPrefix(a, "read objective missed") })
}

// retry runs fn until it succeeds, for up to a minute: under load (the
// race detector on two cores) a site may be between leaders for a moment
// and answer "unavailable, retry".
func retry(t *testing.T, what string, fn func() error) {
	t.Helper()
	var last error
	clustertest.Eventually(t, time.Minute, what, func() bool {
		last = fn()
		return last == nil
	})
	if last != nil {
		t.Fatalf("%s: %v", what, last)
	}
}

// metric returns the value of hotline_overdue_messages with the labels
// given in want (as they are written in the exposition) on node.
func metric(t *testing.T, lab *clustertest.Lab, node, want string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", lab.Configs[node].Socket)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://hotline/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "hotline_overdue_messages{") && strings.Contains(line, want) {
			return line[strings.LastIndexByte(line, ' ')+1:]
		}
	}
	return ""
}

// TestMailboxObjectivesOverdue: a flash message to bravo/watch that
// nobody reads raises read_overdue at both sites (status alarms and
// overdue list, the mailbox's count, the metric); get shows its
// objective; acknowledging it clears bravo, and alpha once the read
// receipt arrives; the origin's get and proof bundle then say the
// objective was missed, and verify prints it as a note.
func TestMailboxObjectivesOverdue(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := objectivesLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := clustertest.SubmitRetrying(ctx, lab.Client("alpha-1"), client.SubmitRequest{To: "bravo/watch", From: "watch",
		Precedence: "flash", Key: "obj-flash", Wait: "delivered", Payload: []byte("flash: unread")})
	if err != nil {
		t.Fatal(err)
	}
	id := m.ID
	for _, node := range []string{"bravo-1", "bravo-2"} {
		clustertest.Eventually(t, time.Minute, id+" overdue inbound at "+node, func() bool { return overdueAt(ctx, lab, node, id, "inbound") })
	}
	for _, node := range []string{"alpha-2", "alpha-3"} {
		clustertest.Eventually(t, time.Minute, id+" overdue outbound at "+node, func() bool { return overdueAt(ctx, lab, node, id, "outbound") })
	}
	clustertest.Eventually(t, 30*time.Second, "bravo-3's watch mailbox with one overdue flash", func() bool {
		st, err := lab.Client("bravo-3").Status(ctx)
		if err != nil {
			return false
		}
		i := slices.IndexFunc(st.Mailboxes, func(ms client.MailboxStatus) bool { return ms.Name == "watch" })
		return i >= 0 && st.Mailboxes[i].Overdue["flash"] == 1 && st.Mailboxes[i].Unread == 1
	})
	if v := metric(t, lab, "bravo-3", `direction="inbound",mailbox="watch",precedence="flash"`); v != "1" {
		t.Errorf("bravo hotline_overdue_messages inbound watch flash = %q, want 1", v)
	}
	clustertest.Eventually(t, 30*time.Second, "alpha's metric", func() bool {
		return metric(t, lab, "alpha-1", `direction="outbound",mailbox="bravo/watch",precedence="flash"`) == "1"
	})
	var out string
	retry(t, "get at bravo", func() (err error) {
		out, err = lab.Hotlinectl(t, "bravo-1", "", "get", id)
		return err
	})
	if !strings.Contains(out, "objective:") || !strings.Contains(out, "read within 2s") || strings.Contains(out, "met:") {
		t.Fatalf("get %s at bravo:\n%s", id, out)
	}

	// Acknowledged at bravo: clears there, and at alpha with the receipt.
	retry(t, "recv --mailbox watch --ack at bravo", func() error {
		if _, err := lab.Hotlinectl(t, "bravo-2", "", "recv", "--mailbox", "watch", "--ack"); err != nil {
			return err
		}
		got, err := lab.Client("bravo-2").Get(ctx, id)
		if err == nil && got.State != "read" {
			return errors.New(got.State)
		}
		return err
	})
	for _, node := range []string{"bravo-1", "bravo-3", "alpha-1", "alpha-2"} {
		clustertest.Eventually(t, time.Minute, "no overdue message at "+node, func() bool { return clearAt(ctx, lab, node) })
	}
	var got *client.Message
	retry(t, "get at alpha", func() (err error) {
		got, err = lab.Client("alpha-3").Get(ctx, id)
		return err
	})
	if got.State != "read" || got.ReadObjective != "2s" || got.ReadDue == nil || !got.ReadDue.Equal(got.SubmittedAt.Add(2*time.Second)) ||
		got.ObjectiveMet == nil || *got.ObjectiveMet {
		t.Fatalf("get at alpha after the read: %+v", got)
	}
	clustertest.Eventually(t, 30*time.Second, "bravo-3's metric back to 0", func() bool {
		return metric(t, lab, "bravo-3", `direction="inbound",mailbox="watch",precedence="flash"`) == "0"
	})

	// The origin's bundle states the objective, missed by the signed
	// read receipt; verify prints it as a note.
	clustertest.Eventually(t, time.Minute, "a bundle with the read proof at alpha", func() bool {
		data, err := lab.Client("alpha-1").Proof(ctx, id)
		if err != nil {
			return false
		}
		b, err := trust.ParseBundle(data)
		return err == nil && slices.ContainsFunc(b.Proofs, func(p trust.BundleProof) bool { return p.Kind == trust.ProofRead })
	})
	file := filepath.Join(t.TempDir(), "bundle.json")
	retry(t, "get --proof at alpha", func() error {
		_, err := lab.Hotlinectl(t, "alpha-1", "", "get", id, "--proof", file)
		return err
	})
	keys := filepath.Join(lab.Dir, "pki", trust.KeyringFile)
	out, err = lab.Hotlinectl(t, "alpha-1", "", "verify", file, "--keys", keys)
	if err != nil || !strings.Contains(out, "note objective flash, read within 2s") || !strings.Contains(out, "missed (read") {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	t.Logf("verify:\n%s", out)
}

// TestMailboxObjectivesExpiryNotice: a message that expires undelivered
// (bravo is down) puts a notice into the sending mailbox at alpha,
// readable with recv --mailbox and acknowledged without a receipt.
func TestMailboxObjectivesExpiryNotice(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := objectivesLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, node := range daemon.LabNodes("bravo") {
		if err := lab.StopNode(node); err != nil {
			t.Fatal(err)
		}
	}
	m, err := clustertest.SubmitRetrying(ctx, lab.Client("alpha-1"), client.SubmitRequest{To: "bravo/watch", From: "watch",
		Precedence: "immediate", Key: "obj-expiring", TTL: time.Second, Payload: []byte("never delivered")})
	if err != nil {
		t.Fatal(err)
	}
	clustertest.Eventually(t, time.Minute, m.ID+" expired at alpha", func() bool {
		got, err := lab.Client("alpha-2").Get(ctx, m.ID)
		return err == nil && got.State == "expired"
	})
	var inbox *client.Inbox
	retry(t, "the notice in alpha's watch inbox", func() (err error) {
		inbox, err = lab.Client("alpha-2").ReadInbox(ctx, client.InboxRequest{Mailbox: "watch", Wait: 10 * time.Second})
		if err == nil && len(inbox.Messages) == 0 {
			err = errors.New("none yet")
		}
		return err
	})
	if len(inbox.Messages) != 1 {
		t.Fatalf("alpha's watch inbox = %+v, want the notice", inbox.Messages)
	}
	n := inbox.Messages[0]
	var body queue.Notice
	if err := json.Unmarshal(n.Payload, &body); err != nil {
		t.Fatalf("notice payload %q: %v", n.Payload, err)
	}
	if n.ID != "notice-"+m.ID || n.Type != queue.NoticeType || n.From != "alpha" || n.Mailbox != "watch" ||
		body.ID != m.ID || body.To != "bravo" || body.Mailbox != "watch" || body.Precedence != "immediate" ||
		body.Reason != "expired" || !body.SubmittedAt.Equal(m.SubmittedAt) || body.ExpiredAt.Before(body.SubmittedAt) {
		t.Fatalf("notice = %+v, payload %+v", n, body)
	}
	var out string
	retry(t, "recv --mailbox watch --ack at alpha", func() (err error) {
		out, err = lab.Hotlinectl(t, "alpha-3", "", "recv", "--mailbox", "watch", "--ack")
		return err
	})
	if !strings.Contains(out, `"reason":"expired"`) || !strings.Contains(out, m.ID) {
		t.Fatalf("recv --mailbox watch --ack:\n%s", out)
	}
	clustertest.Eventually(t, 30*time.Second, "the notice read at alpha", func() bool {
		got, err := lab.Client("alpha-1").Get(ctx, n.ID)
		return err == nil && got.State == "read"
	})
	var st *client.Status
	retry(t, "status at alpha", func() (err error) {
		st, err = lab.Client("alpha-1").Status(ctx)
		return err
	})
	if st.ReceiptsPending != 0 || st.InboxUnread != 0 || len(st.Inbound) != 0 || len(st.Overdue) != 0 {
		t.Fatalf("alpha after reading the notice: receipts pending %d, unread %d, inbound %+v, overdue %+v",
			st.ReceiptsPending, st.InboxUnread, st.Inbound, st.Overdue)
	}
}
