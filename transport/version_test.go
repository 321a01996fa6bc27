package transport

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/hotline-link/hotline/internal/testutil"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/linktest"
)

func withMismatches(m *testutil.Mismatches) opts {
	return func(c *Config) { c.OnProtocolMismatch = m.Hook }
}

func TestProtocolVersionRefusedByServer(t *testing.T) {
	ca := linktest.NewCA(t)
	var seen testutil.Mismatches
	a1 := startNode(t, ca, "alpha", "a1", []Peer{listed("bravo", "b1")}, withMismatches(&seen))
	addr := a1.link.Addr("fiber")
	b1 := ca.Bundle("bravo", "b1") // a configured peer with a valid certificate

	// A client of a later release that speaks only hotline/9.
	before := a1.link.HandshakeRejections()
	_, err := rawDial(t, addr, b1.ClientConfig([]string{"hotline/9"}, a1.id))
	var te *quic.TransportError
	if !errors.As(err, &te) || !te.Remote || te.ErrorCode != 0x178 {
		t.Fatalf("dial offering only hotline/9: %v; want the server's CRYPTO_ERROR 0x178 (no_application_protocol)", err)
	}
	if !versionRefused(err) {
		t.Fatalf("versionRefused(%v) = false", err)
	}
	after := a1.link.HandshakeRejections()
	for _, r := range rejectReasons {
		want := before[r]
		if r == RejectProtocolVersion {
			want++
		}
		if after[r] != want {
			t.Errorf("rejections[%s] = %d, want %d", r, after[r], want)
		}
	}
	got := seen.List()
	if len(got) != 1 || !strings.HasPrefix(got[0].Remote, "127.0.0.1:") ||
		!slices.Equal(got[0].Offered, []string{"hotline/9"}) || !slices.Equal(got[0].Ours, []string{Protocol1}) {
		t.Fatalf("OnProtocolMismatch calls %+v; want one from 127.0.0.1 offering [hotline/9], ours [%s]", got, Protocol1)
	}
	line := "remote=127.0.0.1 reason=protocol_version addr=" + got[0].Remote + " offered=hotline/9 speaks=hotline/1"
	if !a1.logs.contains(line) {
		t.Fatalf("no log line %q:\n%s", line, a1.logs.buf.String())
	}
	if a1.h.count() != 0 {
		t.Fatal("handler was called")
	}

	// A later release that still speaks hotline/1 connects with it, and
	// its requests are served.
	cl, err := rawDial(t, addr, b1.ClientConfig([]string{"hotline/9", Protocol1}, a1.id))
	if err != nil {
		t.Fatalf("dial offering [hotline/9 hotline/1]: %v", err)
	}
	if p := cl.conn.ConnectionState().TLS.NegotiatedProtocol; p != Protocol1 {
		t.Fatalf("negotiated %q, want %q", p, Protocol1)
	}
	if typ, _, err := cl.request(batchFrame(msgBatch("bravo", "alpha", queue.Routine, 1, 1, 8))); err != nil || typ != frameAck {
		t.Fatalf("request over %s: type %d, %v", Protocol1, typ, err)
	}
	if n := len(seen.List()); n != 1 {
		t.Fatalf("%d mismatches, want still 1", n)
	}
	if after := a1.link.HandshakeRejections(); after[RejectProtocolVersion] != before[RejectProtocolVersion]+1 {
		t.Fatalf("protocol_version rejections %d, want %d", after[RejectProtocolVersion], before[RejectProtocolVersion]+1)
	}
}

func TestProtocolVersionRefusedToDialler(t *testing.T) {
	ca := linktest.NewCA(t)
	// A node of a later release that speaks only hotline/9.
	ln, err := quic.ListenAddr("127.0.0.1:0", ca.Bundle("bravo", "b1").ServerConfig([]string{"hotline/9"}, nil),
		&quic.Config{HandshakeIdleTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })

	var seen testutil.Mismatches
	b1 := Peer{Site: "bravo", Node: "b1", Addrs: map[string]string{"fiber": ln.Addr().String()}}
	a1 := startNode(t, ca, "alpha", "a1", []Peer{b1}, withMismatches(&seen))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)); err == nil {
		t.Fatal("batch sent to a peer that speaks none of our versions")
	}
	want := "peer bravo/b1 refused every protocol version we offer (hotline/1): it runs a release that speaks none of them; its log names its versions"
	var st PathStatus
	for _, p := range a1.link.Paths() {
		st = p
	}
	if !strings.Contains(st.LastErr, want) || st.Connected || st.Protocol != "" {
		t.Fatalf("path status %+v; want LastErr with %q", st, want)
	}
	got := seen.List()
	if len(got) == 0 {
		t.Fatal("OnProtocolMismatch not called")
	}
	for _, m := range got {
		if m.Remote != "bravo/b1 at "+ln.Addr().String() || !slices.Equal(m.Offered, []string{Protocol1}) || m.Ours != nil {
			t.Fatalf("OnProtocolMismatch call %+v", m)
		}
	}
}

func TestPathStatusNamesProtocol(t *testing.T) {
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")})
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(b1)})
	if _, err := a1.link.SendBatch(testCtx(t, 10*time.Second), msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)); err != nil {
		t.Fatal(err)
	}
	ps := a1.link.Paths()
	if len(ps) != 1 || !ps[0].Connected || ps[0].Protocol != Protocol1 {
		t.Fatalf("paths %+v; want one connected with protocol %s", ps, Protocol1)
	}
}

func TestProtocolsList(t *testing.T) {
	p := Protocols()
	if len(p) == 0 || p[len(p)-1] != Protocol1 {
		// The previous release offers only hotline/1: dropping it
		// from the list cuts every peer not yet upgraded.
		t.Fatalf("Protocols() = %v: hotline/1 must stay (last) while the previous release runs", p)
	}
	p[0] = "changed"
	if Protocols()[0] == "changed" {
		t.Fatal("Protocols returns the package's own slice")
	}
}
