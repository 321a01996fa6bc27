package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"hotline/transport/pki"
)

// LabSites and LabNodes name the two-site, six-node lab.
var LabSites = []string{"alpha", "bravo"}

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
	var sites []SiteConfig
	for si, s := range LabSites {
		sc := SiteConfig{Name: s}
		for i, node := range LabNodes(s) {
			raft, p := addrs(si, i)
			sc.Nodes = append(sc.Nodes, NodeConfig{Name: node, Raft: raft, Paths: p})
		}
		sites = append(sites, sc)
	}
	var out []*Config
	for _, s := range LabSites {
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
			c.Paths = paths
			c.Sites = sites
			out = append(out, c)
		}
	}
	return out
}

// EnsureLabPKI creates dir/pki with a CA and a certificate per lab node,
// keeping whatever already exists.
func EnsureLabPKI(dir string) error {
	p := filepath.Join(dir, "pki")
	if _, err := os.Stat(filepath.Join(p, "ca.key")); errors.Is(err, fs.ErrNotExist) {
		if err := pki.Init(p); err != nil {
			return err
		}
	}
	for _, s := range LabSites {
		for _, node := range LabNodes(s) {
			if _, err := os.Stat(filepath.Join(p, node+".crt")); err == nil {
				continue
			}
			if _, _, err := pki.Issue(p, s, node); err != nil {
				return fmt.Errorf("issue certificate for %s: %w", node, err)
			}
		}
	}
	return nil
}
