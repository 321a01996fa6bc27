package netlab

import (
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
)

// Site names a site and its nodes, in order (node j of site i gets the
// addresses described in the package doc).
type Site struct {
	Name  string
	Nodes []string
}

// Spec describes a lab.
type Spec struct {
	// Prefix names the lab's namespaces ("<Prefix>-<node>", "<Prefix>-wan").
	// Letters and digits only, unique per test: New deletes every namespace
	// named "<Prefix>-…".
	Prefix string
	Sites  []Site
	// Paths are the WAN path names, in preference order.
	Paths []string
}

// Limits of the addressing plan.
const (
	maxSites = 90  // LAN second octet 10+i stays below the paths' 100
	maxNodes = 254 // last octet j+1
	maxPaths = 156 // second octet 100+k ≤ 255
)

var (
	prefixRE = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$`)
)

// Lab is a built topology. Its methods are safe for concurrent use.
type Lab struct {
	spec  Spec
	wan   string         // the middle namespace
	nodes map[string]loc // node name → indices
	sites map[string]int // site name → index
	paths map[string]int // path name → index

	mu     sync.Mutex
	closed bool
}

type loc struct{ site, node int }

// New builds the topology of spec (see the package doc). It first deletes
// namespaces left by an earlier run with the same Prefix. On error it
// deletes what it created; the error names the failed step and carries the
// tool's stderr.
func New(spec Spec) (*Lab, error) {
	l, err := newLab(spec)
	if err != nil {
		return nil, err
	}
	if err := removeLeftovers(spec.Prefix); err != nil {
		return nil, err
	}
	if err := l.build(); err != nil {
		l.deleteNamespaces()
		return nil, err
	}
	return l, nil
}

// newLab validates spec and indexes its names; it touches nothing.
func newLab(spec Spec) (*Lab, error) {
	if !prefixRE.MatchString(spec.Prefix) {
		return nil, fmt.Errorf("netlab: prefix %q: want 1-32 letters or digits", spec.Prefix)
	}
	if len(spec.Sites) == 0 || len(spec.Sites) > maxSites {
		return nil, fmt.Errorf("netlab: %d sites: want 1-%d", len(spec.Sites), maxSites)
	}
	if len(spec.Paths) > maxPaths {
		return nil, fmt.Errorf("netlab: %d paths: want at most %d", len(spec.Paths), maxPaths)
	}
	l := &Lab{
		spec:  spec,
		wan:   spec.Prefix + "-wan",
		nodes: map[string]loc{},
		sites: map[string]int{},
		paths: map[string]int{},
	}
	for i, s := range spec.Sites {
		if s.Name == "" {
			return nil, fmt.Errorf("netlab: site %d has no name", i)
		}
		if _, dup := l.sites[s.Name]; dup {
			return nil, fmt.Errorf("netlab: site %q named twice", s.Name)
		}
		l.sites[s.Name] = i
		if len(s.Nodes) == 0 || len(s.Nodes) > maxNodes {
			return nil, fmt.Errorf("netlab: site %q has %d nodes: want 1-%d", s.Name, len(s.Nodes), maxNodes)
		}
		for j, n := range s.Nodes {
			if !nameRE.MatchString(n) || n == "wan" {
				return nil, fmt.Errorf("netlab: node name %q: want letters, digits, '_', '.', '-', not \"wan\"", n)
			}
			if _, dup := l.nodes[n]; dup {
				return nil, fmt.Errorf("netlab: node %q named twice", n)
			}
			l.nodes[n] = loc{i, j}
		}
	}
	for k, p := range spec.Paths {
		if p == "" {
			return nil, fmt.Errorf("netlab: path %d has no name", k)
		}
		if _, dup := l.paths[p]; dup {
			return nil, fmt.Errorf("netlab: path %q named twice", p)
		}
		l.paths[p] = k
	}
	return l, nil
}

// Interface and address names, all derived from indices.
func lanBridge(i int) string        { return fmt.Sprintf("bl%d", i) }
func pathBridge(k int) string       { return fmt.Sprintf("bp%d", k) }
func lanPort(i, j int) string       { return fmt.Sprintf("ls%dn%d", i, j) }
func pathPort(k, i, j int) string   { return fmt.Sprintf("p%ds%dn%d", k, i, j) }
func pathIf(k int) string           { return fmt.Sprintf("p%d", k) }
func lanIP(i, j int) string         { return fmt.Sprintf("10.%d.0.%d", 10+i, j+1) }
func pathIP(k, i, j int) string     { return fmt.Sprintf("10.%d.%d.%d", 100+k, i+1, j+1) }
func mac(seg, i, j, end int) string { return fmt.Sprintf("02:00:%02x:%02x:%02x:%02x", seg, i, j, end) }

// The node-side interface on the LAN.
const lanIf = "lan"

// MAC segment numbers: 0 is the LAN, k+1 is path k; end 1 is the node
// side of a veth, 2 the wan side.
const (
	segLAN  = 0
	endNode = 1
	endWAN  = 2
)

// build creates the namespaces, then the wan side, then each node's side.
func (l *Lab) build() error {
	var add []string
	for _, ns := range l.namespaces() {
		add = append(add, "netns add "+ns)
	}
	if err := ipBatch("", add, false); err != nil {
		return fmt.Errorf("netlab: create namespaces: %w", err)
	}
	// New interfaces take the namespace's default, so this keeps IPv6 off
	// every veth and bridge while lo keeps ::1.
	for _, ns := range l.namespaces() {
		if err := disableIPv6(ns); err != nil {
			return err
		}
	}
	if err := ipBatch(l.wan, l.wanLines(), false); err != nil {
		return fmt.Errorf("netlab: build wan namespace %s: %w", l.wan, err)
	}
	errs := make([]error, len(l.spec.Sites))
	var wg sync.WaitGroup
	for i, s := range l.spec.Sites {
		wg.Go(func() {
			for j, n := range s.Nodes {
				if err := ipBatch(l.Namespace(n), l.nodeLines(i, j), false); err != nil {
					errs[i] = fmt.Errorf("netlab: configure node %s: %w", n, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// namespaces lists every namespace of the lab, the wan one last.
func (l *Lab) namespaces() []string {
	var out []string
	for _, s := range l.spec.Sites {
		for _, n := range s.Nodes {
			out = append(out, l.Namespace(n))
		}
	}
	return append(out, l.wan)
}

// wanLines builds the bridges and veth pairs, the peers landing in the
// node namespaces.
func (l *Lab) wanLines() []string {
	var b []string
	bridge := func(name string) {
		b = append(b,
			"link add "+name+" type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
			"link set "+name+" up")
	}
	veth := func(port, portMAC, peer, peerMAC, ns, br string) {
		b = append(b,
			fmt.Sprintf("link add %s address %s type veth peer name %s address %s netns %s",
				port, portMAC, peer, peerMAC, ns),
			fmt.Sprintf("link set %s master %s up", port, br))
	}
	for i := range l.spec.Sites {
		bridge(lanBridge(i))
	}
	for k := range l.spec.Paths {
		bridge(pathBridge(k))
	}
	for i, s := range l.spec.Sites {
		for j, n := range s.Nodes {
			ns := l.Namespace(n)
			veth(lanPort(i, j), mac(segLAN, i, j, endWAN), lanIf, mac(segLAN, i, j, endNode), ns, lanBridge(i))
			for k := range l.spec.Paths {
				veth(pathPort(k, i, j), mac(k+1, i, j, endWAN), pathIf(k), mac(k+1, i, j, endNode), ns, pathBridge(k))
			}
		}
	}
	return b
}

// nodeLines configures node j of site i inside its namespace: lo,
// addresses, links up, and permanent neighbours for every peer.
func (l *Lab) nodeLines(i, j int) []string {
	b := []string{
		"link set lo up",
		fmt.Sprintf("addr add %s/24 dev %s", lanIP(i, j), lanIf),
		"link set " + lanIf + " up",
	}
	for pj := range l.spec.Sites[i].Nodes {
		if pj != j {
			b = append(b, fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent",
				lanIP(i, pj), mac(segLAN, i, pj, endNode), lanIf))
		}
	}
	for k := range l.spec.Paths {
		b = append(b,
			fmt.Sprintf("addr add %s/16 dev %s", pathIP(k, i, j), pathIf(k)),
			"link set "+pathIf(k)+" up")
		for pi, s := range l.spec.Sites {
			for pj := range s.Nodes {
				if pi != i || pj != j {
					b = append(b, fmt.Sprintf("neigh replace %s lladdr %s dev %s nud permanent",
						pathIP(k, pi, pj), mac(k+1, pi, pj, endNode), pathIf(k)))
				}
			}
		}
	}
	return b
}

// Close deletes every namespace of the lab; the veths and bridges go with
// them. It is idempotent and safe to call after a failed step.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	return l.deleteNamespaces()
}

// deleteNamespaces deletes the lab's namespaces that exist.
func (l *Lab) deleteNamespaces() error {
	have, err := listNamespaces()
	if err != nil {
		return err
	}
	var del []string
	for _, ns := range l.namespaces() {
		if have[ns] {
			del = append(del, "netns del "+ns)
		}
	}
	if err := ipBatch("", del, true); err != nil {
		return fmt.Errorf("netlab: delete namespaces: %w", err)
	}
	return nil
}

// removeLeftovers deletes every namespace named "<prefix>-…".
func removeLeftovers(prefix string) error {
	have, err := listNamespaces()
	if err != nil {
		return err
	}
	var del []string
	for ns := range have {
		if strings.HasPrefix(ns, prefix+"-") {
			del = append(del, "netns del "+ns)
		}
	}
	if err := ipBatch("", del, true); err != nil {
		return fmt.Errorf("netlab: remove leftovers of %s: %w", prefix, err)
	}
	return nil
}

// Namespace returns node's network namespace name. It panics on a node the
// lab does not have, as do LANAddr, PathAddr and Command: that is a bug in
// the test.
func (l *Lab) Namespace(node string) string {
	l.loc(node)
	return l.spec.Prefix + "-" + node
}

// LANAddr returns node's IPv4 address on its site's LAN, without a port.
func (l *Lab) LANAddr(node string) string {
	n := l.loc(node)
	return lanIP(n.site, n.node)
}

// PathAddr returns node's IPv4 address on WAN path path, without a port.
func (l *Lab) PathAddr(node, path string) string {
	n := l.loc(node)
	k, ok := l.paths[path]
	if !ok {
		panic(fmt.Sprintf("netlab: unknown path %q", path))
	}
	return pathIP(k, n.site, n.node)
}

func (l *Lab) loc(node string) loc {
	n, ok := l.nodes[node]
	if !ok {
		panic(fmt.Sprintf("netlab: unknown node %q", node))
	}
	return n
}

// Command returns a command that runs name with args inside node's
// namespace through `ip netns exec`, which execs: cmd.Process.Pid is the
// program's own pid once started, and kill -9 reaches it.
func (l *Lab) Command(node, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.Namespace(node), name}, args...)...)
}

// Cut silently cuts node's link on path: the wan-side bridge port of its
// veth goes to state disabled. Frames both ways vanish; the node sees no
// error. Restore undoes it. Both are idempotent.
func (l *Lab) Cut(node, path string) error {
	return l.setPorts("cut", []string{node}, path, portDisabled)
}

// Restore undoes Cut: the port forwards again at once.
func (l *Lab) Restore(node, path string) error {
	return l.setPorts("restore", []string{node}, path, portForwarding)
}

// CutLAN silently cuts node off its site's LAN (Raft and the intra-site
// link), the same way Cut does for a path. RestoreLAN undoes it.
func (l *Lab) CutLAN(node string) error {
	return l.setPorts("cut", []string{node}, "", portDisabled)
}

// RestoreLAN undoes CutLAN.
func (l *Lab) RestoreLAN(node string) error {
	return l.setPorts("restore", []string{node}, "", portForwarding)
}

// CutSite cuts every node of site on path, in one step.
func (l *Lab) CutSite(site, path string) error {
	nodes, err := l.siteNodes(site)
	if err != nil {
		return err
	}
	return l.setPorts("cut", nodes, path, portDisabled)
}

// RestoreSite restores every node of site on path, in one step.
func (l *Lab) RestoreSite(site, path string) error {
	nodes, err := l.siteNodes(site)
	if err != nil {
		return err
	}
	return l.setPorts("restore", nodes, path, portForwarding)
}

func (l *Lab) siteNodes(site string) ([]string, error) {
	i, ok := l.sites[site]
	if !ok {
		return nil, fmt.Errorf("netlab: unknown site %q", site)
	}
	return l.spec.Sites[i].Nodes, nil
}

// Bridge port states (linux/if_bridge.h BR_STATE_*).
const (
	portDisabled   = 0
	portForwarding = 3
)

// setPorts sets the bridge port state of nodes' veths on path, or on the
// LAN when path is "". It uses the
// `bridge` tool: iproute2 6.1's `ip link set … type bridge_slave state 0`
// is silently ignored.
func (l *Lab) setPorts(op string, nodes []string, path string, state int) error {
	k, ok := l.paths[path]
	if !ok && path != "" {
		return fmt.Errorf("netlab: %s: unknown path %q", op, path)
	}
	var lines []string
	for _, node := range nodes {
		n, ok := l.nodes[node]
		if !ok {
			return fmt.Errorf("netlab: %s: unknown node %q", op, node)
		}
		port := lanPort(n.site, n.node)
		if path != "" {
			port = pathPort(k, n.site, n.node)
		}
		lines = append(lines, fmt.Sprintf("link set dev %s state %d", port, state))
	}
	if err := run("bridge", []string{"-n", l.wan, "-batch", "-"}, lines); err != nil {
		where := path
		if where == "" {
			where = "the LAN"
		}
		return fmt.Errorf("netlab: %s %v on %s: %w", op, nodes, where, err)
	}
	return nil
}
