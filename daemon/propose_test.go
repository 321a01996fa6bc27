package daemon_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
)

// TestRelayedCommandsChecked: a node of the site relays commands that no
// node of the site proposes; the leader refuses each with a reason and
// stores nothing of it.
func TestRelayedCommandsChecked(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the six-node lab")
	}
	lab := clustertest.Start(t)
	leader := lab.Leader("alpha")
	var follower string
	for _, n := range daemon.LabNodes("alpha") {
		if n != leader {
			follower = n
			break
		}
	}
	msg := func(id, origin, dest string, seq uint64) queue.Message {
		return queue.Message{ID: id, Origin: origin, Dest: dest, Precedence: queue.Flash, Seq: seq, Payload: []byte("x"), SubmittedAt: 1}
	}
	now := time.Now().UnixNano()
	cases := []struct {
		name string
		cmd  *queue.Command
		want string
	}{
		{"receive from an unconfigured site", &queue.Command{Op: queue.OpReceive, Time: now, Receive: &queue.Receive{Origin: "charlie", Precedence: queue.Flash, Messages: []queue.Message{msg("rc-1", "charlie", "alpha", 1)}}}, `"charlie" is not another configured site`},
		{"receive from our own site", &queue.Command{Op: queue.OpReceive, Time: now, Receive: &queue.Receive{Origin: "alpha", Precedence: queue.Flash, Messages: []queue.Message{msg("rc-2", "alpha", "alpha", 1)}}}, `"alpha" is not another configured site`},
		{"receive of another channel's message", &queue.Command{Op: queue.OpReceive, Time: now, Receive: &queue.Receive{Origin: "bravo", Precedence: queue.Flash, Messages: []queue.Message{msg("rc-3", "bravo", "charlie", 1)}}}, "not the batch's"},
		{"receive without data", &queue.Command{Op: queue.OpReceive, Time: now}, "without its receive data"},
		{"submit for another origin", &queue.Command{Op: queue.OpSubmit, Time: now, Submit: &queue.Submit{Origin: "bravo", Items: []queue.SubmitItem{{ID: "rc-4", Dest: "alpha", Payload: []byte("x")}}}}, `submit with origin "bravo"`},
		{"submit to an unconfigured site", &queue.Command{Op: queue.OpSubmit, Time: now, Submit: &queue.Submit{Origin: "alpha", Items: []queue.SubmitItem{{ID: "rc-5", Dest: "charlie", Payload: []byte("x")}}}}, `destination "charlie"`},
		{"submit not sealed", &queue.Command{Op: queue.OpSubmit, Time: now, Submit: &queue.Submit{Origin: "alpha", Items: []queue.SubmitItem{{ID: "rc-6", Dest: "bravo", Payload: []byte("x")}}}}, "payload not sealed"},
		{"delivered to our own site", &queue.Command{Op: queue.OpDelivered, Time: now, Delivered: &queue.DeliveredCmd{Dest: "alpha", Precedence: queue.Flash, UpTo: 5}}, "delivered: destination"},
		// A stolen node key must not be enough to mark a channel delivered.
		{"delivered without a proof", &queue.Command{Op: queue.OpDelivered, Time: now, Delivered: &queue.DeliveredCmd{Dest: "bravo", Precedence: queue.Flash, UpTo: 5}}, "no signed statement"},
		{"delivered with a forged proof", &queue.Command{Op: queue.OpDelivered, Time: now, Delivered: &queue.DeliveredCmd{Dest: "bravo", Precedence: queue.Flash, UpTo: 5,
			Proofs: []queue.DeliveredProof{{Evidence: forgedEvidence(1, 5)}}}}, "delivered proof of bravo"},
		{"delivered with proofs after a gap", &queue.Command{Op: queue.OpDelivered, Time: now, Delivered: &queue.DeliveredCmd{Dest: "bravo", Precedence: queue.Flash, UpTo: 1004,
			Proofs: []queue.DeliveredProof{{Evidence: forgedEvidence(1000, 5)}}}}, "after a gap"},
		{"receipts acked without data", &queue.Command{Op: queue.OpReceiptsAcked, Time: now}, "without its receipts_acked data"},
		{"receipts from an unconfigured site", &queue.Command{Op: queue.OpReceipts, Time: now, Receipts: &queue.Receipts{From: "charlie"}}, `"charlie" is not another configured site`},
		// The leader raises the site version from its own connections.
		{"site version", &queue.Command{Op: queue.OpSiteVersion, Time: now, SiteVersion: &queue.SiteVersionCmd{Version: queue.MaxSiteVersion}}, "proposed by the leader only"},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	link := daemon.LinkOf(lab.Node(follower))
	for _, c := range cases {
		data, err := c.cmd.Encode()
		if err != nil {
			t.Fatalf("%s: encode: %v", c.name, err)
		}
		rep, err := link.Call(ctx, leader, &transport.Call{Op: daemon.CallPropose, Body: data})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !strings.Contains(rep.Error, "refused") || !strings.Contains(rep.Error, c.want) {
			t.Errorf("%s: reply %q, want a refusal naming %q", c.name, rep.Error, c.want)
		}
	}
	for _, body := range [][]byte{nil, []byte("{"), []byte{0x01, 0xff, 0xff}, []byte(`{"op":"nonsense"}`)} {
		rep, err := link.Call(ctx, leader, &transport.Call{Op: daemon.CallPropose, Body: body})
		if err != nil || rep.Error == "" {
			t.Errorf("body %q: reply %+v, err %v; want an error reply", body, rep, err)
		}
	}
	// A JSON entry would be appended as it is, and builds read only the
	// fields they know of one.
	rep, err := link.Call(ctx, leader, &transport.Call{Op: daemon.CallPropose, Body: []byte(`{"op":"expire","time":1}`)})
	if err != nil || !strings.Contains(rep.Error, "JSON log format") {
		t.Errorf("a JSON command: reply %+v, err %v; want it refused as JSON", rep, err)
	}
	for _, name := range daemon.LabNodes("alpha") {
		for _, id := range []string{"rc-1", "rc-2", "rc-3", "rc-4", "rc-5"} {
			if _, err := daemon.StoreOf(lab.Node(name)).Lookup(id); err == nil {
				t.Errorf("%s stored %s of a refused command", name, id)
			}
		}
		if u := daemon.StoreOf(lab.Node(name)).InboxUnread(); u != 0 {
			t.Errorf("%s: %d unread inbox messages after refused commands", name, u)
		}
	}
}

// forgedEvidence is evidence of n leaves from first whose statement is
// not a signed one.
func forgedEvidence(first uint64, n int) *queue.Evidence {
	return &queue.Evidence{Statement: []byte("trust me"), First: first, Leaves: make([][32]byte, n)}
}
