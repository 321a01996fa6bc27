package daemon_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/forward"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/trust"
)

// TestRelayUnsealablePayload: a payload sealed to a KEM key the site does
// not hold is refused with its own code ("unsealable"), through a
// follower's relay as at the receiver, so that the origin does not count
// it as a refusal of its signature.
func TestRelayUnsealablePayload(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	lab := startSite(t, "alpha")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node := lab.Follower("alpha")
	ring, err := trust.LoadKeyring(lab.Configs[node].Trust.Keys)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ring.EncryptionKey("bravo") // not alpha's
	if err != nil {
		t.Fatal(err)
	}
	env, err := trust.Seal(k, trust.Binding{ID: "wrong-key-1", Origin: "bravo", Dest: "alpha"}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	m := queue.Message{ID: "wrong-key-1", Origin: "bravo", Dest: "alpha", Precedence: queue.Flash, Seq: 1,
		Payload: env, Flags: queue.FlagSealed, SubmittedAt: time.Now().UnixNano()}
	_, err = daemon.Propose(lab.Node(node), ctx, &queue.Command{Op: queue.OpReceive, Time: time.Now().UnixNano(),
		Receive: &queue.Receive{Origin: "bravo", Precedence: queue.Flash, Messages: []queue.Message{m}}})
	if !errors.Is(err, daemon.ErrUnsealable) || !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("relayed receive sealed to another key: %v; want ErrUnsealable", err)
	}
	if errors.Is(err, trust.ErrUnknownKey) || errors.Is(err, trust.ErrBadSignature) || forward.Reason(err) != "" {
		t.Fatalf("relayed receive sealed to another key: %v reads as a refused signature (%q)", err, forward.Reason(err))
	}
}
