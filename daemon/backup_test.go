package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hotline/daemon/client"
	"hotline/daemon/ctl"
	"hotline/queue"
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
	lab := startLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	g := newLedger()

	// Traffic both ways; the backup is taken halfway through.
	const perNode = 30
	tr := startTraffic(ctx, "pre", perNode, lab.client, g)
	for tr.progress.Load() < 3*perNode {
		if ctx.Err() != nil {
			t.Fatal("traffic did not get going")
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.mu.Lock()
	beforeBackup := len(g.sent)
	g.mu.Unlock()
	file := filepath.Join(t.TempDir(), "alpha.backup")
	var stdout, stderr bytes.Buffer
	start := time.Now()
	if err := ctl.Run(ctx, []string{"--socket", lab.cfgs["alpha-2"].Socket, "backup", file}, nil, &stdout, &stderr); err != nil {
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
	if !strings.Contains(stderr.String(), " bytes") || !strings.Contains(stdout.String(), "sha256 verified") {
		t.Fatalf("backup output: stdout %q stderr %q", stdout.String(), stderr.String())
	}
	t.Logf("backup: %d bytes in %v with %d of %d submissions acknowledged; %s", fi.Size(), took.Round(time.Millisecond), beforeBackup, 2*3*perNode, strings.TrimSpace(stdout.String()))
	tr.wait(t)

	// Between the backup and the loss, everything is delivered both ways.
	for _, site := range LabSites {
		waitAllAcked(t, lab.nodes[lab.leader(site)], time.Minute)
	}
	var afterBackupKey, afterBackupID string
	g.mu.Lock()
	for k, s := range g.sent {
		if s.from == "alpha" && strings.HasSuffix(k, "-29") {
			afterBackupKey, afterBackupID = k, s.id
		}
	}
	g.mu.Unlock()

	// Site alpha loses all its nodes' data.
	for _, node := range LabNodes("alpha") {
		if err := lab.nodes[node].Close(); err != nil {
			t.Logf("close %s: %v", node, err)
		}
		delete(lab.nodes, node)
		dd := lab.cfgs[node].DataDir
		if err := os.Rename(dd, dd+".lost"); err != nil {
			t.Fatal(err)
		}
	}
	// A node with Raft state is not restored over.
	cfg1 := lab.cfgs["alpha-1"]
	os.MkdirAll(filepath.Join(cfg1.DataDir, "raft"), 0o700)
	os.WriteFile(filepath.Join(cfg1.DataDir, "raft", "raft.db"), []byte("x"), 0o600)
	if _, err := RestoreNode(cfg1, file); err == nil || !strings.Contains(err.Error(), "holds Raft state") {
		t.Fatalf("restore over Raft state: %v", err)
	}
	os.RemoveAll(cfg1.DataDir)
	for _, node := range LabNodes("alpha") {
		h, err := RestoreNode(lab.cfgs[node], file)
		if err != nil {
			t.Fatalf("restore %s: %v", node, err)
		}
		if h.Site != "alpha" || h.Node != "alpha-2" {
			t.Fatalf("backup header %+v", h)
		}
	}
	for _, node := range LabNodes("alpha") {
		lab.start(node)
	}
	lab.leader("alpha")

	// The restored site does not know what alpha sent after the backup
	// (bravo has it), and says so until it has heard from bravo.
	if _, err := lab.client("alpha-1").Get(ctx, afterBackupID); !client.IsCode(err, client.CodeNotFound) {
		t.Errorf("restored alpha knows %s (%s), submitted after the backup: %v", afterBackupKey, afterBackupID, err)
	}

	// Traffic both ways after the restore.
	tr = startTraffic(ctx, "post", 15, lab.client, g)
	tr.wait(t)
	for _, site := range LabSites {
		waitAllAcked(t, lab.nodes[lab.leader(site)], time.Minute)
	}
	st, err := lab.client("alpha-3").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range st.Alarms {
		if strings.Contains(a, "restored from a backup") {
			t.Errorf("alarm still up after traffic: %s", a)
		}
	}
	g.mu.Lock()
	want := map[string]int{}
	for _, s := range g.sent {
		want[s.to]++
	}
	g.mu.Unlock()
	for _, site := range LabSites {
		node := LabNodes(site)[0]
		msgs := drainInbox(t, lab.client(node), want[site], time.Minute)
		g.checkArrivals(t, site, msgs)
	}
}

// waitAllAcked waits until every outbound channel of n's site has been
// acknowledged by its destination.
func waitAllAcked(t testing.TB, n *Node, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var open []queue.OutChannel
		for _, c := range n.store.Outbound() {
			if c.Acked < c.Last {
				open = append(open, c)
			}
		}
		if len(open) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: channels not acknowledged after %v: %+v", n.cfg.Node, d, open)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBackupAPI: the backup route is admin only, takes no parameters, and
// hotlined restore checks its arguments and the file.
func TestBackupAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	lab := startLab(t)
	c := lab.client("bravo-1")
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
	if out, err := ctlRun(ctx, lab.cfgs["bravo-1"].Socket, "backup", file); err == nil || !strings.Contains(out+err.Error(), "exists") {
		t.Fatalf("backup over FILE.tmp: %v %s", err, out)
	}

	var out, errb bytes.Buffer
	err = Main(ctx, []string{"restore", "--config", "x.toml"}, &out, &errb)
	if !IsUsageError(err) {
		t.Fatalf("restore without --from: %v", err)
	}
	cfg := *lab.cfgs["bravo-1"]
	cfg.DataDir = t.TempDir()
	damaged := filepath.Join(t.TempDir(), "b")
	os.WriteFile(damaged, buf.Bytes()[:buf.Len()-10], 0o600)
	if _, err := RestoreNode(&cfg, damaged); !errors.Is(err, queue.ErrBadBackup) || !strings.Contains(err.Error(), "truncated") {
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
