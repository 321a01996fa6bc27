package daemon_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

func siteOfNode(node string) string { return strings.SplitN(node, "-", 2)[0] }

// otherNode returns a node of site other than not.
func otherNode(site, not string) string {
	for _, n := range daemon.LabNodes(site) {
		if n != not {
			return n
		}
	}
	return ""
}

func wantAPIError(t *testing.T, err error, status int, code, text string) {
	t.Helper()
	ae, ok := err.(*client.APIError)
	if !ok {
		t.Fatalf("got %v, want API error %d %s", err, status, code)
	}
	if ae.Status != status || ae.Code != code || !strings.Contains(ae.Message, text) {
		t.Fatalf("got %d %s %q, want %d %s containing %q", ae.Status, ae.Code, ae.Message, status, code, text)
	}
}

// The admin API through a follower's socket: paths of another node
// (relayed over the LAN), path down/up in both modes, leader transfers in
// both sites, and clear refusals that change nothing.
func TestAdminAPI(t *testing.T) {
	lab := clustertest.Start(t, func(c *daemon.Config) {
		if c.Site == "bravo" && c.Node == "bravo-3" {
			c.AllowRemoteDrills = true
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := lab.Leader("alpha")
	follower := otherNode("alpha", leader)
	c := lab.Client(follower)

	pr, err := c.Paths(ctx, leader)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Node != leader || len(pr.Admin) != 2 || pr.Admin[0].Path != "fiber" || pr.Admin[1].Path != "sat" {
		t.Fatalf("paths of %s: %+v", leader, pr)
	}
	// Every bravo node on both paths, plus the LAN to the two alpha peers.
	var wan int
	for _, p := range pr.Paths {
		if p.Site == "bravo" {
			wan++
		}
	}
	if wan != 6 {
		t.Fatalf("%d bravo (node, path) entries, want 6: %+v", wan, pr.Paths)
	}
	clustertest.Eventually(t, 10*time.Second, "every path of the leader up", func() bool {
		pr, _ := c.Paths(ctx, leader)
		for _, p := range pr.Paths {
			if p.State != client.PathUp {
				return false
			}
		}
		return true
	})

	// Silent cut of fiber on the leader, relayed.
	pa, err := c.PathDown(ctx, leader, "fiber", client.ModeDrop)
	if err != nil {
		t.Fatal(err)
	}
	if pa.Node != leader || pa.State != "down" || pa.Mode != client.ModeDrop {
		t.Fatalf("path down: %+v", pa)
	}
	pr, _ = c.Paths(ctx, leader)
	if pr.Admin[0].State != "down" || pr.Admin[0].Mode != client.ModeDrop {
		t.Fatalf("admin state after cut: %+v", pr.Admin)
	}
	// Bravo's nodes see the leader's fiber go down by themselves.
	clustertest.Eventually(t, 15*time.Second, "bravo to see the silent cut", func() bool {
		pr, err := lab.Client("bravo-1").Paths(ctx, "")
		if err != nil {
			return false
		}
		for _, p := range pr.Paths {
			if p.Node == leader && p.Path == "fiber" {
				return p.State == client.PathDown
			}
		}
		return false
	})
	st, err := lab.Client(leader).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Alarms) == 0 || !strings.Contains(strings.Join(st.Alarms, "\n"), "fiber") {
		t.Fatalf("status alarms during the cut: %q", st.Alarms)
	}
	// Traffic still flows (over sat).
	m, err := clustertest.SubmitRetrying(ctx, c, client.SubmitRequest{To: "bravo", Key: "admin-1", Payload: []byte("x"), Wait: "delivered"})
	if err != nil || m.State != "delivered" {
		t.Fatalf("submit during the cut: %+v %v", m, err)
	}
	if _, err := c.PathUp(ctx, leader, "fiber"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PathDown(ctx, "", "sat", ""); err != nil { // close mode, on the follower itself
		t.Fatal(err)
	}
	pr, _ = c.Paths(ctx, "")
	if pr.Admin[1].State != "down" || pr.Admin[1].Mode != client.ModeClose {
		t.Fatalf("admin state after close: %+v", pr.Admin)
	}
	if _, err := c.PathUp(ctx, "", "sat"); err != nil {
		t.Fatal(err)
	}

	// Mistakes are refused with a clear message and change nothing.
	_, err = c.PathDown(ctx, "", "copper", "")
	wantAPIError(t, err, http.StatusNotFound, client.CodeNotFound, `no path "copper"`)
	_, err = c.PathDown(ctx, "", "fiber", "sideways")
	wantAPIError(t, err, http.StatusBadRequest, client.CodeBadRequest, `mode="sideways"`)
	_, err = c.PathDown(ctx, "", "lan", "")
	wantAPIError(t, err, http.StatusBadRequest, client.CodeBadRequest, "intra-site link")
	_, err = c.Paths(ctx, "bravo-1")
	wantAPIError(t, err, http.StatusBadRequest, client.CodeBadRequest, "not a node of site alpha")
	_, err = c.TransferLeader(ctx, "", leader)
	wantAPIError(t, err, http.StatusConflict, client.CodeConflict, "already the leader")
	pr, _ = c.Paths(ctx, "")
	for _, a := range pr.Admin {
		if a.State != "up" {
			t.Fatalf("a refused request changed %+v", a)
		}
	}

	// Leader transfer of our own site, asked through a follower.
	to := otherNode("alpha", leader)
	if to == follower {
		to = daemon.LabNodes("alpha")[2]
		if to == leader {
			to = daemon.LabNodes("alpha")[1]
		}
	}
	lt, err := c.TransferLeader(ctx, "", to)
	if err != nil {
		t.Fatal(err)
	}
	if lt.From != leader || lt.To != to {
		t.Fatalf("transfer: %+v, want %s → %s", lt, leader, to)
	}
	if got := lab.Leader("alpha"); got != to {
		t.Fatalf("leader after transfer %s, want %s", got, to)
	}

	// Leader transfer of the other site (it allows remote drills).
	bl := lab.Leader("bravo")
	lt, err = c.TransferLeader(ctx, "bravo", "")
	if err != nil {
		t.Fatal(err)
	}
	if lt.Site != "bravo" || lt.From != bl || lt.To == bl || lt.To == "" {
		t.Fatalf("bravo transfer: %+v (leader was %s)", lt, bl)
	}
}

// A site that does not allow remote drills refuses to move its leader.
func TestRemoteTransferRefused(t *testing.T) {
	lab := clustertest.Start(t, func(c *daemon.Config) { c.AllowRemoteDrills = c.Site == "alpha" })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bl := lab.Leader("bravo")
	_, err := lab.Client("alpha-1").TransferLeader(ctx, "bravo", "")
	wantAPIError(t, err, http.StatusConflict, client.CodeConflict, "allow_remote_drills")
	if got := lab.Leader("bravo"); got != bl {
		t.Fatalf("bravo's leader moved from %s to %s", bl, got)
	}
}

// Drill traffic is delivered and acknowledged like any other, listed by
// the arrivals query, and kept out of the destination's inbox.
func TestDrillTrafficStaysOutOfInbox(t *testing.T) {
	lab := clustertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := lab.Client("alpha-2")
	base, err := c.Arrivals(ctx, "bravo", "routine", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		m, err := clustertest.SubmitRetrying(ctx, c, client.SubmitRequest{To: "bravo", Key: fmt.Sprintf("canary-%d", i), Drill: true, Payload: []byte("c"), Wait: "delivered"})
		if err != nil || m.State != "delivered" {
			t.Fatalf("drill submit: %+v %v", m, err)
		}
	}
	if _, err := clustertest.SubmitRetrying(ctx, c, client.SubmitRequest{To: "bravo", Key: "real", Payload: []byte("r"), Wait: "delivered"}); err != nil {
		t.Fatal(err)
	}
	// The answering bravo node may be a follower a moment behind.
	var ar *client.ArrivalsReply
	clustertest.Eventually(t, 10*time.Second, "bravo to show all six", func() bool {
		ar, err = c.Arrivals(ctx, "bravo", "routine", base.Last, 1000)
		return err == nil && ar.Last == base.Last+6
	})
	if len(ar.Arrivals) != 5 {
		t.Fatalf("arrivals: %+v (base last %d)", ar, base.Last)
	}
	for i, a := range ar.Arrivals {
		if a.Key != fmt.Sprintf("canary-%d", i) || a.ArrivedAt.Before(a.SubmittedAt.Add(-time.Second)) {
			t.Fatalf("arrival %d: %+v", i, a)
		}
	}
	inbox := clustertest.DrainInbox(t, lab.Client("bravo-3"), 1, 20*time.Second)
	if len(inbox) != 1 || inbox[0].Key != "real" {
		t.Fatalf("bravo's inbox: %+v, want only the real message", inbox)
	}
	_, err = c.Arrivals(ctx, "alpha", "routine", 0, 10)
	wantAPIError(t, err, http.StatusBadRequest, client.CodeUnknownSite, "not another configured site")
}

// Callers that are neither root nor in admin_group are refused the admin
// API and drill traffic; the ordinary API stays open to them.
func TestAdminNeedsPrivilege(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	if os.Getenv("HOTLINE_TEST_CLIENT") != "" {
		t.Skip("child")
	}
	// The socket and a copy of this test binary where nobody can reach them.
	pub, err := os.MkdirTemp("", "hotline-admin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	if err := os.Chmod(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(pub, "child.test")
	if data, err := os.ReadFile(os.Args[0]); err != nil || os.WriteFile(bin, data, 0o755) != nil {
		t.Fatalf("copy test binary: %v", err)
	}
	lab := clustertest.Start(t, func(c *daemon.Config) {
		c.SocketMode = "0666"
		c.Socket = filepath.Join(pub, c.Node+".sock")
	})
	sock := lab.Configs["alpha-1"].Socket
	cmd := exec.Command(bin, "-test.run=^TestAdminClientAsNobody$", "-test.count=1", "-test.v")
	cmd.Dir = pub
	cmd.Env = append(os.Environ(), "HOTLINE_TEST_CLIENT="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("client as nobody: %v\n%s", err, out)
	}
}

// TestAdminClientAsNobody is the child of TestAdminNeedsPrivilege.
func TestAdminClientAsNobody(t *testing.T) {
	sock := os.Getenv("HOTLINE_TEST_CLIENT")
	if sock == "" {
		t.Skip("run by TestAdminNeedsPrivilege")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := client.New(sock)
	if _, err := c.Status(ctx); err != nil {
		t.Fatalf("status as nobody: %v", err)
	}
	_, err := c.Paths(ctx, "")
	wantAPIError(t, err, http.StatusForbidden, client.CodeForbidden, "root only")
	_, err = c.PathDown(ctx, "", "fiber", "drop")
	wantAPIError(t, err, http.StatusForbidden, client.CodeForbidden, "uid 65534")
	_, err = c.TransferLeader(ctx, "", "")
	wantAPIError(t, err, http.StatusForbidden, client.CodeForbidden, "root only")
	_, err = c.Members(ctx, "")
	wantAPIError(t, err, http.StatusForbidden, client.CodeForbidden, "root only")
	_, err = c.MemberRemove(ctx, "alpha-2", true)
	wantAPIError(t, err, http.StatusForbidden, client.CodeForbidden, "root only")
	var backup strings.Builder
	_, err = c.Backup(ctx, &backup, nil) // backup.go
	wantAPIError(t, err, http.StatusForbidden, client.CodeForbidden, "root only")
	_, err = c.Submit(ctx, client.SubmitRequest{To: "bravo", Drill: true, Payload: []byte("x")})
	wantAPIError(t, err, http.StatusForbidden, client.CodeForbidden, "drill traffic")
}
