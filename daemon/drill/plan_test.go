package drill

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// planStatus is node alpha-1's status in a lab of three alpha and three
// bravo nodes, with leader.
func planStatus(leader string) *client.Status {
	st := &client.Status{Site: "alpha", Node: "alpha-1", Role: "follower", Leader: leader, Version: "v1"}
	for _, n := range []string{"alpha-3", "alpha-2"} {
		st.Peers = append(st.Peers, client.Peer{Site: "alpha", Node: n, Role: "voter"})
	}
	for _, n := range []string{"bravo-1", "bravo-2", "bravo-3"} {
		st.Peers = append(st.Peers, client.Peer{Site: "bravo", Node: n, Role: "remote"})
	}
	return st
}

// planPaths is the leader's paths: fiber, sat, radio to every bravo node,
// with the given (node/path → state) overrides and one active pair.
func planPaths(admin []string, active string, down ...string) *client.PathsReply {
	r := &client.PathsReply{Site: "alpha", Node: "alpha-2"}
	for _, p := range admin {
		r.Admin = append(r.Admin, client.PathAdmin{Node: "alpha-2", Path: p, State: client.PathUp})
	}
	for _, n := range []string{"bravo-1", "bravo-2", "bravo-3"} {
		for _, p := range admin {
			if p == lanPath {
				continue
			}
			state := client.PathUp
			if slices.Contains(down, n+"/"+p) || slices.Contains(down, "*/"+p) {
				state = client.PathDown
			}
			r.Paths = append(r.Paths, client.PathInfo{Site: "bravo", Node: n, Path: p, State: state, Active: n+"/"+p == active})
		}
	}
	return r
}

// upAdmin is every alpha node with every path up.
func upAdmin(paths ...string) map[string][]client.PathAdmin {
	m := map[string][]client.PathAdmin{}
	for _, n := range []string{"alpha-1", "alpha-2", "alpha-3"} {
		for _, p := range paths {
			m[n] = append(m[n], client.PathAdmin{Node: n, Path: p, State: client.PathUp})
		}
	}
	return m
}

func TestPlanDrill(t *testing.T) {
	three := []string{"fiber", "sat", "radio"}
	withDown := func(m map[string][]client.PathAdmin, node, path string) map[string][]client.PathAdmin {
		for i := range m[node] {
			if m[node][i].Path == path {
				m[node][i].State, m[node][i].Mode = "down", client.ModeClose
			}
		}
		return m
	}
	tests := []struct {
		name       string
		scenario   string
		to         string
		st         *client.Status
		leader     *client.PathsReply
		admin      map[string][]client.PathAdmin
		wantCut    []string
		wantActive string // node/path
		wantXfer   string
		wantErr    string
	}{
		{name: "cut active", scenario: CutActivePath, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-2/sat"), admin: upAdmin(three...),
			wantCut: []string{"sat"}, wantActive: "bravo-2/sat"},
		{name: "cut active falls back to first up path", scenario: CutActivePath, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "", "*/fiber", "bravo-1/sat"), admin: upAdmin(three...),
			wantCut: []string{"sat"}, wantActive: "bravo-2/sat"},
		{name: "lan is never cut", scenario: CutAllButOne, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths([]string{"lan", "fiber", "sat", "radio"}, "bravo-1/fiber"), admin: upAdmin("lan", "fiber", "sat", "radio"),
			wantCut: []string{"fiber", "sat"}, wantActive: "bravo-1/fiber"},
		{name: "cut all but one keeps least preferred", scenario: CutAllButOne, to: "bravo", st: planStatus("alpha-1"),
			leader: planPaths([]string{"fiber", "sat"}, "bravo-3/fiber"), admin: upAdmin("fiber", "sat"),
			wantCut: []string{"fiber"}, wantActive: "bravo-3/fiber"},
		{name: "transfer origin", scenario: TransferOriginLeader, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), wantActive: "bravo-1/fiber", wantXfer: "alpha"},
		{name: "transfer destination", scenario: TransferDestinationLeader, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), wantActive: "bravo-1/fiber", wantXfer: "bravo"},
		{name: "transfer ignores admin-down paths", scenario: TransferDestinationLeader, to: "bravo", st: planStatus("alpha-2"),
			leader: func() *client.PathsReply {
				r := planPaths(three, "bravo-1/fiber")
				r.Admin[2].State = "down"
				return r
			}(), wantActive: "bravo-1/fiber", wantXfer: "bravo"},

		{name: "no leader", scenario: CutActivePath, to: "bravo", st: planStatus(""),
			leader: planPaths(three, "bravo-1/fiber"), admin: upAdmin(three...), wantErr: "site alpha has no known leader"},
		{name: "own site", scenario: CutActivePath, to: "alpha", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: upAdmin(three...), wantErr: "--to alpha is this node's own site"},
		{name: "unknown site", scenario: CutActivePath, to: "charlie", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: upAdmin(three...), wantErr: `site "charlie" is not configured on alpha-1 (other sites: bravo)`},
		{name: "no path up", scenario: TransferOriginLeader, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths([]string{"fiber"}, "", "*/fiber"), wantErr: "no path from leader alpha-2 to site bravo is up (bravo-1/fiber down"},
		{name: "no wan paths", scenario: CutActivePath, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths([]string{"lan"}, ""), admin: upAdmin("lan"), wantErr: "leader alpha-2 reports no WAN paths"},
		{name: "cut all but one with one path", scenario: CutAllButOne, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths([]string{"fiber"}, "bravo-1/fiber"), admin: upAdmin("fiber"), wantErr: "needs at least two WAN paths; leader alpha-2 has only fiber"},
		{name: "path to cut already down on a follower", scenario: CutActivePath, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: withDown(upAdmin(three...), "alpha-3", "fiber"),
			wantErr: "path fiber is already down on node alpha-3; bring it up first (hotlinectl path up fiber --node alpha-3)"},
		{name: "path to keep already down", scenario: CutAllButOne, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: withDown(upAdmin(three...), "alpha-1", "radio"),
			wantErr: "path radio is already down on node alpha-1"},
		{name: "node without the path", scenario: CutActivePath, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: func() map[string][]client.PathAdmin {
				m := upAdmin(three...)
				m["alpha-3"] = m["alpha-3"][1:]
				return m
			}(), wantErr: "node alpha-3 has no path fiber"},
		{name: "node not asked", scenario: CutActivePath, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: map[string][]client.PathAdmin{}, wantErr: "no path states from node alpha-1"},
		{name: "single node site", scenario: TransferOriginLeader, to: "bravo",
			st: &client.Status{Site: "alpha", Node: "alpha-1", Leader: "alpha-1",
				Peers: []client.Peer{{Site: "bravo", Node: "bravo-1"}, {Site: "bravo", Node: "bravo-2"}}},
			leader: planPaths(three, "bravo-1/fiber"), wantErr: "site alpha has only node alpha-1"},
		{name: "single node destination", scenario: TransferDestinationLeader, to: "bravo",
			st: &client.Status{Site: "alpha", Node: "alpha-1", Leader: "alpha-1",
				Peers: []client.Peer{{Site: "alpha", Node: "alpha-2"}, {Site: "bravo", Node: "bravo-1"}}},
			leader: planPaths(three, "bravo-1/fiber"), wantErr: "site bravo has 1 configured node(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := newPlan(tt.scenario, tt.to, tt.st, tt.leader, tt.admin)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newPlan error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newPlan: %v", err)
			}
			if !slices.Equal(p.Cut, tt.wantCut) {
				t.Errorf("Cut = %q, want %q", p.Cut, tt.wantCut)
			}
			if got := p.ActiveNode + "/" + p.ActivePath; got != tt.wantActive {
				t.Errorf("active = %s, want %s", got, tt.wantActive)
			}
			if p.Transfer != tt.wantXfer {
				t.Errorf("Transfer = %q, want %q", p.Transfer, tt.wantXfer)
			}
			if want := []string{"alpha-1", "alpha-2", "alpha-3"}; !slices.Equal(p.Nodes, want) {
				t.Errorf("Nodes = %q, want %q", p.Nodes, want)
			}
			if want := []string{"bravo-1", "bravo-2", "bravo-3"}; !slices.Equal(p.DestNodes, want) {
				t.Errorf("DestNodes = %q, want %q", p.DestNodes, want)
			}
			if slices.Contains(p.Paths, lanPath) {
				t.Errorf("Paths %q include %s", p.Paths, lanPath)
			}
			notes := strings.Join(p.notes("v1", 30*time.Second), "\n")
			for _, want := range []string{"leader " + p.Leader, "hotlined v1", "active to bravo: " + p.ActivePath} {
				if !strings.Contains(notes, want) {
					t.Errorf("notes do not mention %q:\n%s", want, notes)
				}
			}
		})
	}
}

func TestDescribeTargets(t *testing.T) {
	tg := func(pairs ...string) []cutTarget {
		var ts []cutTarget
		for _, p := range pairs {
			node, path, _ := strings.Cut(p, "/")
			ts = append(ts, cutTarget{node: node, path: path})
		}
		return ts
	}
	tests := []struct {
		in   []cutTarget
		want string
	}{
		{tg("alpha-1/fiber", "alpha-2/fiber", "alpha-3/fiber"), "fiber on alpha-1, alpha-2, alpha-3"},
		{tg("alpha-1/fiber", "alpha-1/sat", "alpha-2/fiber", "alpha-2/sat"), "fiber, sat on alpha-1, alpha-2"},
		{tg("alpha-1/fiber", "alpha-1/sat", "alpha-2/fiber", "alpha-3/fiber", "alpha-3/sat"), "fiber, sat on alpha-1, alpha-3; fiber on alpha-2"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := describeTargets(tt.in); got != tt.want {
			t.Errorf("describeTargets(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
