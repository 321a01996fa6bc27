package consensus

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hotline-link/hotline/internal/alpn"
	"github.com/hotline-link/hotline/internal/testutil"
	"github.com/hotline-link/hotline/transport/linktest"
)

// newSpeakingStream starts a stream layer for node name speaking protos on
// 127.0.0.1:0, whose client side knows the nodes of names.
func newSpeakingStream(t *testing.T, ca *linktest.CA, name string, names map[string]string, protos []string, seen *testutil.Mismatches) (*streamLayer, *logBuffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	names[ln.Addr().String()] = name
	server, client := tlsConfigsSpeaking(t, ca, name, names, protos)
	logs := &logBuffer{}
	s := newStreamLayer(ln, ln.Addr().String(), server, client,
		slog.New(slog.NewTextHandler(logs, nil)), time.Minute, seen.Hook)
	t.Cleanup(func() { s.Close() })
	return s, logs
}

func TestStreamLayerRefusesUnknownVersion(t *testing.T) {
	ca := linktest.NewCA(t)
	var seen testutil.Mismatches
	s, logs := newSpeakingStream(t, ca, "n1", map[string]string{}, Protocols(), &seen)
	addr := s.Addr().String()
	b := ca.Bundle(testSite, "n1") // a valid certificate of a known node

	for i, offer := range [][]string{{"hotline-raft/9"}, nil} {
		before := s.Rejections()
		c, err := tls.Dial("tcp", addr, &tls.Config{
			Certificates: []tls.Certificate{b.Cert}, RootCAs: b.Roots, ServerName: "n1",
			MinVersion: tls.VersionTLS13, NextProtos: offer,
		})
		if err == nil {
			c.Close()
			t.Fatalf("offer %v: handshake succeeded", offer)
		}
		if len(offer) > 0 && !alpn.Refused(err) {
			t.Fatalf("offer %v: %v; want the server's no_application_protocol alert", offer, err)
		}
		testutil.Eventually(t, 10*time.Second, "the refusal counted", func() bool { return s.Rejections() == before+1 })
		testutil.Eventually(t, 10*time.Second, "the hook called", func() bool { return len(seen.List()) == i+1 })
		m := seen.List()[i]
		if !strings.HasPrefix(m.Remote, "127.0.0.1:") || !slices.Equal(m.Offered, offer) || !slices.Equal(m.Ours, Protocols()) {
			t.Fatalf("OnProtocolMismatch call %+v; want from 127.0.0.1 offering %v, ours %v", m, offer, Protocols())
		}
	}
	line := `msg="consensus: rejected raft connection: no common protocol version" remote=127.0.0.1:`
	if !strings.Contains(logs.String(), line) ||
		!strings.Contains(logs.String(), `offered=hotline-raft/9 speaks="hotline-raft/2, hotline-raft/1"`) {
		t.Fatalf("no log line %q naming both lists:\n%s", line, logs.String())
	}
	if n := logs.count("no common protocol version"); n != 1 {
		t.Errorf("%d log lines for two refusals from one host within a minute, want 1", n)
	}

	// The dialling side: a node that speaks only hotline-raft/9 is told
	// clearly, and so is its hook.
	var seen9 testutil.Mismatches
	s9, _ := newSpeakingStream(t, ca, "n2", map[string]string{addr: "n1"}, []string{"hotline-raft/9"}, &seen9)
	_, err := s9.dial(raft.ServerAddress(addr), 5*time.Second)
	want := "the node there refused every protocol version we offer (hotline-raft/9): it runs a release that speaks none of them; its log names its versions"
	if !errors.Is(err, ErrProtocolVersion) || !strings.Contains(err.Error(), want) {
		t.Fatalf("dial: %v; want ErrProtocolVersion saying %q", err, want)
	}
	if got := seen9.List(); len(got) != 1 || got[0].Remote != addr || !slices.Equal(got[0].Offered, []string{"hotline-raft/9"}) || got[0].Ours != nil {
		t.Fatalf("dialler's OnProtocolMismatch calls %+v", got)
	}
	if _, ok := s9.protos[addr]; ok {
		t.Fatal("a refused dial recorded a protocol")
	}
}

func TestStreamLayerRecordsDialledVersion(t *testing.T) {
	ca := linktest.NewCA(t)
	var seen testutil.Mismatches
	names := map[string]string{}
	old, _ := newSpeakingStream(t, ca, "n1", names, []string{RaftProtocol1}, &seen) // the previous release
	cur, _ := newSpeakingStream(t, ca, "n2", names, Protocols(), &seen)
	me, _ := newSpeakingStream(t, ca, "n3", names, Protocols(), &seen)
	for _, c := range []struct {
		peer *streamLayer
		want int
	}{{old, 1}, {cur, 2}} {
		addr := c.peer.advertise.String()
		start := time.Now()
		conn, err := me.dial(raft.ServerAddress(addr), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		if v, at, ok := me.peerProtocol(addr); !ok || v != c.want || at.Before(start) {
			t.Fatalf("dial of %s recorded version %d at %v, %v; want version %d", addr, v, at, ok, c.want)
		}
		// A second connection counts too; the record goes with the last.
		conn2, err := me.dial(raft.ServerAddress(addr), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		conn.Close()
		conn.Close() // Raft may close twice
		if v, _, ok := me.peerProtocol(addr); !ok || v != c.want {
			t.Fatalf("with one of two connections to %s closed: version %d, %v; want %d", addr, v, ok, c.want)
		}
		conn2.Close()
		if v, _, ok := me.peerProtocol(addr); ok {
			t.Fatalf("every connection to %s closed, still version %d: a stopped peer would count", addr, v)
		}
	}
	if got := seen.List(); len(got) != 0 {
		t.Fatalf("mismatches reported: %+v", got)
	}
}

// TestPeerProtocolInMixedCluster runs a site in the middle of a rolling
// upgrade: n3 is of the previous release (hotline-raft/1 only). The
// cluster works, and the leader reports which version each follower
// speaks: 1 where either end is old, 2 between two nodes of this build.
func TestPeerProtocolInMixedCluster(t *testing.T) {
	c := MakeCluster(t, 3, withProtocols(2, RaftProtocol1))
	lead := c.leader()
	c.applyN(lead, "x", 5)
	c.converged(5)
	ln := c.nodes[lead].node
	for i, tn := range c.nodes {
		if i == lead {
			continue
		}
		want := 2
		if i == 2 || lead == 2 {
			want = 1
		}
		testutil.Eventually(t, 10*time.Second, "the leader's dial of "+tn.name+" recorded", func() bool {
			_, _, ok := ln.PeerProtocol(tn.addr)
			return ok
		})
		if v, at, _ := ln.PeerProtocol(tn.addr); v != want || at.IsZero() {
			t.Errorf("leader %s: PeerProtocol(%s) = %d at %v, want %d", c.nodes[lead].name, tn.name, v, at, want)
		}
	}
	if _, _, ok := ln.PeerProtocol("127.0.0.1:1"); ok {
		t.Error("PeerProtocol of an address never dialled is ok")
	}
	// A follower that stops no longer counts once Raft has found it gone
	// (it closes its connections when an RPC fails): a leader must not
	// raise a site version on the word of a node being rolled back.
	f := c.follower(lead)
	c.stop(f)
	testutil.Eventually(t, 10*time.Second, "the leader to forget the stopped follower's protocol", func() bool {
		_, _, ok := ln.PeerProtocol(c.nodes[f].addr)
		return !ok
	})
}

func TestProtocolsListed(t *testing.T) {
	p := Protocols()
	if !slices.Equal(p, []string{"hotline-raft/2", "hotline-raft/1"}) {
		t.Fatalf("Protocols() = %v", p)
	}
	for i, name := range p {
		if v, ok := ProtocolVersion(name); !ok || v != len(p)-i {
			t.Errorf("ProtocolVersion(%q) = %d, %v", name, v, ok)
		}
	}
}
