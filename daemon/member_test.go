package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/pki"
)

// alpha4 is the node the membership test adds to the lab's site alpha.
const (
	alpha4     = "alpha-4"
	alpha4Raft = "127.0.1.4:7000"
	alpha4Node = `
[[sites.nodes]]
name = "alpha-4"
raft = "127.0.1.4:7000"
paths = { fiber = "127.0.1.4:7100", sat = "127.1.1.4:7100" }
join = true                    # added to the running site by hotlinectl member add
`
)

// withAlpha4 lists alpha-4 (join = true) under site alpha in a lab
// config, as the README's procedure has the operator do on every node.
func withAlpha4(_ string, b []byte) []byte {
	const bravo = "\n[[sites]]\nname = \"bravo\""
	i := bytes.Index(b, []byte(bravo))
	if i < 0 {
		panic("lab config has no bravo site table")
	}
	return append(append(append([]byte{}, b[:i]...), alpha4Node...), b[i:]...)
}

// TestProcessLabMemberReplace replaces a dead appliance in the six-process
// lab under traffic, as the README's "Replacing or adding a node" has an
// operator do: alpha-4 (listed with join = true in every config) starts
// empty and waits; alpha-3 is killed with SIGKILL; removals that would
// lose quorum or remove the leader are refused and change nothing;
// `member replace alpha-3 alpha-4` through a follower adds alpha-4 (it
// catches up, then votes) and removes alpha-3; alpha-4 then takes
// submissions, leads the site and serves alpha's whole inbox. Every
// acknowledged submission must arrive exactly once.
func TestProcessLabMemberReplace(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts seven processes")
	}
	if os.Geteuid() != 0 {
		t.Skip("the membership API is admin only (root or admin_group); run as root")
	}
	began := time.Now()
	l := clustertest.StartProcLab(t)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(l.Dir, alpha4+".log"))
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", alpha4, b)
		}
	})
	for _, s := range daemon.LabSites {
		t.Logf("site %s leader: %s", s, l.Leader(s))
	}
	sock := func(n string) string { return filepath.Join("run", n+".sock") }

	out, err := l.CtlOutput("--socket", sock("alpha-2"), "member", "list")
	if err != nil || strings.Contains(out, alpha4) || strings.Count(out, " voter ") != 3 {
		t.Fatalf("member list before: %v\n%s", err, out)
	}

	// Traffic from every node of both sites until the end; alpha-3's
	// share goes through alpha-1, since alpha-3 is going to die.
	g := clustertest.NewLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	subs := clustertest.NewSubmitters(ctx, "member", g)
	submitter := func(site, node string, c *client.Client, n int) {
		to := "bravo"
		if site == "bravo" {
			to = "alpha"
		}
		subs.Go(site, node, to, c, n)
	}
	for _, site := range daemon.LabSites {
		for _, node := range daemon.LabNodes(site) {
			c := l.Client(node)
			if node == "alpha-3" {
				c = l.Client("alpha-1")
			}
			submitter(site, node, c, 0)
		}
	}
	time.Sleep(time.Second)

	// The dead appliance.
	t.Logf("kill -9 alpha-3 after %d submissions", subs.Acked.Load())
	l.Kill9("alpha-3")

	// The README's procedure: a certificate for the new appliance, its
	// entry (join = true) in every node's config, the running nodes
	// restarted one at a time, the new one started.
	l.Ctl("pki", "issue", "--dir", "pki", "--site", "alpha", "--node", alpha4)
	for _, s := range daemon.LabSites {
		for _, n := range daemon.LabNodes(s) {
			f := filepath.Join(l.Dir, n+".toml")
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(f, withAlpha4(n, b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(l.Dir, "alpha-1.toml"))
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`node = "alpha-1"`), []byte(`node = "alpha-4"`), 1)
	for _, k := range []string{`"data/`, `"run/`, `"pki/`} {
		b = bytes.ReplaceAll(b, []byte(k+"alpha-1"), []byte(k+"alpha-4"))
	}
	if err := os.WriteFile(filepath.Join(l.Dir, alpha4+".toml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	restartStart := time.Now()
	for _, n := range []string{"bravo-1", "bravo-2", "bravo-3", "alpha-1", "alpha-2"} {
		l.Restart(n)
	}
	t.Logf("rolling restart of the five live nodes: %v (%d submissions so far)", time.Since(restartStart).Round(time.Millisecond), subs.Acked.Load())

	// The new appliance starts empty and waits to be added.
	l.StartNode(alpha4)
	l.WaitLog(alpha4, regexp.MustCompile(`joining: not yet in the site's Raft configuration.*`), 10*time.Second)
	// Every change goes through the leader: wait until alpha-1 and alpha-2
	// name the same one (a rolling restart under load can leave an
	// election under way).
	leader := l.SettledAmong(30*time.Second, "alpha-1", "alpha-2")
	follower := "alpha-1"
	if leader == "alpha-1" {
		follower = "alpha-2"
	}
	t.Logf("alpha's leader: %s; asking through %s", leader, follower)

	// Refused, naming the node, and nothing changes.
	out, err = l.CtlOutput("--socket", sock(follower), "member", "remove", follower)
	if err == nil || !strings.Contains(out, follower) || !strings.Contains(out, "live") {
		t.Fatalf("removing live %s with alpha-3 dead: %v\n%s", follower, err, out)
	}
	t.Logf("refused as expected: %s", strings.TrimSpace(out))
	out, err = l.CtlOutput("--socket", sock(follower), "member", "remove", leader)
	if err == nil || !strings.Contains(out, leader) || !strings.Contains(out, "leader transfer") {
		t.Fatalf("removing the leader %s: %v\n%s", leader, err, out)
	}
	t.Logf("refused as expected: %s", strings.TrimSpace(out))
	out, err = l.CtlOutput("--socket", sock(follower), "member", "add", "alpha-9")
	if err == nil || !strings.Contains(out, "alpha-9") || !strings.Contains(out, "[[sites.nodes]]") {
		t.Fatalf("adding a node no config lists: %v\n%s", err, out)
	}

	start := time.Now()
	out, err = replaceMember(t, l, sock(follower), "alpha-3", alpha4, alpha4Raft, 30*time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("member replace: %v\n%s", err, out)
	}
	t.Logf("member replace alpha-3 alpha-4 took %v (%d submissions so far):\n%s", took.Round(time.Millisecond), subs.Acked.Load(), out)
	if !strings.Contains(out, "alpha-4 is a voter of site alpha") || !strings.Contains(out, "alpha-3 is no longer a member") {
		t.Fatalf("member replace output:\n%s", out)
	}
	l.WaitLog(alpha4, regexp.MustCompile(`joining: caught up.*`), 15*time.Second)
	for _, n := range []string{alpha4, leader} {
		b, _ := os.ReadFile(filepath.Join(l.Dir, n+".log"))
		for _, line := range regexp.MustCompile(`.*(joining|member add|member remove|snapshot).*`).FindAll(b, 20) {
			t.Logf("%s: %s", n, line)
		}
	}

	mr, err := l.Client(alpha4).Members(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range mr.Members {
		ids = append(ids, m.ID)
		if m.Suffrage != client.SuffrageVoter || !m.Live || m.Raft == nil || m.Raft.AppliedIndex == 0 {
			t.Errorf("member %+v: want a live voter with progress", m)
		}
	}
	if got := strings.Join(ids, ","); got != "alpha-1,alpha-2,alpha-4" {
		t.Fatalf("members after replace: %s", got)
	}
	out, _ = l.CtlOutput("--socket", sock(alpha4), "member", "list")
	t.Logf("member list on alpha-4:\n%s", out)

	// alpha-4 takes submissions (relayed to the leader), then leads.
	submitter("alpha", alpha4, l.Client(alpha4), 30)
	time.Sleep(time.Second)
	tctx, tcancel := context.WithTimeout(ctx, 15*time.Second)
	lt, err := l.Client(alpha4).TransferLeader(tctx, "", alpha4)
	tcancel()
	if err != nil {
		t.Fatalf("leader transfer to alpha-4: %v", err)
	}
	t.Logf("leadership of alpha moved from %s to %s", lt.From, lt.To)
	time.Sleep(3 * time.Second) // traffic with alpha-4 leading
	subs.Stop(t)
	t.Logf("%d submissions acknowledged", subs.Acked.Load())

	// alpha-4 has everything: alpha's inbox read through it.
	g.CheckArrivals(t, "alpha", clustertest.DrainInbox(t, l.Client(alpha4), g.AckedTo("alpha"), time.Minute))
	g.CheckArrivals(t, "bravo", clustertest.DrainInbox(t, l.Client("bravo-2"), g.AckedTo("bravo"), time.Minute))
	l.CheckAlive()
	if err := ctx.Err(); errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("the test ran out of time")
	}
	t.Logf("whole test: %v", time.Since(began).Round(time.Second))
}

// replaceMember runs hotlinectl member replace OLD NEW through socket,
// and runs it again (for up to within) only while it is refused before
// the leader changed anything: the node asked knows no leader, or the
// node it relayed to no longer leads (503, "retry"). Any other failure
// is returned at once: a replace whose first attempt may have partly
// happened is safe to repeat (NEW already a voter is not added again),
// but a repeat after one that completed answers "no such member" for
// OLD, so a test must not retry it blindly.
// refusedBeforeChange matches the two refusals of daemon/member.go that
// come before the leader touches the configuration.
var refusedBeforeChange = regexp.MustCompile(`(has no leader now|is no longer the leader \([^)]*\)); retry \(unavailable\)`)

func replaceMember(t *testing.T, l *clustertest.ProcLab, socket, old, new, raft string, within time.Duration) (string, error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := l.CtlOutput("--socket", socket, "member", "replace", old, new, "--raft", raft)
		if err == nil || !refusedBeforeChange.MatchString(out) || time.Now().After(deadline) {
			return out, err
		}
		t.Logf("member replace refused before any change, again in 500ms: %s", strings.TrimSpace(out))
		time.Sleep(500 * time.Millisecond)
	}
}

// TestMemberAPI runs the membership API in the in-process lab through a
// follower (relayed to the leader): the list, refusals that name the node
// and change nothing, then removing a live follower and adding it back.
func TestMemberAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("six-node lab")
	}
	if os.Geteuid() != 0 {
		t.Skip("the membership API is admin only (root or admin_group); run as root")
	}
	lab := clustertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := lab.Leader("alpha")
	follower := otherNode("alpha", leader)
	c := lab.Client(follower)
	voters := func(want ...string) {
		t.Helper()
		mr, err := c.Members(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range mr.Members {
			if m.Suffrage == client.SuffrageVoter {
				got = append(got, m.ID)
			}
			if m.Leader != (m.ID == leader) || m.Raft == nil || m.Raft.Node != m.ID {
				t.Errorf("member %+v (leader %s)", m, leader)
			}
		}
		slices.Sort(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("voters %v, want %v", got, want)
		}
	}
	all := daemon.LabNodes("alpha")
	voters(all...)

	_, err := c.MemberAdd(ctx, "alpha-9", "")
	wantAPIError(t, err, http.StatusConflict, client.CodeConflict, "alpha-9 is not a node of site alpha")
	_, err = c.MemberAdd(ctx, "bravo-1", "")
	wantAPIError(t, err, http.StatusConflict, client.CodeConflict, "bravo-1 is not a node of site alpha")
	_, err = c.MemberAdd(ctx, follower, "127.0.0.9:7000")
	wantAPIError(t, err, http.StatusConflict, client.CodeConflict, "differs from "+follower+"'s raft address")
	_, err = c.MemberAdd(ctx, "Alpha 9", "")
	wantAPIError(t, err, http.StatusBadRequest, client.CodeBadRequest, "id:")
	_, err = c.MemberRemove(ctx, "alpha-9", false)
	wantAPIError(t, err, http.StatusNotFound, client.CodeNotFound, "alpha-9")
	_, err = c.MemberRemove(ctx, leader, false)
	wantAPIError(t, err, http.StatusConflict, client.CodeConflict, leader+" leads the site")
	_, err = c.MemberReplace(ctx, follower, follower, "", false)
	wantAPIError(t, err, http.StatusBadRequest, client.CodeBadRequest, "old and id are both")
	voters(all...)

	// A live follower other than the one we ask through: the two left
	// are live, so this is allowed; then it comes back.
	victim := ""
	for _, n := range all {
		if n != leader && n != follower {
			victim = n
		}
	}
	mc, err := c.MemberRemove(ctx, victim, false)
	if err != nil {
		t.Fatal(err)
	}
	if mc.Removed != victim || mc.Leader != leader {
		t.Fatalf("remove: %+v", mc)
	}
	var left []string
	for _, n := range all {
		if n != victim {
			left = append(left, n)
		}
	}
	voters(left...)
	m, err := clustertest.SubmitRetrying(ctx, c, client.SubmitRequest{To: "bravo", Key: "while-two", Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if mc, err = c.MemberAdd(ctx, victim, ""); err != nil {
		t.Fatal(err)
	}
	if mc.Added != victim {
		t.Fatalf("add: %+v", mc)
	}
	voters(all...)
	// The node that was out has what was committed meanwhile.
	if got, err := lab.Client(victim).Get(ctx, m.ID); err != nil || got.ID != m.ID {
		t.Fatalf("get %s on %s: %+v, %v", m.ID, victim, got, err)
	}
}

// TestMemberAddWaitsForCatchUp adds a node that is not running yet: it
// stays a non-voter, commits go on, and the add answers 503 naming what
// to do; once the node runs, the same add makes it a voter with the
// site's messages.
func TestMemberAddWaitsForCatchUp(t *testing.T) {
	if testing.Short() {
		t.Skip("six-node lab")
	}
	if os.Geteuid() != 0 {
		t.Skip("the membership API is admin only (root or admin_group); run as root")
	}
	a4 := daemon.NodeConfig{Name: alpha4, Raft: clustertest.FreeAddr(t, "127.0.21.4"), Join: true,
		Paths: map[string]string{"fiber": clustertest.FreeAddr(t, "127.0.21.4"), "sat": clustertest.FreeAddr(t, "127.0.31.4")}}
	lab := clustertest.Start(t, func(c *daemon.Config) {
		c.SubmitTimeout.Duration = 2 * time.Second // catch-up wait: 4s
		// c.Sites is shared by the lab's configs: list alpha-4 once.
		if !slices.ContainsFunc(c.Sites[0].Nodes, func(n daemon.NodeConfig) bool { return n.Name == alpha4 }) {
			c.Sites[0].Nodes = append(c.Sites[0].Nodes, a4)
		}
	})
	if _, _, err := pki.Issue(filepath.Join(lab.Dir, "pki"), "alpha", alpha4); err != nil {
		t.Fatal(err)
	}
	c4 := *lab.Configs["alpha-1"]
	c4.Node, c4.DataDir, c4.Socket = alpha4, filepath.Join(lab.Dir, alpha4), filepath.Join(lab.Dir, alpha4+".sock")
	c4.TLS.Cert, c4.TLS.Key = filepath.Join(lab.Dir, "pki", alpha4+".crt"), filepath.Join(lab.Dir, "pki", alpha4+".key")
	if err := c4.Validate(); err != nil {
		t.Fatal(err)
	}
	lab.Configs[alpha4] = &c4

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := lab.Leader("alpha")
	c := lab.Client(leader)
	start := time.Now()
	_, err := c.MemberAdd(ctx, alpha4, "")
	wantAPIError(t, err, http.StatusServiceUnavailable, client.CodeUnavailable, "alpha-4 is in the configuration as a non-voter but has not caught up")
	t.Logf("add of a node that is not running: %v after %v", err, time.Since(start).Round(time.Millisecond))
	mr, err := c.Members(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if m := mr.Members[len(mr.Members)-1]; m.ID != alpha4 || m.Suffrage != client.SuffrageNonvoter || m.Live || m.Error == "" {
		t.Fatalf("alpha-4 in the list: %+v", m)
	}
	// A non-voter does not count for quorum: commits go on.
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	m, err := c.Submit(sctx, client.SubmitRequest{To: "bravo", Key: "while-nonvoter", Payload: []byte("x")})
	scancel()
	if err != nil {
		t.Fatalf("submit with alpha-4 a non-voter that is down: %v", err)
	}

	// A node of a release before the site's version (to its peers, one
	// that speaks hotline-raft/1 only) is not made a voter.
	clustertest.Eventually(t, 30*time.Second, "alpha's site version to be raised", func() bool {
		return lab.Node(leader).Status().SiteVersion == queue.MaxSiteVersion
	})
	daemon.OfferRaftProtocols(lab.Configs[alpha4], []string{consensus.RaftProtocol1})
	lab.StartNode(alpha4)
	_, err = c.MemberAdd(ctx, alpha4, "")
	wantAPIError(t, err, http.StatusConflict, client.CodeConflict, "alpha-4 speaks hotline-raft/1, a release before site version 2, which site alpha runs")
	if err := lab.StopNode(alpha4); err != nil {
		t.Fatal(err)
	}
	daemon.OfferRaftProtocols(lab.Configs[alpha4], nil)

	lab.StartNode(alpha4)
	var mc *client.MemberChange
	// Until the leader's Raft finds the old connection broken (its next
	// RPC to it), that connection's hotline-raft/1 still counts.
	clustertest.Eventually(t, 30*time.Second, "member add of alpha-4 once it speaks hotline-raft/2", func() bool {
		mc, err = c.MemberAdd(ctx, alpha4, "")
		if err != nil && strings.Contains(err.Error(), "speaks hotline-raft/1") {
			return false
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, m := range mc.Members {
		if m.Suffrage == client.SuffrageVoter && m.Live {
			voters++
		}
	}
	if mc.Added != alpha4 || voters != 4 {
		t.Fatalf("add after start: %+v", mc)
	}
	if got, err := lab.Client(alpha4).Get(ctx, m.ID); err != nil || got.ID != m.ID {
		t.Fatalf("get %s on alpha-4: %+v, %v", m.ID, got, err)
	}
	// Four live voters: removing one leaves three, all live.
	if _, err := c.MemberRemove(ctx, alpha4, false); err != nil {
		t.Fatal(err)
	}
}
