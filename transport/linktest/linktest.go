package linktest

import (
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hotline-link/hotline/transport/pki"
)

// CA is a certificate authority in a temporary directory, made by NewCA.
// Its methods are safe for concurrent use and fail the test on error.
type CA struct {
	// Dir holds ca.crt, ca.key and every <node>.crt/.key issued so far.
	Dir string

	t  testing.TB
	mu sync.Mutex
	// bundles caches loaded bundles by node name.
	bundles map[string]*pki.Bundle
}

// NewCA creates a fresh CA with pki.Init in a directory under t.TempDir().
func NewCA(t testing.TB) *CA {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := pki.Init(dir); err != nil {
		t.Fatalf("linktest: %v", err)
	}
	return &CA{Dir: dir, t: t, bundles: make(map[string]*pki.Bundle)}
}

// Bundle returns the loaded bundle for node of site, issuing its certificate
// the first time. Asking for the same node name with a different site fails
// the test (node names are file names in the CA directory).
func (ca *CA) Bundle(site, node string) *pki.Bundle {
	ca.t.Helper()
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if b, ok := ca.bundles[node]; ok {
		if b.Identity.Site != site {
			ca.t.Fatalf("linktest: node %s already issued for site %s, not %s", node, b.Identity.Site, site)
		}
		return b
	}
	if _, _, err := pki.Issue(ca.Dir, site, node); err != nil {
		ca.t.Fatalf("linktest: %v", err)
	}
	b, err := pki.LoadDir(ca.Dir, node)
	if err != nil {
		ca.t.Fatalf("linktest: %v", err)
	}
	ca.bundles[node] = b
	return b
}

// Files returns the paths of the CA certificate and of node's certificate
// and key, issuing them for site first if needed. Use it for code that loads
// files itself (configs, Raft stream layers).
func (ca *CA) Files(site, node string) (caFile, certFile, keyFile string) {
	ca.t.Helper()
	ca.Bundle(site, node)
	return filepath.Join(ca.Dir, pki.CACertFile), filepath.Join(ca.Dir, node+".crt"), filepath.Join(ca.Dir, node+".key")
}

// FreeUDPAddr returns "127.0.0.1:port" for a UDP port that was free a moment
// ago. Between the return and the caller's bind another process may take it;
// on loopback in a test that is rare enough. Prefer port 0 and the bound
// address when the peers' addresses need not be known in advance.
func FreeUDPAddr(t testing.TB) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("linktest: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}
