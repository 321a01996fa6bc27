package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/hotline-link/hotline/daemon/forward"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// Batches from other sites. Any node accepts a batch; a follower relays it
// to the leader, and the ack goes back only after the site committed it.
// The batch's signature is checked before anything is proposed, and the
// ack of a messages batch carries this site's signed delivery proof
// (linktrust.go). (Calls are served by the routing table in calls.go.)

// handleBatch applies a batch from another site: the link's
// transport.Handler. The transport has already checked that b.From is the
// sender's certified site and b.To is ours.
func (n *Node) handleBatch(ctx context.Context, from pki.Identity, b *transport.Batch) (*transport.Ack, error) {
	if err := n.life.enter(); err != nil {
		return callCodes.Refusal(fmt.Errorf("%s: %w", n.cfg.Node, err), n.otherLeader()), nil
	}
	defer n.life.exit()
	leader, _ := n.raft.Leader()
	notary := n.notary()
	cmd, err := notary.Command(b, time.Now().UnixNano())
	if forward.Reason(err) != "" {
		n.refuseUntrusted(from.Site, from, err)
		return callCodes.Refusal(err, leader), nil
	}
	if err == nil {
		err = n.checkBatch(cmd)
	}
	if err != nil {
		n.log.Warn("rejected batch", "from", from, "err", err)
		return callCodes.Refusal(err, leader), nil
	}
	if r := cmd.Receive; r != nil {
		// This node's decision, carried in the command (refuse.go).
		r.Refused = n.cfg.mailboxes().refusals(r.Messages)
	}
	res, err := n.propose(ctx, cmd)
	leader, _ = n.raft.Leader()
	if err != nil {
		return callCodes.Refusal(err, leader), nil
	}
	ack := &transport.Ack{Leader: leader}
	switch {
	case res.Receive != nil:
		ack.Last = res.Receive.Last
		n.metrics.received.Add(float64(res.Receive.Applied))
		n.metrics.observeReceived(b, res.Receive.Last, res.Receive.Applied, cmd.Time)
		// The site holds the batch's messages up to Last: say so, signed;
		// only of those it holds as the batch carries them (Held: not of
		// a different message resent under a sequence already used).
		if ack.Proof, err = notary.SignDelivered(cmd, heldUpTo(cmd.Receive, res.Receive), time.Now().UnixNano()); err != nil {
			n.log.Error("signing a delivery proof failed", "from", from, "err", err)
			return callCodes.Refusal(err, leader), nil
		}
	case res.Receipts != nil:
		ack.Last = res.Receipts.Last
	}
	return ack, nil
}

// heldUpTo is the last sequence of r's messages that the site holds as r
// carries them (res.Held of them, from the first), at most res.Last; 0 if
// none.
func heldUpTo(r *queue.Receive, res *queue.ReceiveResult) uint64 {
	if res.Held == 0 || res.Held > len(r.Messages) {
		return 0
	}
	return min(r.Messages[res.Held-1].Seq, res.Last)
}

// otherLeader is the site's leader as this node knows it, if that is
// another node: the hint a node that cannot serve gives its callers. It is
// safe in every state: before Raft is open, and after it is closed, it is "".
func (n *Node) otherLeader() string {
	if n.life.get() == stateStarting || n.life.get() == stateStopped || n.raft == nil {
		return ""
	}
	if l, _ := n.raft.Leader(); l != n.cfg.Node {
		return l
	}
	return ""
}

// checkBatch rejects the command of a batch (transport.Batch.Command:
// OpReceive or OpReceipts) that is well-formed on the wire but wrong for
// us; nothing of such a batch is applied. The link has checked who sent
// it (From is the peer's site, To ours); the rest is queue's one check of
// an inbound batch. A relayed command is checked the same (checkRelayed).
func (n *Node) checkBatch(cmd *queue.Command) error {
	switch {
	case cmd.Receive != nil:
		if err := cmd.Receive.Validate(n.cfg.Site, n.cfg.payloadLimit()); err != nil {
			return err
		}
		return n.sealer.checkInbound(cmd.Receive.Messages)
	case cmd.Receipts != nil:
		return cmd.Receipts.Validate()
	}
	return fmt.Errorf("%w: %s is not the command of an inbound batch", queue.ErrInvalid, cmd.Op)
}
