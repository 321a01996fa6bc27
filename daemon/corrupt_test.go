package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/queue"
)

// A follower whose state.db had one payload byte flipped while it was
// stopped is made leader: it reports the corruption (alarm, metric) and
// never forwards the damaged message; the other site never stores it.
// Then the README's rebuild procedure (stop, move data_dir aside, start)
// restores the node from its site, and the true bytes are delivered.
func TestCorruptFollowerNeverForwards(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node test")
	}
	lab := clustertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader := lab.Leader("alpha")
	c := lab.Client(leader)

	// Hold alpha's traffic: every alpha node's inter-site paths down.
	setPaths := func(node string, up bool) {
		t.Helper()
		for _, p := range []string{"fiber", "sat"} {
			var err error
			if up {
				_, err = c.PathUp(ctx, node, p)
			} else {
				_, err = c.PathDown(ctx, node, p, client.ModeClose)
			}
			if err != nil {
				t.Fatalf("path %s on %s: %v", p, node, err)
			}
		}
	}
	for _, n := range daemon.LabNodes("alpha") {
		setPaths(n, false)
	}
	payload := []byte("CORRUPTION-TEST-PAYLOAD-0123456789")
	m, err := clustertest.SubmitRetrying(ctx, c, client.SubmitRequest{To: "bravo", Key: "corrupt-1", Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	victim := otherNode("alpha", leader)
	clustertest.Eventually(t, 20*time.Second, "the victim to apply the message", func() bool {
		_, err := daemon.StoreOf(lab.Node(victim)).Lookup(m.ID)
		return err == nil
	})

	// The payload is stored sealed: the bytes to damage are the envelope's.
	st, err := daemon.StoreOf(lab.Node(victim)).Lookup(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored := bytes.Clone(st.Message.Payload)

	// Stop the victim, flip one payload byte in its state.db, start it.
	lab.Node(victim).Close()
	dbPath := filepath.Join(lab.Configs[victim].DataDir, "state.db")
	b, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, stored)
	if i < 0 || bytes.Contains(b[i+1:], stored) {
		t.Fatalf("payload found %d times in %s", bytes.Count(b, stored), dbPath)
	}
	b[i+len(stored)-4] ^= 0x01 // in the ciphertext
	flipped := bytes.Clone(b[i : i+len(stored)])
	if err := os.WriteFile(dbPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	lab.StartNode(victim)

	// Make it leader and open the paths.
	clustertest.Eventually(t, 30*time.Second, "leadership to move to the victim", func() bool {
		tr, err := c.TransferLeader(ctx, "", victim)
		return err == nil && tr.To == victim
	})
	for _, n := range daemon.LabNodes("alpha") {
		setPaths(n, true)
	}
	vc := lab.Client(victim)
	clustertest.Eventually(t, 30*time.Second, "the victim to report the corruption", func() bool {
		st, err := vc.Status(ctx)
		if err != nil {
			return false
		}
		for _, a := range st.Alarms {
			if strings.Contains(a, "store corruption") && strings.Contains(a, dbPath) {
				return true
			}
		}
		return false
	})
	if got := counterValue(t, lab.Node(victim), "hotline_store_corruption_total"); got < 1 {
		t.Fatalf("hotline_store_corruption_total = %v", got)
	}
	// The victim leads and its paths are up: give the forwarder time to
	// (not) send, then check bravo never stored the message.
	time.Sleep(3 * time.Second)
	if lab.Leader("alpha") != victim {
		t.Logf("leadership left the victim meanwhile")
	}
	for _, n := range daemon.LabNodes("bravo") {
		if st, err := daemon.StoreOf(lab.Node(n)).LookupInbound(m.ID); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("%s stored the damaged message: %+v, %v", n, st, err)
		}
	}
	if _, err := daemon.StoreOf(lab.Node(victim)).Lookup(m.ID); !errors.Is(err, queue.ErrCorrupt) {
		t.Fatalf("victim Lookup: %v; want ErrCorrupt", err)
	}

	// Rebuild: leadership away, stop, move data_dir aside, start.
	other := otherNode("alpha", victim)
	clustertest.Eventually(t, 30*time.Second, "leadership to leave the victim", func() bool {
		tr, err := c.TransferLeader(ctx, "", other)
		return err == nil && tr.To != victim
	})
	lab.Node(victim).Close()
	dir := lab.Configs[victim].DataDir
	if err := os.Rename(dir, dir+".corrupt"); err != nil {
		t.Fatal(err)
	}
	lab.StartNode(victim)
	clustertest.Eventually(t, 60*time.Second, "the rebuilt node to hold the true message", func() bool {
		st, err := daemon.StoreOf(lab.Node(victim)).Lookup(m.ID)
		return err == nil && bytes.Equal(st.Message.Payload, stored)
	})
	if n, _ := daemon.StoreOf(lab.Node(victim)).Corruption(); n != 0 {
		t.Fatalf("rebuilt node reports %d damaged records", n)
	}
	// The intact copy is delivered by the new leader.
	msgs := clustertest.DrainInbox(t, lab.Client("bravo-1"), 1, 60*time.Second)
	if len(msgs) != 1 || msgs[0].ID != m.ID || !bytes.Equal(msgs[0].Payload, payload) {
		t.Fatalf("bravo's inbox: %+v; want %s with the true payload", msgs, m.ID)
	}
	for _, n := range daemon.LabNodes("bravo") {
		if st, err := daemon.StoreOf(lab.Node(n)).LookupInbound(m.ID); err != nil || bytes.Equal(st.Message.Payload, flipped) || !bytes.Equal(st.Message.Payload, stored) {
			t.Fatalf("%s holds %v, %v; want the intact envelope", n, st, err)
		}
	}
}

// counterValue reads one unlabelled metric of node n.
func counterValue(t *testing.T, n *daemon.Node, name string) float64 {
	t.Helper()
	mfs, err := daemon.Gather(n)
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
