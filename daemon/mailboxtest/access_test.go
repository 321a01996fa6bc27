package mailboxtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// osUser is a user the test created, and how to run a process as it: its
// primary group and its supplementary groups, as a login would set them.
type osUser struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
}

// mustRun runs a command as root and fails the test on error.
func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// addGroup creates group name (removed when the test ends).
func addGroup(t *testing.T, name string) uint32 {
	t.Helper()
	_ = exec.Command("groupdel", name).Run() // a leftover of a killed run
	mustRun(t, "groupadd", name)
	t.Cleanup(func() { _ = exec.Command("groupdel", name).Run() })
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.ParseUint(g.Gid, 10, 32)
	return uint32(gid)
}

// addUser creates user name with a group of its own as its primary group
// and groups as its supplementary ones (removed when the test ends).
func addUser(t *testing.T, name string, groups ...string) osUser {
	t.Helper()
	_ = exec.Command("userdel", name).Run()
	_ = exec.Command("groupdel", name).Run()
	args := []string{"-M", "-U", "-s", "/usr/sbin/nologin"}
	if len(groups) > 0 {
		args = append(args, "-G", strings.Join(groups, ","))
	}
	mustRun(t, "useradd", append(args, name)...)
	t.Cleanup(func() {
		_ = exec.Command("userdel", name).Run()
		_ = exec.Command("groupdel", name).Run()
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	ou := osUser{name: name, uid: uint32(uid), gid: uint32(gid)}
	for _, g := range groups {
		gr, err := user.LookupGroup(g)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseUint(gr.Gid, 10, 32)
		ou.groups = append(ou.groups, uint32(n))
	}
	return ou
}

// command returns a command that runs as u, in /, with a bare
// environment.
func (u osUser) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/", "NO_COLOR=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups}}
	return cmd
}

// run runs cmd with stdin, within a minute, and returns its standard
// output and error and its exit status.
func run(t *testing.T, cmd *exec.Cmd, stdin string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return out.String(), errOut.String(), code
}

// accessLab is the two-site lab of the access tests and its two users.
type accessLab struct {
	*clustertest.Lab
	bin         string
	cert, watch osUser
}

// ctl runs hotlinectl as u against node's socket.
func (l *accessLab) ctl(t *testing.T, u osUser, node, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"--socket", l.Configs[node].Socket}, args...)
	return run(t, u.command(ctx, filepath.Join(l.bin, "hotlinectl"), args...), stdin)
}

// send sends payload as u from mailbox from to "to", waits until it is
// delivered, and returns its id. It sends with an idempotency key and
// sends again when the outcome is unknown or the wait timed out (exit 4
// or 3: a busy machine), as a careful client does.
func (l *accessLab) send(t *testing.T, u osUser, node, from, to, typ, payload string) string {
	t.Helper()
	key := fmt.Sprintf("mbx-%s-%d", from, time.Now().UnixNano())
	for try := 1; ; try++ {
		out, errOut, code := l.ctl(t, u, node, payload, "send", "--to", to, "--from", from, "--type", typ, "--id", key, "--wait", "delivered", "--timeout", "45s")
		switch {
		case code == 0:
			return strings.TrimSpace(out)
		case (code == 3 || code == 4) && try < 4:
			t.Logf("%s: send --to %s --id %s: exit %d, sending again: %s", u.name, to, key, code, errOut)
		default:
			t.Fatalf("%s: send --to %s --from %s: exit %d: %s", u.name, to, from, code, errOut)
		}
	}
}

// recvIDs runs recv --json as u (with args) and returns the ids read.
func (l *accessLab) recvIDs(t *testing.T, u osUser, node string, args ...string) []string {
	t.Helper()
	out, errOut, code := l.ctl(t, u, node, "", append([]string{"recv", "--json"}, args...)...)
	if code != 0 {
		t.Fatalf("%s: recv %v: exit %d: %s", u.name, args, code, errOut)
	}
	return jsonIDs(t, out)
}

func jsonIDs(t *testing.T, out string) []string {
	t.Helper()
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m client.InboxMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("recv --json line %q: %v", sc.Text(), err)
		}
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

// Names of the users and groups the tests create (prefix hlmbx: the
// mailbox exchange helper's).
const (
	certUser   = "hlmbxcert1"
	watchUser  = "hlmbxwatch1"
	certGroup  = "hlmbxcert"
	watchGroup = "hlmbxwatch"
	certTypes  = "text/plain"
)

// mailboxConfig configures mailboxes cert (by group, types text/plain
// and STIX) and watch (send and read by user, ack by group) and a socket
// every local user may connect to (the mailboxes decide who may do
// what).
func mailboxConfig(c *daemon.Config) {
	c.SocketMode = "0666"
	c.Mailboxes = []daemon.MailboxConfig{
		{Name: "cert", Send: []string{"group:" + certGroup}, Read: []string{"group:" + certGroup}, Ack: []string{"group:" + certGroup},
			Types: []string{certTypes, "application/stix+json;version=2.1"}},
		{Name: "watch", Send: []string{"user:" + watchUser}, Read: []string{"user:" + watchUser}, Ack: []string{"group:" + watchGroup}},
	}
}

// startAccessLab creates the users and starts the lab, with its sockets
// and the binaries reachable by them.
func startAccessLab(t *testing.T) *accessLab {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates the users " + certUser + " and " + watchUser + " (useradd) and runs hotlinectl as them")
	}
	for _, tool := range []string{"useradd", "userdel", "groupadd", "groupdel", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	addGroup(t, certGroup)
	addGroup(t, watchGroup)
	l := &accessLab{cert: addUser(t, certUser, certGroup), watch: addUser(t, watchUser, watchGroup)}
	l.bin = clustertest.Binaries(t)
	l.Lab = clustertest.Start(t, mailboxConfig)
	// t.TempDir makes its directories 0700: let other users through to
	// the sockets (not list them; the keys are 0600 in any case), and to
	// the binaries.
	for _, d := range []string{l.Dir, filepath.Dir(l.Dir)} {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(l.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitExchanged waits until node knows site's mailboxes cert and watch.
func (l *accessLab) waitExchanged(t *testing.T, node, site string) {
	t.Helper()
	clustertest.Eventually(t, 60*time.Second, node+" to learn "+site+"'s mailboxes", func() bool {
		st, err := l.Client(node).Status(context.Background())
		if err != nil {
			return false
		}
		for _, sl := range st.Links {
			if sl.Site == site {
				return slices.Equal(sl.Mailboxes, []string{"cert", "default", "watch"})
			}
		}
		return false
	})
}

// outLast sums the last sequence numbers of node's outbound channels to
// site: it grows with every message stored for site.
func (l *accessLab) outLast(t *testing.T, node, site string) uint64 {
	t.Helper()
	st, err := l.Client(node).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, q := range st.Outbound {
		if q.To == site {
			n += q.Last
		}
	}
	return n
}

// TestMailboxAccess: in both directions, each user sends from, reads and
// acknowledges only its own mailbox (403 naming the mailbox and the right
// otherwise, and nothing changes), root reads all, the audit log names
// who acknowledged; once the sites have exchanged their lists, the origin
// refuses an unknown mailbox and a type the mailbox does not take,
// storing nothing. A mailbox removed from the config while a message
// waits for it raises an alarm, and root still reads it.
func TestMailboxAccess(t *testing.T) {
	l := startAccessLab(t)
	t.Run("both_ways", func(t *testing.T) {
		for _, dir := range [][2]string{{"alpha", "bravo"}, {"bravo", "alpha"}} {
			t.Run(dir[0]+"_to_"+dir[1], func(t *testing.T) {
				t.Parallel() // each reads and acknowledges at its own destination only
				l.checkDirection(t, dir[0], dir[1])
			})
		}
	})
	t.Run("unconfigured", l.checkUnconfigured)
}

// checkDirection checks access with messages from site src to site dst.
func (l *accessLab) checkDirection(t *testing.T, src, dst string) {
	ctx := context.Background()
	sn, dn := daemon.LabNodes(src)[0], daemon.LabNodes(dst)[1]
	l.waitExchanged(t, sn, dst)

	// Sending: each from its own mailbox only.
	certID := l.send(t, l.cert, sn, "cert", dst+"/cert", certTypes, "indicators from "+src)
	watchID := l.send(t, l.watch, sn, "watch", dst+"/watch", "application/octet-stream", "flash from "+src)
	before := l.outLast(t, sn, dst)
	_, errOut, code := l.ctl(t, l.cert, sn, "x", "send", "--to", dst+"/watch", "--from", "watch")
	if code == 0 || !strings.Contains(errOut, `mailbox "watch"`) || !strings.Contains(errOut, "lacks the send right") || !strings.Contains(errOut, "(forbidden)") {
		t.Errorf("%s sending from watch: exit %d, %s; want 403 naming the mailbox and the send right", certUser, code, errOut)
	}

	// The origin's refusals, once it knows the destination's list.
	_, errOut, code = l.ctl(t, l.cert, sn, "x", "send", "--to", dst+"/nosuch", "--from", "cert")
	if code == 0 || !strings.Contains(errOut, "(unknown_mailbox)") || !strings.Contains(errOut, `no mailbox "nosuch"`) || !strings.Contains(errOut, "cert, default, watch") {
		t.Errorf("send to %s/nosuch: exit %d, %s; want unknown_mailbox naming the site's mailboxes", dst, code, errOut)
	}
	_, errOut, code = l.ctl(t, l.cert, sn, "x", "send", "--to", dst+"/cert", "--from", "cert", "--type", "application/json")
	if code == 0 || !strings.Contains(errOut, "(type_not_allowed)") || !strings.Contains(errOut, certTypes) {
		t.Errorf("send of application/json to %s/cert: exit %d, %s; want type_not_allowed naming the types", dst, code, errOut)
	}
	if after := l.outLast(t, sn, dst); after != before {
		t.Errorf("refused sends stored messages: outbound to %s went from %d to %d", dst, before, after)
	}

	// A message's status and evidence: only with a right on its
	// mailbox, at the origin (send) and at the destination (read).
	for _, c := range []struct {
		u          osUser
		node, id   string
		box, right string
	}{{l.watch, sn, certID, "cert", "send"}, {l.cert, sn, watchID, "watch", "send"}} {
		if _, errOut, code := l.ctl(t, c.u, c.node, "", "get", c.id); code == 0 || !strings.Contains(errOut, fmt.Sprintf("mailbox %q", c.box)) || !strings.Contains(errOut, "lacks the "+c.right+" right") {
			t.Errorf("%s: get %s at %s: exit %d, %s; want 403 naming mailbox %s", c.u.name, c.id, c.node, code, errOut, c.box)
		}
		if _, errOut, code := l.ctl(t, c.u, c.node, "", "get", c.id, "--proof", "-"); code == 0 || !strings.Contains(errOut, "(forbidden)") {
			t.Errorf("%s: get %s --proof: exit %d, %s; want 403", c.u.name, c.id, code, errOut)
		}
	}
	if _, errOut, code := l.ctl(t, l.cert, sn, "", "get", certID); code != 0 {
		t.Errorf("%s: get of its own message: exit %d, %s", certUser, code, errOut)
	}
	clustertest.Eventually(t, 30*time.Second, watchID+" at "+dst, func() bool {
		_, err := l.Client(dn).Get(ctx, watchID)
		return err == nil
	})
	if _, errOut, code := l.ctl(t, l.cert, dn, "", "get", watchID); code == 0 || !strings.Contains(errOut, `mailbox "watch"`) || !strings.Contains(errOut, "lacks the read right") {
		t.Errorf("%s: get %s at %s: exit %d, %s; want 403 naming the read right", certUser, watchID, dn, code, errOut)
	}

	// Reading: each its own; root every mailbox.
	if got := l.recvIDs(t, l.cert, dn); !slices.Equal(got, []string{certID}) {
		t.Errorf("%s reads %v; want only its cert message %s", certUser, got, certID)
	}
	if got := l.recvIDs(t, l.watch, dn); !slices.Equal(got, []string{watchID}) {
		t.Errorf("%s reads %v; want only its watch message %s", watchUser, got, watchID)
	}
	for _, c := range []struct {
		u   osUser
		box string
	}{{l.cert, "watch"}, {l.watch, "cert"}} {
		_, errOut, code := l.ctl(t, c.u, dn, "", "recv", "--mailbox", c.box)
		if code == 0 || !strings.Contains(errOut, fmt.Sprintf("mailbox %q", c.box)) || !strings.Contains(errOut, "lacks the read right") {
			t.Errorf("%s: recv --mailbox %s: exit %d, %s; want 403 naming the mailbox and the read right", c.u.name, c.box, code, errOut)
		}
	}
	out, err := l.Hotlinectl(t, dn, "", "recv", "--json")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{certID, watchID}
	slices.Sort(want)
	if got := jsonIDs(t, out); !slices.Equal(got, want) {
		t.Errorf("root reads %v; want both %v", got, want)
	}

	// Acknowledging: an ack naming the other's message is refused
	// as a whole.
	body := fmt.Sprintf(`{"ids":[%q,%q]}`, certID, watchID)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	out, _, _ = run(t, l.cert.command(cctx, "curl", "-s", "--unix-socket", l.Configs[dn].Socket,
		"-X", "POST", "-H", "Content-Type: application/json", "--data", body, "-w", "\n%{http_code}", "http://hotline"+client.PathAck), "")
	cancel()
	if !strings.HasSuffix(out, "\n403") || !strings.Contains(out, `"forbidden"`) || !strings.Contains(out, "lacks the ack right") || !strings.Contains(out, "nothing was acknowledged") {
		t.Errorf("%s acknowledging %s and %s: %s; want 403 naming the ack right", certUser, certID, watchID, out)
	}
	out, err = l.Hotlinectl(t, dn, "", "recv", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if got := jsonIDs(t, out); !slices.Equal(got, want) {
		t.Errorf("after the refused ack, unread %v; want both %v", got, want)
	}
	for _, c := range []struct {
		u   osUser
		box string
	}{{l.cert, "cert"}, {l.watch, "watch"}} {
		if _, errOut, code := l.ctl(t, c.u, dn, "", "recv", "--mailbox", c.box, "--ack"); code != 0 {
			t.Fatalf("%s: recv --mailbox %s --ack: exit %d: %s", c.u.name, c.box, code, errOut)
		}
	}

	// The audit log names who acknowledged each.
	for _, c := range []struct {
		u  osUser
		id string
	}{{l.cert, certID}, {l.watch, watchID}} {
		ents, err := l.Client(dn).AuditEntriesOf(ctx, c.id)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range ents.Entries {
			if e.Kind == "read" {
				found = true
				if e.UID == nil || *e.UID != int64(c.u.uid) || e.User != c.u.name {
					t.Errorf("read record of %s: uid %v user %q; want %d %s", c.id, e.UID, e.User, c.u.uid, c.u.name)
				}
			}
		}
		if !found {
			t.Errorf("no read record of %s in %s's audit log", c.id, dst)
		}
	}
	// The read receipts reach the origin.
	for _, id := range []string{certID, watchID} {
		clustertest.Eventually(t, 30*time.Second, id+" read at "+src, func() bool {
			m, err := l.Client(sn).Get(ctx, id)
			return err == nil && m.State == "read"
		})
	}
}

// checkUnconfigured: a node whose config no longer names a mailbox
// holding unread messages raises an alarm naming it, and only root still
// reads it.
func (l *accessLab) checkUnconfigured(t *testing.T) {
	ctx := context.Background()
	sn, dn := daemon.LabNodes("alpha")[0], daemon.LabNodes("bravo")[2]
	id := l.send(t, l.watch, sn, "watch", "bravo/watch", "text/plain", "flash")
	clustertest.Eventually(t, 30*time.Second, dn+" to apply "+id, func() bool {
		st, err := l.Client(dn).Status(ctx)
		return err == nil && st.InboxUnread == 1
	})
	if err := l.StopNode(dn); err != nil {
		t.Fatal(err)
	}
	c := l.Configs[dn]
	c.Mailboxes = c.Mailboxes[:1] // cert only
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	l.StartNode(dn)
	st, err := l.Client(dn).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := "mailbox watch is not configured: 1 unread messages wait for it; root can read them with hotlinectl recv --mailbox watch"
	if !slices.Contains(st.Alarms, want) {
		t.Errorf("alarms %q; want %q", st.Alarms, want)
	}
	if i := slices.IndexFunc(st.Mailboxes, func(m client.MailboxStatus) bool { return m.Name == "watch" }); i < 0 || st.Mailboxes[i].Configured || st.Mailboxes[i].Unread != 1 {
		t.Errorf("status mailboxes %+v; want watch not configured with 1 unread", st.Mailboxes)
	}
	if _, errOut, code := l.ctl(t, l.watch, dn, "", "recv", "--mailbox", "watch"); code == 0 || !strings.Contains(errOut, "not configured at this site") {
		t.Errorf("%s reading the unconfigured watch: exit %d, %s; want 403", watchUser, code, errOut)
	}
	var in *client.Inbox
	clustertest.Eventually(t, 30*time.Second, "root to read watch on "+dn+" (once it has caught up)", func() bool {
		in, err = l.Client(dn).ReadInbox(ctx, client.InboxRequest{Mailbox: "watch"})
		return err == nil
	})
	if len(in.Messages) != 1 || in.Messages[0].ID != id {
		t.Errorf("root reads %+v from the unconfigured watch; want %s", in.Messages, id)
	}
}
