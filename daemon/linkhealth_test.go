package daemon_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/transport"
)

// TestLinkTestAlarmClearsWhenPathHeals: a link test that failed while a
// path was cut raises an alarm, and the alarm clears soon after the path
// is back (the leader re-tests the healed path at once), not only at the
// next link_test_interval (1 minute). The alarm is watched on the leader
// that raised it; if the leadership moves meanwhile (which would clear it
// for another reason), the scenario runs again.
func TestLinkTestAlarmClearsWhenPathHeals(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the six-node lab")
	}
	lab := clustertest.Start(t, func(c *daemon.Config) {
		c.Link.LinkTestInterval.Duration = time.Minute
		c.Link.SendTimeout.Duration = 2 * time.Second
		c.Raft.HeartbeatTimeout.Duration = time.Second
		c.Raft.ElectionTimeout.Duration = time.Second
		c.Raft.LeaderLeaseTimeout.Duration = 500 * time.Millisecond
	})
	setSat := func(mode transport.AdminMode) {
		for _, n := range daemon.LabNodes("bravo") {
			if err := daemon.LinkOf(lab.Node(n)).SetPathAdmin("sat", mode); err != nil {
				t.Fatal(err)
			}
		}
	}
	alarm := func(node string) (string, bool) {
		for _, a := range daemon.Alarms(lab.Node(node)) {
			if strings.HasPrefix(a, "link test to bravo via sat failed") {
				return a, true
			}
		}
		return "", false
	}
	for attempt := 1; attempt <= 3; attempt++ {
		setSat(transport.AdminDrop) // a silent cut of sat at every bravo node
		leader := lab.Leader("alpha")
		deadline := time.Now().Add(30 * time.Second)
		for {
			if a, ok := alarm(leader); ok {
				t.Logf("%s raised: %s", leader, a)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s raised no link test alarm for sat within 30s of cutting it", leader)
			}
			time.Sleep(50 * time.Millisecond)
		}
		healed := time.Now()
		setSat(transport.AdminUp)
		for {
			_, raised := alarm(leader)
			if !daemon.RaftOf(lab.Node(leader)).IsLeader() {
				break
			}
			if !raised {
				t.Logf("alarm cleared %v after the path healed", time.Since(healed).Round(time.Millisecond))
				return
			}
			// Well under the 1-minute interval; generous for a busy machine.
			if time.Since(healed) > 20*time.Second {
				t.Fatalf("link test alarm still raised %v after the path healed", time.Since(healed).Round(time.Millisecond))
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("attempt %d: %s lost the leadership meanwhile; again", attempt, leader)
		time.Sleep(6 * time.Second) // the new leader's first link tests
	}
	t.Fatal("the leadership of alpha moved during every attempt")
}
