package transport

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/pki"
)

// scopeRoutes serves "own" (site-internal) and "far" (inter-site), each
// echoing its op and counting its calls.
func scopeRoutes(served *atomic.Int32) *Routes {
	rt := NewRoutes(nil, nil)
	for op, scope := range map[string]Scope{"own": SiteInternal, "far": InterSite} {
		rt.Handle(op, scope, func(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
			served.Add(1)
			return []byte(op), nil
		})
	}
	return rt
}

// The routing table decides a call's scope before any handler runs: a
// site-internal op from another site, an inter-site op from our own site
// and an unknown op are refused with an error naming the op and the
// scope, which keeps its identity at the caller; the connection stays up.
func TestCallScopeDecidedByRoutes(t *testing.T) {
	ca := linktest.NewCA(t)
	var served atomic.Int32
	withScopes := func(c *Config) { c.Calls = scopeRoutes(&served) }
	a2 := startNode(t, ca, "alpha", "a2", []Peer{listed("alpha", "a1"), listed("bravo", "b1")}, withScopes)
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(a2)})
	b1 := startNode(t, ca, "bravo", "b1", []Peer{peerOf(a2)})
	ctx := testCtx(t, 20*time.Second)
	codes := NewCodes()

	own := func(op string) *Reply {
		t.Helper()
		r, err := a1.link.Call(ctx, "a2", &Call{Op: op})
		if err != nil {
			t.Fatalf("call %s from a1: %v", op, err)
		}
		return r
	}
	far := func(op string) *Reply {
		t.Helper()
		r, _, err := b1.link.CallSite(ctx, "alpha", "", &Call{Op: op})
		if err != nil {
			t.Fatalf("call %s from b1: %v", op, err)
		}
		return r
	}
	refused := func(r *Reply, op string, want error, text ...string) {
		t.Helper()
		err := codes.Err(op, r)
		if !errors.Is(err, want) {
			t.Fatalf("call %s: reply %+v; want an error wrapping %v", op, r, want)
		}
		for _, s := range append(text, fmt.Sprintf("%q", op)) {
			if !strings.Contains(r.Error, s) {
				t.Errorf("call %s: error %q does not name %q", op, r.Error, s)
			}
		}
	}

	if r := own("own"); string(r.Body) != "own" || r.Error != "" {
		t.Fatalf("site-internal call from our site: %+v", r)
	}
	if r := far("far"); string(r.Body) != "far" || r.Error != "" {
		t.Fatalf("inter-site call from another site: %+v", r)
	}
	refused(own("far"), "far", ErrCallScope, "inter-site", "alpha/a1")
	refused(far("own"), "own", ErrCallScope, "site-internal", "bravo/b1")
	refused(own("nope"), "nope", ErrUnknownCall)
	refused(far("nope"), "nope", ErrUnknownCall)
	if n := served.Load(); n != 2 {
		t.Fatalf("handlers ran %d times, want 2 (refused calls reach no handler)", n)
	}
	if r := own("own"); r.Error != "" {
		t.Fatalf("call after refusals: %+v", r)
	}
	if s := a1.link.Paths()[0]; s.Failed != 0 || !s.Connected {
		t.Errorf("a refused call cost the connection: %+v", s)
	}
}

var errTestKind = errors.New("test: the kind a caller branches on")

// A handler's error travels as text, code and leader hint, and the
// caller's Codes rebuild an error that wraps the same sentinel.
func TestCallErrorKeepsItsSentinel(t *testing.T) {
	ca := linktest.NewCA(t)
	codes := NewCodes()
	codes.Add("test_kind", errTestKind)
	rt := NewRoutes(codes, func() string { return "a3" })
	rt.Handle("typed", SiteInternal, func(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
		return nil, fmt.Errorf("apply %s: %w", body, errTestKind)
	})
	rt.Handle("plain", SiteInternal, func(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
		return nil, errors.New("no kind")
	})
	a2 := startNode(t, ca, "alpha", "a2", []Peer{listed("alpha", "a1")}, func(c *Config) { c.Calls = rt })
	a1 := startNode(t, ca, "alpha", "a1", []Peer{peerOf(a2)})
	ctx := testCtx(t, 20*time.Second)

	r, err := a1.link.Call(ctx, "a2", &Call{Op: "typed", Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	err = codes.Err("typed", r)
	var ce *CallError
	if !errors.Is(err, errTestKind) || !errors.As(err, &ce) || ce.Code != "test_kind" || ce.Leader != "a3" || ce.Msg != "apply x: "+errTestKind.Error() {
		t.Fatalf("typed error: %#v (reply %+v)", err, r)
	}
	// A table without the code (a peer of another version) keeps the
	// text and the hint, and matches no sentinel.
	if err := NewCodes().Err("typed", r); err == nil || errors.Is(err, errTestKind) || err.Error() != r.Error {
		t.Fatalf("unknown code: %v", err)
	}
	r, err = a1.link.Call(ctx, "a2", &Call{Op: "plain"})
	if err != nil {
		t.Fatal(err)
	}
	if err := codes.Err("plain", r); err == nil || r.Code != "" || errors.Unwrap(err) != nil || err.Error() != "no kind" || r.Leader != "a3" {
		t.Fatalf("plain error: %v (reply %+v)", err, r)
	}
	if err := codes.Err("x", &Reply{Body: []byte("ok")}); err != nil {
		t.Fatalf("success read as %v", err)
	}
}

// A reply with a code or leader carries them; one without encodes as the
// two-field reply of before, and an empty trailer is refused.
func TestReplyCodeAndLeaderEncoding(t *testing.T) {
	for _, r := range []*Reply{
		{Error: "e", Code: "not_leader", Leader: "a2"},
		{Error: "e", Code: "starting"},
		{Body: []byte("x"), Leader: "a1"},
	} {
		got, err := decodeReply(appendReply(nil, r))
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("reply %+v: %+v %v", r, got, err)
		}
	}
	plain := &Reply{Body: []byte("x"), Error: "e"}
	two := queue.AppendString(queue.AppendBytes(nil, plain.Body), plain.Error)
	if got := appendReply(nil, plain); string(got) != string(two) {
		t.Fatalf("reply without code: %x, want the two-field form %x", got, two)
	}
	trailer := queue.AppendString(queue.AppendString(two, ""), "")
	if _, err := decodeReply(trailer); err == nil {
		t.Fatal("empty code and leader accepted")
	} else if _, ok := asViolation(err); !ok {
		t.Fatalf("empty trailer: %v is not a protocol violation", err)
	}
}

// Registering an op twice, or with no scope, is a programming error.
func TestRoutesHandlePanicsOnMistakes(t *testing.T) {
	h := func(context.Context, pki.Identity, []byte) ([]byte, error) { return nil, nil }
	for name, f := range map[string]func(*Routes){
		"duplicate": func(r *Routes) { r.Handle("x", SiteInternal, h); r.Handle("x", InterSite, h) },
		"no scope":  func(r *Routes) { r.Handle("x", 0, h) },
		"empty op":  func(r *Routes) { r.Handle("", InterSite, h) },
		"nil":       func(r *Routes) { r.Handle("x", InterSite, nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f(NewRoutes(nil, nil))
		}()
	}
	// A nil table serves nothing.
	var none *Routes
	r := none.Serve(context.Background(), "alpha", pki.Identity{Site: "alpha", Node: "a1"}, &Call{Op: "x"})
	if !errors.Is(NewCodes().Err("x", r), ErrUnknownCall) {
		t.Fatalf("nil routes: %+v", r)
	}
}
