package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// Batches from other sites. Any node accepts a batch; a follower relays it
// to the leader, and the ack goes back only after the site committed it.
// (Calls are served by the routing table in calls.go.)

// handleBatch applies a batch from another site: the link's
// transport.Handler. The transport has already checked that b.From is the
// sender's certified site and b.To is ours.
func (n *Node) handleBatch(ctx context.Context, from pki.Identity, b *transport.Batch) (*transport.Ack, error) {
	if err := n.life.enter(); err != nil {
		return &transport.Ack{Error: n.cfg.Node + ": " + err.Error(), Leader: n.otherLeader()}, nil
	}
	defer n.life.exit()
	leader, _ := n.raft.Leader()
	if err := n.checkBatch(from, b); err != nil {
		n.log.Warn("rejected batch", "from", from, "err", err)
		return &transport.Ack{Error: err.Error(), Leader: leader}, nil
	}
	cmd := &queue.Command{Time: time.Now().UnixNano()}
	switch b.Kind {
	case transport.BatchMessages:
		cmd.Op = queue.OpReceive
		cmd.Receive = &queue.Receive{Origin: b.From, Precedence: b.Precedence, Messages: b.Messages}
	case transport.BatchReceipts:
		cmd.Op = queue.OpReceipts
		cmd.Receipts = &queue.Receipts{From: b.From, Receipts: b.Receipts}
	}
	res, err := n.propose(ctx, cmd)
	leader, _ = n.raft.Leader()
	if err != nil {
		return &transport.Ack{Error: err.Error(), Leader: leader}, nil
	}
	ack := &transport.Ack{Leader: leader}
	switch {
	case res.Receive != nil:
		ack.Last = res.Receive.Last
		n.metrics.received.Add(float64(res.Receive.Applied))
		n.metrics.observeReceived(b, res.Receive.Last, res.Receive.Applied, cmd.Time)
	case res.Receipts != nil:
		ack.Last = res.Receipts.Last
	}
	return ack, nil
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

// checkBatch rejects batches that are well-formed on the wire but wrong
// for us; nothing of such a batch is applied.
func (n *Node) checkBatch(from pki.Identity, b *transport.Batch) error {
	if b.From != from.Site || b.To != n.cfg.Site {
		return fmt.Errorf("batch from %s names sites %s->%s", from, b.From, b.To)
	}
	switch b.Kind {
	case transport.BatchMessages:
		if !b.Precedence.Valid() {
			return fmt.Errorf("invalid precedence %d", b.Precedence)
		}
		var prev uint64
		for i, m := range b.Messages {
			switch {
			case m.Origin != b.From || m.Dest != n.cfg.Site || m.Precedence != b.Precedence:
				return fmt.Errorf("message %d (%s) is for channel %s->%s/%s, not the batch's", i, m.ID, m.Origin, m.Dest, m.Precedence)
			case int64(len(m.Payload)) > n.cfg.MaxMessageSize:
				return fmt.Errorf("message %s is %d bytes, over this site's limit of %d", m.ID, len(m.Payload), n.cfg.MaxMessageSize)
			case m.Seq == 0 || (i > 0 && m.Seq != prev+1):
				return fmt.Errorf("message %s has sequence %d, want %d", m.ID, m.Seq, prev+1)
			case m.ID == "":
				return fmt.Errorf("message with sequence %d has no id", m.Seq)
			}
			prev = m.Seq
		}
	case transport.BatchReceipts:
		var prev uint64
		for i, rc := range b.Receipts {
			if rc.RSeq == 0 || (i > 0 && rc.RSeq != prev+1) || !rc.Precedence.Valid() {
				return fmt.Errorf("receipt %d is malformed (rseq %d after %d)", i, rc.RSeq, prev)
			}
			prev = rc.RSeq
		}
	default:
		return fmt.Errorf("unknown batch kind %d", b.Kind)
	}
	return nil
}
