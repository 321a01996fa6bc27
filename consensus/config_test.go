package consensus

import (
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/transport/linktest"
)

func TestConfigValidate(t *testing.T) {
	server, client := tlsConfigs(t, linktest.NewCA(t), "n1", nil)
	peers := []Peer{{"n1", "127.0.0.1:7001"}, {"n2", "127.0.0.1:7002"}, {"n3", "127.0.0.1:7003"}}
	valid := func() Config {
		return Config{
			ID: "n1", Addr: "127.0.0.1:7001", Dir: t.TempDir(), Peers: peers,
			ServerTLS: server, ClientTLS: client, FSM: &testFSM{},
		}
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"listener instead of addr", func(c *Config) { c.Addr = ""; c.Listener = dummyListener{} }, ""},
		{"test timeouts", func(c *Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 300*time.Millisecond, 300*time.Millisecond, 150*time.Millisecond
		}, ""},
		{"no id", func(c *Config) { c.ID = "" }, "ID is empty"},
		{"id not in peers", func(c *Config) { c.ID = "n9" }, `ID "n9" is not in Peers`},
		{"no dir", func(c *Config) { c.Dir = "" }, "Dir is empty"},
		{"no fsm", func(c *Config) { c.FSM = nil }, "FSM is nil"},
		{"no server tls", func(c *Config) { c.ServerTLS = nil }, "ServerTLS is nil"},
		{"no client auth", func(c *Config) {
			s := c.ServerTLS.Clone()
			s.ClientAuth = tls.VerifyClientCertIfGiven
			c.ServerTLS = s
		}, "must present a client certificate"},
		{"no certificate", func(c *Config) {
			s := c.ServerTLS.Clone()
			s.Certificates = nil
			c.ServerTLS = s
		}, "ServerTLS has no certificate"},
		{"no client tls", func(c *Config) { c.ClientTLS = nil }, "ClientTLS is nil"},
		{"no addr", func(c *Config) { c.Addr = "" }, "Addr is empty and there is no Listener"},
		{"bad addr", func(c *Config) { c.Addr = "localhost" }, `Addr "localhost"`},
		{"addr differs", func(c *Config) { c.Addr = "127.0.0.1:9999" }, "differs from this node's Peers entry"},
		{"no peers", func(c *Config) { c.Peers = nil }, "Peers is empty"},
		{"duplicate id", func(c *Config) { c.Peers = append(c.Peers[:3:3], Peer{"n2", "127.0.0.1:7004"}) }, `duplicate ID "n2"`},
		{"duplicate addr", func(c *Config) { c.Peers = append(c.Peers[:3:3], Peer{"n4", "127.0.0.1:7002"}) }, `duplicate Addr "127.0.0.1:7002"`},
		{"peer without port", func(c *Config) { c.Peers = append(c.Peers[:3:3], Peer{"n4", "10.0.0.4"}) }, `Peers[3] (n4): Addr "10.0.0.4"`},
		{"negative duration", func(c *Config) { c.CommitTimeout = -time.Second }, "CommitTimeout is negative"},
		{"too many append entries", func(c *Config) { c.MaxAppendEntries = 5000 }, "MaxAppendEntries 5000"},
		{"lease above heartbeat", func(c *Config) { c.LeaderLeaseTimeout = 2 * time.Second }, "LeaderLeaseTimeout (2s) cannot be larger"},
		{"election below heartbeat", func(c *Config) { c.ElectionTimeout = 300 * time.Millisecond }, "ElectionTimeout (300ms) must be equal or greater"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.modify(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("no error, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestOpenRejectsBadConfigAndClosesListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Listener: ln}); err == nil || !strings.Contains(err.Error(), "consensus: config:") {
		t.Fatalf("Open with empty config: %v", err)
	}
	if _, err := ln.Accept(); err == nil {
		t.Fatal("listener still open after a failed Open")
	}
}

func TestOpenSameDirTwiceFails(t *testing.T) {
	c := MakeCluster(t, 1)
	c.leader()
	cfg := c.nodes[0].cfg
	cfg.FSM = &testFSM{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listener = ln
	if n, err := Open(cfg); err == nil {
		n.Close()
		t.Fatal("a second node opened the same Dir")
	} else if !strings.Contains(err.Error(), "raft.db") {
		t.Fatalf("error does not name the log store: %v", err)
	}
}

// dummyListener satisfies net.Listener for validation only.
type dummyListener struct{ net.Listener }
