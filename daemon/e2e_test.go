package daemon_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// TestTwoSitesExactlyOnce runs both sites in process and sends traffic both
// ways through every node, leaders and followers alike, while leadership
// moves on each site. Every acknowledged submission must arrive exactly
// once, in order per channel, and reach "read" after it is acknowledged.
func TestTwoSitesExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t)
	const perNode = 60
	g := clustertest.NewLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	tr := clustertest.StartTraffic(ctx, "e2e", perNode, lab.Client, g)
	// Move leadership on both sites while traffic flows.
	time.Sleep(300 * time.Millisecond)
	for _, site := range daemon.LabSites {
		old := lab.Leader(site)
		t.Logf("site %s: leadership moved from %s to %s", site, old, moveLeader(t, lab, site, ""))
	}
	tr.Wait(t)

	// Read each site's inbox through a follower and a leader.
	for _, site := range daemon.LabSites {
		want := 3 * perNode
		reader := daemon.LabNodes(site)[2]
		msgs := clustertest.DrainInbox(t, lab.Client(reader), want, time.Minute)
		g.CheckArrivals(t, site, msgs)
		clustertest.AckAll(ctx, t, lab.Client(reader), reader, msgs)
		// Read-your-writes: once the ack returned, the same node no longer
		// lists those messages as unread, though it is a follower.
		if in, err := lab.Client(reader).Inbox(ctx, 0, 1000, 0); err != nil || len(in.Messages) != 0 {
			t.Fatalf("inbox at %s after ack: %d unread, err %v", reader, len(in.Messages), err)
		}
	}
	if t.Failed() {
		return
	}
	// Every message reaches "read" at its origin.
	g.WaitRead(ctx, t, func(site string) *client.Client { return lab.Client(daemon.LabNodes(site)[0]) }, nil)
}

// moveLeader moves site's leadership with Raft's leadership transfer to
// the node to, or away from the leader when to is "", and returns the
// leader it moved to. On a busy machine a transfer can lose to an
// election or end at Raft's own transfer timeout (an election timeout)
// just before the target wins, so it tries again from whichever node leads
// then, for up to a minute, and fails t only if leadership is not where
// asked by then.
func moveLeader(t testing.TB, lab *clustertest.Lab, site, to string) string {
	t.Helper()
	from := lab.Leader(site)
	var errs []error
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		cur := lab.Leader(site)
		if to != "" && cur == to || to == "" && cur != from {
			if len(errs) > 0 {
				t.Logf("leadership of %s moved from %s to %s after %d transfers that did not: %v", site, from, cur, len(errs), errors.Join(errs...))
			}
			return cur
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := daemon.RaftOf(lab.Node(cur)).TransferLeadership(ctx, to)
		cancel()
		if err != nil {
			errs = append(errs, err)
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Fatalf("leadership of %s did not move from %s to %q within a minute: %v", site, from, to, errors.Join(errs...))
	return ""
}
