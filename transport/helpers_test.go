package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/pki"
)

// recorder is a Handler that records what reached it. By default it acks a
// batch with the highest sequence (or RSeq) in it and echoes calls.
type recorder struct {
	mu      sync.Mutex
	batches []gotBatch
	calls   []gotCall
	n       atomic.Int64 // requests that reached the handler

	// Set with setBatch and setCall.
	onBatch func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error)
	onCall  func(ctx context.Context, from pki.Identity, c *Call) (*Reply, error)
}

type gotBatch struct {
	from pki.Identity
	b    *Batch
}

type gotCall struct {
	from pki.Identity
	c    *Call
}

// record counts a request, appends got to list and returns hook's value,
// under r's lock.
func record[T, H any](r *recorder, list *[]T, got T, hook *H) H {
	r.n.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, got)
	return *hook
}

func (r *recorder) HandleBatch(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
	if onBatch := record(r, &r.batches, gotBatch{from, b}, &r.onBatch); onBatch != nil {
		return onBatch(ctx, from, b)
	}
	var last uint64
	for _, m := range b.Messages {
		last = max(last, m.Seq)
	}
	for _, rc := range b.Receipts {
		last = max(last, rc.RSeq)
	}
	return &Ack{Last: last}, nil
}

func (r *recorder) HandleCall(ctx context.Context, from pki.Identity, c *Call) (*Reply, error) {
	if onCall := record(r, &r.calls, gotCall{from, c}, &r.onCall); onCall != nil {
		return onCall(ctx, from, c)
	}
	return &Reply{Body: append([]byte("echo:"), c.Body...)}, nil
}

// routes serves the calls the tests make through HandleCall: "submit"
// within the site, "linktest" from other sites.
func (r *recorder) routes() *Routes {
	rt := NewRoutes(nil, nil)
	for op, scope := range map[string]Scope{"submit": SiteInternal, "linktest": InterSite} {
		rt.Handle(op, scope, func(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
			rep, err := r.HandleCall(ctx, from, &Call{Op: op, Body: body})
			switch {
			case err != nil:
				return nil, err
			case rep.Error != "":
				return nil, errors.New(rep.Error)
			}
			return rep.Body, nil
		})
	}
	return rt
}

func (r *recorder) setBatch(f func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error)) {
	setHook(r, &r.onBatch, f)
}

func (r *recorder) setCall(f func(ctx context.Context, from pki.Identity, c *Call) (*Reply, error)) {
	setHook(r, &r.onCall, f)
}

// setHook sets hook to f under r's lock.
func setHook[H any](r *recorder, hook *H, f H) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*hook = f
}

func (r *recorder) count() int { return int(r.n.Load()) }

// logBuf collects log output for assertions and mirrors it to the test.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
	out io.Writer
}

func (w *logBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.out != nil {
		w.out.Write(p)
	}
	return len(p), nil
}

func (w *logBuf) contains(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Contains(w.buf.String(), s)
}

func (w *logBuf) count(s string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Count(w.buf.String(), s)
}

// node is one running Link in a test.
type node struct {
	id   pki.Identity
	link *Link
	h    *recorder
	logs *logBuf
}

// opts tweaks a node's config.
type opts func(*Config)

func startNode(t testing.TB, ca *linktest.CA, site, name string, peers []Peer, o ...opts) *node {
	t.Helper()
	h := &recorder{}
	logs := &logBuf{}
	if tt, ok := t.(*testing.T); ok && testing.Verbose() {
		logs.out = tt.Output()
	}
	cfg := Config{
		TLS:     ca.Bundle(site, name),
		Paths:   []Path{{Name: "fiber", Listen: "127.0.0.1:0"}},
		Peers:   peers,
		Handler: h,
		Calls:   h.routes(),
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range o {
		f(&cfg)
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New %s/%s: %v", site, name, err)
	}
	t.Cleanup(func() { l.Close() })
	return &node{id: pki.Identity{Site: site, Node: name}, link: l, h: h, logs: logs}
}

// peerOf is the Peer entry other nodes use to reach n on all its paths.
func peerOf(n *node) Peer {
	p := Peer{Site: n.id.Site, Node: n.id.Node, Addrs: map[string]string{}}
	for _, path := range n.link.cfg.Paths {
		p.Addrs[path.Name] = n.link.Addr(path.Name).String()
	}
	return p
}

// listed is a Peer entry for a node we only accept from: its address is a
// placeholder nobody listens on.
func listed(site, name string) Peer {
	return Peer{Site: site, Node: name, Addrs: map[string]string{"fiber": "127.0.0.1:9"}}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// msgBatch builds a messages batch of n messages with seqs first.., payload
// size size.
func msgBatch(from, to string, p queue.Precedence, first uint64, n, size int) *Batch {
	b := &Batch{Kind: BatchMessages, From: from, To: to, Precedence: p}
	for i := range n {
		seq := first + uint64(i)
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = byte(seq) + byte(j)
		}
		b.Messages = append(b.Messages, queue.Message{
			ID:          fmt.Sprintf("id-%d", seq),
			Origin:      from,
			Dest:        to,
			Precedence:  p,
			Seq:         seq,
			Key:         fmt.Sprintf("key-%d", seq%3),
			Payload:     payload,
			Flags:       uint32(seq % 4),
			SubmittedAt: 1_700_000_000_000_000_000 + int64(seq),
			ExpiresAt:   int64(seq) * -7,
		})
	}
	return b
}
