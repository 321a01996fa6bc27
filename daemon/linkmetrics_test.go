package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/pki"
)

type noHandler struct{}

func (noHandler) HandleBatch(context.Context, pki.Identity, *transport.Batch) (*transport.Ack, error) {
	return nil, errors.New("no")
}

func (noHandler) HandleCall(context.Context, pki.Identity, *transport.Call) (*transport.Reply, error) {
	return nil, errors.New("no")
}

// The link's refused handshakes are exported by reason, every reason from
// the start.
func TestHandshakeRejectionsMetric(t *testing.T) {
	ca := linktest.NewCA(t)
	newLink := func(site, node string, peers []transport.Peer) *transport.Link {
		l, err := transport.New(transport.Config{
			TLS:     ca.Bundle(site, node),
			Paths:   []transport.Path{{Name: "fiber", Listen: "127.0.0.1:0"}},
			Peers:   peers,
			Handler: noHandler{},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	a1 := newLink("alpha", "a1", []transport.Peer{{Site: "bravo", Node: "b1", Addrs: map[string]string{"fiber": "127.0.0.1:9"}}})
	m := newMetrics(&Config{Site: "alpha", Node: "a1", DataDir: t.TempDir()})
	m.reg.MustRegister(&rejectCollector{link: a1})

	if got := rejections(t, m); len(got) != 7 || got["unknown_peer"] != 0 || got["protocol_version"] != 0 {
		t.Fatalf("before any refusal: %v (want all seven reasons at 0)", got)
	}

	// A node a1 does not list tries to send: refused as unknown_peer.
	b7 := newLink("bravo", "b7", []transport.Peer{{Site: "alpha", Node: "a1", Addrs: map[string]string{"fiber": a1.Addr("fiber").String()}}})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	b7.SendBatch(ctx, &transport.Batch{Kind: transport.BatchReceipts, From: "bravo", To: "alpha"})
	got := rejections(t, m)
	for reason, v := range got {
		if (reason == "unknown_peer") != (v > 0) {
			t.Errorf("%s = %v", reason, v)
		}
	}
	if len(got) != 7 {
		t.Errorf("reasons %v", got)
	}
}

// rejections gathers hotline_link_handshake_rejections_total by reason.
func rejections(t *testing.T, m *metrics) map[string]float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "hotline_link_handshake_rejections_total" {
			for _, mt := range mf.GetMetric() {
				out[mt.GetLabel()[0].GetValue()] = mt.GetCounter().GetValue()
			}
		}
	}
	return out
}
