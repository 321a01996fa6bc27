package daemon_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/queue"
)

// TestRaftProtocolIsSiteVersion: the leader reads "speaks hotline-raft/N"
// as "understands site version N", so this build's highest Raft protocol
// is the highest site version it understands.
func TestRaftProtocolIsSiteVersion(t *testing.T) {
	v, ok := consensus.ProtocolVersion(consensus.Protocols()[0])
	if !ok || uint64(v) != queue.MaxSiteVersion {
		t.Fatalf("highest Raft protocol %q (version %d), highest site version %d: raise them together", consensus.Protocols()[0], v, queue.MaxSiteVersion)
	}
}

// TestSiteVersionWaitsForEveryNode: in a site where one node speaks only
// hotline-raft/1 (to its peers, a node of 0.1.0), the leader does not raise
// the site version, and its status names the node it waits for; the
// other site, whose nodes all speak hotline-raft/2, raises it. Once the
// node speaks hotline-raft/2 (an upgrade), its site raises it too.
func TestSiteVersionWaitsForEveryNode(t *testing.T) {
	if testing.Short() {
		t.Skip("a six-node lab")
	}
	const old = "alpha-3"
	lab := clustertest.Start(t, func(c *daemon.Config) {
		if c.Node == old {
			daemon.OfferRaftProtocols(c, []string{consensus.RaftProtocol1})
		}
	})
	if lab.Leader("alpha") == old {
		if _, err := lab.Hotlinectl(t, "alpha-1", "", "leader", "transfer", "--to", "alpha-1"); err != nil {
			t.Fatal(err)
		}
	}
	leader := lab.Leader("alpha")
	clustertest.Eventually(t, 30*time.Second, "bravo to raise its site version and alpha's leader to say whom it waits for", func() bool {
		for _, n := range daemon.LabNodes("bravo") {
			if lab.Node(n).Status().SiteVersion != queue.MaxSiteVersion {
				return false
			}
		}
		st := lab.Node(leader).Status()
		return st.SiteVersion == 1 && strings.Contains(st.SiteVersionWait, old+" (hotline-raft/1)")
	})
	st := lab.Node(leader).Status()
	for _, p := range st.Peers {
		want := consensus.RaftProtocol2
		switch {
		case p.Site != "alpha":
			want = ""
		case p.Node == old:
			want = consensus.RaftProtocol1
		}
		if p.RaftProtocol != want {
			t.Errorf("%s's status: %s speaks %q, want %q", leader, p.Node, p.RaftProtocol, want)
		}
	}
	// A few checks later it still waits: nothing raised it behind its back.
	time.Sleep(3 * time.Second)
	for _, n := range daemon.LabNodes("alpha") {
		if v := lab.Node(n).Status().SiteVersion; v != 1 {
			t.Fatalf("%s: site version %d while %s speaks hotline-raft/1 only", n, v, old)
		}
	}

	// The upgrade of the last node.
	if err := lab.StopNode(old); err != nil {
		t.Fatal(err)
	}
	daemon.OfferRaftProtocols(lab.Configs[old], nil)
	lab.StartNode(old)
	clustertest.Eventually(t, 60*time.Second, "alpha to raise its site version on every node", func() bool {
		for _, n := range daemon.LabNodes("alpha") {
			if lab.Node(n).Status().SiteVersion != queue.MaxSiteVersion {
				return false
			}
		}
		return true
	})
	leader = lab.Leader("alpha")
	if st := lab.Node(leader).Status(); st.SiteVersionWait != "" {
		t.Errorf("%s still says it waits for %q after the raise", leader, st.SiteVersionWait)
	}
}
