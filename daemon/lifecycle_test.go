package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// unopenedNode is a node as Open has just begun to build it: config and
// logger only, no store, Raft, link or API yet.
func unopenedNode(t *testing.T) *Node {
	cfgs := LabConfigs(t.TempDir(), []string{"fiber"}, func(s, i int) (string, map[string]string) {
		ip := fmt.Sprintf("127.0.%d.%d", 21+s, 1+i)
		return ip + ":1", map[string]string{"fiber": ip + ":2"}
	})
	return &Node{cfg: cfgs[0], log: newLogger(t.Output(), "warn", "text")}
}

// checkRefusals calls every entry point of n and wants a retryable refusal
// naming want, never a panic.
func checkRefusals(t *testing.T, n *Node, want error) {
	t.Helper()
	ctx := context.Background()
	peer := pki.Identity{Site: "bravo", Node: "bravo-1"}
	ack, err := n.handleBatch(ctx, peer, &transport.Batch{Kind: transport.BatchMessages, From: "bravo", To: "alpha", Precedence: queue.Flash})
	if err != nil || !strings.Contains(ack.Error, want.Error()) || !retryableText(ack.Error) || !errors.Is(ack.Err(callCodes), want) || !retryable(ack.Err(callCodes)) {
		t.Errorf("batch: ack %+v, err %v; want a retryable %q", ack, err, want)
	}
	own := pki.Identity{Site: "alpha", Node: "alpha-2"}
	for _, c := range []struct {
		from pki.Identity
		op   string
	}{{own, callPropose}, {own, callAdminRaft}, {own, callAdminMember}, {own, callBarrier}, {own, callUpPaths}, {own, callReadIndex},
		{peer, callLinkTest}, {peer, callDrillArrivals}, {peer, callDrillTransfer}} {
		rep := n.calls().Serve(ctx, n.cfg.Site, c.from, &transport.Call{Op: c.op, Body: []byte("{}")})
		if err := callCodes.Err(c.op, rep); !strings.Contains(rep.Error, want.Error()) || !errors.Is(err, want) {
			t.Errorf("call %s from %s: reply %+v, err %v; want a retryable %q", c.op, c.from, rep, err, want)
		}
	}
	for _, path := range []string{client.PathStatus, client.PathInbox, client.PathMessages + "/x"} {
		rec := httptest.NewRecorder()
		n.guard(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var e client.Error
		json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != http.StatusServiceUnavailable || e.Code != client.CodeUnavailable || !strings.Contains(e.Error, want.Error()) || rec.Header().Get("Retry-After") == "" {
			t.Errorf("GET %s: %d %+v; want 503 unavailable %q with Retry-After", path, rec.Code, e, want)
		}
	}
}

// TestWorkWhileStartingIsRefused: work that reaches a node before Open has
// set its parts up (the window of the restart crash of issue 7) gets a
// retryable "starting" answer, not a nil dereference.
func TestWorkWhileStartingIsRefused(t *testing.T) {
	checkRefusals(t, unopenedNode(t), ErrStarting)
}

// TestWorkWhileStoppingIsRefused: the same for a node that is stopping or
// has stopped, for the entry points that outlive Close.
func TestWorkWhileStoppingIsRefused(t *testing.T) {
	n := unopenedNode(t)
	n.life.set(stateStopping)
	checkRefusals(t, n, ErrStopping)
	n.life.set(stateStopped)
	checkRefusals(t, n, ErrStopping)
}

// TestLifecycleDrain: Close waits for work that entered before it, and
// admits nothing new once it began.
func TestLifecycleDrain(t *testing.T) {
	var l lifecycle
	if err := l.enter(); err != ErrStarting {
		t.Fatalf("enter while starting: %v", err)
	}
	l.set(stateRunning)
	if err := l.enter(); err != nil {
		t.Fatalf("enter while running: %v", err)
	}
	l.set(stateStopping)
	if err := l.enter(); err != ErrStopping {
		t.Fatalf("enter while stopping: %v", err)
	}
	if l.drain(50 * time.Millisecond) {
		t.Fatal("drain returned while work was in progress")
	}
	go func() { time.Sleep(20 * time.Millisecond); l.exit() }()
	if !l.drain(5 * time.Second) {
		t.Fatal("drain did not return after the work ended")
	}
}
