package daemon_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/daemon/forward"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/trust"
)

// TestRelayKeepsErrorIdentity: errors keep their identity across a real
// relay over the site's LAN (QUIC on loopback): the caller branches with
// errors.Is on the sentinel the serving node's error wrapped, and the
// scope of every call is decided by the routing table.
func TestRelayKeepsErrorIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the six-node lab")
	}
	lab := clustertest.Start(t)
	leader := lab.Leader("alpha")
	var followers []string
	for _, n := range daemon.LabNodes("alpha") {
		if n != leader {
			followers = append(followers, n)
		}
	}
	f1, f2 := lab.Node(followers[0]), lab.Node(followers[1])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	noop, err := daemon.NoopCommand().Encode()
	if err != nil {
		t.Fatal(err)
	}

	// A command relayed to a node that does not lead: ErrNotLeader on the
	// far side, with the leader it knows as the hint.
	err = daemon.Relay(f1, ctx, followers[1], noop)
	var ce *transport.CallError
	if !errors.Is(err, consensus.ErrNotLeader) || !errors.As(err, &ce) || ce.Leader != leader {
		t.Fatalf("relay to follower %s: %v (%#v); want ErrNotLeader with hint %s", followers[1], err, ce, leader)
	}
	if errors.Is(err, consensus.ErrStorageFull) || errors.Is(err, daemon.ErrStopping) {
		t.Fatalf("relay to follower: %v matches other sentinels too", err)
	}

	// A command the leader refuses: queue.ErrInvalid, naming why.
	bad, err := (&queue.Command{Op: queue.OpSubmit, Time: time.Now().UnixNano(),
		Submit: &queue.Submit{Origin: "bravo", Items: []queue.SubmitItem{{ID: "relay-1", Dest: "alpha", Payload: []byte("x")}}}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	err = daemon.Relay(f1, ctx, leader, bad)
	if !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), `submit with origin "bravo"`) {
		t.Fatalf("relay of a refused command: %v; want queue.ErrInvalid naming the origin", err)
	}

	// A relayed command whose signature the leader refuses keeps the
	// refusal's code, not just "invalid": the relaying node (and the
	// site whose batch it relayed) learns why.
	unproven, err := (&queue.Command{Op: queue.OpDelivered, Time: time.Now().UnixNano(),
		Delivered: &queue.DeliveredCmd{Dest: "bravo", Precedence: queue.Routine, UpTo: 3}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	err = daemon.Relay(f1, ctx, leader, unproven)
	if !errors.Is(err, trust.ErrBadSignature) || !errors.Is(err, forward.ErrNoProof) || forward.Reason(err) != "missing" {
		t.Fatalf("relay of a delivery without proof: %v; want trust.ErrBadSignature (no proof)", err)
	}

	// An operator record relayed in the name of another node of the site:
	// refused (a stolen node key records in its own name only); in the
	// relaying node's own name, taken.
	audit := func(node string) []byte {
		b, err := (&queue.Command{Op: queue.OpAudit, Time: time.Now().UnixNano(),
			Audit: &queue.AuditCmd{Node: node, Actor: queue.NoActor, Action: "relay_test"}}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	err = daemon.Relay(f1, ctx, leader, audit(followers[1]))
	if !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), "relayed by alpha/"+followers[0]) {
		t.Fatalf("relay of an audit record in %s's name by %s: %v; want queue.ErrInvalid", followers[1], followers[0], err)
	}
	if err := daemon.Relay(f1, ctx, leader, audit(followers[0])); err != nil {
		t.Fatalf("relay of an audit record in its own name by %s: %v", followers[0], err)
	}
	es, _, err := daemon.StoreOf(lab.Node(leader)).AuditEntries(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, e := range es {
		if r, err := queue.DecodeAuditRecord(e.Record); err == nil && r.Action == "relay_test" {
			nodes = append(nodes, r.Node)
		}
	}
	if len(nodes) != 1 || nodes[0] != followers[0] {
		t.Fatalf("relay_test records in the name of %q; want only %s", nodes, followers[0])
	}

	// A node that is stopping answers a retryable ErrStopping: over the
	// relay, and to an admin request relayed to it through the socket API
	// (503 with Retry-After).
	daemon.SetStopping(f2, true)
	err = daemon.Relay(f1, ctx, followers[1], noop)
	if !errors.Is(err, daemon.ErrStopping) || !daemon.Retryable(err) {
		t.Errorf("relay to a stopping node: %v; want ErrStopping", err)
	}
	_, err = lab.Client(followers[0]).Paths(ctx, followers[1])
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != client.CodeUnavailable || !strings.Contains(ae.Message, daemon.ErrStopping.Error()) {
		t.Errorf("paths of a stopping node: %v; want 503 unavailable naming %q", err, daemon.ErrStopping)
	}
	daemon.SetStopping(f2, false)

	// The routing table refuses calls from the wrong side before any
	// handler runs, and the refusal keeps its identity too.
	rep, _, err := daemon.LinkOf(lab.Node("bravo-1")).CallSite(ctx, "alpha", "", &transport.Call{Op: daemon.CallPropose, Body: noop})
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.CallErr(daemon.CallPropose, rep); !errors.Is(err, transport.ErrCallScope) || !strings.Contains(err.Error(), "site-internal") {
		t.Errorf("propose from another site: %v; want ErrCallScope", err)
	}
	rep, err = daemon.LinkOf(f1).Call(ctx, leader, &transport.Call{Op: daemon.CallDrillTransfer})
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.CallErr(daemon.CallDrillTransfer, rep); !errors.Is(err, transport.ErrCallScope) || !strings.Contains(err.Error(), "inter-site") {
		t.Errorf("drill transfer from our own site: %v; want ErrCallScope", err)
	}
	rep, err = daemon.LinkOf(f1).Call(ctx, leader, &transport.Call{Op: "admin"}) // the tunnelled HTTP of earlier versions
	if err != nil {
		t.Fatal(err)
	}
	if err := daemon.CallErr("admin", rep); !errors.Is(err, transport.ErrUnknownCall) {
		t.Errorf("call admin: %v; want ErrUnknownCall", err)
	}
	if got := lab.Leader("alpha"); got != leader {
		t.Fatalf("leader moved from %s to %s during the test", leader, got)
	}

	// Proposed through a follower, the leader's refusal of the command
	// itself comes back at once as what it is, not as a timeout
	// (ErrNoQuorum) after retrying an answer that cannot change.
	_, err = daemon.Propose(f1, ctx, &queue.Command{Op: queue.OpSubmit, Time: time.Now().UnixNano(),
		Submit: &queue.Submit{Origin: "bravo", Items: []queue.SubmitItem{{ID: "relay-2", Dest: "alpha", Payload: []byte("x")}}}})
	if !errors.Is(err, queue.ErrInvalid) || errors.Is(err, daemon.ErrNoQuorum) {
		t.Errorf("propose of a refused command through follower %s: %v; want queue.ErrInvalid, not ErrNoQuorum", followers[0], err)
	}

	// Through all this the commit path works: a follower's proposal
	// reaches the leader.
	if _, err := daemon.Propose(f1, ctx, daemon.NoopCommand()); err != nil {
		t.Fatalf("propose through follower %s: %v", followers[0], err)
	}
}
