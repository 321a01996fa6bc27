package transport

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotline-link/hotline/internal/testutil"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/pki"
)

func TestBatchRoundTrip(t *testing.T) {
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")})
	b1.h.setBatch(func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
		return &Ack{Last: 42, Leader: "b1"}, nil
	})
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(b1)})
	ctx := testCtx(t, 20*time.Second)

	sent := msgBatch("alpha", "bravo", queue.Immediate, 40, 3, 512)
	sent.Messages[1].Payload = nil // an empty payload survives as nil
	sent.Messages[2].Flags = queue.FlagTombstone
	ack, err := a1.link.SendBatch(ctx, sent)
	if err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if !reflect.DeepEqual(*ack, Ack{Last: 42, Leader: "b1"}) {
		t.Fatalf("ack %+v", ack)
	}

	receipts := &Batch{Kind: BatchReceipts, From: "alpha", To: "bravo", Receipts: []queue.Receipt{
		{RSeq: 1, Precedence: queue.Flash, Seq: 9, ID: "m9", ReadAt: 123},
		{RSeq: 2, Precedence: queue.Routine, Seq: 10, ID: "m10", ReadAt: -1},
	}}
	if _, err := a1.link.SendBatch(ctx, receipts); err != nil {
		t.Fatalf("SendBatch receipts: %v", err)
	}

	b1.h.mu.Lock()
	got := b1.h.batches
	b1.h.mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("handler saw %d batches, want 2", len(got))
	}
	for i, want := range []*Batch{sent, receipts} {
		if got[i].from != (pki.Identity{Site: "alpha", Node: "a1"}) {
			t.Errorf("batch %d: handler saw sender %v", i, got[i].from)
		}
		if !reflect.DeepEqual(got[i].b, want) {
			t.Errorf("batch %d differs:\n got %+v\nwant %+v", i, got[i].b, want)
		}
	}

	st := a1.link.Paths()
	if len(st) != 1 {
		t.Fatalf("Paths() = %+v", st)
	}
	s := st[0]
	if s.Site != "bravo" || s.Node != "b1" || s.Path != "fiber" || !s.Connected || s.Sent != 2 || s.Failed != 0 ||
		s.RTT <= 0 || s.BytesSent < 1536 || s.BytesRecv == 0 || s.LastOK.IsZero() || s.LastErr != "" {
		t.Errorf("path status %+v", s)
	}
}

func TestHandlerErrorIsAReply(t *testing.T) {
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")})
	fail := true
	var mu sync.Mutex
	b1.h.setBatch(func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			fail = false
			return nil, errors.New("no quorum")
		}
		return &Ack{Last: 1}, nil
	})
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(b1)})
	ctx := testCtx(t, 20*time.Second)
	ack, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 10))
	if err != nil || ack.Error != "no quorum" {
		t.Fatalf("first send: ack %+v, err %v; want Ack.Error no quorum", ack, err)
	}
	ack, err = a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 10))
	if err != nil || ack.Error != "" || ack.Last != 1 {
		t.Fatalf("second send: ack %+v, err %v", ack, err)
	}
	if s := a1.link.Paths()[0]; s.Failed != 0 || s.Sent != 2 || !s.Connected {
		t.Errorf("handler error cost the connection: %+v", s)
	}
}

func TestPipelining(t *testing.T) {
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")})
	// Hold every batch until many are in flight at once, proving they do
	// not wait for each other. The wait is bounded so a failure is a clear
	// count, not a hang.
	const n = 200
	const inFlight = 50
	var mu sync.Mutex
	cur, peak := 0, 0
	gate := make(chan struct{})
	var gateOnce sync.Once
	b1.h.setBatch(func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		if cur >= inFlight {
			gateOnce.Do(func() { close(gate) })
		}
		mu.Unlock()
		select {
		case <-gate:
		case <-time.After(10 * time.Second):
		}
		mu.Lock()
		cur--
		mu.Unlock()
		return &Ack{Last: b.Messages[0].Seq}, nil
	})
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(b1)})
	ctx := testCtx(t, 30*time.Second)

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ack, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Priority, uint64(i+1), 1, 512))
			if err == nil && ack.Last != uint64(i+1) {
				err = errors.New("wrong ack")
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if peak < inFlight {
		t.Fatalf("at most %d batches were in flight together, want >= %d", peak, inFlight)
	}
	if got := b1.h.count(); got != n {
		t.Fatalf("handler saw %d batches, want %d", got, n)
	}
}

func TestFailoverToSecondNode(t *testing.T) {
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")})
	b2 := startNode(t, ca, "bravo", "b2", []Peer{listed("alpha", "a1")})
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(b1), peerOf(b2)})
	ctx := testCtx(t, 30*time.Second)

	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Flash, 1, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if b1.h.count() != 1 || b2.h.count() != 0 {
		t.Fatalf("first batch went to b1=%d b2=%d, want b1", b1.h.count(), b2.h.count())
	}
	b1.link.Close()
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Flash, 2, 1, 8)); err != nil {
		t.Fatalf("SendBatch after b1 closed: %v", err)
	}
	if b2.h.count() != 1 {
		t.Fatalf("b2 saw %d batches, want 1", b2.h.count())
	}
	// b2 acked last, so it is now tried first: no detour via dead b1.
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Flash, 3, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if b2.h.count() != 2 {
		t.Fatalf("b2 saw %d batches, want 2", b2.h.count())
	}
	var b1Status PathStatus
	for _, s := range a1.link.Paths() {
		if s.Node == "b1" {
			b1Status = s
		}
	}
	if b1Status.Connected || b1Status.LastErr == "" {
		t.Errorf("b1 status after its close: %+v", b1Status)
	}
}

func TestDeadPreferredNodeDoesNotBlock(t *testing.T) {
	ca := linktest.NewCA(t)
	b2 := startNode(t, ca, "bravo", "b2", []Peer{listed("alpha", "a1")})
	dead := Peer{Site: "bravo", Node: "b1", Addrs: map[string]string{"fiber": linktest.FreeUDPAddr(t)}}
	// A handshake timeout longer than the context: succeeding proves the
	// dead node's dial was not waited for.
	a1 := startNode(t, ca, "alpha", "a1", []Peer{dead, peerOf(b2)}, func(c *Config) { c.HandshakeTimeout = 30 * time.Second })
	ctx := testCtx(t, 20*time.Second)
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)); err != nil {
		t.Fatalf("SendBatch with the first node dead: %v", err)
	}
	if b2.h.count() != 1 {
		t.Fatalf("b2 saw %d batches", b2.h.count())
	}
}

func TestSetPreferred(t *testing.T) {
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")})
	b2 := startNode(t, ca, "bravo", "b2", []Peer{listed("alpha", "a1")})
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(b1), peerOf(b2)})
	ctx := testCtx(t, 20*time.Second)

	a1.link.SetPreferred("bravo", "b2")
	for i := range 3 {
		if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, uint64(i+1), 1, 8)); err != nil {
			t.Fatal(err)
		}
	}
	if b1.h.count() != 0 || b2.h.count() != 3 {
		t.Fatalf("b1=%d b2=%d, want all on preferred b2", b1.h.count(), b2.h.count())
	}
	a1.link.SetPreferred("bravo", "b1")
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 4, 1, 8)); err != nil {
		t.Fatal(err)
	}
	if b1.h.count() != 1 {
		t.Fatalf("b1=%d after preferring it", b1.h.count())
	}
}

func TestSecondPath(t *testing.T) {
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")}, twoPaths)
	peer := peerOf(b1)
	peer.Addrs["fiber"] = linktest.FreeUDPAddr(t) // fiber is cut: nobody there
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peer}, twoPaths, func(c *Config) { c.HandshakeTimeout = 500 * time.Millisecond })
	ctx := testCtx(t, 20*time.Second)
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)); err != nil {
		t.Fatal(err)
	}
	st := a1.link.Paths()
	if len(st) != 2 || st[0].Path != "fiber" || st[1].Path != "sat" {
		t.Fatalf("Paths() = %+v", st)
	}
	// The fiber dial, left running, fails at its handshake timeout.
	testutil.Eventually(t, 10*time.Second, "the fiber dial to fail", func() bool {
		s := a1.link.Paths()[0]
		return !s.Connected && s.Failed > 0 && s.LastErr != ""
	})
	if !st[1].Connected || st[1].Sent != 1 {
		t.Errorf("sat: %+v", st[1])
	}
	// The sat connection left from the sat socket.
	if got, want := b1.link.Addr("sat").String(), st[1].Remote; got != want {
		t.Errorf("sat remote %s, want %s", want, got)
	}
}

func TestCallWithinSite(t *testing.T) {
	ca := linktest.NewCA(t)
	a2 := startNode(t, ca, "alpha", "a2", []Peer{listed("alpha", "a1"), listed("bravo", "b1")})
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(a2)})
	ctx := testCtx(t, 20*time.Second)

	r, err := a1.link.Call(ctx, "a2", &Call{Op: "submit", Body: []byte("hello")})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if string(r.Body) != "echo:hello" || r.Error != "" {
		t.Fatalf("reply %+v", r)
	}
	a2.h.mu.Lock()
	got := a2.h.calls[0]
	a2.h.mu.Unlock()
	if got.from != (pki.Identity{Site: "alpha", Node: "a1"}) || got.c.Op != "submit" {
		t.Fatalf("handler saw %+v", got)
	}

	a2.h.setCall(func(ctx context.Context, from pki.Identity, c *Call) (*Reply, error) {
		return nil, errors.New("not leader")
	})
	r, err = a1.link.Call(ctx, "a2", &Call{Op: "submit"})
	if err != nil || r.Error != "not leader" {
		t.Fatalf("Call with handler error: %+v, %v", r, err)
	}

	if _, err := a1.link.Call(ctx, "b1", &Call{Op: "x"}); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("Call to another site's node: %v, want ErrUnknownPeer", err)
	}
}

func TestUnreachable(t *testing.T) {
	ca := linktest.NewCA(t)
	dead := Peer{Site: "bravo", Node: "b1", Addrs: map[string]string{"fiber": linktest.FreeUDPAddr(t)}}
	a1 := startNode(t, ca, "alpha", "a1", []Peer{dead}, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8))
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendBatch to a dead site: %v", err)
	}
	if time.Since(start) < time.Second {
		t.Errorf("gave up after %v, before its context ended", time.Since(start))
	}
	s := a1.link.Paths()[0]
	if s.Connected || s.Failed == 0 || s.LastErr == "" || s.LastErrAt.IsZero() {
		t.Errorf("status %+v", s)
	}
	// Backoff: a few dials in 1.5s, not hundreds.
	if s.Failed > 20 {
		t.Errorf("%d failed attempts in 1.5s: redialling in a tight loop", s.Failed)
	}
}

func TestSendBatchRejectsBadInput(t *testing.T) {
	ca := linktest.NewCA(t)
	a1 := startNode(t, ca, "alpha", "a1", []Peer{listed("bravo", "b1"), listed("alpha", "a2")}, func(c *Config) { c.MaxFrame = 4096 })
	ctx := testCtx(t, 5*time.Second)
	mixed := msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)
	mixed.Receipts = []queue.Receipt{{RSeq: 1}}
	wrongChannel := msgBatch("alpha", "bravo", queue.Routine, 1, 2, 8)
	wrongChannel.Messages[1].Origin = "charlie"
	cases := []struct {
		name string
		b    *Batch
		want error
	}{
		{"nil", nil, ErrBadBatch},
		{"from lies", msgBatch("charlie", "bravo", queue.Routine, 1, 1, 8), ErrBadBatch},
		{"to self", msgBatch("alpha", "alpha", queue.Routine, 1, 1, 8), ErrBadBatch},
		{"unknown site", msgBatch("alpha", "charlie", queue.Routine, 1, 1, 8), ErrUnknownPeer},
		{"mixed kinds", mixed, ErrBadBatch},
		{"message on another channel", wrongChannel, ErrBadBatch},
		{"unknown kind", &Batch{Kind: 9, From: "alpha", To: "bravo"}, ErrBadBatch},
		{"bad precedence", &Batch{Kind: BatchMessages, From: "alpha", To: "bravo", Precedence: 7}, ErrBadBatch},
		{"too large", msgBatch("alpha", "bravo", queue.Routine, 1, 10, 512), ErrTooLarge},
	}
	for _, c := range cases {
		_, err := a1.link.SendBatch(ctx, c.b)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := a1.link.Call(ctx, "a2", &Call{Op: "big", Body: make([]byte, 5000)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize call: %v", err)
	}
	if _, err := a1.link.Call(ctx, "zz", &Call{Op: "x"}); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("call to unknown node: %v", err)
	}
	if s := a1.link.Paths(); s[0].Failed+s[0].Sent != 0 {
		t.Errorf("rejected input reached the network: %+v", s)
	}
}

func TestCloseEndsInFlightAndIsIdempotent(t *testing.T) {
	before := runtime.NumGoroutine()
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")})
	handlerDone := make(chan error, 1)
	started := make(chan struct{})
	b1.h.setBatch(func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
		close(started)
		<-ctx.Done()
		handlerDone <- ctx.Err()
		return nil, ctx.Err()
	})
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(b1)})
	ctx := testCtx(t, 30*time.Second)

	sendErr := make(chan error, 1)
	go func() {
		_, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8))
		sendErr <- err
	}()
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("batch never reached the handler")
	}
	a1.link.Close()
	select {
	case err := <-sendErr:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("in-flight SendBatch after Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("in-flight SendBatch did not return after Close")
	}
	// The requester vanished: the handler's context ends.
	select {
	case <-handlerDone:
	case <-time.After(20 * time.Second):
		t.Fatal("handler context did not end after the requester closed")
	}
	if err := a1.link.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)); !errors.Is(err, ErrClosed) {
		t.Fatalf("SendBatch after Close: %v", err)
	}
	if _, err := a1.link.Call(ctx, "a2", &Call{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after Close: %v", err)
	}
	b1.link.Close()

	// No goroutine outlives the links (quic-go's own may take a moment).
	testutil.Eventually(t, 10*time.Second, "goroutines to wind down", func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	ca := linktest.NewCA(t)
	good := func() Config {
		return Config{
			TLS:     ca.Bundle("alpha", "a1"),
			Paths:   []Path{{Name: "fiber", Listen: "127.0.0.1:0"}},
			Peers:   []Peer{listed("bravo", "b1")},
			Handler: &recorder{},
		}
	}
	cases := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no TLS", func(c *Config) { c.TLS = nil }, "TLS"},
		{"no handler", func(c *Config) { c.Handler = nil }, "Handler"},
		{"no paths", func(c *Config) { c.Paths = nil }, "Paths"},
		{"bad path name", func(c *Config) { c.Paths[0].Name = "Fiber" }, "Paths[0].Name"},
		{"duplicate path", func(c *Config) { c.Paths = append(c.Paths, c.Paths[0]) }, "duplicate path"},
		{"empty listen", func(c *Config) { c.Paths[0].Listen = "" }, "Listen"},
		{"bad listen", func(c *Config) { c.Paths[0].Listen = "nonsense" }, "path fiber"},
		{"bad peer name", func(c *Config) { c.Peers[0].Node = "B1" }, "Peers[0]"},
		{"peer is self", func(c *Config) { c.Peers = append(c.Peers, listed("alpha", "a1")) }, "is this node"},
		{"duplicate peer", func(c *Config) { c.Peers = append(c.Peers, listed("bravo", "b1")) }, "duplicate peer"},
		{"peer no addrs", func(c *Config) { c.Peers[0].Addrs = nil }, "no address"},
		{"peer unknown path", func(c *Config) { c.Peers[0].Addrs["sat"] = "127.0.0.1:1" }, `unknown path "sat"`},
		{"peer bad addr", func(c *Config) { c.Peers[0].Addrs["fiber"] = "nowhere" }, "Addrs[fiber]"},
		{"peer no port", func(c *Config) { c.Peers[0].Addrs["fiber"] = "127.0.0.1:0" }, "no port"},
		{"negative frame", func(c *Config) { c.MaxFrame = -1 }, "MaxFrame"},
		{"tiny frame", func(c *Config) { c.MaxFrame = 10 }, "MaxFrame"},
		{"negative idle", func(c *Config) { c.IdleTimeout = -time.Second }, "IdleTimeout"},
		{"keepalive too long", func(c *Config) { c.KeepAlive = time.Minute }, "KeepAlive"},
	}
	for _, c := range cases {
		cfg := good()
		c.edit(&cfg)
		l, err := New(cfg)
		if err == nil {
			l.Close()
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
	// The good config works, and a second link cannot take the same port.
	l, err := New(good())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := good()
	cfg.Paths[0].Listen = l.Addr("fiber").String()
	if l2, err := New(cfg); err == nil {
		l2.Close()
		t.Fatal("second link bound the same port")
	}
	if l.Addr("nope") != nil {
		t.Fatal("Addr of unknown path is not nil")
	}
}
