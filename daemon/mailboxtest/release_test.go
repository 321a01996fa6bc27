package mailboxtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// releaseUser is a user the test created, who runs hotlinectl.
type releaseUser struct {
	name     string
	uid, gid uint32
}

// newReleaseUser creates a system user (no home, no login shell) and
// removes it when the test ends.
func newReleaseUser(t *testing.T, name string) releaseUser {
	t.Helper()
	if out, err := exec.Command("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return releaseUser{name: name, uid: uint32(uid), gid: uint32(gid)}
}

// ctlAs runs the hotlinectl binary as u against socket and returns its
// standard output and error. A node that answers 503 unavailable (its
// read barrier failed: a busy machine's lab electing a leader; nothing
// was proposed) is asked again, a few times.
func ctlAs(t *testing.T, bin string, u releaseUser, socket, stdin string, args ...string) (string, string, error) {
	t.Helper()
	for try := 1; ; try++ {
		out, errOut, err := ctlOnce(t, bin, u, socket, stdin, args...)
		if err == nil || try == 5 || !strings.Contains(errOut, "("+client.CodeUnavailable+")") {
			return out, errOut, err
		}
		t.Logf("hotlinectl %v: %s; again", args, strings.TrimSpace(errOut))
		time.Sleep(500 * time.Millisecond)
	}
}

func ctlOnce(t *testing.T, bin string, u releaseUser, socket, stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "hotlinectl"), append([]string{"--socket", socket}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid}}
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// TestMailboxRelease: two-person release end to end. Two users, both
// senders and releasers of mailbox cert at alpha (release = true): a
// message one submits is held; the submitter's release is refused (403)
// and it stays held; the other user's releases it, and it is delivered
// to bravo exactly once; a second release is a 409 naming the releaser;
// the audit log and the proof bundle name both.
func TestMailboxRelease(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creates two users (useradd) and runs hotlinectl as them: needs root")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skipf("needs useradd: %v", err)
	}
	t0 := time.Now()
	bin := clustertest.Binaries(t)
	t.Logf("binaries built in %v", time.Since(t0).Round(time.Millisecond))
	prefix := fmt.Sprintf("rls%d", os.Getpid()%100000)
	sub, rel := newReleaseUser(t, prefix+"s"), newReleaseUser(t, prefix+"r")

	// The sockets in a directory every user may enter.
	sockDir, err := os.MkdirTemp("", "rls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	if err := os.Chmod(sockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	both := []string{"user:" + sub.name, "user:" + rel.name}
	t0 = time.Now()
	lab := clustertest.Start(t, func(c *daemon.Config) {
		c.Socket = filepath.Join(sockDir, c.Node+".sock")
		c.SocketMode = "0666"
		c.AuditCheckpointInterval.Duration = 200 * time.Millisecond
		mb := daemon.MailboxConfig{Name: "cert", Send: []string{"*"}, Read: []string{"*"}, Ack: []string{"*"}}
		if c.Site == "alpha" {
			mb = daemon.MailboxConfig{Name: "cert", Send: both, Read: both, Ack: both, Release: true, Releasers: both}
		}
		c.Mailboxes = append(c.Mailboxes, mb)
	})
	t.Logf("lab started in %v", time.Since(t0).Round(time.Millisecond))
	start := time.Now()
	step := func(what string) { t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), what) }
	step("lab up")
	follower, leader := lab.Follower("alpha"), lab.Leader("alpha")
	sockF, sockL := lab.Configs[follower].Socket, lab.Configs[leader].Socket
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Submitted through a follower: held, not sent. With an idempotency
	// key, so that a submit whose outcome is unknown (exit status 4: a
	// busy machine's lab electing a leader) is retried safely.
	var out, errOut string
	for try := 0; try < 3; try++ {
		out, errOut, err = ctlAs(t, bin, sub, sockF, "indicators", "send", "--to", "bravo/cert", "--from", "cert", "--precedence", "flash", "--id", prefix+"-1", "-")
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 {
			break
		}
	}
	if err != nil {
		t.Fatalf("send as %s: %v\n%s", sub.name, err, errOut)
	}
	id := strings.TrimSpace(out)
	if !strings.Contains(errOut, "held for two-person release") {
		t.Errorf("send's note: %q", errOut)
	}
	alpha := lab.Client(leader)
	m, err := alpha.Get(ctx, id)
	if err != nil || m.State != "held" || m.Seq != 0 || m.FromMailbox != "cert" {
		t.Fatalf("after submit: %+v, %v", m, err)
	}
	if out, errOut, err := ctlAs(t, bin, rel, sockL, "", "held"); err != nil || !strings.Contains(out, id) || !strings.Contains(out, "user "+sub.name) {
		t.Fatalf("held as %s: %v\n%s%s", rel.name, err, out, errOut)
	}

	step("The submitter cannot release it.")
	// The submitter cannot release it.
	_, errOut, err = ctlAs(t, bin, sub, sockL, "", "release", id)
	if err == nil || !strings.Contains(errOut, `mailbox "cert": the submitter cannot release their own message`) || !strings.Contains(errOut, "forbidden") {
		t.Fatalf("release by the submitter: %v\n%s", err, errOut)
	}
	if m, err := alpha.Get(ctx, id); err != nil || m.State != "held" {
		t.Fatalf("after the refused release: %+v, %v", m, err)
	}

	step("The other user can, through any node.")
	// The other user can, through any node.
	out, errOut, err = ctlAs(t, bin, rel, sockF, "", "release", id)
	if err != nil || !strings.Contains(out, "released "+id) || !strings.Contains(out, "seq 1") {
		t.Fatalf("release as %s: %v\n%s%s", rel.name, err, out, errOut)
	}
	_, errOut, err = ctlAs(t, bin, rel, sockL, "", "release", id)
	if err == nil || !strings.Contains(errOut, "already released by user "+rel.name) || !strings.Contains(errOut, "conflict") {
		t.Fatalf("second release: %v\n%s", err, errOut)
	}
	if out, _, err := ctlAs(t, bin, rel, sockL, "", "held", "--json"); err != nil || strings.Contains(out, id) {
		t.Fatalf("held after release: %v\n%s", err, out)
	}

	step("Delivered to bravo once.")
	// Delivered to bravo once.
	bravo := lab.Client(lab.Leader("bravo"))
	var got []client.InboxMessage
	clustertest.Eventually(t, 30*time.Second, "the released message at bravo", func() bool {
		in, err := bravo.ReadInbox(ctx, client.InboxRequest{Mailbox: "cert"})
		if err != nil {
			return false
		}
		got = in.Messages
		return len(got) > 0
	})
	if len(got) != 1 || got[0].ID != id || string(got[0].Payload) != "indicators" {
		t.Fatalf("bravo's cert inbox: %+v", got)
	}
	if _, err := bravo.Ack(ctx, []string{id}); err != nil {
		t.Fatal(err)
	}

	step("The audit log names both.")
	// The audit log names both.
	es, err := alpha.AuditEntriesOf(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	who := map[string]string{}
	for _, e := range es.Entries {
		who[e.Kind] = e.User
	}
	if who["submitted"] != sub.name || who["released"] != rel.name {
		t.Fatalf("audit records name %v, want submitted by %s and released by %s", who, sub.name, rel.name)
	}

	step("So does the proof bundle")
	// So does the proof bundle, once a checkpoint covers the records.
	keys, err := alpha.AuditKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile, proof := filepath.Join(dir, "sites.pub"), filepath.Join(dir, "proof.json")
	if err := os.WriteFile(keyFile, keys, 0o600); err != nil {
		t.Fatal(err)
	}
	var verified string
	clustertest.Eventually(t, 30*time.Second, "a bundle with the submitted, released and delivered audit records", func() bool {
		if _, err := lab.Hotlinectl(t, leader, "", "get", id, "--proof", proof); err != nil {
			return false
		}
		verified, err = lab.Hotlinectl(t, leader, "", "verify", proof, "--keys", keyFile)
		if err != nil || !strings.Contains(verified, "released at") {
			return false
		}
		// And the delivered record, once a later checkpoint covers it.
		var b struct{ Audit []json.RawMessage }
		data, err := os.ReadFile(proof)
		return err == nil && json.Unmarshal(data, &b) == nil && len(b.Audit) >= 3
	})
	step("verified")
	t.Logf("hotlinectl verify:\n%s", verified)
	for _, want := range []string{"submitted at", "by user " + sub.name, "released at", "by user " + rel.name} {
		if !strings.Contains(verified, want) {
			t.Errorf("verify does not say %q:\n%s", want, verified)
		}
	}
	var b struct{ Audit []json.RawMessage }
	if data, err := os.ReadFile(proof); err != nil || json.Unmarshal(data, &b) != nil || len(b.Audit) < 3 {
		t.Errorf("bundle audit records: %d (%v)", len(b.Audit), err)
	}
}

// TestMailboxReleaseRefusals: the API's answers around two-person
// release that need no second user (the test's caller is whoever runs
// it): a submit that waits for delivery of a held message ends 202 and
// held; the same key again is the held message; a wait for "held" is
// refused; the submitter's own release is 403; unknown and not-held
// messages are 404 and 409; status counts the held message.
func TestMailboxReleaseRefusals(t *testing.T) {
	lab := clustertest.Start(t, func(c *daemon.Config) {
		mb := daemon.MailboxConfig{Name: "cert", Send: []string{"*"}, Read: []string{"*"}, Ack: []string{"*"}}
		if c.Site == "alpha" {
			mb.Release, mb.Releasers = true, []string{"*"}
		}
		c.Mailboxes = append(c.Mailboxes, mb)
	})
	alpha := lab.Client(lab.Leader("alpha"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := func(err error) string {
		var ae *client.APIError
		if errors.As(err, &ae) {
			return fmt.Sprintf("%d %s", ae.Status, ae.Code)
		}
		return fmt.Sprint(err)
	}

	req := client.SubmitRequest{To: "bravo/cert", From: "cert", Key: "k1", Payload: []byte("report"), Wait: "delivered", Timeout: time.Second}
	m, err := alpha.Submit(ctx, req)
	if err != nil || m.State != "held" || !m.WaitTimedOut || m.Seq != 0 {
		t.Fatalf("submit waiting for delivery: %+v, %v", m, err)
	}
	req.Wait = ""
	again, err := alpha.Submit(ctx, req)
	if err != nil || again.ID != m.ID || !again.Existing || again.State != "held" {
		t.Fatalf("the same key again: %+v, %v", again, err)
	}
	req.Payload = []byte("other")
	if _, err := alpha.Submit(ctx, req); code(err) != "409 key_conflict" {
		t.Errorf("the same key, other content: %v", err)
	}
	req.Key, req.Wait = "", "held"
	if _, err := alpha.Submit(ctx, req); code(err) != "400 bad_request" {
		t.Errorf("wait=held: %v", err)
	}

	_, err = alpha.Release(ctx, m.ID)
	if code(err) != "403 forbidden" || !strings.Contains(err.Error(), `mailbox "cert": the submitter cannot release their own message`) {
		t.Errorf("the submitter's release: %v", err)
	}
	if _, err := alpha.Release(ctx, "no-such-id"); code(err) != "404 not_found" {
		t.Errorf("release of an unknown id: %v", err)
	}
	plain, err := alpha.Submit(ctx, client.SubmitRequest{To: "bravo", Payload: []byte("x")})
	if err != nil || plain.State == "held" {
		t.Fatalf("submit from the default mailbox: %+v, %v", plain, err)
	}
	if _, err := alpha.Release(ctx, plain.ID); code(err) != "409 conflict" || !strings.Contains(err.Error(), "is not held") {
		t.Errorf("release of a message not held: %v", err)
	}
	if _, err := alpha.Held(ctx, "no/such"); code(err) != "400 bad_request" {
		t.Errorf("held of a bad mailbox name: %v", err)
	}
	held, err := alpha.Held(ctx, "cert")
	if err != nil || len(held.Messages) != 1 || held.Messages[0].ID != m.ID || held.Messages[0].Size != len("report") || held.Messages[0].State != "held" {
		t.Fatalf("held: %+v, %v", held, err)
	}
	st, err := alpha.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range st.Mailboxes {
		if mb.Name == "cert" && mb.Held != 1 {
			t.Errorf("status: mailbox cert holds %d", mb.Held)
		}
	}
}
