package daemon_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/quic-go/quic-go"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/daemon/ctl"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// installCert issues a new certificate for site/node with the lab's CA,
// valid for validity, and writes it over the node's certificate and key
// files (as an operator would install renewed files).
func installCert(t *testing.T, lab *clustertest.Lab, site, node string, validity time.Duration) {
	t.Helper()
	src := filepath.Join(lab.Dir, "pki")
	dir := t.TempDir()
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		copyFile(t, filepath.Join(src, f), filepath.Join(dir, f))
	}
	crt, key, err := pki.IssueValid(dir, site, node, validity)
	if err != nil {
		t.Fatal(err)
	}
	c := lab.Configs[node]
	copyFile(t, key, c.TLS.Key)
	copyFile(t, crt, c.TLS.Cert)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	tmp := to + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

// raftPeerCert opens a new TLS connection to node's Raft port as another
// node of its site would, and returns the certificate node presented.
func raftPeerCert(t *testing.T, lab *clustertest.Lab, node, as string) *x509.Certificate {
	t.Helper()
	b, err := pki.LoadDir(filepath.Join(lab.Dir, "pki"), as)
	if err != nil {
		t.Fatal(err)
	}
	c := lab.Configs[node]
	d := &tls.Dialer{Config: b.ClientConfig(consensus.Protocols(), pki.Identity{Site: c.Site, Node: node})}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", daemon.NodeConfigOf(c, node).Raft)
	if err != nil {
		t.Fatalf("TLS to %s's raft port: %v", node, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
}

// linkPeerCert opens a new QUIC connection to node's endpoint on path as
// node as (of another site) would, and returns the certificate node
// presented.
func linkPeerCert(t *testing.T, lab *clustertest.Lab, node, path, as string) *x509.Certificate {
	t.Helper()
	b, err := pki.LoadDir(filepath.Join(lab.Dir, "pki"), as)
	if err != nil {
		t.Fatal(err)
	}
	c := lab.Configs[node]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, daemon.NodeConfigOf(c, node).Paths[path], b.ClientConfig(transport.Protocols(), pki.Identity{Site: c.Site, Node: node}), &quic.Config{})
	if err != nil {
		t.Fatalf("QUIC to %s's %s endpoint: %v", node, path, err)
	}
	defer conn.CloseWithError(0, "")
	return conn.ConnectionState().TLS.PeerCertificates[0]
}

// TestReloadCertificates replaces a node's certificate files and reloads
// them (the SIGHUP path, from the config file): new connections get the
// new certificate, the log level changes, an expiring certificate raises
// the alarm and its metrics; bad files and another node's certificate
// are refused and the certificate in use stays.
func TestReloadCertificates(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t, withMetricsListener)
	const node = "alpha-1"
	n := lab.Node(node)
	old := daemon.KeysOf(n).Current().Leaf
	if got := raftPeerCert(t, lab, node, "alpha-2"); !got.Equal(old) {
		t.Fatal("raft port presents another certificate than the one loaded")
	}
	if got := linkPeerCert(t, lab, node, "fiber", "bravo-1"); !got.Equal(old) {
		t.Fatal("link endpoint presents another certificate than the one loaded")
	}
	if a := daemon.Alarms(n); len(a) != 0 {
		t.Fatalf("alarms before: %q", a)
	}

	// The config file, as hotlined --config would read it, with a new
	// log level.
	cfgFile := filepath.Join(t.TempDir(), "alpha-1.toml")
	writeConfig := func(level string) {
		c := *lab.Configs[node]
		c.LogLevel = level
		f, err := os.Create(cfgFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := toml.NewEncoder(f).Encode(&c); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	writeConfig("debug")
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	rl := daemon.NewReloader(n, cfgFile, level)

	// A certificate that expires in 10 days: installed, and warned about.
	installCert(t, lab, "alpha", node, 10*24*time.Hour)
	summary, err := rl.Reload()
	if err != nil {
		t.Fatalf("reload: %v (%s)", err, summary)
	}
	cur := daemon.KeysOf(n).Current().Leaf
	if cur.Equal(old) {
		t.Fatal("reload kept the old certificate")
	}
	want := "reloaded: log_level warn→debug, node certificate (expires " + cur.NotAfter.UTC().Format(time.RFC3339) + ")"
	if summary != want {
		t.Errorf("summary %q, want %q", summary, want)
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after reload, want debug", level.Level())
	}
	if got := raftPeerCert(t, lab, node, "alpha-3"); !got.Equal(cur) {
		t.Fatal("a new Raft connection after reload got the old certificate")
	}
	if got := linkPeerCert(t, lab, node, "sat", "bravo-2"); !got.Equal(cur) {
		t.Fatal("a new link connection after reload got the old certificate")
	}

	alarms := daemon.Alarms(n)
	if len(alarms) != 1 || !strings.HasPrefix(alarms[0], "certificate expiring: node certificate (alpha/alpha-1) expires at "+cur.NotAfter.UTC().Format(time.RFC3339)+" (in 9d23h") {
		t.Fatalf("alarms: %q", alarms)
	}
	_, body := httpGet(t, "GET", metricsURL(lab, node)+"/metrics")
	fams := parseExposition(t, body)
	if v, _ := value(fams["hotline_cert_expiry_warning"], map[string]string{"cert": "node"}); v != 1 {
		t.Errorf("hotline_cert_expiry_warning{cert=node} = %v, want 1", v)
	}
	if v, _ := value(fams["hotline_cert_expiry_warning"], map[string]string{"cert": "ca"}); v != 0 {
		t.Errorf("hotline_cert_expiry_warning{cert=ca} = %v, want 0", v)
	}
	if v, _ := value(fams["hotline_alarms"], map[string]string{"kind": "cert_expiry"}); v != 1 {
		t.Errorf("hotline_alarms{kind=cert_expiry} = %v, want 1", v)
	}
	if v, _ := value(fams["hotline_cert_expiry_timestamp_seconds"], map[string]string{"cert": "node"}); v != float64(cur.NotAfter.Unix()) {
		t.Errorf("hotline_cert_expiry_timestamp_seconds{cert=node} = %v, want %d", v, cur.NotAfter.Unix())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if code := ctl.ExitCode(ctl.Run(ctx, []string{"--socket", lab.Configs[node].Socket, "status"}, nil, io.Discard, io.Discard)); code != 5 {
		t.Errorf("status exit code %d with an expiring certificate, want 5", code)
	}

	// The site keeps working through the node with its new certificate.
	m, err := lab.Client(node).Submit(ctx, client.SubmitRequest{To: "bravo", Wait: "delivered", Payload: []byte("after reload")})
	if err != nil || m.WaitTimedOut {
		t.Fatalf("submit after reload: %v %+v", err, m)
	}

	// A certificate valid for two years clears the alarm.
	installCert(t, lab, "alpha", node, pki.NodeValidity)
	if summary, err := rl.Reload(); err != nil || !strings.HasPrefix(summary, "reloaded: node certificate (expires ") {
		t.Fatalf("reload of a renewed certificate: %q %v", summary, err)
	}
	good := daemon.KeysOf(n).Current().Leaf
	if a := daemon.Alarms(n); len(a) != 0 {
		t.Fatalf("alarms after renewal: %q", a)
	}

	// Refused: a file that is not a certificate, and another node's
	// certificate. The certificate in use stays, and says so.
	c := lab.Configs[node]
	if err := os.WriteFile(c.TLS.Cert, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	summary, err = rl.Reload()
	if err == nil || !strings.Contains(err.Error(), "certificates refused, the old ones stay in use") || !strings.Contains(err.Error(), c.TLS.Cert) {
		t.Fatalf("reload of a garbage certificate: %q %v", summary, err)
	}
	if summary != "reloaded: nothing changed" {
		t.Errorf("summary of a refused reload: %q", summary)
	}
	other := lab.Configs["alpha-2"]
	copyFile(t, other.TLS.Cert, c.TLS.Cert)
	copyFile(t, other.TLS.Key, c.TLS.Key)
	if _, err := rl.Reload(); err == nil || !strings.Contains(err.Error(), "alpha/alpha-2, not alpha/alpha-1") {
		t.Fatalf("reload of alpha-2's certificate: %v", err)
	}
	if !daemon.KeysOf(n).Current().Leaf.Equal(good) {
		t.Fatal("a refused reload changed the certificate in use")
	}
	if got := raftPeerCert(t, lab, node, "alpha-2"); !got.Equal(good) {
		t.Fatal("after a refused reload a new connection got another certificate")
	}

	// A config that does not load changes nothing; keys that need a
	// restart are named.
	if err := os.WriteFile(cfgFile, []byte("site = \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rl.Reload(); err == nil || !strings.Contains(err.Error(), "reload refused, nothing changed") {
		t.Fatalf("reload of a broken config: %v", err)
	}
	writeConfig("debug")
	c2 := *lab.Configs[node]
	c2.LogLevel = "debug"
	c2.MaxMessageSize = 4096
	summary, err = rl.Apply(&c2)
	if !strings.Contains(summary, "changed but not applied until a restart: max_message_size") {
		t.Errorf("summary with a restart-only change: %q (%v)", summary, err)
	}
}
