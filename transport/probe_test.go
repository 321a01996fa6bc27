package transport

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	quicproxy "github.com/quic-go/quic-go/integrationtests/tools/proxy"

	"github.com/hotline-link/hotline/internal/testutil"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/pki"
)

// twoPaths gives a node the paths fiber and sat.
func twoPaths(c *Config) {
	c.Paths = []Path{{Name: "fiber", Listen: "127.0.0.1:0"}, {Name: "sat", Listen: "127.0.0.1:0"}}
}

// twoPathPair starts b1 of site bravo and a1 of site alpha, which reaches
// b1, both with the paths fiber and sat.
func twoPathPair(t *testing.T) (a1, b1 *node) {
	t.Helper()
	ca := linktest.NewCA(t)
	b1 = startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")}, twoPaths)
	a1 = startNode(t, ca, "alpha", "a1", []Peer{peerOf(b1)}, twoPaths)
	return a1, b1
}

// pathState returns a1's view of (peer node, path).
func pathState(l *Link, node, path string) PathStatus {
	for _, s := range l.Paths() {
		if s.Node == node && s.Path == path {
			return s
		}
	}
	return PathStatus{}
}

func waitState(t *testing.T, l *Link, node, path, want string) PathStatus {
	t.Helper()
	var st PathStatus
	testutil.Eventually(t, 15*time.Second, node+" via "+path+" "+want, func() bool {
		st = pathState(l, node, path)
		return st.State == want
	})
	return st
}

// A silent cut (packets dropped both ways, no error anywhere) is found by
// the probes: the path goes down, traffic moves to the next path, and the
// path comes back when the cut is repaired.
func TestSilentCutIsDetected(t *testing.T) {
	a1, b1 := twoPathPair(t)
	ctx := testCtx(t, 30*time.Second)
	waitState(t, a1.link, "b1", "fiber", PathUp)
	waitState(t, a1.link, "b1", "sat", PathUp)
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if node, path := a1.link.Active("bravo"); node != "b1" || path != "fiber" {
		t.Fatalf("active %s via %s, want b1 via fiber", node, path)
	}
	st := pathState(a1.link, "b1", "fiber")
	if st.RTT <= 0 || st.LossPct != 0 {
		t.Errorf("fiber before the cut: rtt %v loss %v%%", st.RTT, st.LossPct)
	}

	// Cut fiber at b1: b1 drops its fiber packets; a1 is told nothing.
	if err := b1.link.SetPathAdmin("fiber", AdminDrop); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, a1.link, "b1", "fiber", PathDown)
	if !strings.Contains(st.LastErr, "no probe answered") {
		t.Errorf("fiber down because %q, want the probe timeout", st.LastErr)
	}
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 2, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if _, path := a1.link.Active("bravo"); path != "sat" {
		t.Fatalf("active path %s during the cut, want sat", path)
	}

	if err := b1.link.SetPathAdmin("fiber", AdminUp); err != nil {
		t.Fatal(err)
	}
	waitState(t, a1.link, "b1", "fiber", PathUp)
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 3, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if _, path := a1.link.Active("bravo"); path != "fiber" {
		t.Fatalf("active path %s after the repair, want fiber (preferred)", path)
	}
}

// A batch in flight when its path is cut is resent on the next path as
// soon as the cut is detected, without waiting for the caller's timeout.
func TestInFlightBatchMovesToNextPath(t *testing.T) {
	a1, b1 := twoPathPair(t)
	waitState(t, a1.link, "b1", "sat", PathUp)
	waitState(t, a1.link, "b1", "fiber", PathUp)

	arrived := make(chan struct{}, 4)
	release := make(chan struct{})
	var calls atomic.Int32
	b1.h.setBatch(func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
		arrived <- struct{}{}
		if calls.Add(1) == 1 {
			<-release // hold the first copy until fiber is cut
		}
		return &Ack{Last: b.Messages[len(b.Messages)-1].Seq}, nil
	})
	ctx := testCtx(t, 60*time.Second) // far beyond detection: the test must not pass by timeout
	done := make(chan error, 1)
	go func() {
		_, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8))
		done <- err
	}()
	<-arrived
	if err := a1.link.SetPathAdmin("fiber", AdminDrop); err != nil {
		t.Fatal(err)
	}
	close(release) // b1's reply on fiber is now dropped
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Fatalf("b1 saw %d copies, want 2 (fiber, then sat)", calls.Load())
	}
	if _, path := a1.link.Active("bravo"); path != "sat" {
		t.Fatalf("acked via %s, want sat", path)
	}
	if st := pathState(a1.link, "b1", "fiber"); st.State != PathAdminDown {
		t.Fatalf("fiber state %s, want admin-down on the node that cut it", st.State)
	}
}

// AdminClose takes a path out of service at once, politely; AdminUp puts
// it back. Unknown paths are refused.
func TestAdminClose(t *testing.T) {
	a1, _ := twoPathPair(t)
	ctx := testCtx(t, 30*time.Second)
	waitState(t, a1.link, "b1", "fiber", PathUp)

	if err := a1.link.SetPathAdmin("fiber", AdminClose); err != nil {
		t.Fatal(err)
	}
	if st := pathState(a1.link, "b1", "fiber"); st.State != PathAdminDown || st.Connected {
		t.Fatalf("fiber after close: %+v", st)
	}
	if m, _ := a1.link.PathAdmin("fiber"); m != AdminClose {
		t.Fatalf("PathAdmin = %v", m)
	}
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if _, path := a1.link.Active("bravo"); path != "sat" {
		t.Fatalf("sent via %s with fiber closed", path)
	}
	// The prober leaves a closed path alone.
	time.Sleep(300 * time.Millisecond)
	if st := pathState(a1.link, "b1", "fiber"); st.Connected {
		t.Fatalf("fiber reconnected while closed: %+v", st)
	}
	if err := a1.link.SetPathAdmin("fiber", AdminUp); err != nil {
		t.Fatal(err)
	}
	waitState(t, a1.link, "b1", "fiber", PathUp)

	if err := a1.link.SetPathAdmin("copper", AdminClose); !errors.Is(err, ErrUnknownPath) || !strings.Contains(err.Error(), "fiber") {
		t.Fatalf("unknown path: %v", err)
	}
}

// A flash batch goes out on every healthy path at once.
func TestFlashOnEveryPath(t *testing.T) {
	a1, b1 := twoPathPair(t)
	waitState(t, a1.link, "b1", "fiber", PathUp)
	waitState(t, a1.link, "b1", "sat", PathUp)

	// Answer only once copies arrived on both paths (or after 5s, which
	// fails the test below).
	both := make(chan struct{})
	var n atomic.Int32
	b1.h.setBatch(func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
		if n.Add(1) == 2 {
			close(both)
		}
		select {
		case <-both:
		case <-time.After(5 * time.Second):
		}
		return &Ack{Last: 1}, nil
	})
	ctx := testCtx(t, 30*time.Second)
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Flash, 1, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got < 2 {
		t.Fatalf("flash batch arrived %d times, want once per path (2)", got)
	}
	for _, p := range []string{"fiber", "sat"} {
		if st := pathState(a1.link, "b1", p); st.Sent == 0 && st.State == PathUp && st.BytesSent == 0 {
			t.Errorf("%s carried nothing: %+v", p, st)
		}
	}

	// Routine traffic takes one path only. (A late copy of the flash
	// batch may still reach the handler: only routine batches count.)
	var routine atomic.Int32
	b1.h.setBatch(func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
		if b.Precedence == queue.Routine {
			routine.Add(1)
		}
		return &Ack{Last: 1}, nil
	})
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if got := routine.Load(); got != 1 {
		t.Fatalf("routine batch arrived %d times", got)
	}
}

// CallSite reaches another site's node, on a chosen path; the handler sees
// the caller's identity and decides.
func TestCallSite(t *testing.T) {
	a1, b1 := twoPathPair(t)
	ctx := testCtx(t, 30*time.Second)
	for _, path := range []string{"", "sat", "fiber"} {
		r, node, err := a1.link.CallSite(ctx, "bravo", path, &Call{Op: "linktest", Body: []byte(path)})
		if err != nil {
			t.Fatalf("CallSite via %q: %v", path, err)
		}
		if node != "b1" || string(r.Body) != "echo:"+path {
			t.Fatalf("CallSite via %q: node %s reply %+v", path, node, r)
		}
	}
	if st := pathState(a1.link, "b1", "sat"); st.Sent == 0 {
		t.Fatalf("the call via sat did not use sat: %+v", st)
	}
	b1.h.mu.Lock()
	from := b1.h.calls[0].from
	b1.h.mu.Unlock()
	if from != (pki.Identity{Site: "alpha", Node: "a1"}) {
		t.Fatalf("handler saw caller %v", from)
	}
	if _, _, err := a1.link.CallSite(ctx, "alpha", "", &Call{Op: "x"}); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("CallSite to own site: %v", err)
	}
	if _, _, err := a1.link.CallSite(ctx, "bravo", "copper", &Call{Op: "x"}); !errors.Is(err, ErrUnknownPath) {
		t.Fatalf("CallSite via unknown path: %v", err)
	}
}

// Loss and delay from a UDP impairment proxy show in the path's figures;
// a proxy that starts dropping everything in one direction is a silent cut
// the probes detect.
func TestImpairedPath(t *testing.T) {
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")}, twoPaths)
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	var dropAll, dropSome atomic.Bool
	var count atomic.Uint64
	proxy := &quicproxy.Proxy{
		Conn:       pc,
		ServerAddr: b1.link.Addr("fiber").(*net.UDPAddr),
		DropPacket: func(dir quicproxy.Direction, _, _ net.Addr, _ []byte) bool {
			if dropAll.Load() && dir == quicproxy.DirectionIncoming {
				return true
			}
			return dropSome.Load() && count.Add(1)%4 == 0
		},
		DelayPacket: func(quicproxy.Direction, net.Addr, net.Addr, []byte) time.Duration { return 20 * time.Millisecond },
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	peer := peerOf(b1)
	peer.Addrs["fiber"] = proxy.LocalAddr().String()
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peer}, twoPaths, func(c *Config) { c.ProbeMisses = 10 })

	st := waitState(t, a1.link, "b1", "fiber", PathUp)
	testutil.Eventually(t, 10*time.Second, "a probe RTT over the 2×20ms proxy", func() bool {
		st = pathState(a1.link, "b1", "fiber")
		return st.RTT >= 35*time.Millisecond
	})
	dropSome.Store(true)
	testutil.Eventually(t, 20*time.Second, "probe loss to show", func() bool {
		defer func() { t.Logf("%+v", st) }()
		st = pathState(a1.link, "b1", "fiber")
		return st.LossPct > 0
	})
	if st.State != PathUp {
		t.Fatalf("25%% loss took the path down: %+v", st)
	}
	dropSome.Store(false)
	dropAll.Store(true)
	st = waitState(t, a1.link, "b1", "fiber", PathDown)
	ctx := testCtx(t, 30*time.Second)
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if _, path := a1.link.Active("bravo"); path != "sat" {
		t.Fatalf("sent via %s with fiber black-holed", path)
	}
}
