package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/trust"
)

func shortCheckpoints(c *daemon.Config) { c.AuditCheckpointInterval.Duration = 200 * time.Millisecond }

// auditTraffic sends n messages each way, reads and acknowledges them at
// the destination, and waits until they are read at the origin.
func auditTraffic(t *testing.T, lab *clustertest.Lab, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, dir := range [][2]string{{"alpha", "bravo"}, {"bravo", "alpha"}} {
		var ids []string
		for i := range n {
			m, err := clustertest.SubmitRetrying(ctx, lab.Client(dir[0]+"-1"), client.SubmitRequest{
				To: dir[1], Precedence: "flash", Key: fmt.Sprintf("audit-%s-%d", dir[0], i), Payload: []byte("audit me"), Wait: "delivered"})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.ID)
		}
		in := clustertest.DrainInbox(t, lab.Client(dir[1]+"-2"), n, time.Minute)
		clustertest.AckAll(ctx, t, lab.Client(dir[1]+"-2"), dir[1]+"-2", in)
		for _, id := range ids {
			clustertest.Eventually(t, 30*time.Second, id+" read at "+dir[0], func() bool {
				m, err := lab.Client(dir[0]+"-1").Get(ctx, id)
				return err == nil && m.State == "read"
			})
		}
	}
}

// waitExchanged waits until every node of each site holds a checkpoint of
// the other site's log covering at least min records.
func waitExchanged(t *testing.T, lab *clustertest.Lab, min int64) {
	t.Helper()
	for _, pair := range [][2]string{{"alpha", "bravo"}, {"bravo", "alpha"}} {
		for i := 1; i <= 3; i++ {
			node := fmt.Sprintf("%s-%d", pair[0], i)
			clustertest.Eventually(t, 30*time.Second, node+" holds a checkpoint of "+pair[1], func() bool {
				cp, err := daemon.StoreOf(lab.Node(node)).AuditCheckpoint(pair[1])
				return err == nil && cp.Size >= min
			})
		}
	}
}

// TestAuditLog runs both sites with traffic both ways and an operator
// action: each site's log is checkpointed, exchanged and verifies with
// `hotlinectl audit verify`; a forked checkpoint offered by the other
// site is kept and raises audit_fork; a record edited in a stopped node's
// state.db is found by verify, which names its index.
func TestAuditLog(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t, shortCheckpoints)
	keys := filepath.Join(lab.Dir, "pki", trust.KeyringFile)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, err := lab.Client("alpha-2").PathDown(ctx, "", "sat", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Client("alpha-2").PathUp(ctx, "", "sat"); err != nil {
		t.Fatal(err)
	}
	const n = 5
	auditTraffic(t, lab, n)
	// Each site: n submitted, n delivered, n read at the origin; n received,
	// n read at the destination; two operator records at alpha.
	waitExchanged(t, lab, 5*n)

	for _, node := range []string{"alpha-1", "bravo-2"} {
		out, err := lab.Hotlinectl(t, node, "", "audit", "verify", "--keys", keys)
		if err != nil {
			t.Fatalf("audit verify at %s: %v", node, err)
		}
		if !strings.Contains(out, "entries verified") || !strings.Contains(out, "held checkpoints consistent") {
			t.Fatalf("audit verify at %s printed:\n%s", node, out)
		}
		t.Logf("audit verify at %s:\n%s", node, out)
	}
	show, err := lab.Hotlinectl(t, "alpha-3", "", "audit", "show", "--limit", "1000")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"path_down by uid=", "path_up by uid=", "submitted", "received", "delivered", "read"} {
		if !strings.Contains(show, want) {
			t.Fatalf("audit show lacks %q:\n%s", want, show)
		}
	}
	note, err := lab.Hotlinectl(t, "bravo-1", "", "audit", "checkpoint", "--site", "alpha")
	if err != nil || !strings.HasPrefix(note, "hotline/alpha/audit\n") {
		t.Fatalf("audit checkpoint --site alpha at bravo-1: %v\n%s", err, note)
	}

	// A fork: bravo's key signs a checkpoint of the size alpha holds with
	// another root, and a node of bravo offers it to alpha.
	held, err := daemon.StoreOf(lab.Node("alpha-1")).AuditCheckpoint("bravo")
	if err != nil {
		t.Fatal(err)
	}
	key, err := trust.LoadSigningKey(filepath.Join(lab.Dir, "pki", trust.SigningKeyFile("bravo")))
	if err != nil {
		t.Fatal(err)
	}
	forged := held.Root
	forged[0] ^= 1
	msg, err := trust.SignCheckpoint(key, trust.Checkpoint{Site: "bravo", Size: held.Size, Root: forged})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"note": msg, "from": held.Size})
	// Only alpha's leader answers an offer (what it holds is current): a
	// follower refuses, naming the leader.
	link := daemon.LinkOf(lab.Node("bravo-3"))
	link.SetPreferred("alpha", lab.Follower("alpha"))
	rep, _, err := link.CallSite(ctx, "alpha", "", &transport.Call{Op: "audit.checkpoint", Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Code != "not_leader" || rep.Leader != lab.Leader("alpha") {
		t.Fatalf("a follower answered an offer: %+v (leader %s)", rep, lab.Leader("alpha"))
	}
	link.SetPreferred("alpha", rep.Leader)
	// At most one checkpoint of bravo is committed per half interval: an
	// offer right after bravo's own is told to retry later.
	for {
		rep, _, err = link.CallSite(ctx, "alpha", "", &transport.Call{Op: "audit.checkpoint", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Code != "retry_later" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rep.Code != "audit_fork" {
		t.Fatalf("forked checkpoint answered %+v, want code audit_fork", rep)
	}
	for i := 1; i <= 3; i++ {
		node := fmt.Sprintf("alpha-%d", i)
		clustertest.Eventually(t, 10*time.Second, node+" raises audit_fork", func() bool {
			return strings.Contains(strings.Join(daemon.Alarms(lab.Node(node)), "\n"), "audit log of site bravo forked")
		})
	}
	if cp, _ := daemon.StoreOf(lab.Node("alpha-1")).AuditCheckpoint("bravo"); cp.Root == forged {
		t.Fatal("the fork became the held checkpoint")
	}

	// An edited record: stop a follower of alpha, change one byte of
	// record 3 in its state.db, start it again.
	victim := lab.Follower("alpha")
	if err := lab.StopNode(victim); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(lab.Configs[victim].DataDir, "state.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("audit"))
		k := []byte{0, 0, 0, 0, 0, 0, 0, 3}
		v := append([]byte(nil), b.Get(k)...)
		if len(v) == 0 {
			return errors.New("no record 3")
		}
		v[len(v)-1] ^= 0x20
		return b.Put(k, v)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	lab.StartNode(victim)
	out, err := lab.Hotlinectl(t, victim, "", "audit", "verify", "--keys", keys)
	if err == nil || !strings.Contains(err.Error(), "audit record 3") { // the node refuses to serve it
		t.Fatalf("verify of an edited log at %s: %v\n%s", victim, err, out)
	}
	t.Logf("verify of the edited log at %s: %v", victim, err)
}

// TestAuditForkRefusedAtSender: alpha holds a checkpoint of bravo that
// bravo's log does not extend (signed with bravo's key by the test); when
// bravo's leader offers its own, alpha keeps it as a fork and bravo,
// refused, raises audit_fork too.
func TestAuditForkRefusedAtSender(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t, shortCheckpoints)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	key, err := trust.LoadSigningKey(filepath.Join(lab.Dir, "pki", trust.SigningKeyFile("bravo")))
	if err != nil {
		t.Fatal(err)
	}
	root := trust.Hash{1, 2, 3}
	msg, err := trust.SignCheckpoint(key, trust.Checkpoint{Site: "bravo", Size: 1, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	res, err := daemon.Propose(lab.Node(lab.Leader("alpha")), ctx, &queue.Command{Op: queue.OpCheckpoint, Time: time.Now().UnixNano(),
		Checkpoint: &queue.CheckpointCmd{Site: "bravo", Size: 1, Root: root, Note: msg}})
	if err != nil || res.Err != "" {
		t.Fatalf("holding a made-up checkpoint of bravo: %v %+v", err, res)
	}
	auditTraffic(t, lab, 2) // bravo's log grows; its leader signs and offers
	for node, want := range map[string]string{"alpha-1": "audit log of site bravo forked", lab.Leader("bravo"): "site alpha refused our audit checkpoint"} {
		clustertest.Eventually(t, 30*time.Second, node+" raises audit_fork", func() bool {
			return strings.Contains(strings.Join(daemon.Alarms(lab.Node(node)), "\n"), want)
		})
	}
	st, err := lab.Client(lab.Leader("bravo")).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bravo's alarms: %q", st.Alarms)
}
