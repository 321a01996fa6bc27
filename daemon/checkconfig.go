package daemon

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hotline-link/hotline/transport/pki"
)

// certWarnBefore is how long before a certificate expires check-config
// warns about it.
const certWarnBefore = 30 * 24 * time.Hour

// CheckConfig is `hotlined check-config FILE`: it loads and validates the
// node config in file as the daemon would at start, checks that
// socket_group exists, that the TLS files load, chain to the CA and are
// this node's, and that the [trust] keys load and match each other and the
// config (loadSiteKeys), and changes nothing. It writes "OK FILE" and a summary to
// stdout; or each problem as "FILE:LINE: KEY: what" to stderr and returns
// an error saying how many there were.
func CheckConfig(file string, now time.Time, stdout, stderr io.Writer) error {
	cfg, err := LoadConfig(file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return fmt.Errorf("check-config: %s: 1 problem", file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("check-config: %w", err)
	}
	var problems []error
	bad := func(key, format string, a ...any) {
		problems = append(problems, &ConfigError{File: file, Line: lineOfKey(data, key), Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	if cfg.SocketGroup != "" {
		if err := checkGroup(cfg.SocketGroup); err != nil {
			bad("socket_group", "%v", err)
		}
	}
	bundle, err := pki.Load(cfg.TLS.CA, cfg.TLS.Cert, cfg.TLS.Key)
	switch {
	case err != nil:
		bad(tlsKeyOf(err), "%v", err)
	case bundle.Identity != (pki.Identity{Site: cfg.Site, Node: cfg.Node}):
		bad("tls.cert", "%s is the certificate of %s, but this node is %s/%s", cfg.TLS.Cert, bundle.Identity, cfg.Site, cfg.Node)
	}
	keys, err := loadSiteKeys(cfg)
	if err != nil {
		if ce, ok := errors.AsType[*ConfigError](err); ok {
			bad(ce.Key, "%s%s", ce.Msg, credentialHint(ce.Msg))
		} else {
			bad("trust", "%v", err)
		}
	}
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("check-config: %s: %d problem(s)", file, len(problems))
	}
	writeSummary(stdout, cfg, bundle, keys, now)
	return nil
}

// tlsKeyOf names the [tls] key a pki.Load error is about.
func tlsKeyOf(err error) string {
	switch s := err.Error(); {
	case strings.HasPrefix(s, "pki: load CA"):
		return "tls.ca"
	case strings.HasPrefix(s, "pki: load key"):
		return "tls.key"
	default:
		return "tls.cert"
	}
}

func writeSummary(w io.Writer, cfg *Config, b *pki.Bundle, keys *siteKeys, now time.Time) {
	fmt.Fprintf(w, "OK %s\n", cfg.file)
	row := func(k, format string, a ...any) { fmt.Fprintf(w, "  %-12s %s\n", k, fmt.Sprintf(format, a...)) }
	row("node", "%s/%s", cfg.Site, cfg.Node)
	row("certificate", "%s: %s", cfg.TLS.Cert, validity(b.Leaf.NotAfter, now))
	ca := issuerOf(b)
	if ca != nil {
		row("CA", "%s: %q, %s", cfg.TLS.CA, ca.Subject.CommonName, validity(ca.NotAfter, now))
	}
	var sites []string
	for _, s := range cfg.Sites {
		d := fmt.Sprintf("%s (%d nodes", s.Name, len(s.Nodes))
		if s.Name == cfg.Site {
			d += ", this site"
		}
		sites = append(sites, d+")")
	}
	row("sites", "%s", strings.Join(sites, ", "))
	for _, r := range keys.summary(cfg) {
		row(r[0], "%s", r[1])
	}
	row("paths", "%s", strings.Join(cfg.Paths, ", "))
	row("data_dir", "%s", cfg.DataDir)
	group := cfg.SocketGroup
	if group == "" {
		group = socketDirGroup(filepath.Dir(cfg.Socket))
	}
	row("socket", "%s (mode %s, group %s)", cfg.Socket, cfg.SocketMode, group)
	if cfg.AdminGroup == "" {
		row("admin API", "root only")
	} else {
		row("admin API", "root and group %s", cfg.AdminGroup)
	}
	for _, line := range cfg.mailboxes().summary() { // mailbox.go
		row("mailbox", "%s", line)
	}
	ips, names := peerHosts(cfg)
	fmt.Fprintf(w, "  %-12s %s\n", "peers", "the unit's IP address allow list for them (a drop-in, see the README):")
	fmt.Fprintf(w, "    IPAddressAllow=%s\n", strings.Join(ips, " "))
	if len(names) > 0 {
		fmt.Fprintf(w, "    (and the addresses of %s, which are names)\n", strings.Join(names, ", "))
	}
	expiring := map[string]time.Time{"certificate " + cfg.TLS.Cert: b.Leaf.NotAfter}
	if ca != nil {
		expiring["CA "+cfg.TLS.CA] = ca.NotAfter
	}
	for _, what := range slices.Sorted(maps.Keys(expiring)) {
		if left := expiring[what].Sub(now); left < certWarnBefore {
			fmt.Fprintf(w, "warning: the %s expires in %d days (%s)\n", what, int(left.Hours()/24), expiring[what].UTC().Format(time.DateOnly))
		}
	}
}

// socketDirGroup says which group a socket created in dir gets when
// socket_group is not set.
func socketDirGroup(dir string) string {
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode()&os.ModeSetgid == 0 {
		return "the daemon's own"
	}
	gid := strconv.FormatUint(uint64(fi.Sys().(*syscall.Stat_t).Gid), 10)
	name := gid
	if g, err := user.LookupGroupId(gid); err == nil {
		name = g.Name
	}
	return name + ", from set-group-ID " + dir
}

// validity is "valid until 2027-11-28 (365 days)".
func validity(notAfter, now time.Time) string {
	return fmt.Sprintf("valid until %s (%d days)", notAfter.UTC().Format(time.DateOnly), int(notAfter.Sub(now).Hours()/24))
}

// issuerOf is the CA certificate the node's certificate chains to.
func issuerOf(b *pki.Bundle) *x509.Certificate {
	chains, err := b.Leaf.Verify(x509.VerifyOptions{Roots: b.Roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil || len(chains) == 0 {
		return nil
	}
	return chains[0][len(chains[0])-1]
}

// peerHosts lists the hosts this node exchanges packets with: the raft
// addresses of its own site's other nodes and the path addresses of the
// other sites' nodes; IP addresses sorted, names apart.
func peerHosts(cfg *Config) (ips, names []string) {
	seen := map[string]bool{}
	add := func(addr string) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || seen[host] {
			return
		}
		seen[host] = true
		if net.ParseIP(host) != nil {
			ips = append(ips, host)
		} else {
			names = append(names, host)
		}
	}
	for _, s := range cfg.Sites {
		for _, n := range s.Nodes {
			switch {
			case s.Name == cfg.Site && n.Name != cfg.Node:
				add(n.Raft)
			case s.Name != cfg.Site:
				for _, p := range cfg.Paths {
					add(n.Paths[p])
				}
			}
		}
	}
	slices.Sort(ips)
	slices.Sort(names)
	return ips, names
}
