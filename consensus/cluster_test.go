package consensus

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotline-link/hotline/internal/testutil"
	"github.com/hotline-link/hotline/transport/linktest"
)

// This file is test support: certificates, a tiny state machine and a
// MakeCluster helper running real Raft over real mTLS on loopback.

// testALPN is the Raft protocol version two nodes of this build negotiate.
const testALPN = RaftProtocol2

// testSite is the site of every test node's certificate (consensus knows
// no sites; the certificates carry one).
const testSite = "site"

// tlsConfigs returns the server config and the client dial function for
// node name with a certificate from ca (DNS name = the node's name). names
// maps peer addresses to node names: the client pins the name expected at
// an address, the server accepts only client certificates naming a known
// node.
func tlsConfigs(t testing.TB, ca *linktest.CA, name string, names map[string]string) (*tls.Config, func(string) (*tls.Config, error)) {
	t.Helper()
	return tlsConfigsSpeaking(t, ca, name, names, Protocols())
}

// tlsConfigsSpeaking is tlsConfigs with the Raft protocol versions protos
// offered and accepted: [RaftProtocol1] is a node of the previous release.
func tlsConfigsSpeaking(t testing.TB, ca *linktest.CA, name string, names map[string]string, protos []string) (*tls.Config, func(string) (*tls.Config, error)) {
	t.Helper()
	b := ca.Bundle(testSite, name)
	cert := b.Cert
	known := make(map[string]bool)
	for _, n := range names {
		known[n] = true
	}
	server := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    b.Roots,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
		NextProtos:   protos,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !slices.ContainsFunc(cs.PeerCertificates[0].DNSNames, func(n string) bool { return known[n] }) {
				return fmt.Errorf("client certificate names no known node")
			}
			return nil
		},
	}
	client := func(addr string) (*tls.Config, error) {
		peer, ok := names[addr]
		if !ok {
			return nil, fmt.Errorf("no node known at %s", addr)
		}
		return &tls.Config{
			Certificates: []tls.Certificate{cert},
			RootCAs:      b.Roots,
			ServerName:   peer,
			MinVersion:   tls.VersionTLS13,
			NextProtos:   protos,
		}, nil
	}
	return server, client
}

// testFSM is an in-memory append-only list of entries; snapshots are JSON.
type testFSM struct {
	mu       sync.Mutex
	entries  []Entry
	restores int
}

var _ StateMachine = (*testFSM)(nil)

func (f *testFSM) Apply(entries []Entry) []any {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]any, len(entries))
	for i, e := range entries {
		out[i] = e.Index
		if n := len(f.entries); n > 0 && e.Index <= f.entries[n-1].Index {
			continue // a replay after standing by
		}
		f.entries = append(f.entries, Entry{Index: e.Index, Data: slices.Clone(e.Data)})
	}
	return out
}

type testSnapshot []Entry

func (s testSnapshot) WriteTo(w io.Writer) (int64, error) {
	b, err := json.Marshal([]Entry(s))
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	return int64(n), err
}

func (s testSnapshot) Release() {}

func (f *testFSM) Snapshot() (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return testSnapshot(slices.Clone(f.entries)), nil
}

func (f *testFSM) Restore(r io.Reader) error {
	var entries []Entry
	if err := json.NewDecoder(r).Decode(&entries); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = entries
	f.restores++
	return nil
}

// data returns the applied commands, in order.
func (f *testFSM) data() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.entries))
	for i, e := range f.entries {
		out[i] = string(e.Data)
	}
	return out
}

func (f *testFSM) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

func (f *testFSM) restoreCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

// logBuffer collects a node's text logs, so tests can look for messages
// and dump them on failure, and nothing writes to t.Log after the test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) count(substr string) int { return strings.Count(b.String(), substr) }

// testNode is one member of a testCluster.
type testNode struct {
	name string
	addr string
	cfg  Config // template for (re)opening; Listener and FSM set per start
	fsm  *testFSM
	logs *logBuffer
	node *Node // nil while stopped
	// foreign: the node's certificate is from another CA; it is not
	// expected to agree on the leader.
	foreign bool
}

// testCluster is a site of real Raft nodes over mTLS on 127.0.0.1.
type testCluster struct {
	t     testing.TB
	nodes []*testNode
}

// clusterSpec collects the options of MakeCluster.
type clusterSpec struct {
	foreign []int
	speaks  map[int][]string // Raft protocol versions by node, if not Protocols()
	tune    []func(i int, cfg *Config)
}

// clusterOption is an option of MakeCluster.
type clusterOption func(*clusterSpec)

// withForeignCA gives node i (0-based) a certificate from another CA, which
// it alone trusts.
func withForeignCA(i int) clusterOption {
	return func(s *clusterSpec) { s.foreign = append(s.foreign, i) }
}

// withProtocols has node i (0-based) offer and accept only the Raft
// protocol versions protos.
func withProtocols(i int, protos ...string) clusterOption {
	return func(s *clusterSpec) {
		if s.speaks == nil {
			s.speaks = map[int][]string{}
		}
		s.speaks[i] = protos
	}
}

// withConfig adjusts each node's config before its first start.
func withConfig(f func(i int, cfg *Config)) clusterOption {
	return func(s *clusterSpec) { s.tune = append(s.tune, f) }
}

// snapshotOften has every node snapshot after 32 entries (checked every
// 50ms) and keep 8 entries behind it: a node that misses more catches up
// by installing a snapshot.
func snapshotOften() clusterOption {
	return withConfig(func(_ int, cfg *Config) {
		cfg.SnapshotThreshold = 32
		cfg.SnapshotInterval = 50 * time.Millisecond
		cfg.TrailingLogs = 8
	})
}

// MakeCluster starts n nodes that bootstrap together, with short timeouts
// (heartbeat and election 300ms, lease 150ms). Every node is closed by
// t.Cleanup; on failure their logs are printed.
func MakeCluster(t testing.TB, n int, opts ...clusterOption) *testCluster {
	t.Helper()
	var spec clusterSpec
	for _, o := range opts {
		o(&spec)
	}
	ca := linktest.NewCA(t)
	otherCA := linktest.NewCA(t)
	c := &testCluster{t: t}
	names := make(map[string]string)
	var peers []Peer
	listeners := make([]net.Listener, n)
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners[i] = ln
		name := fmt.Sprintf("n%d", i+1)
		addr := ln.Addr().String()
		names[addr] = name
		peers = append(peers, Peer{ID: name, Addr: addr})
		c.nodes = append(c.nodes, &testNode{name: name, addr: addr})
	}
	dir := t.TempDir()
	for i, tn := range c.nodes {
		nodeCA := ca
		if slices.Contains(spec.foreign, i) {
			nodeCA = otherCA
			tn.foreign = true
		}
		protos := Protocols()
		if p, ok := spec.speaks[i]; ok {
			protos = p
		}
		serverTLS, clientTLS := tlsConfigsSpeaking(t, nodeCA, tn.name, names, protos)
		tn.logs = &logBuffer{}
		tn.cfg = Config{
			ID:                 tn.name,
			Dir:                filepath.Join(dir, tn.name),
			Peers:              peers,
			ServerTLS:          serverTLS,
			ClientTLS:          clientTLS,
			Logger:             slog.New(slog.NewTextHandler(tn.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", tn.name),
			HeartbeatTimeout:   300 * time.Millisecond,
			ElectionTimeout:    300 * time.Millisecond,
			LeaderLeaseTimeout: 150 * time.Millisecond,
		}
		for _, f := range spec.tune {
			f(i, &tn.cfg)
		}
	}
	t.Cleanup(func() {
		for _, tn := range c.nodes {
			if tn.node != nil {
				if err := tn.node.Close(); err != nil {
					t.Errorf("close %s: %v", tn.name, err)
				}
			}
		}
		if t.Failed() || os.Getenv("CONSENSUS_TEST_LOGS") != "" {
			for _, tn := range c.nodes {
				t.Logf("==== logs of %s ====\n%s", tn.name, tn.logs.String())
			}
		}
	})
	for i := range c.nodes {
		c.startWith(i, listeners[i])
	}
	return c
}

// start reopens a stopped node on its Dir and address with a fresh state
// machine.
func (c *testCluster) start(i int) {
	c.t.Helper()
	ln, err := net.Listen("tcp", c.nodes[i].addr)
	if err != nil {
		c.t.Fatal(err)
	}
	c.startWith(i, ln)
}

func (c *testCluster) startWith(i int, ln net.Listener) {
	c.t.Helper()
	tn := c.nodes[i]
	cfg := tn.cfg
	cfg.Listener = ln
	tn.fsm = &testFSM{}
	cfg.FSM = tn.fsm
	n, err := Open(cfg)
	if err != nil {
		c.t.Fatalf("open %s: %v", tn.name, err)
	}
	tn.node = n
}

// stop closes node i.
func (c *testCluster) stop(i int) {
	c.t.Helper()
	if err := c.nodes[i].node.Close(); err != nil {
		c.t.Fatalf("close %s: %v", c.nodes[i].name, err)
	}
	c.nodes[i].node = nil
}

// leader waits until one of the running nodes is the leader and all running
// nodes (except foreign ones) agree on it; it returns the leader's position.
func (c *testCluster) leader() int {
	c.t.Helper()
	found := -1
	testutil.Eventually(c.t, 10*time.Second, "a leader agreed by every running node", func() bool {
		found = -1
		for i, tn := range c.nodes {
			if tn.node != nil && tn.node.IsLeader() {
				found = i
			}
		}
		if found < 0 {
			return false
		}
		for _, tn := range c.nodes {
			if tn.node == nil || tn.foreign {
				continue
			}
			if id, _ := tn.node.Leader(); id != c.nodes[found].name {
				return false
			}
		}
		return true
	})
	return found
}

// follower returns the position of a running node that is not leader.
func (c *testCluster) follower(leader int) int {
	for i, tn := range c.nodes {
		if i != leader && tn.node != nil {
			return i
		}
	}
	c.t.Fatal("no running follower")
	return -1
}

// applyN applies n commands "<prefix>-<k>" on node i with a few concurrent
// proposers, failing on any error.
func (c *testCluster) applyN(i int, prefix string, n int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range workers {
		wg.Go(func() {
			for k := w; k < n; k += workers {
				if _, err := c.nodes[i].node.Apply(ctx, fmt.Appendf(nil, "%s-%d", prefix, k)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		c.t.Fatalf("apply on %s: %v", c.nodes[i].name, err)
	}
}

// converged waits until every running node's state machine holds want
// entries and they are identical; it returns the common sequence.
func (c *testCluster) converged(want int) []string {
	c.t.Helper()
	var ref []string
	testutil.Eventually(c.t, 15*time.Second, fmt.Sprintf("all running state machines hold the same %d entries", want), func() bool {
		ref = nil
		for _, tn := range c.nodes {
			if tn.node == nil {
				continue
			}
			d := tn.fsm.data()
			if len(d) != want {
				return false
			}
			if ref == nil {
				ref = d
			} else if !slices.Equal(ref, d) {
				c.t.Fatalf("state machines diverge: %s differs", tn.name)
			}
		}
		return true
	})
	return ref
}
