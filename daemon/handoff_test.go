package daemon_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// A leader that loses every path to the other site while its followers
// still have theirs hands leadership to one of them, and delivery resumes.
func TestLeaderHandsOffWhenCutOff(t *testing.T) {
	lab := clustertest.Start(t, func(c *daemon.Config) { c.Link.HandoffAfter.Duration = time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := lab.Leader("alpha")
	c := lab.Client(otherNode("alpha", leader))
	send := func(key string) {
		t.Helper()
		m, err := clustertest.SubmitRetrying(ctx, c, client.SubmitRequest{To: "bravo", Key: key, Payload: []byte(key), Wait: "delivered", Timeout: 30 * time.Second})
		if err != nil || m.State != "delivered" {
			t.Fatalf("%s: %+v %v", key, m, err)
		}
	}
	send("before")

	// Cut both of the leader's paths silently; its LAN stays up.
	for _, p := range []string{"fiber", "sat"} {
		if _, err := c.PathDown(ctx, leader, p, client.ModeDrop); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, p := range []string{"fiber", "sat"} {
			lab.Client(leader).PathUp(context.Background(), "", p)
		}
	})
	start := time.Now()
	var now string
	clustertest.Eventually(t, 30*time.Second, "leadership to leave the cut-off leader", func() bool {
		st, err := c.Status(ctx)
		now = ""
		if err == nil {
			now = st.Leader
		}
		return now != "" && now != leader
	})
	t.Logf("leadership moved from %s to %s %v after the cut", leader, now, time.Since(start).Round(time.Millisecond))
	for i := range 3 {
		send(fmt.Sprintf("after-%d", i))
	}
	msgs := clustertest.DrainInbox(t, lab.Client("bravo-1"), 4, 30*time.Second)
	if len(msgs) != 4 {
		t.Fatalf("bravo has %d messages, want 4", len(msgs))
	}
}
