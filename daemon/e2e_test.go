package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
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
		tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := daemon.RaftOf(lab.Node(old)).TransferLeadership(tctx, ""); err != nil {
			t.Errorf("transfer leadership of %s: %v", site, err)
		}
		tcancel()
		t.Logf("site %s: leadership moved from %s to %s", site, old, lab.Leader(site))
	}
	tr.Wait(t)

	// Read each site's inbox through a follower and a leader.
	for _, site := range daemon.LabSites {
		want := 3 * perNode
		reader := daemon.LabNodes(site)[2]
		msgs := clustertest.DrainInbox(t, lab.Client(reader), want, time.Minute)
		g.CheckArrivals(t, site, msgs)
		var ids []string
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		for len(ids) > 0 {
			k := min(len(ids), 500)
			if _, err := lab.Client(reader).Ack(ctx, ids[:k]); err != nil {
				t.Fatalf("ack at %s: %v", reader, err)
			}
			ids = ids[k:]
		}
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
	for _, s := range g.Sent() {
		c := lab.Client(daemon.LabNodes(s.From)[0])
		for {
			m, err := c.Get(ctx, s.ID)
			if err != nil {
				t.Fatalf("get %s: %v", s.ID, err)
			}
			if m.State == "read" {
				if m.DeliveredAt == nil || m.ReadAt == nil || m.ReadAt.Before(*m.DeliveredAt) {
					t.Errorf("%s: read without consistent timestamps: %+v", s.Key, m)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s (%s) is still %s at %s", s.Key, s.ID, m.State, s.From)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
