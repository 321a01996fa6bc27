package netlab

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bounds of the reachability checks: a cut path must stay silent for
// silence; a restored one must answer within heal.
const (
	silence = 300 * time.Millisecond
	heal    = 3 * time.Second
)

// prefix is unique per test and per run, so -count=N and parallel
// packages never share namespaces.
func prefix(tag string) string {
	return fmt.Sprintf("nl%d%s", os.Getpid()%1000000, tag)
}

func spec(tag string) Spec {
	return Spec{
		Prefix: prefix(tag),
		Sites: []Site{
			{Name: "alpha", Nodes: []string{"a1", "a2"}},
			{Name: "bravo", Nodes: []string{"b1", "b2"}},
		},
		Paths: []string{"fiber", "sat"},
	}
}

// buildLab builds a lab closed at cleanup, or skips.
func buildLab(t *testing.T, s Spec) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	start := time.Now()
	l, err := New(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("New(%d nodes, %d paths) took %v", len(l.nodes), len(s.Paths), time.Since(start))
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

// echoServer starts a UDP echo server in node's namespace on addr and
// returns its address.
func echoServer(t *testing.T, l *Lab, node, addr string) *net.UDPAddr {
	t.Helper()
	var pc *net.UDPConn
	err := l.Do(node, func() (err error) {
		pc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(addr)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFromUDP(buf)
			if err != nil {
				return
			}
			pc.WriteToUDP(buf[:n], from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr)
}

// dialer opens an unconnected UDP socket in node's namespace.
func dialer(t *testing.T, l *Lab, node string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := l.Do(node, func() (err error) {
		c, err = net.ListenUDP("udp4", nil)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var seq int

// echo sends one datagram to srv and waits up to wait for the same bytes
// back. It returns nil on an echo, an error wrapping
// os.ErrDeadlineExceeded on silence, or the socket's error (no route).
func echo(c *net.UDPConn, srv *net.UDPAddr, wait time.Duration) error {
	seq++
	msg := fmt.Appendf(nil, "ping %d", seq)
	if _, err := c.WriteToUDP(msg, srv); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 1500)
	for {
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			return err
		}
		if bytes.Equal(buf[:n], msg) {
			return nil
		}
	}
}

// echoWithin retries echo until it succeeds or heal passes.
func echoWithin(c *net.UDPConn, srv *net.UDPAddr) error {
	var err error
	for end := time.Now().Add(heal); time.Now().Before(end); {
		if err = echo(c, srv, 100*time.Millisecond); err == nil {
			return nil
		}
	}
	return err
}

func TestLab(t *testing.T) {
	l := buildLab(t, spec("a"))
	paths := []string{"fiber", "sat"}
	nodes := []string{"a1", "a2", "b1", "b2"}

	// One echo server per node and path, one dialer per node.
	srv := map[string]*net.UDPAddr{}
	for _, n := range nodes {
		srv[n+"/lan"] = echoServer(t, l, n, l.LANAddr(n))
		for _, p := range paths {
			srv[n+"/"+p] = echoServer(t, l, n, l.PathAddr(n, p))
		}
	}
	dial := map[string]*net.UDPConn{}
	for _, n := range nodes {
		dial[n] = dialer(t, l, n)
	}
	// expect checks one echo: want true needs an answer, want false needs
	// silence (a timeout, no error: cuts are silent).
	expect := func(from, to, path string, want bool) {
		t.Helper()
		wait := silence
		if want {
			wait = heal
		}
		err := echo(dial[from], srv[to+"/"+path], wait)
		if want && err != nil {
			t.Errorf("echo %s → %s on %s: %v, want an answer", from, to, path, err)
		}
		if !want && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("echo %s → %s on %s: %v, want silence", from, to, path, err)
		}
	}
	healed := func(from, to, path string) {
		t.Helper()
		if err := echoWithin(dial[from], srv[to+"/"+path]); err != nil {
			t.Errorf("echo %s → %s on %s: %v for %v after restore", from, to, path, err, heal)
		}
	}

	t.Run("addresses", func(t *testing.T) {
		want := map[string]string{
			"a1": "10.10.0.1", "a2": "10.10.0.2", "b1": "10.11.0.1", "b2": "10.11.0.2",
		}
		for n, a := range want {
			if got := l.LANAddr(n); got != a {
				t.Errorf("LANAddr(%s) = %s, want %s", n, got, a)
			}
		}
		if got := l.PathAddr("b2", "sat"); got != "10.101.2.2" {
			t.Errorf("PathAddr(b2, sat) = %s, want 10.101.2.2", got)
		}
		if got := l.Namespace("a1"); got != prefix("a")+"-a1" {
			t.Errorf("Namespace(a1) = %s", got)
		}
	})

	t.Run("command", func(t *testing.T) {
		out, err := l.Command("b1", "ip", "-4", "addr").CombinedOutput()
		if err != nil {
			t.Fatalf("ip -4 addr: %v: %s", err, out)
		}
		for _, a := range []string{"127.0.0.1/8", "10.11.0.1/24", "10.100.2.1/16", "10.101.2.1/16"} {
			if !strings.Contains(string(out), "inet "+a+" ") {
				t.Errorf("b1 lacks %s:\n%s", a, out)
			}
		}
		if strings.Contains(string(out), "10.10.0.") || strings.Contains(string(out), "10.100.1.") {
			t.Errorf("b1 has another node's address:\n%s", out)
		}
	})

	t.Run("command pid is the program in the namespace", func(t *testing.T) {
		cmd := l.Command("a2", "sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := cmd.Process.Pid
		var comm string
		for end := time.Now().Add(heal); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			if comm = strings.TrimSpace(string(b)); comm == "sleep" {
				break
			}
		}
		if comm != "sleep" {
			t.Errorf("pid %d runs %q, want sleep", pid, comm)
		}
		if got, want := inode(t, fmt.Sprintf("/proc/%d/ns/net", pid)), inode(t, netnsDir+l.Namespace("a2")); got != want {
			t.Errorf("pid %d in netns inode %d, want %d", pid, got, want)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("wait after kill -9: %v, want killed by SIGKILL", err)
		}
	})

	t.Run("do runs in the namespace", func(t *testing.T) {
		var st syscall.Stat_t
		if err := l.Do("b2", func() error {
			return syscall.Stat("/proc/thread-self/ns/net", &st)
		}); err != nil {
			t.Fatal(err)
		}
		got := st.Ino
		if want := inode(t, netnsDir+l.Namespace("b2")); got != want {
			t.Errorf("Do thread in netns inode %d, want %d", got, want)
		}
		if self := inode(t, "/proc/thread-self/ns/net"); self == got {
			t.Error("test goroutine's thread is in the lab namespace")
		}
		want := errors.New("from fn")
		if err := l.Do("b2", func() error { return want }); err != want {
			t.Errorf("Do returned %v, want fn's error", err)
		}
	})

	t.Run("paths between sites", func(t *testing.T) {
		for _, p := range paths {
			expect("a1", "b1", p, true)
			expect("b2", "a2", p, true)
			expect("a1", "a2", p, true) // one segment per path
		}
	})

	t.Run("LAN within site only", func(t *testing.T) {
		expect("a1", "a2", "lan", true)
		expect("b2", "b1", "lan", true)
		// No route to another site's LAN: the send fails at once.
		for _, p := range [][2]string{{"a1", "b1"}, {"b2", "a2"}} {
			err := echo(dial[p[0]], srv[p[1]+"/lan"], silence)
			if !errors.Is(err, syscall.ENETUNREACH) {
				t.Errorf("echo %s → %s on lan: %v, want network unreachable", p[0], p[1], err)
			}
		}
	})

	t.Run("TCP over LAN", func(t *testing.T) {
		var ln net.Listener
		if err := l.Do("a2", func() (err error) {
			ln, err = net.Listen("tcp4", l.LANAddr("a2")+":0")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello"))
			c.Close()
		}()
		var c net.Conn
		if err := l.Do("a1", func() (err error) {
			c, err = net.DialTimeout("tcp4", ln.Addr().String(), heal)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(heal))
		buf := make([]byte, 5)
		if _, err := c.Read(buf); err != nil || string(buf) != "hello" {
			t.Errorf("read %q, %v; want hello", buf, err)
		}
		if got := c.LocalAddr().(*net.TCPAddr).IP.String(); got != l.LANAddr("a1") {
			t.Errorf("TCP source %s, want a1's LAN address", got)
		}
	})

	t.Run("cut and restore a node", func(t *testing.T) {
		if err := l.Cut("a1", "fiber"); err != nil {
			t.Fatal(err)
		}
		expect("a1", "b1", "fiber", false)
		expect("b2", "a1", "fiber", false)
		expect("a1", "b1", "sat", true)
		expect("a2", "b1", "fiber", true) // only a1 is cut
		if err := l.Cut("a1", "fiber"); err != nil {
			t.Errorf("second Cut: %v", err)
		}
		if err := l.Restore("a1", "fiber"); err != nil {
			t.Fatal(err)
		}
		healed("a1", "b1", "fiber")
		healed("b2", "a1", "fiber")
	})

	t.Run("cut and restore a site", func(t *testing.T) {
		if err := l.CutSite("bravo", "sat"); err != nil {
			t.Fatal(err)
		}
		expect("a1", "b1", "sat", false)
		expect("a2", "b2", "sat", false)
		expect("b1", "b2", "sat", false)
		expect("a1", "a2", "sat", true)
		expect("a1", "b1", "fiber", true)
		expect("b1", "b2", "lan", true)
		if err := l.RestoreSite("bravo", "sat"); err != nil {
			t.Fatal(err)
		}
		healed("a1", "b1", "sat")
		healed("a2", "b2", "sat")
	})

	t.Run("cut and restore a node's LAN", func(t *testing.T) {
		if err := l.CutLAN("b2"); err != nil {
			t.Fatal(err)
		}
		expect("b1", "b2", "lan", false)
		expect("b2", "b1", "lan", false)
		expect("b2", "a1", "fiber", true)
		if err := l.RestoreLAN("b2"); err != nil {
			t.Fatal(err)
		}
		healed("b1", "b2", "lan")
	})

	t.Run("errors", func(t *testing.T) {
		if err := l.Cut("a1", "carrier-pigeon"); err == nil {
			t.Error("Cut on an unknown path succeeded")
		}
		if err := l.Cut("zz", "fiber"); err == nil {
			t.Error("Cut of an unknown node succeeded")
		}
		if err := l.CutSite("charlie", "fiber"); err == nil {
			t.Error("CutSite of an unknown site succeeded")
		}
	})
}

// TestCloseAndLeftovers uses hotline's own shape: two sites of three.
func TestCloseAndLeftovers(t *testing.T) {
	s := spec("b")
	s.Sites[0].Nodes = append(s.Sites[0].Nodes, "a3")
	s.Sites[1].Nodes = append(s.Sites[1].Nodes, "b3")
	l := buildLab(t, s)
	// A killed run leaves its namespaces, and maybe some of another shape.
	ghost := s.Prefix + "-ghost"
	if err := ipBatch("", []string{"netns add " + ghost}, false); err != nil {
		t.Fatal(err)
	}
	l2 := buildLab(t, s)
	if left := namespacesWith(t, s.Prefix); len(left) != 7 {
		t.Errorf("after New over leftovers: namespaces %v, want 6 nodes and wan", left)
	}
	c := dialer(t, l2, "a1")
	if err := echo(c, echoServer(t, l2, "b3", l2.PathAddr("b3", "sat")), heal); err != nil {
		t.Errorf("echo in the lab built over leftovers: %v", err)
	}
	start := time.Now()
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close took %v", time.Since(start))
	if left := namespacesWith(t, s.Prefix); len(left) != 0 {
		t.Errorf("after Close: namespaces %v remain", left)
	}
	if err := l2.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// The first lab's namespaces are gone already; its Close (at cleanup)
	// must not fail on that.
	if err := l.Close(); err != nil {
		t.Errorf("Close of a replaced lab: %v", err)
	}
}

// TestFailedBuild checks that a failing step names itself, carries ip's
// stderr and the failing line, and that New's teardown leaves nothing.
func TestFailedBuild(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	s := spec("d")
	if err := removeLeftovers(s.Prefix); err != nil {
		t.Fatal(err)
	}
	l, err := newLab(s)
	if err != nil {
		t.Fatal(err)
	}
	// A namespace appearing between cleanup and build makes the build fail
	// half-way, after a1 was created.
	if err := ipBatch("", []string{"netns add " + l.Namespace("a2")}, false); err != nil {
		t.Fatal(err)
	}
	err = l.build()
	for _, want := range []string{"create namespaces", "File exists", "netns add " + l.Namespace("a2")} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("build: %v, want error containing %q", err, want)
		}
	}
	if err := l.deleteNamespaces(); err != nil {
		t.Fatal(err)
	}
	if left := namespacesWith(t, s.Prefix); len(left) != 0 {
		t.Errorf("after teardown: namespaces %v remain", left)
	}
}

func TestSpecValidation(t *testing.T) {
	ok := spec("c")
	for _, tc := range []struct {
		name   string
		change func(*Spec)
		want   string
	}{
		{"prefix with dash", func(s *Spec) { s.Prefix = "a-b" }, "prefix"},
		{"empty prefix", func(s *Spec) { s.Prefix = "" }, "prefix"},
		{"no sites", func(s *Spec) { s.Sites = nil }, "sites"},
		{"empty site", func(s *Spec) { s.Sites[1].Nodes = nil }, "nodes"},
		{"node twice", func(s *Spec) { s.Sites[1].Nodes = []string{"a1"} }, "named twice"},
		{"site twice", func(s *Spec) { s.Sites[1].Name = "alpha" }, "named twice"},
		{"path twice", func(s *Spec) { s.Paths = []string{"sat", "sat"} }, "named twice"},
		{"node with slash", func(s *Spec) { s.Sites[0].Nodes = []string{"a/1"} }, "node name"},
		{"node named wan", func(s *Spec) { s.Sites[0].Nodes = []string{"wan"} }, "node name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			s.Sites = []Site{{Name: "alpha", Nodes: []string{"a1"}}, {Name: "bravo", Nodes: []string{"b1"}}}
			tc.change(&s)
			_, err := New(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// namespacesWith lists namespaces named "<prefix>-…", as `ip netns list`
// shows them.
func namespacesWith(t *testing.T, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			got = append(got, f[0])
		}
	}
	return got
}
