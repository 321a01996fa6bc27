package drill

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// lanPath is a path name that carries intra-site traffic, never cut.
const lanPath = "lan"

// isCutScenario reports whether scenario cuts paths (and so must restore
// them).
func isCutScenario(scenario string) bool {
	return scenario == CutActivePath || scenario == CutAllButOne
}

// Plan is what a drill will do, decided by Prepare before it starts.
type Plan struct {
	Options    Options // what was asked
	Version    string  // hotlined version of the node serving the socket
	Baseline   uint64  // destination's last sequence on the canaries' channel before the drill
	Scenario   string
	From, To   string   // origin (this node's) and destination site
	Self       string   // node serving the socket
	Leader     string   // origin site's leader
	Nodes      []string // origin site's nodes, sorted
	DestNodes  []string // destination site's nodes, sorted
	Paths      []string // the leader's WAN paths in preference order
	ActivePath string   // path the leader reaches To on
	ActiveNode string   // node of To it reaches
	Cut        []string // cut scenarios: paths to cut on every origin node, in preference order
	Transfer   string   // transfer scenarios: site whose leadership moves
	Notes      []string // topology and warnings, for the report
}

// Prepare validates o, learns the topology through c and plans the
// drill. It refuses (error) a drill that cannot run or would undo an
// operator's decision (see newPlan); for the cut scenarios every node of
// the site must answer, as every node is cut. It changes nothing.
func Prepare(ctx context.Context, c Cluster, o Options) (*Plan, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("drill: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("drill: status: %w", err)
	}
	if err := checkSite(st, o.To); err != nil {
		return nil, err
	}
	leader, err := c.Paths(ctx, nodeParam(st, st.Leader))
	if err != nil {
		return nil, client.AdminError("drill: paths of leader "+st.Leader, err)
	}
	admin := map[string][]client.PathAdmin{st.Leader: leader.Admin}
	if isCutScenario(o.Scenario) {
		nodes := []string{st.Node}
		for _, p := range st.Peers {
			if p.Site == st.Site {
				nodes = append(nodes, p.Node)
			}
		}
		for _, n := range nodes {
			if _, ok := admin[n]; ok {
				continue
			}
			r, err := c.Paths(ctx, nodeParam(st, n))
			if err != nil {
				return nil, client.AdminError("drill: paths of "+n+" (every node of the site is cut, so every node must answer)", err)
			}
			admin[n] = r.Admin
		}
	}
	p, err := newPlan(o.Scenario, o.To, st, leader, admin)
	if err != nil {
		return nil, err
	}
	a, err := c.Arrivals(ctx, o.To, o.Precedence, 0, 0)
	if err != nil {
		return nil, client.AdminError("drill: arrivals baseline at "+o.To, err)
	}
	p.Options, p.Version, p.Baseline = o, st.Version, a.Last
	return p, nil
}

// nodeParam is the node parameter that names node to the daemon serving
// the socket: "" for itself.
func nodeParam(st *client.Status, node string) string {
	if node == st.Node {
		return ""
	}
	return node
}

// newPlan decides what a drill of scenario towards site to does, from
// the status of the node serving the socket, the leader's paths and, for
// the cut scenarios, the path admin states of every origin node (admin,
// by node; the leader's may be missing, leader.Admin is used then). It
// refuses (error) when the drill cannot run or would undo an operator's
// decision: no leader, an unknown destination, no path up to it, a path
// to cut (or to keep) already admin-down.
func newPlan(scenario, to string, st *client.Status, leader *client.PathsReply, admin map[string][]client.PathAdmin) (*Plan, error) {
	if err := checkSite(st, to); err != nil {
		return nil, err
	}
	p := &Plan{Scenario: scenario, From: st.Site, To: to, Self: st.Node, Leader: st.Leader}
	p.Nodes = []string{st.Node}
	for _, peer := range st.Peers {
		switch peer.Site {
		case st.Site:
			p.Nodes = append(p.Nodes, peer.Node)
		case to:
			p.DestNodes = append(p.DestNodes, peer.Node)
		}
	}
	slices.Sort(p.Nodes)
	p.Nodes = slices.Compact(p.Nodes)
	slices.Sort(p.DestNodes)
	p.DestNodes = slices.Compact(p.DestNodes)

	for _, a := range leader.Admin {
		if a.Path != lanPath {
			p.Paths = append(p.Paths, a.Path)
		}
	}
	if len(p.Paths) == 0 {
		return nil, fmt.Errorf("drill: leader %s reports no WAN paths", p.Leader)
	}
	p.ActiveNode, p.ActivePath = activePath(leader, to, p.Paths)
	if p.ActivePath == "" {
		return nil, fmt.Errorf("drill: no path from leader %s to site %s is up (%s); a drill would only measure the outage there already is",
			p.Leader, to, pathStates(leader, to))
	}

	switch scenario {
	case CutActivePath:
		if !slices.Contains(p.Paths, p.ActivePath) {
			return nil, fmt.Errorf("drill: active path %s to %s is not one of leader %s's paths (%s)", p.ActivePath, to, p.Leader, strings.Join(p.Paths, ", "))
		}
		p.Cut = []string{p.ActivePath}
		if len(p.Paths) == 1 {
			p.Notes = append(p.Notes, fmt.Sprintf("%s is the only WAN path: cutting it is a full outage of the link, and messages wait for the restore.", p.ActivePath))
		}
	case CutAllButOne:
		if len(p.Paths) < 2 {
			return nil, fmt.Errorf("drill: %s needs at least two WAN paths; leader %s has only %s", scenario, p.Leader, p.Paths[0])
		}
		p.Cut = p.Paths[:len(p.Paths)-1]
	case TransferOriginLeader:
		if len(p.Nodes) < 2 {
			return nil, fmt.Errorf("drill: site %s has only node %s; there is no one to transfer the leadership to", p.From, p.Nodes[0])
		}
		p.Transfer = p.From
	case TransferDestinationLeader:
		if len(p.DestNodes) < 2 {
			return nil, fmt.Errorf("drill: site %s has %d configured node(s); there is no one to transfer the leadership to", to, len(p.DestNodes))
		}
		p.Transfer = to
	default:
		return nil, fmt.Errorf("drill: unknown scenario %q", scenario)
	}

	if isCutScenario(scenario) {
		// Every origin node must have every WAN path up: cutting a path
		// that is down would "restore" what an operator took down, and
		// the path kept up must really be up.
		for _, node := range p.Nodes {
			states, ok := admin[node]
			if !ok && node == p.Leader {
				states = leader.Admin
			} else if !ok {
				return nil, fmt.Errorf("drill: no path states from node %s", node)
			}
			for _, path := range p.Paths {
				i := slices.IndexFunc(states, func(a client.PathAdmin) bool { return a.Path == path })
				switch {
				case i < 0:
					return nil, fmt.Errorf("drill: node %s has no path %s (leader %s has %s)", node, path, p.Leader, strings.Join(p.Paths, ", "))
				case states[i].State != client.PathUp:
					return nil, fmt.Errorf("drill: path %s is already %s on node %s; bring it up first (hotlinectl path up %s --node %s)",
						path, states[i].State, node, path, node)
				}
			}
		}
	} else {
		for _, a := range leader.Admin {
			if a.State != client.PathUp {
				p.Notes = append(p.Notes, fmt.Sprintf("Path %s was administratively %s on leader %s during the drill.", a.Path, a.State, p.Leader))
			}
		}
	}
	return p, nil
}

// checkSite checks that st names a leader and that to is another
// configured site.
func checkSite(st *client.Status, to string) error {
	if st.Leader == "" {
		return fmt.Errorf("drill: site %s has no known leader (node %s is %s); a drill needs a working site", st.Site, st.Node, st.Role)
	}
	if to == st.Site {
		return fmt.Errorf("drill: --to %s is this node's own site; name another site", to)
	}
	var sites []string
	for _, peer := range st.Peers {
		if peer.Site == to {
			return nil
		}
		if peer.Site != st.Site && !slices.Contains(sites, peer.Site) {
			sites = append(sites, peer.Site)
		}
	}
	return fmt.Errorf("drill: site %q is not configured on %s (other sites: %s)", to, st.Node, orNone(sites))
}

// activePath is the node and path the leader reaches site on: the active
// one, else the first up path in preference order (paths).
func activePath(leader *client.PathsReply, site string, paths []string) (node, path string) {
	for _, pi := range leader.Paths {
		if pi.Site == site && pi.Active && pi.Path != lanPath {
			return pi.Node, pi.Path
		}
	}
	for _, path := range paths {
		for _, pi := range leader.Paths {
			if pi.Site == site && pi.Path == path && pi.State == client.PathUp {
				return pi.Node, pi.Path
			}
		}
	}
	return "", ""
}

// pathStates lists "node/path state" of every path to site.
func pathStates(r *client.PathsReply, site string) string {
	var s []string
	for _, pi := range r.Paths {
		if pi.Site == site {
			s = append(s, pi.Node+"/"+pi.Path+" "+pi.State)
		}
	}
	return orNone(s)
}

// orDash is s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// orNone joins list with commas, or says "none".
func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// notes describes the drill's topology for the report.
func (p *Plan) notes(version string, duration time.Duration) []string {
	var n []string
	n = append(n, fmt.Sprintf("Origin site %s: nodes %s; leader %s; drill run through %s (hotlined %s).",
		p.From, strings.Join(p.Nodes, ", "), p.Leader, p.Self, orDash(version)))
	n = append(n, fmt.Sprintf("Destination site %s: nodes %s.", p.To, orNone(p.DestNodes)))
	n = append(n, fmt.Sprintf("WAN paths of %s in preference order: %s; active to %s: %s to %s.",
		p.Leader, strings.Join(p.Paths, ", "), p.To, p.ActivePath, p.ActiveNode))
	third := duration / 3
	switch {
	case len(p.Cut) > 0:
		n = append(n, fmt.Sprintf("Fault: %s cut silently (drop) on every origin node from +%s to +%s.",
			strings.Join(p.Cut, ", "), third, 2*third))
	case p.Transfer != "":
		n = append(n, fmt.Sprintf("Fault: leadership of %s transferred at +%s; the \"during\" window ends at +%s.",
			p.Transfer, third, 2*third))
	}
	return append(n, p.Notes...)
}
