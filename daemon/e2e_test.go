package daemon

import (
	"context"
	"testing"
	"time"
)

// TestTwoSitesExactlyOnce runs both sites in process and sends traffic both
// ways through every node, leaders and followers alike, while leadership
// moves on each site. Every acknowledged submission must arrive exactly
// once, in order per channel, and reach "read" after it is acknowledged.
func TestTwoSitesExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := startLab(t)
	const perNode = 60
	g := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	tr := startTraffic(ctx, "e2e", perNode, lab.client, g)
	// Move leadership on both sites while traffic flows.
	time.Sleep(300 * time.Millisecond)
	for _, site := range LabSites {
		old := lab.leader(site)
		tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
		if err := lab.nodes[old].raft.TransferLeadership(tctx, ""); err != nil {
			t.Errorf("transfer leadership of %s: %v", site, err)
		}
		tcancel()
		t.Logf("site %s: leadership moved from %s to %s", site, old, lab.leader(site))
	}
	tr.wait(t)

	// Read each site's inbox through a follower and a leader.
	for _, site := range LabSites {
		want := 3 * perNode
		reader := LabNodes(site)[2]
		msgs := drainInbox(t, lab.client(reader), want, time.Minute)
		g.checkArrivals(t, site, msgs)
		var ids []string
		for _, m := range msgs {
			ids = append(ids, m.ID)
		}
		for len(ids) > 0 {
			k := min(len(ids), 500)
			if _, err := lab.client(reader).Ack(ctx, ids[:k]); err != nil {
				t.Fatalf("ack at %s: %v", reader, err)
			}
			ids = ids[k:]
		}
		// Read-your-writes: once the ack returned, the same node no longer
		// lists those messages as unread, though it is a follower.
		if in, err := lab.client(reader).Inbox(ctx, 0, 1000, 0); err != nil || len(in.Messages) != 0 {
			t.Fatalf("inbox at %s after ack: %d unread, err %v", reader, len(in.Messages), err)
		}
	}
	if t.Failed() {
		return
	}
	// Every message reaches "read" at its origin.
	for _, s := range g.sent {
		c := lab.client(LabNodes(s.from)[0])
		for {
			m, err := c.Get(ctx, s.id)
			if err != nil {
				t.Fatalf("get %s: %v", s.id, err)
			}
			if m.State == "read" {
				if m.DeliveredAt == nil || m.ReadAt == nil || m.ReadAt.Before(*m.DeliveredAt) {
					t.Errorf("%s: read without consistent timestamps: %+v", s.key, m)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("%s (%s) is still %s at %s", s.key, s.id, m.State, s.from)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
