package ctl

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// Drill scenarios: the fault a drill injects in the middle third of its
// canary stream.
const (
	scenarioCutActive      = "cut-active-path"             // silently cut the active path on every origin node
	scenarioCutAllButOne   = "cut-all-but-one"             // silently cut every WAN path but the least preferred
	scenarioTransferOrigin = "transfer-origin-leader"      // move the origin site's leadership
	scenarioTransferDest   = "transfer-destination-leader" // move the destination site's leadership
)

// drillScenarios are the valid --scenario values.
var drillScenarios = []string{scenarioCutActive, scenarioCutAllButOne, scenarioTransferOrigin, scenarioTransferDest}

// lanPath is a path name that carries intra-site traffic, never cut.
const lanPath = "lan"

// isCutScenario reports whether scenario cuts paths (and so must restore
// them).
func isCutScenario(scenario string) bool {
	return scenario == scenarioCutActive || scenario == scenarioCutAllButOne
}

// drillPlan is what a drill will do, decided before it starts.
type drillPlan struct {
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

// planDrill decides what a drill of scenario towards site to does, from
// the status of the node serving the socket, the leader's paths and, for
// the cut scenarios, the path admin states of every origin node (admin,
// by node; the leader's may be missing, leader.Admin is used then). It
// refuses (error) when the drill cannot run or would undo an operator's
// decision: no leader, an unknown destination, no path up to it, a path
// to cut (or to keep) already admin-down.
func planDrill(scenario, to string, st *client.Status, leader *client.PathsReply, admin map[string][]client.PathAdmin) (*drillPlan, error) {
	if err := checkDrillSite(st, to); err != nil {
		return nil, err
	}
	p := &drillPlan{Scenario: scenario, From: st.Site, To: to, Self: st.Node, Leader: st.Leader}
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
	case scenarioCutActive:
		if !slices.Contains(p.Paths, p.ActivePath) {
			return nil, fmt.Errorf("drill: active path %s to %s is not one of leader %s's paths (%s)", p.ActivePath, to, p.Leader, strings.Join(p.Paths, ", "))
		}
		p.Cut = []string{p.ActivePath}
		if len(p.Paths) == 1 {
			p.Notes = append(p.Notes, fmt.Sprintf("%s is the only WAN path: cutting it is a full outage of the link, and messages wait for the restore.", p.ActivePath))
		}
	case scenarioCutAllButOne:
		if len(p.Paths) < 2 {
			return nil, fmt.Errorf("drill: %s needs at least two WAN paths; leader %s has only %s", scenario, p.Leader, p.Paths[0])
		}
		p.Cut = p.Paths[:len(p.Paths)-1]
	case scenarioTransferOrigin:
		if len(p.Nodes) < 2 {
			return nil, fmt.Errorf("drill: site %s has only node %s; there is no one to transfer the leadership to", p.From, p.Nodes[0])
		}
		p.Transfer = p.From
	case scenarioTransferDest:
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

// checkDrillSite checks that st names a leader and that to is another
// configured site.
func checkDrillSite(st *client.Status, to string) error {
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

// orNone joins list with commas, or says "none".
func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// notes describes the drill's topology for the report.
func (p *drillPlan) notes(version string, o drillOpts) []string {
	var n []string
	n = append(n, fmt.Sprintf("Origin site %s: nodes %s; leader %s; drill run through %s (hotlined %s).",
		p.From, strings.Join(p.Nodes, ", "), p.Leader, p.Self, dash(version)))
	n = append(n, fmt.Sprintf("Destination site %s: nodes %s.", p.To, orNone(p.DestNodes)))
	n = append(n, fmt.Sprintf("WAN paths of %s in preference order: %s; active to %s: %s to %s.",
		p.Leader, strings.Join(p.Paths, ", "), p.To, p.ActivePath, p.ActiveNode))
	third := o.duration / 3
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

// newDrillRunID returns a short random hex id that names one drill run.
func newDrillRunID() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("drill: run id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// drillKeyPrefix is what every canary key of run begins with.
func drillKeyPrefix(run string) string { return "drill-" + run + "-" }

// drillKey is the idempotency key of canary n of run.
func drillKey(run string, n int) string { return drillKeyPrefix(run) + strconv.Itoa(n) }

// drillKeyIndex returns n for a canary key of run; ok is false for any
// other key.
func drillKeyIndex(run, key string) (n int, ok bool) {
	rest, found := strings.CutPrefix(key, drillKeyPrefix(run))
	if !found || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// drillPayload is a canary payload of exactly size bytes: the key, then
// padding (the key is cut short when size is smaller).
func drillPayload(key string, size int) []byte {
	p := make([]byte, size)
	n := copy(p, key)
	for i := n; i < size; i++ {
		p[i] = '.'
	}
	return p
}

// arrivalLog accumulates the arrivals pages of one drill: the copies of
// this run's canaries committed at the destination, by key. It is not
// safe for concurrent use.
type arrivalLog struct {
	prefix string                 // this run's key prefix
	cursor uint64                 // pass as `after` for the next page
	last   uint64                 // highest destination Last seen
	seen   map[uint64]bool        // sequence numbers already counted
	byKey  map[string][]time.Time // key -> arrival times, one per copy
}

// newArrivalLog starts a log for run after the destination's sequence
// baseline (its Last before the drill).
func newArrivalLog(run string, baseline uint64) *arrivalLog {
	return &arrivalLog{
		prefix: drillKeyPrefix(run),
		cursor: baseline,
		last:   baseline,
		seen:   make(map[uint64]bool),
		byKey:  make(map[string][]time.Time),
	}
}

// add merges one page and reports whether there may be more after it
// (its Next moved the cursor). Arrivals of other runs are skipped; a
// sequence number seen before is never counted twice, so two copies of a
// key are two distinct commits at the destination: a duplicate.
func (l *arrivalLog) add(page *client.ArrivalsReply) (more bool) {
	l.last = max(l.last, page.Last)
	for _, a := range page.Arrivals {
		if l.seen[a.Seq] || !strings.HasPrefix(a.Key, l.prefix) {
			continue
		}
		l.seen[a.Seq] = true
		l.byKey[a.Key] = append(l.byKey[a.Key], a.ArrivedAt)
	}
	if page.Next > l.cursor {
		l.cursor = page.Next
		return true
	}
	return false
}

// arrived is the number of distinct canaries that arrived.
func (l *arrivalLog) arrived() int { return len(l.byKey) }

// cutTarget is one (node, path) a drill cuts, and how that went.
type cutTarget struct {
	node, path string
	err        error // of the cut
}

// describeTargets lists (node, path) pairs compactly, grouping nodes with
// the same paths: "fiber, radio on alpha-1, alpha-2; fiber on alpha-3".
// Nodes keep their first-seen order.
func describeTargets(targets []cutTarget) string {
	var nodes []string
	paths := make(map[string][]string)
	for _, t := range targets {
		if _, ok := paths[t.node]; !ok {
			nodes = append(nodes, t.node)
		}
		paths[t.node] = append(paths[t.node], t.path)
	}
	var groups []string
	var groupNodes [][]string
	for _, n := range nodes {
		key := strings.Join(paths[n], ", ")
		if i := slices.Index(groups, key); i >= 0 {
			groupNodes[i] = append(groupNodes[i], n)
			continue
		}
		groups = append(groups, key)
		groupNodes = append(groupNodes, []string{n})
	}
	parts := make([]string, len(groups))
	for i, g := range groups {
		parts[i] = g + " on " + strings.Join(groupNodes[i], ", ")
	}
	return strings.Join(parts, "; ")
}
