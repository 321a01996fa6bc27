package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hotline-link/hotline/transport/pki"
	"github.com/hotline-link/hotline/transport/trust"
)

// LabSites and LabNodes name the two-site, six-node lab.
var LabSites = []string{"alpha", "bravo"}

// labSiteNames are the names a lab's sites take, in order.
var labSiteNames = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"}

// MaxLabSites is the largest number of sites LabSiteNames can name.
var MaxLabSites = len(labSiteNames)

// LabSiteNames returns the names of an n-site lab (2 ≤ n ≤ MaxLabSites):
// alpha, bravo, charlie, ...
func LabSiteNames(n int) ([]string, error) {
	if n < 2 || n > len(labSiteNames) {
		return nil, fmt.Errorf("a lab has 2 to %d sites, not %d", len(labSiteNames), n)
	}
	return append([]string(nil), labSiteNames[:n]...), nil
}

// LabNodes returns the lab's node names of a site: site-1 … site-3.
func LabNodes(site string) []string {
	return []string{site + "-1", site + "-2", site + "-3"}
}

// LabAddrs chooses the addresses of lab node i (0-based) of site s
// (0-based): its Raft TCP address and its address on each path.
type LabAddrs func(s, i int) (raft string, paths map[string]string)

// LabConfigs returns the configs of a complete two-site lab under dir:
// certificates in dir/pki, data in dir/<node>, sockets at dir/<node>.sock.
// paths lists the path names every node has.
func LabConfigs(dir string, paths []string, addrs LabAddrs) []*Config {
	return LabConfigsFor(dir, LabSites, paths, addrs)
}

// LabConfigsFor is LabConfigs for the given sites, three nodes each.
func LabConfigsFor(dir string, siteNames, paths []string, addrs LabAddrs) []*Config {
	var sites []SiteConfig
	for si, s := range siteNames {
		sc := SiteConfig{Name: s}
		for i, node := range LabNodes(s) {
			raft, p := addrs(si, i)
			sc.Nodes = append(sc.Nodes, NodeConfig{Name: node, Raft: raft, Paths: p})
		}
		sites = append(sites, sc)
	}
	var out []*Config
	for _, s := range siteNames {
		for _, node := range LabNodes(s) {
			c := DefaultConfig()
			c.Site, c.Node = s, node
			c.DataDir = filepath.Join(dir, node)
			c.Socket = filepath.Join(dir, node+".sock")
			c.TLS = TLSConfig{
				CA:   filepath.Join(dir, "pki", "ca.crt"),
				Cert: filepath.Join(dir, "pki", node+".crt"),
				Key:  filepath.Join(dir, "pki", node+".key"),
			}
			c.Trust = TrustConfig{
				SignKey: filepath.Join(dir, "pki", trust.SigningKeyFile(s)),
				KEMKey:  filepath.Join(dir, "pki", trust.DecryptionKeyFile(s)),
				Keys:    filepath.Join(dir, "pki", trust.KeyringFile),
			}
			c.Paths = paths
			c.Sites = sites
			out = append(out, c)
		}
	}
	return out
}

// EnsureLabPKI creates dir/pki with a CA and a certificate per node of the
// two-site lab, and each site's keys and the keyring of all (package
// transport/trust), keeping whatever already exists.
func EnsureLabPKI(dir string) error { return EnsureLabPKIFor(dir, LabSites) }

// EnsureLabPKIFor is EnsureLabPKI for the given sites.
func EnsureLabPKIFor(dir string, sites []string) error {
	p := filepath.Join(dir, "pki")
	if _, err := os.Stat(filepath.Join(p, "ca.key")); errors.Is(err, fs.ErrNotExist) {
		if err := pki.Init(p); err != nil {
			return err
		}
	}
	for _, s := range sites {
		for _, node := range LabNodes(s) {
			if _, err := os.Stat(filepath.Join(p, node+".crt")); err == nil {
				continue
			}
			if _, _, err := pki.Issue(p, s, node); err != nil {
				return fmt.Errorf("issue certificate for %s: %w", node, err)
			}
		}
	}
	if _, err := trust.EnsureSiteKeys(p, sites); err != nil {
		return fmt.Errorf("site keys: %w", err)
	}
	return nil
}

// DevOptions shape the dev lab (hotlined --dev).
type DevOptions struct {
	Dir   string // PKI, data and sockets; kept across restarts
	Sites int    // number of sites, 2 to MaxLabSites
	// BasePort is the Raft TCP (and intra-site UDP) port of every node;
	// the inter-site paths listen on BasePort+100. Two dev labs on one
	// machine need base ports at least 101 apart.
	BasePort int
	// Ctl is the hotlinectl command the banner tells the user to run.
	Ctl string
}

// DefaultDevOptions are hotlined --dev's defaults.
func DefaultDevOptions() DevOptions {
	return DevOptions{Dir: "hotline-dev", Sites: 2, BasePort: 17000, Ctl: "bin/hotlinectl"}
}

// devAddrs places node i of site s on 127.0.<s+1>.<i+1> (Raft, fiber) and
// 127.1.<s+1>.<i+1> (sat).
func (o DevOptions) addrs(s, i int) (string, map[string]string) {
	ip := fmt.Sprintf("127.0.%d.%d", s+1, i+1)
	return fmt.Sprintf("%s:%d", ip, o.BasePort), map[string]string{
		"fiber": fmt.Sprintf("%s:%d", ip, o.BasePort+100),
		"sat":   fmt.Sprintf("127.1.%d.%d:%d", s+1, i+1, o.BasePort+100),
	}
}

func (o DevOptions) validate() error {
	if o.BasePort < 1 || o.BasePort+100 > 65535 {
		return usageError{fmt.Errorf("--base-port %d: must be 1 to 65435 (the paths listen on the base port + 100)", o.BasePort)}
	}
	if _, err := LabSiteNames(o.Sites); err != nil {
		return usageError{fmt.Errorf("--sites: %w", err)}
	}
	return nil
}

// waitLeaders waits until every site among cfgs (nodes[i] runs cfgs[i])
// has a leader, ctx ends or a node stops.
func waitLeaders(ctx context.Context, cfgs []*Config, nodes []*Node) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		led := map[string]bool{}
		for i, n := range nodes {
			led[cfgs[i].Site] = led[cfgs[i].Site] || (n.raft != nil && n.raft.IsLeader())
		}
		missing := 0
		for _, c := range cfgs {
			if !led[c.Site] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-nodes[0].Done():
			return errors.New("a node stopped")
		case <-t.C:
		}
	}
}

// PickDevBasePort returns a base port (see DevOptions.BasePort) at which
// every address of a dev lab of sites sites is free for TCP and UDP now,
// trying random ports from 20000 to 59999. Another process may take one
// of them before the lab listens; tests that start a lab on it retry.
func PickDevBasePort(sites int) (int, error) {
	o := DevOptions{Sites: sites}
	if _, err := LabSiteNames(sites); err != nil {
		return 0, err
	}
	for range 100 {
		o.BasePort = 20000 + rand.IntN(40000)
		if o.addrsFree() {
			return o.BasePort, nil
		}
	}
	return 0, errors.New("no free dev lab base port found in 100 tries")
}

// addrsFree reports whether every address of the lab can be listened on.
func (o DevOptions) addrsFree() bool {
	for s := range o.Sites {
		for i := range 3 {
			raft, paths := o.addrs(s, i)
			for _, a := range append([]string{raft}, paths["fiber"], paths["sat"]) {
				l, err := net.Listen("tcp", a)
				if err != nil {
					return false
				}
				l.Close()
				u, err := net.ListenPacket("udp", a)
				if err != nil {
					return false
				}
				u.Close()
			}
		}
	}
	return true
}
