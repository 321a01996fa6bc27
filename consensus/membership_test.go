package consensus

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/internal/testutil"
)

// TestCheckRemove is the decision of `member remove` by table: the voters
// left must have a live majority, the leader is removed only after a
// transfer, and force overrides both but never removes the last voter.
func TestCheckRemove(t *testing.T) {
	three := []Member{{ID: "a", Voter: true}, {ID: "b", Voter: true}, {ID: "c", Voter: true}}
	four := append(append([]Member{}, three...), Member{ID: "d", Voter: true})
	withLearner := append(append([]Member{}, three...), Member{ID: "n", Voter: false})
	live := func(ids ...string) map[string]bool {
		m := map[string]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		members []Member
		id      string
		leader  string
		live    map[string]bool
		force   bool
		want    error // nil: allowed
		text    string
	}{
		{"dead follower of three", three, "c", "a", live("a", "b"), false, nil, ""},
		{"live follower, others all up", three, "c", "a", live("a", "b", "c"), false, nil, ""},
		{"live follower while another is dead", three, "b", "a", live("a", "b"), false, ErrWouldLoseQuorum, "the 2 voters left (a, c) would need 2 live, but only 1 are (a)"},
		{"forced anyway", three, "b", "a", live("a", "b"), true, nil, ""},
		{"the leader", three, "a", "a", live("a", "b", "c"), false, ErrRemoveLeader, "a leads the site"},
		{"the leader, forced", three, "a", "a", live("a", "b", "c"), true, nil, ""},
		{"unknown", three, "x", "a", live("a", "b", "c"), false, ErrUnknownServer, "servers: a, b, c"},
		{"last voter, forced", []Member{{ID: "a", Voter: true}}, "a", "a", live("a"), true, ErrWouldLoseQuorum, "a is the last voter"},
		{"dead of four, two live left of three", four, "d", "a", live("a", "b"), false, nil, ""},
		{"dead of four, one live left of three", four, "d", "a", live("a"), false, ErrWouldLoseQuorum, "only 1 are (a)"},
		{"non-voter, even with no live majority", withLearner, "n", "a", live(), false, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckRemove(tc.members, tc.id, tc.leader, tc.live, tc.force)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) || !strings.Contains(err.Error(), tc.id) {
				t.Fatalf("error %q does not contain %q and the node %q", err, tc.text, tc.id)
			}
		})
	}
}

// TestJoinAddRemove runs real Raft: a fourth node opened with Join does
// not bootstrap, stays outside the configuration until the leader adds it
// as a non-voter, catches up from a snapshot, is promoted to voter; then a
// stopped node is removed and the three left keep committing.
func TestJoinAddRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("real Raft cluster")
	}
	c := MakeCluster(t, 4, withConfig(func(i int, cfg *Config) {
		cfg.Peers = cfg.Peers[:3]
		cfg.Join = i == 3
		// Snapshot early and keep few logs, so that the joiner must
		// install a snapshot.
		cfg.SnapshotThreshold = 64
		cfg.SnapshotInterval = 100 * time.Millisecond
		cfg.TrailingLogs = 16
	}))
	joiner := c.nodes[3]
	var lead int
	testutil.Eventually(t, 10*time.Second, "a leader among the three founders", func() bool {
		for i := range 3 {
			if c.nodes[i].node.IsLeader() {
				lead = i
				return true
			}
		}
		return false
	})
	leader := c.nodes[lead].node
	c.applyN(lead, "before", 400)
	testutil.Eventually(t, 10*time.Second, "a snapshot on the leader", func() bool {
		snaps, err := c.nodes[lead].node.snaps.List()
		return err == nil && len(snaps) > 0
	})

	if id, _ := joiner.node.Leader(); id != "" || joiner.fsm.len() != 0 {
		t.Fatalf("joiner knows leader %q and holds %d entries before being added", id, joiner.fsm.len())
	}
	ms, err := leader.Members()
	if err != nil || len(ms) != 3 {
		t.Fatalf("members %v, %v; want the three founders", ms, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := c.follower(lead)
	if err := c.nodes[f].node.AddNonvoter(ctx, joiner.name, joiner.addr); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("add on a follower: %v, want ErrNotLeader", err)
	}
	if err := leader.AddNonvoter(ctx, joiner.name, c.nodes[f].addr); !errors.Is(err, ErrMemberConflict) || !strings.Contains(err.Error(), c.nodes[f].name) {
		t.Fatalf("add with a member's address: %v, want ErrMemberConflict naming %s", err, c.nodes[f].name)
	}
	if err := leader.AddNonvoter(ctx, joiner.name, joiner.addr); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 15*time.Second, "the joiner catching up", func() bool { return joiner.fsm.len() == 400 })
	if joiner.fsm.restoreCount() == 0 {
		t.Error("the joiner caught up without installing a snapshot")
	}
	if err := leader.AddVoter(ctx, joiner.name, joiner.addr); err != nil {
		t.Fatal(err)
	}
	ms, _ = leader.Members()
	voters := 0
	for _, m := range ms {
		if m.Voter {
			voters++
		}
	}
	if voters != 4 {
		t.Fatalf("members after promotion: %+v", ms)
	}

	// Stop a follower that is not the joiner and remove it.
	victim := -1
	for i := range 3 {
		if i != lead {
			victim = i
			break
		}
	}
	name := c.nodes[victim].name
	c.stop(victim)
	if err := leader.RemoveServer(ctx, "nobody"); !errors.Is(err, ErrUnknownServer) {
		t.Fatalf("remove unknown: %v", err)
	}
	if err := leader.RemoveServer(ctx, name); err != nil {
		t.Fatal(err)
	}
	ms, _ = leader.Members()
	for _, m := range ms {
		if m.ID == name {
			t.Fatalf("%s still in %+v", name, ms)
		}
	}
	c.applyN(lead, "after", 50)
	c.converged(450)
}
