package consensus

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// newTestStream starts a stream layer for node "n1" with a certificate from
// ca on 127.0.0.1:0. Its client side knows one peer: n1 itself.
func newTestStream(t *testing.T, ca *testCA, timeout time.Duration) (*streamLayer, *logBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{ln.Addr().String(): "n1"}
	server, client := ca.tlsConfigs(t, "n1", names)
	logs := &logBuffer{}
	s := newStreamLayer(ln, ln.Addr().String(), server, client,
		slog.New(slog.NewTextHandler(logs, nil)), timeout)
	t.Cleanup(func() { s.Close() })
	return s, logs
}

// acceptAsync runs Accept in the background.
func acceptAsync(s *streamLayer) <-chan net.Conn {
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
	ca := newTestCA(t, "site-ca")
	s, logs := newTestStream(t, ca, time.Minute)
	addr := s.Addr().String()
	accepted := acceptAsync(s)

	// A client certificate from another CA, though the client trusts
	// ours: the server rejects it in the handshake, and the client learns
	// it at its first read. (GetClientCertificate sends it even though the
	// server's list of acceptable CAs does not name its issuer.)
	other := newTestCA(t, "other-ca")
	foreignCert := other.leaf(t, "n2")
	for range 5 {
		c, err := tls.Dial("tcp", addr, &tls.Config{
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return &foreignCert, nil
			},
			RootCAs:    ca.pool,
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
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "n1", NextProtos: []string{testALPN}}); err == nil {
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

	eventually(t, 10*time.Second, "the rejection is logged", func() bool {
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
	ca := newTestCA(t, "site-ca")
	// A handshake deadline far beyond the test's waits: Accept must not
	// depend on it.
	s, _ := newTestStream(t, ca, 10*time.Minute)
	idle, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	accepted := acceptAsync(s)
	c, err := s.Dial("127.0.0.1:1", time.Second)
	if err == nil {
		c.Close()
		t.Fatal("dial to an address with no pinned name succeeded")
	}
	c, err = s.Dial(raft.ServerAddress(s.Addr().String()), 10*time.Second)
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
	if _, err := s.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after the stream layer closed")
	}
}
