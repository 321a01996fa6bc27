package daemon_test

import (
	"context"
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/internal/alpn"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// TestProtocolVersionAlarm dials a node of the lab as nodes of a later
// release would, speaking only versions this build does not know:
// the Raft port and the link refuse, and the node raises the
// protocol_version alarm naming both lists. Its status shows the link
// protocol of its connected peers.
func TestProtocolVersionAlarm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six nodes")
	}
	lab := clustertest.Start(t)
	const node = "alpha-1"
	c := lab.Configs[node]
	self := daemon.NodeConfigOf(c, node)
	b, err := pki.LoadDir(filepath.Join(lab.Dir, "pki"), "alpha-2") // a valid certificate of a peer
	if err != nil {
		t.Fatal(err)
	}
	target := pki.Identity{Site: c.Site, Node: node}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: b.ClientConfig([]string{"hotline-raft/9"}, target)}
	if conn, err := d.DialContext(ctx, "tcp", self.Raft); err == nil {
		conn.Close()
		t.Fatal("Raft handshake offering only hotline-raft/9 succeeded")
	} else if !alpn.Refused(err) {
		t.Fatalf("Raft dial: %v; want the no_application_protocol alert", err)
	}
	other, err := pki.LoadDir(filepath.Join(lab.Dir, "pki"), "bravo-1")
	if err != nil {
		t.Fatal(err)
	}
	if conn, err := quic.DialAddr(ctx, self.Paths["fiber"], other.ClientConfig([]string{"hotline/9"}, target), &quic.Config{}); err == nil {
		conn.CloseWithError(0, "")
		t.Fatal("link handshake offering only hotline/9 succeeded")
	}

	n := lab.Node(node)
	wantRaft := "offered hotline-raft/9; this node speaks " + strings.Join(consensus.Protocols(), ", ")
	wantLink := "offered hotline/9; this node speaks " + strings.Join(transport.Protocols(), ", ")
	clustertest.Eventually(t, 10*time.Second, "both alarms", func() bool {
		var raft, link bool
		for _, a := range n.Status().Alarms {
			raft = raft || strings.HasPrefix(a, "protocol_version: 127.0.0.1:") && strings.Contains(a, wantRaft)
			link = link || strings.HasPrefix(a, "protocol_version: 127.0.0.1:") && strings.Contains(a, wantLink)
		}
		return raft && link
	})

	clustertest.Eventually(t, 10*time.Second, "a connected peer's link protocol in status", func() bool {
		for _, p := range n.Status().Peers {
			if p.Connected && p.Protocol == transport.Protocol1 {
				return true
			}
		}
		return false
	})
}
