package pki

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/internal/alpn"
)

func mustInit(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := Init(dir); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return dir
}

func mustLoad(t *testing.T, dir, site, node string) *Bundle {
	t.Helper()
	if _, _, err := Issue(dir, site, node); err != nil {
		t.Fatalf("Issue %s/%s: %v", site, node, err)
	}
	b, err := LoadDir(dir, node)
	if err != nil {
		t.Fatalf("Load %s: %v", node, err)
	}
	return b
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestInitIssueLoadRoundTrip(t *testing.T) {
	dir := mustInit(t)
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("dir mode %o, want 700", m)
	}
	if m := mode(t, filepath.Join(dir, CAKeyFile)); m != 0o600 {
		t.Errorf("ca.key mode %o, want 600", m)
	}
	if m := mode(t, filepath.Join(dir, CACertFile)); m != 0o644 {
		t.Errorf("ca.crt mode %o, want 644", m)
	}
	certFile, keyFile, err := Issue(dir, "alpha", "a1")
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if certFile != filepath.Join(dir, "a1.crt") || keyFile != filepath.Join(dir, "a1.key") {
		t.Errorf("Issue returned %s %s", certFile, keyFile)
	}
	if m := mode(t, keyFile); m != 0o600 {
		t.Errorf("key mode %o, want 600", m)
	}
	if m := mode(t, certFile); m != 0o644 {
		t.Errorf("cert mode %o, want 644", m)
	}
	b, err := Load(filepath.Join(dir, CACertFile), certFile, keyFile)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := (Identity{"alpha", "a1"}); b.Identity != want {
		t.Errorf("identity %v, want %v", b.Identity, want)
	}
	if b.Identity.String() != "alpha/a1" {
		t.Errorf("String() = %q", b.Identity.String())
	}
	leaf := b.Leaf
	if leaf.Subject.CommonName != "a1" || len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != "alpha" {
		t.Errorf("subject %v", leaf.Subject)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "a1" {
		t.Errorf("DNS SANs %v", leaf.DNSNames)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "hotline://alpha/a1" {
		t.Errorf("URI SANs %v", leaf.URIs)
	}
	if _, ok := leaf.PublicKey.(ed25519.PublicKey); !ok {
		t.Errorf("public key %T, want Ed25519", leaf.PublicKey)
	}
	hasEKU := map[x509.ExtKeyUsage]bool{}
	for _, u := range leaf.ExtKeyUsage {
		hasEKU[u] = true
	}
	if !hasEKU[x509.ExtKeyUsageServerAuth] || !hasEKU[x509.ExtKeyUsageClientAuth] {
		t.Errorf("ext key usage %v", leaf.ExtKeyUsage)
	}
	if life := leaf.NotAfter.Sub(time.Now()); life < NodeValidity-time.Hour || life > NodeValidity {
		t.Errorf("node certificate lives %v", life)
	}
	caCerts, err := readCerts(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if life := caCerts[0].NotAfter.Sub(time.Now()); life < CAValidity-time.Hour || life > CAValidity {
		t.Errorf("CA certificate lives %v", life)
	}
	if b.Cert.Leaf != leaf || len(b.Cert.Certificate) != 1 {
		t.Errorf("tls.Certificate not filled in")
	}
}

func TestInitRefusesExisting(t *testing.T) {
	dir := mustInit(t)
	before, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	err := Init(dir)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second Init: %v, want already exists", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !bytes.Equal(before, after) {
		t.Fatal("second Init changed ca.key")
	}

	// Only a ca.crt present: refuse and do not create ca.key.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, CACertFile), []byte("x"), 0o644)
	if err := Init(dir2); err == nil || !strings.Contains(err.Error(), CACertFile) {
		t.Fatalf("Init with existing ca.crt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, CAKeyFile)); !os.IsNotExist(err) {
		t.Fatalf("Init created ca.key despite refusing: %v", err)
	}
}

func TestIssueRefusesOverwrite(t *testing.T) {
	dir := mustInit(t)
	certFile, keyFile, err := Issue(dir, "alpha", "a1")
	if err != nil {
		t.Fatal(err)
	}
	certBefore, _ := os.ReadFile(certFile)
	keyBefore, _ := os.ReadFile(keyFile)
	if _, _, err := Issue(dir, "alpha", "a1"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second Issue: %v", err)
	}
	// Same node name for another site is the same file: refused as well.
	if _, _, err := Issue(dir, "bravo", "a1"); err == nil {
		t.Fatal("Issue over an existing node file of another site succeeded")
	}
	certAfter, _ := os.ReadFile(certFile)
	keyAfter, _ := os.ReadFile(keyFile)
	if !bytes.Equal(certBefore, certAfter) || !bytes.Equal(keyBefore, keyAfter) {
		t.Fatal("refused Issue changed files")
	}
	// A stray key alone also blocks, and no certificate appears.
	os.WriteFile(filepath.Join(dir, "a2.key"), []byte("stray"), 0o600)
	if _, _, err := Issue(dir, "alpha", "a2"); err == nil || !strings.Contains(err.Error(), "a2.key") {
		t.Fatalf("Issue over stray key: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a2.crt")); !os.IsNotExist(err) {
		t.Fatal("refused Issue created a2.crt")
	}
}

func TestIssueWithoutCA(t *testing.T) {
	dir := t.TempDir()
	_, _, err := Issue(dir, "alpha", "a1")
	if err == nil || !strings.Contains(err.Error(), "ca.crt") {
		t.Fatalf("Issue without CA: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Fatalf("failed Issue left files: %v", entries)
	}
}

func TestValidName(t *testing.T) {
	good := []string{"a", "alpha", "a1", "1a", "node-1", "0", strings.Repeat("x", 63)}
	for _, n := range good {
		if err := ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v", n, err)
		}
	}
	bad := []string{"", "-a", "Alpha", "a_b", "a.b", "a/b", "a b", "ä", strings.Repeat("x", 64)}
	for _, n := range bad {
		err := ValidName(n)
		if err == nil {
			t.Errorf("ValidName(%q) accepted", n)
			continue
		}
		if n != "" && len(n) <= 63 && !strings.Contains(err.Error(), n) {
			t.Errorf("ValidName(%q) error %q does not name it", n, err)
		}
	}
	dir := mustInit(t)
	for _, c := range []struct{ site, node string }{{"Alpha", "a1"}, {"alpha", "a_1"}, {"", "a1"}, {"alpha", ""}, {"alpha", "../x"}} {
		if _, _, err := Issue(dir, c.site, c.node); err == nil {
			t.Errorf("Issue(%q, %q) accepted", c.site, c.node)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("bad-name Issue calls left files: %d entries", len(entries))
	}
}

func TestLoadRejectsOtherCA(t *testing.T) {
	dirA, dirB := mustInit(t), mustInit(t)
	certB, keyB, err := Issue(dirB, "alpha", "a1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Load(filepath.Join(dirA, CACertFile), certB, keyB)
	if err == nil || !strings.Contains(err.Error(), certB) {
		t.Fatalf("Load of foreign certificate: %v", err)
	}
}

func TestLoadErrorsNameFile(t *testing.T) {
	dir := mustInit(t)
	certA, keyA, _ := Issue(dir, "alpha", "a1")
	_, keyB, _ := Issue(dir, "alpha", "a2")
	ca := filepath.Join(dir, CACertFile)
	missing := filepath.Join(dir, "nope.crt")
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not pem"), 0o600)
	cases := []struct {
		name, ca, cert, key, want string
	}{
		{"missing CA", missing, certA, keyA, missing},
		{"garbage CA", garbage, certA, keyA, garbage},
		{"missing cert", ca, missing, keyA, missing},
		{"key as cert", ca, keyA, keyA, keyA},
		{"cert as key", ca, certA, certA, certA},
		{"mismatched key", ca, certA, keyB, "does not match"},
		{"leaf as CA", certA, certA, keyA, "not a CA"},
	}
	for _, c := range cases {
		_, err := Load(c.ca, c.cert, c.key)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to mention %q", c.name, err, c.want)
		}
	}
}

func uris(t *testing.T, ss ...string) *x509.Certificate {
	t.Helper()
	c := &x509.Certificate{}
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		c.URIs = append(c.URIs, u)
	}
	return c
}

func TestIdentityOf(t *testing.T) {
	ok := []struct {
		uris []string
		want Identity
	}{
		{[]string{"hotline://alpha/a1"}, Identity{"alpha", "a1"}},
		{[]string{"spiffe://example.org/x", "hotline://bravo/b-2"}, Identity{"bravo", "b-2"}},
	}
	for _, c := range ok {
		got, err := IdentityOf(uris(t, c.uris...))
		if err != nil || got != c.want {
			t.Errorf("IdentityOf(%v) = %v, %v; want %v", c.uris, got, err, c.want)
		}
	}
	bad := [][]string{
		nil,
		{"spiffe://alpha/a1"},
		{"hotline://alpha/a1", "hotline://alpha/a2"},
		{"hotline://alpha"},
		{"hotline://alpha/"},
		{"hotline://alpha/a1/x"},
		{"hotline://alpha:443/a1"},
		{"hotline://Alpha/a1"},
		{"hotline://alpha/a1?x=1"},
		{"hotline://alpha/a1#f"},
		{"hotline://u@alpha/a1"},
		{"hotline:alpha/a1"},
		{"hotline://al_pha/a1"},
		{"hotline://alpha/a%2F1"},
	}
	for _, c := range bad {
		_, err := IdentityOf(uris(t, c...))
		if err == nil {
			t.Errorf("IdentityOf(%v) accepted", c)
		} else if !errors.Is(err, ErrNoIdentity) {
			t.Errorf("IdentityOf(%v) error %v does not wrap ErrNoIdentity", c, err)
		}
	}
	if _, err := IdentityOf(nil); err == nil {
		t.Error("IdentityOf(nil) accepted")
	}
}

// handshake runs a TLS handshake between the two configs over an in-memory
// pipe and returns the client's and the server's errors.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, error, error) {
	t.Helper()
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srvErr := make(chan error, 1)
	go func() {
		s := tls.Server(c2, server)
		err := s.HandshakeContext(ctx)
		if err != nil {
			c2.Close()
		}
		srvErr <- err
	}()
	cl := tls.Client(c1, client)
	cliErr := cl.HandshakeContext(ctx)
	if cliErr != nil {
		c1.Close()
	} else {
		// In TLS 1.3 the server checks the client's certificate after
		// the client has finished; keep reading so its alert can land.
		go func() {
			var buf [1]byte
			cl.Read(buf[:])
		}()
	}
	return cl.ConnectionState(), cliErr, <-srvErr
}

func TestTLSConfigs(t *testing.T) {
	dir := mustInit(t)
	a1 := mustLoad(t, dir, "alpha", "a1")
	b1 := mustLoad(t, dir, "bravo", "b1")
	other := mustLoad(t, mustInit(t), "alpha", "a9")

	allowAlpha := func(id Identity) error {
		if id.Site != "alpha" {
			return errors.New("not alpha")
		}
		return nil
	}

	t.Run("ok", func(t *testing.T) {
		st, cerr, serr := handshake(t, b1.ServerConfig([]string{"x/1"}, allowAlpha), a1.ClientConfig([]string{"x/1"}, b1.Identity))
		if cerr != nil || serr != nil {
			t.Fatalf("client %v, server %v", cerr, serr)
		}
		if st.Version != tls.VersionTLS13 || st.CurveID != tls.X25519MLKEM768 || st.NegotiatedProtocol != "x/1" {
			t.Fatalf("version %x curve %v alpn %q", st.Version, st.CurveID, st.NegotiatedProtocol)
		}
	})
	t.Run("versions: the server's order wins", func(t *testing.T) {
		srv := []string{"x/2", "x/1"}
		for _, c := range []struct {
			offer []string
			want  string
		}{
			{[]string{"x/1", "x/2"}, "x/2"}, // the client prefers 1; the server's 2 wins
			{[]string{"x/1"}, "x/1"},        // an older client
			{[]string{"x/9", "x/1"}, "x/1"}, // a newer client
		} {
			st, cerr, serr := handshake(t, b1.ServerConfig(srv, allowAlpha), a1.ClientConfig(c.offer, b1.Identity))
			if cerr != nil || serr != nil {
				t.Fatalf("offer %v: client %v, server %v", c.offer, cerr, serr)
			}
			if st.NegotiatedProtocol != c.want {
				t.Errorf("offer %v: negotiated %q, want %q", c.offer, st.NegotiatedProtocol, c.want)
			}
		}
		_, cerr, serr := handshake(t, b1.ServerConfig(srv, allowAlpha), a1.ClientConfig([]string{"x/9"}, b1.Identity))
		if serr == nil || cerr == nil || !alpn.Refused(cerr) {
			t.Fatalf("no common version: client %v, server %v; want a no_application_protocol refusal", cerr, serr)
		}
	})
	t.Run("server refuses by allow", func(t *testing.T) {
		_, cerr, serr := handshake(t, a1.ServerConfig([]string{"x/1"}, allowAlpha), b1.ClientConfig([]string{"x/1"}, a1.Identity))
		if serr == nil || !strings.Contains(serr.Error(), "not allowed") {
			t.Fatalf("server err %v (client %v)", serr, cerr)
		}
	})
	t.Run("client pins identity", func(t *testing.T) {
		_, cerr, _ := handshake(t, b1.ServerConfig([]string{"x/1"}, nil), a1.ClientConfig([]string{"x/1"}, Identity{"bravo", "b2"}))
		if cerr == nil {
			t.Fatal("client accepted b1 when expecting b2")
		}
	})
	t.Run("client pins site", func(t *testing.T) {
		// Same node name, other site: hostname matches, identity does not.
		_, cerr, _ := handshake(t, b1.ServerConfig([]string{"x/1"}, nil), a1.ClientConfig([]string{"x/1"}, Identity{"alpha", "b1"}))
		if cerr == nil || !strings.Contains(cerr.Error(), "expected alpha/b1") {
			t.Fatalf("client err %v", cerr)
		}
	})
	t.Run("foreign CA client", func(t *testing.T) {
		_, _, serr := handshake(t, b1.ServerConfig([]string{"x/1"}, nil), other.ClientConfig([]string{"x/1"}, b1.Identity))
		if serr == nil {
			t.Fatal("server accepted a client from another CA")
		}
	})
	t.Run("foreign CA server", func(t *testing.T) {
		_, cerr, _ := handshake(t, other.ServerConfig([]string{"x/1"}, nil), a1.ClientConfig([]string{"x/1"}, other.Identity))
		if cerr == nil {
			t.Fatal("client accepted a server from another CA")
		}
	})
	t.Run("no PQ curve", func(t *testing.T) {
		cc := a1.ClientConfig([]string{"x/1"}, b1.Identity)
		cc.CurvePreferences = []tls.CurveID{tls.X25519}
		_, cerr, serr := handshake(t, b1.ServerConfig([]string{"x/1"}, nil), cc)
		if cerr == nil && serr == nil {
			t.Fatal("handshake without X25519MLKEM768 succeeded")
		}
	})
}
