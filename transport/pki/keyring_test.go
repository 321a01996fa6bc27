package pki

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reissue issues site/node again with the CA of dir, in a fresh directory
// (Issue never overwrites), and loads it.
func reissue(t *testing.T, dir, site, node string, validity time.Duration) *Bundle {
	t.Helper()
	nd := filepath.Join(t.TempDir(), "pki")
	if err := os.MkdirAll(nd, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CACertFile, CAKeyFile} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(nd, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := IssueValid(nd, site, node, validity); err != nil {
		t.Fatal(err)
	}
	b, err := LoadDir(nd, node)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyringReplace: handshakes after Replace use the new certificate on
// both sides; a certificate for another identity is refused and the old
// one stays; a keyring's client verifies the server against its CA.
func TestKeyringReplace(t *testing.T) {
	dir := mustInit(t)
	a1 := mustLoad(t, dir, "alpha", "a1")
	a2 := mustLoad(t, dir, "alpha", "a2")
	ka1, ka2 := NewKeyring(a1), NewKeyring(a2)
	srv := ka1.ServerConfig([]string{"x"}, nil) // made once, as a listener's would be
	cli := ka2.ClientConfig([]string{"x"}, Identity{"alpha", "a1"})

	cs, cerr, serr := handshake(t, srv, cli)
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	if !cs.PeerCertificates[0].Equal(a1.Leaf) {
		t.Fatal("server presented another certificate than a1's")
	}

	newA1 := reissue(t, dir, "alpha", "a1", time.Hour)
	if err := ka1.Replace(newA1, time.Now()); err != nil {
		t.Fatal(err)
	}
	cs, cerr, serr = handshake(t, srv, cli)
	if cerr != nil || serr != nil {
		t.Fatalf("handshake after replace: client %v, server %v", cerr, serr)
	}
	if !cs.PeerCertificates[0].Equal(newA1.Leaf) {
		t.Fatal("after Replace the server still presents the old certificate")
	}
	// The client side too: a2's new certificate is what the server sees.
	newA2 := reissue(t, dir, "alpha", "a2", time.Hour)
	if err := ka2.Replace(newA2, time.Now()); err != nil {
		t.Fatal(err)
	}
	var seen [][]byte
	srv2 := ka1.ServerConfig([]string{"x"}, func(id Identity) error { return nil })
	verify := srv2.VerifyConnection
	srv2.VerifyConnection = func(cs tls.ConnectionState) error {
		seen = append(seen, cs.PeerCertificates[0].Raw)
		return verify(cs)
	}
	if _, cerr, serr := handshake(t, srv2, cli); cerr != nil || serr != nil {
		t.Fatalf("handshake after client replace: client %v, server %v", cerr, serr)
	}
	if len(seen) != 1 || string(seen[0]) != string(newA2.Leaf.Raw) {
		t.Fatal("after Replace the client did not present its new certificate")
	}

	// Another identity, or an expired certificate, is refused.
	if err := ka1.Replace(a2, time.Now()); err == nil || !strings.Contains(err.Error(), "alpha/a2, not alpha/a1") {
		t.Fatalf("Replace with a2's certificate: %v", err)
	}
	if err := ka1.Replace(newA1, time.Now().Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Replace with a certificate expired at that time: %v", err)
	}
	if !ka1.Current().Leaf.Equal(newA1.Leaf) {
		t.Fatal("a refused Replace changed the keyring")
	}

	// A keyring's client refuses a server of another CA and a server
	// that is not the node it expects.
	stranger := mustLoad(t, mustInit(t), "alpha", "a1")
	if _, cerr, _ := handshake(t, stranger.ServerConfig([]string{"x"}, nil), cli); cerr == nil || !strings.Contains(cerr.Error(), "not trusted") {
		t.Fatalf("server of another CA: client error %v", cerr)
	}
	wrong := ka2.ClientConfig([]string{"x"}, Identity{"alpha", "a3"})
	if _, cerr, _ := handshake(t, srv, wrong); cerr == nil {
		t.Fatal("client expecting a3 accepted a1")
	} else if !strings.Contains(cerr.Error(), "a3") {
		t.Fatalf("client expecting a3: %v", cerr)
	}
}
