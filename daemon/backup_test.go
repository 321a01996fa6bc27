package daemon_test

import (
	"bytes"
	"context"
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
	"github.com/hotline-link/hotline/queue"
)

// TestBackupRestoreSite takes a backup of one alpha node mid-traffic, lets
// traffic go on, loses the whole of site alpha, restores its three nodes
// from the backup as a new Raft cluster and sends again both ways. Every
// message acknowledged — before the backup, between the backup and the
// loss (all delivered before the loss here), and after the restore —
// must be in the other site's inbox exactly once, in order, with no
// sequence gap: none dropped as a duplicate.
func TestBackupRestoreSite(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	if os.Geteuid() != 0 {
		t.Skip("the backup is an admin call: run as root (or set admin_group)")
	}
	lab := clustertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	g := clustertest.NewLedger()

	// Traffic both ways; the backup is taken halfway through.
	const perNode = 30
	tr := clustertest.StartTraffic(ctx, "pre", perNode, lab.Client, g)
	for tr.Progress.Load() < 3*perNode {
		if ctx.Err() != nil {
			t.Fatal("traffic did not get going")
		}
		time.Sleep(10 * time.Millisecond)
	}
	beforeBackup := len(g.Sent())
	file := filepath.Join(t.TempDir(), "alpha.backup")
	var stdout, stderr bytes.Buffer
	start := time.Now()
	if err := ctl.Run(ctx, []string{"--socket", lab.Configs["alpha-2"].Socket, "backup", file}, nil, &stdout, &stderr); err != nil {
		t.Fatalf("hotlinectl backup: %v\n%s", err, stderr.String())
	}
	took := time.Since(start)
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v", fi, err)
	}
	if _, err := os.Stat(file + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("FILE.tmp left behind: %v", err)
	}
	if !strings.Contains(stderr.String(), " bytes") || !strings.Contains(stdout.String(), " verified)") {
		t.Fatalf("backup output: stdout %q stderr %q", stdout.String(), stderr.String())
	}
	t.Logf("backup: %d bytes in %v with %d of %d submissions acknowledged; %s", fi.Size(), took.Round(time.Millisecond), beforeBackup, 2*3*perNode, strings.TrimSpace(stdout.String()))
	tr.Wait(t)

	// Between the backup and the loss, everything is delivered both ways.
	for _, site := range daemon.LabSites {
		waitAllAcked(t, lab.Node(lab.Leader(site)), time.Minute)
	}
	var afterBackupKey, afterBackupID string
	for k, s := range g.Sent() {
		if s.From == "alpha" && strings.HasSuffix(k, "-29") {
			afterBackupKey, afterBackupID = k, s.ID
		}
	}

	// Site alpha loses all its nodes' data.
	loseSite(t, lab, "alpha")
	// A node with Raft state is not restored over.
	cfg1 := lab.Configs["alpha-1"]
	os.MkdirAll(filepath.Join(cfg1.DataDir, "raft"), 0o700)
	os.WriteFile(filepath.Join(cfg1.DataDir, "raft", "raft.db"), []byte("x"), 0o600)
	if _, err := daemon.RestoreNode(cfg1, file); err == nil || !strings.Contains(err.Error(), "holds Raft state") {
		t.Fatalf("restore over Raft state: %v", err)
	}
	os.RemoveAll(cfg1.DataDir)
	restoreSite(t, lab, "alpha", file, "alpha-2")
	lab.Leader("alpha")

	// The restored site does not know what alpha sent after the backup
	// (bravo has it), and says so until it has heard from bravo.
	if _, err := lab.Client("alpha-1").Get(ctx, afterBackupID); !client.IsCode(err, client.CodeNotFound) {
		t.Errorf("restored alpha knows %s (%s), submitted after the backup: %v", afterBackupKey, afterBackupID, err)
	}

	// Traffic both ways after the restore.
	tr = clustertest.StartTraffic(ctx, "post", 15, lab.Client, g)
	tr.Wait(t)
	for _, site := range daemon.LabSites {
		waitAllAcked(t, lab.Node(lab.Leader(site)), time.Minute)
	}
	st, err := lab.Client("alpha-3").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.Alarms {
		if strings.Contains(a, "restored from a backup") {
			t.Errorf("alarm still up after traffic: %s", a)
		}
	}
	want := map[string]int{}
	for _, s := range g.Sent() {
		want[s.To]++
	}
	for _, site := range daemon.LabSites {
		node := daemon.LabNodes(site)[0]
		msgs := clustertest.DrainInbox(t, lab.Client(node), want[site], time.Minute)
		g.CheckArrivals(t, site, msgs)
	}
}

// waitAllAcked waits until every outbound channel of n's site has been
// acknowledged by its destination.
func waitAllAcked(t testing.TB, n *daemon.Node, d time.Duration) {
	t.Helper()
	waitAcked(t, n, d, "channels", (*queue.Store).Outbound, func(c queue.OutChannel) bool { return c.Acked < c.Last })
}

// waitReceiptsAcked waits until every receipt queue of n's site has been
// acknowledged by the origin.
func waitReceiptsAcked(t testing.TB, n *daemon.Node, d time.Duration) {
	t.Helper()
	waitAcked(t, n, d, "receipt queues", (*queue.Store).ReceiptQueues, func(q queue.ReceiptQueue) bool { return q.Acked < q.Last })
}

// waitAcked waits up to d until no queue that list returns of n's store
// is open, and fails t naming n, what the queues are and the open ones.
func waitAcked[Q any](t testing.TB, n *daemon.Node, d time.Duration, what string, list func(*queue.Store) []Q, open func(Q) bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var still []Q
		for _, q := range list(daemon.StoreOf(n)) {
			if open(q) {
				still = append(still, q)
			}
		}
		if len(still) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not acknowledged after %v: %+v", daemon.ConfigOf(n).Node, what, d, still)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// loseSite stops every node of site and moves its data_dir aside (to
// DATA_DIR.lost): the site has lost all its disks.
func loseSite(t testing.TB, lab *clustertest.Lab, site string) {
	t.Helper()
	for _, node := range daemon.LabNodes(site) {
		if err := lab.StopNode(node); err != nil {
			t.Logf("close %s: %v", node, err)
		}
		dd := lab.Configs[node].DataDir
		if err := os.Rename(dd, dd+".lost"); err != nil {
			t.Fatal(err)
		}
	}
}

// restoreSite restores every node of site from file, a backup of site
// taken on node from (its header must say so), then starts them all.
func restoreSite(t testing.TB, lab *clustertest.Lab, site, file, from string) {
	t.Helper()
	for _, node := range daemon.LabNodes(site) {
		h, err := daemon.RestoreNode(lab.Configs[node], file)
		if err != nil {
			t.Fatalf("restore %s: %v", node, err)
		}
		if h.Site != site || h.Node != from {
			t.Fatalf("backup header %+v", h)
		}
	}
	for _, node := range daemon.LabNodes(site) {
		lab.StartNode(node)
	}
}

// TestBackupAPI: the backup route is admin only, takes no parameters, and
// hotlined restore checks its arguments and the file.
func TestBackupAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	if os.Geteuid() != 0 {
		t.Skip("the backup is an admin call: run as root")
	}
	lab := clustertest.Start(t)
	c := lab.Client("bravo-1")
	ctx := context.Background()
	var buf bytes.Buffer
	info, err := c.Backup(ctx, &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := queue.ReadBackup(bytes.NewReader(buf.Bytes()), &bytes.Buffer{})
	if err != nil || h.Site != "bravo" || h.Node != "bravo-1" || h.Applied != info.Applied || info.Size != int64(buf.Len()) {
		t.Fatalf("backup %+v, header %+v, %v", info, h, err)
	}
	// A second backup while one is in progress is refused (FILE.tmp).
	file := filepath.Join(t.TempDir(), "b.backup")
	os.WriteFile(file+".tmp", nil, 0o600)
	if out, err := ctlRun(ctx, lab.Configs["bravo-1"].Socket, "backup", file); err == nil || !strings.Contains(out+err.Error(), "exists") {
		t.Fatalf("backup over FILE.tmp: %v %s", err, out)
	}

	var out, errb bytes.Buffer
	err = daemon.Main(ctx, []string{"restore", "--config", "x.toml"}, &out, &errb)
	if !daemon.IsUsageError(err) {
		t.Fatalf("restore without --from: %v", err)
	}
	// hotlined restore with a node's config file: the lab's alpha-1.
	buf.Reset()
	if _, err := lab.Client("alpha-1").Backup(ctx, &buf, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	toml, err := os.ReadFile(filepath.Join("..", "configs", "lab", "alpha-1.toml"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "alpha-1.toml"), toml, 0o644)
	os.WriteFile(filepath.Join(dir, "alpha.backup"), buf.Bytes(), 0o600)
	args := []string{"restore", "--config", filepath.Join(dir, "alpha-1.toml"), "--from", filepath.Join(dir, "alpha.backup")}
	if err := daemon.Main(ctx, args, &out, &errb); err != nil {
		t.Fatalf("hotlined restore: %v", err)
	}
	if !strings.Contains(out.String(), "restored alpha/alpha-1 from") || !strings.Contains(out.String(), "sha256 ") {
		t.Fatalf("hotlined restore printed %q", out.String())
	}
	if fi, err := os.Stat(filepath.Join(dir, "data", "alpha-1", "state.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored state: %v %v", fi, err)
	}
	if err := daemon.Main(ctx, args, &out, &errb); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("hotlined restore over a state: %v", err)
	}

	cfg := *lab.Configs["bravo-1"]
	cfg.DataDir = t.TempDir()
	damaged := filepath.Join(t.TempDir(), "b")
	os.WriteFile(damaged, buf.Bytes()[:buf.Len()-10], 0o600)
	if _, err := daemon.RestoreNode(&cfg, damaged); !errors.Is(err, queue.ErrBadBackup) || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("restore of a truncated backup: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "state.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore left a state: %v", err)
	}
}

func ctlRun(ctx context.Context, socket string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	err := ctl.Run(ctx, append([]string{"--socket", socket}, args...), nil, &out, &errb)
	return out.String() + errb.String(), err
}

// TestRestoreUndelivered: messages acknowledged before the backup but not
// delivered when the site is lost are delivered exactly once from the
// restored site; messages acknowledged after the backup and not delivered
// before the loss are lost (the documented limit of a backup).
func TestRestoreUndelivered(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	if os.Geteuid() != 0 {
		t.Skip("the backup and path commands are admin calls: run as root")
	}
	lab := clustertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, node := range daemon.LabNodes("alpha") {
		for _, p := range lab.Configs[node].Paths {
			if _, err := lab.Client(node).PathDown(ctx, "", p, client.ModeClose); err != nil {
				t.Fatal(err)
			}
		}
	}
	submit := func(prefix string, n int) []string {
		var ids []string
		for i := range n {
			key := fmt.Sprintf("%s-%d", prefix, i)
			m, err := clustertest.SubmitRetrying(ctx, lab.Client("alpha-1"), client.SubmitRequest{To: "bravo", Precedence: queue.Precedences[i%4].String(), Key: key, Payload: []byte(key)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.ID)
		}
		return ids
	}
	before := submit("before", 20)
	file := filepath.Join(t.TempDir(), "alpha.backup")
	if out, err := ctlRun(ctx, lab.Configs["alpha-3"].Socket, "backup", "--quiet", file); err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	after := submit("after", 10)
	loseSite(t, lab, "alpha")
	restoreSite(t, lab, "alpha", file, "alpha-3") // new nodes: their paths are up again
	msgs := clustertest.DrainInbox(t, lab.Client("bravo-3"), len(before), time.Minute)
	got := map[string]int{}
	for _, m := range msgs {
		got[m.ID]++
	}
	for _, id := range before {
		if got[id] != 1 {
			t.Errorf("message %s, acknowledged before the backup, arrived %d times", id, got[id])
		}
	}
	for _, id := range after {
		if got[id] != 0 {
			t.Errorf("message %s, acknowledged after the backup and lost with the site, arrived", id)
		}
		if _, err := lab.Client("alpha-2").Get(ctx, id); !client.IsCode(err, client.CodeNotFound) {
			t.Errorf("restored alpha knows %s: %v", id, err)
		}
	}
	if len(msgs) != len(before) {
		t.Errorf("bravo's inbox holds %d messages, want the %d acknowledged before the backup", len(msgs), len(before))
	}
	t.Logf("%d acknowledged before the backup arrived once each; %d acknowledged after it were lost with the site", len(before), len(after))
}

// TestRestoreReceipts: read receipts keep flowing both ways after a site
// is restored from a backup, although both sides numbered receipts after
// the backup that the restored site has lost.
func TestRestoreReceipts(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	if os.Geteuid() != 0 {
		t.Skip("the backup is an admin call: run as root")
	}
	lab := clustertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	a, b := lab.Client("alpha-1"), lab.Client("bravo-1")
	send := func(c *client.Client, to, key string) string {
		m, err := clustertest.SubmitRetrying(ctx, c, client.SubmitRequest{To: to, Precedence: "priority", Key: key, Payload: []byte(key), Wait: "delivered"})
		if err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	ack := func(c *client.Client, ids ...string) {
		t.Helper()
		for ctx.Err() == nil {
			if _, err := c.Ack(ctx, ids); err == nil {
				return
			} else {
				t.Logf("ack: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("ack did not succeed")
	}
	waitRead := func(c *client.Client, id string) {
		t.Helper()
		for ctx.Err() == nil {
			if m, err := c.Get(ctx, id); err == nil && m.State == "read" {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s never became read at its origin", id)
	}
	var m, n []string // alpha → bravo, bravo → alpha
	for i := range 6 {
		m = append(m, send(a, "bravo", fmt.Sprintf("m%d", i)))
		n = append(n, send(b, "alpha", fmt.Sprintf("n%d", i)))
	}
	// Before the backup: receipts 1 and 2 each way.
	ack(b, m[0], m[1])
	ack(a, n[0], n[1])
	waitRead(a, m[1])
	waitRead(b, n[1])
	file := filepath.Join(t.TempDir(), "alpha.backup")
	if out, err := ctlRun(ctx, lab.Configs["alpha-1"].Socket, "backup", "--quiet", file); err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	// After it: receipts 3 and 4 each way, applied and acknowledged.
	ack(b, m[2], m[3])
	ack(a, n[2], n[3])
	waitRead(a, m[3])
	waitRead(b, n[3])
	for _, site := range daemon.LabSites {
		waitReceiptsAcked(t, lab.Node(lab.Leader(site)), time.Minute)
	}

	loseSite(t, lab, "alpha")
	restoreSite(t, lab, "alpha", file, "alpha-1")
	a = lab.Client("alpha-2")
	// The restored alpha numbers its next receipt 3, which bravo has (n2's):
	// it must be renumbered, or bravo would drop it.
	ack(a, n[4])
	waitRead(b, n[4])
	// Bravo's next receipt is 5; the restored alpha had applied only 2.
	ack(b, m[4])
	waitRead(a, m[4])
	ack(b, m[5])
	ack(a, n[5])
	waitRead(a, m[5])
	waitRead(b, n[5])
	for _, site := range daemon.LabSites {
		waitReceiptsAcked(t, lab.Node(lab.Leader(site)), time.Minute)
	}
	// What the restored alpha lost: the receipts of m2, m3 (read after
	// the backup) — they stay delivered.
	if st, err := a.Get(ctx, m[2]); err != nil || st.State != "delivered" {
		t.Errorf("m2 at the restored alpha: %+v %v (its receipt came after the backup)", st, err)
	}
}
