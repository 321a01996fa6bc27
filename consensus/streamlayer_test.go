package consensus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hotline-link/hotline/internal/testutil"
	"github.com/hotline-link/hotline/transport/linktest"
)

// newTestStream starts a stream layer for node "n1" with a certificate from
// ca on 127.0.0.1:0. Its client side knows one peer: n1 itself.
func newTestStream(t *testing.T, ca *linktest.CA, timeout time.Duration) (*streamLayer, *logBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{ln.Addr().String(): "n1"}
	server, client := tlsConfigs(t, ca, "n1", names)
	logs := &logBuffer{}
	s := newStreamLayer(ln, ln.Addr().String(), server, client,
		slog.New(slog.NewTextHandler(logs, nil)), timeout, nil)
	t.Cleanup(func() { s.Close() })
	return s, logs
}

// acceptAsync runs Accept in the background.
func acceptAsync(s *view) <-chan net.Conn {
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := s.Accept()
		if err != nil {
			close(ch)
			return
		}
		ch <- c
	}()
	return ch
}

func TestStreamLayerRejectsAtHandshake(t *testing.T) {
	ca := linktest.NewCA(t)
	s, logs := newTestStream(t, ca, time.Minute)
	addr := s.Addr().String()
	accepted := acceptAsync(s.newView())

	// A client certificate from another CA, though the client trusts
	// ours: the server rejects it in the handshake, and the client learns
	// it at its first read. (GetClientCertificate sends it even though the
	// server's list of acceptable CAs does not name its issuer.)
	other := linktest.NewCA(t)
	foreignCert := other.Bundle(testSite, "n2").Cert
	for range 5 {
		c, err := tls.Dial("tcp", addr, &tls.Config{
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return &foreignCert, nil
			},
			RootCAs:    ca.Bundle(testSite, "n1").Roots,
			ServerName: "n1",
			NextProtos: []string{testALPN},
		})
		if err == nil {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil || errors.Is(err, io.EOF) {
			t.Fatalf("foreign client was not refused by an alert: %v", err)
		}
	}
	// No client certificate at all.
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Bundle(testSite, "n1").Roots, ServerName: "n1", NextProtos: []string{testALPN}}); err == nil {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("client without certificate was accepted")
		}
		c.Close()
	}
	// Not TLS.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	raw.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.ReadAll(raw)
	raw.Close()

	testutil.Eventually(t, 10*time.Second, "the rejection is logged", func() bool {
		return logs.count("rejected raft connection") > 0
	})
	out := logs.String()
	if n := strings.Count(out, "rejected raft connection"); n != 1 {
		t.Fatalf("%d rejections logged, want 1 (rate-limited per host):\n%s", n, out)
	}
	if !strings.Contains(out, "unknown authority") {
		t.Fatalf("log does not name the reason:\n%s", out)
	}
	select {
	case c := <-accepted:
		t.Fatalf("Accept returned an unauthenticated connection from %v", c.RemoteAddr())
	default:
	}
}

func TestStreamLayerIdlePeerDoesNotBlockAccept(t *testing.T) {
	ca := linktest.NewCA(t)
	// A handshake deadline far beyond the test's waits: Accept must not
	// depend on it.
	s, _ := newTestStream(t, ca, 10*time.Minute)
	idle, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	v := s.newView()
	accepted := acceptAsync(v)
	c, err := v.Dial("127.0.0.1:1", time.Second)
	if err == nil {
		c.Close()
		t.Fatal("dial to an address with no pinned name succeeded")
	}
	c, err = v.Dial(raft.ServerAddress(s.Addr().String()), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	select {
	case sc := <-accepted:
		if sc == nil {
			t.Fatal("Accept failed")
		}
		buf := make([]byte, 4)
		sc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("read %q, %v", buf, err)
		}
		st := sc.(*trackedConn).Conn.(*tls.Conn).ConnectionState()
		if !st.HandshakeComplete || st.NegotiatedProtocol != testALPN || len(st.PeerCertificates) == 0 {
			t.Fatalf("accepted connection state: %+v", st)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Accept blocked behind an idle connection")
	}

	// Close ends Accept, closes handed-out connections and is idempotent.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after the stream layer closed")
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors: %v", err)
	}
	return len(ents)
}

// dialIdle opens n TCP connections to addr from source IP src and sends
// nothing on them.
func dialIdle(t *testing.T, addr, src string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// closedByServer counts the connections the server has closed: a read
// ends with EOF or a reset instead of timing out.
func closedByServer(conns []net.Conn, wait time.Duration) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	closed := 0
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(wait))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				mu.Lock()
				closed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return closed
}

// TestStreamLayerBoundsPendingHandshakes opens 500 idle connections, as a
// slowloris would: the layer holds at most maxPendingPerHost of one host's
// and maxPending in all, closes the rest at once and the held ones at the
// handshake deadline, counts every one, and a real peer still gets in.
func TestStreamLayerBoundsPendingHandshakes(t *testing.T) {
	ca := linktest.NewCA(t)
	const deadline = 3 * time.Second
	s, logs := newTestStream(t, ca, deadline)
	addr := s.Addr().String()
	v := s.newView()
	before := openFDs(t)

	// 500 from one host: only maxPendingPerHost are held.
	one := dialIdle(t, addr, "127.0.0.2", 500)
	testutil.Eventually(t, 10*time.Second, "the excess from one host is closed", func() bool {
		return s.Rejections() >= 500-maxPendingPerHost
	})
	if p := s.Pending(); p > maxPendingPerHost {
		t.Fatalf("%d pending handshakes from one host, limit %d", p, maxPendingPerHost)
	}
	// Our 500 client ends are open; the server side holds the rest.
	held := openFDs(t) - before - len(one)
	t.Logf("500 idle connections from one host: the listener holds %d descriptors", held)
	if held > maxPendingPerHost+4 {
		t.Fatalf("the listener holds %d descriptors for 500 idle connections from one host (limit %d)", held, maxPendingPerHost)
	}

	// A real peer from another address is not held up by them.
	accepted := acceptAsync(v)
	c, err := v.Dial(raft.ServerAddress(addr), 10*time.Second)
	if err != nil {
		t.Fatalf("a real peer could not connect past idle connections: %v", err)
	}
	defer c.Close()
	select {
	case sc := <-accepted:
		if sc == nil {
			t.Fatal("Accept failed")
		}
		sc.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the real peer's connection was not accepted")
	}

	// Many hosts: the global limit holds.
	var many []net.Conn
	for i := range 60 {
		many = append(many, dialIdle(t, addr, fmt.Sprintf("127.0.3.%d", i+1), maxPendingPerHost)...)
	}
	testutil.Eventually(t, 10*time.Second, "the global limit rejects the excess", func() bool {
		return s.Pending() == maxPending
	})
	held = openFDs(t) - before - len(one) - len(many) - 2
	t.Logf("%d idle connections from 61 hosts: the listener holds %d descriptors", len(one)+len(many), held)
	if held > maxPending+4 {
		t.Fatalf("the listener holds %d descriptors for %d idle connections (limit %d)", held, len(one)+len(many), maxPending)
	}

	// At the deadline every idle connection is closed by the server.
	if n := closedByServer(append(one, many...), deadline+10*time.Second); n != len(one)+len(many) {
		t.Fatalf("%d of %d idle connections closed by the server after the deadline", n, len(one)+len(many))
	}
	testutil.Eventually(t, 10*time.Second, "nothing is pending", func() bool { return s.Pending() == 0 })
	if got, want := s.Rejections(), uint64(len(one)+len(many)); got != want {
		t.Fatalf("Rejections() = %d, want %d (every idle connection)", got, want)
	}
	// Logged, but rate-limited per host.
	if n := logs.count("rejected raft connection"); n == 0 || n > 61 {
		t.Fatalf("%d rejections logged for 61 hosts", n)
	}

	// And a real peer connects again.
	accepted = acceptAsync(v)
	c2, err := v.Dial(raft.ServerAddress(addr), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
	if sc := <-accepted; sc == nil {
		t.Fatal("Accept failed after the flood")
	}
}
