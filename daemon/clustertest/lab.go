package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/ctl"
)

// Lab is a lab (three nodes per site) whose nodes run in this test
// process. Its methods fail the test on error; it is not safe for
// concurrent use.
type Lab struct {
	// Dir holds the lab's PKI and every node's data and socket.
	Dir string
	// Sites are the lab's sites, in order.
	Sites []string
	// Configs holds every node's config by node name, started or not; a
	// test may change one before StartNode or add a node's.
	Configs map[string]*daemon.Config

	t     testing.TB
	nodes map[string]*daemon.Node // the nodes started, by name
}

// Option changes a node's config before the lab validates and starts it.
type Option = func(*daemon.Config)

// Start starts the two-site lab (daemon.LabSites) with short Raft timeouts
// on free loopback ports, and waits until both sites are Settled.
func Start(t testing.TB, opts ...Option) *Lab {
	t.Helper()
	return StartSites(t, daemon.LabSites, opts...)
}

// StartSites is Start for the given sites (at most 10): site s listens on
// 127.0.<21+s>.x (Raft, fiber) and 127.0.<31+s>.x (sat). Every node gets
// the lab's defaults (Raft heartbeat and election timeouts 500ms, leader
// lease 250ms, log level warn, remote drills allowed), then opts.
func StartSites(t testing.TB, sites []string, opts ...Option) *Lab {
	t.Helper()
	dir := t.TempDir()
	if err := daemon.EnsureLabPKIFor(dir, sites); err != nil {
		t.Fatal(err)
	}
	cfgs := daemon.LabConfigsFor(dir, sites, []string{"fiber", "sat"}, func(s, i int) (string, map[string]string) {
		ip := fmt.Sprintf("127.0.%d.%d", 21+s, 1+i)
		return FreeAddr(t, ip), map[string]string{
			"fiber": FreeAddr(t, ip),
			"sat":   FreeAddr(t, fmt.Sprintf("127.0.%d.%d", 31+s, 1+i)),
		}
	})
	lab := New(t, dir, sites)
	for _, c := range cfgs {
		ShortTimeouts(c)
		c.LogLevel = "warn"
		c.AllowRemoteDrills = true
		lab.Add(c, opts...)
		lab.StartNode(c.Node)
	}
	for _, s := range sites {
		lab.Settled(s)
	}
	return lab
}

// New returns an empty lab in dir (which holds its PKI) for sites; Add
// configures its nodes and StartNode starts them. Every node started is
// closed when the test ends.
func New(t testing.TB, dir string, sites []string) *Lab {
	lab := &Lab{Dir: dir, Sites: sites, Configs: map[string]*daemon.Config{}, t: t, nodes: map[string]*daemon.Node{}}
	t.Cleanup(func() {
		for _, n := range lab.nodes {
			n.Close()
		}
	})
	return lab
}

// ShortTimeouts sets the lab's Raft timeouts (heartbeat and election
// 500ms, leader lease 250ms), short enough for quick elections.
func ShortTimeouts(c *daemon.Config) {
	c.Raft.HeartbeatTimeout.Duration = 500 * time.Millisecond
	c.Raft.ElectionTimeout.Duration = 500 * time.Millisecond
	c.Raft.LeaderLeaseTimeout.Duration = 250 * time.Millisecond
}

// Add applies opts to c, validates it and records it as its node's config.
func (l *Lab) Add(c *daemon.Config, opts ...Option) {
	l.t.Helper()
	for _, o := range opts {
		o(c)
	}
	if err := c.Validate(); err != nil {
		l.t.Fatal(err)
	}
	l.Configs[c.Node] = c
}

// StartNode opens node with its config in Configs, logging to t.Log.
// A node started again replaces the one before (close that first).
func (l *Lab) StartNode(node string) {
	l.t.Helper()
	c := l.Configs[node]
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(c.LogLevel))); err != nil {
		l.t.Fatalf("%s: log level %q: %v", node, c.LogLevel, err)
	}
	log := slog.New(slog.NewTextHandler(Writer(l.t), &slog.HandlerOptions{Level: level}))
	n, err := daemon.Open(c, log)
	if err != nil {
		l.t.Fatalf("open %s: %v", node, err)
	}
	l.nodes[node] = n
}

// Node returns the running node of that name, or nil if it was never
// started or was stopped with StopNode.
func (l *Lab) Node(name string) *daemon.Node { return l.nodes[name] }

// StopNode closes node and forgets it, and returns Close's error.
func (l *Lab) StopNode(node string) error {
	n := l.nodes[node]
	delete(l.nodes, node)
	if n == nil {
		return nil
	}
	return n.Close()
}

// Client returns a client of node's socket.
func (l *Lab) Client(node string) *client.Client { return client.New(l.Configs[node].Socket) }

// Leader waits up to 30s for site's leader and returns its name.
func (l *Lab) Leader(site string) string {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, name := range daemon.LabNodes(site) {
			if st := l.status(name); st != nil && st.Role == "leader" {
				return name
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("site %s elected no leader within 30s", site)
	return ""
}

// Follower returns a node of site that is not its leader.
func (l *Lab) Follower(site string) string {
	l.t.Helper()
	leader := l.Leader(site)
	for _, n := range daemon.LabNodes(site) {
		if n != leader {
			return n
		}
	}
	return ""
}

// Hotlinectl runs the CLI (ctl.Run) in this process against node's
// socket with stdin as its input, within a minute, and returns its
// standard output; on error it logs the error and standard error.
func (l *Lab) Hotlinectl(t testing.TB, node, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	args = append([]string{"--socket", l.Configs[node].Socket}, args...)
	err := ctl.Run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	if err != nil {
		t.Logf("hotlinectl %v: %v\n%s", args, err, errOut.String())
	}
	return out.String(), err
}

// Settled waits up to 30s until every running node of site names the same
// leader, which leads: a test that starts by asking any node for its
// leader (a drill, an admin call) then finds one.
func (l *Lab) Settled(site string) {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		leader := l.Leader(site)
		agreed := true
		for _, name := range daemon.LabNodes(site) {
			if st := l.status(name); st != nil && st.Leader != leader {
				agreed = false
			}
		}
		if agreed {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("the nodes of site %s did not agree on a leader within 30s", site)
}

// status returns the status of node if it runs, else nil.
func (l *Lab) status(node string) *client.Status {
	n := l.nodes[node]
	if n == nil {
		return nil
	}
	select {
	case <-n.Done():
		return nil
	default:
		return n.Status()
	}
}

// Writer returns a writer that sends each write (a log line), without its
// trailing newline, to t.Log.
func Writer(t testing.TB) io.Writer { return testWriter{t} }

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
