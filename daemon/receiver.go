package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// receiver serves the link: batches from other sites, and commands relayed
// by followers of this site. Any node accepts a batch; a follower relays it
// to the leader, and the ack goes back only after the site committed it.
type receiver Node

var _ transport.Handler = (*receiver)(nil)

// HandleBatch applies a batch from another site. The transport has already
// checked that b.From is the sender's certified site and b.To is ours.
func (r *receiver) HandleBatch(ctx context.Context, from pki.Identity, b *transport.Batch) (*transport.Ack, error) {
	n := (*Node)(r)
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
// for us; nothing of such a batch is applied. The link has checked who
// sent it (From is the peer's site, To ours); the rest is queue's one
// check of an inbound batch.
func (n *Node) checkBatch(from pki.Identity, b *transport.Batch) error {
	switch b.Kind {
	case transport.BatchMessages:
		r := queue.Receive{Origin: b.From, Precedence: b.Precedence, Messages: b.Messages}
		return r.Validate(n.cfg.Site, n.cfg.MaxMessageSize)
	case transport.BatchReceipts:
		r := queue.Receipts{From: b.From, Receipts: b.Receipts}
		return r.Validate()
	default:
		return fmt.Errorf("batch from %s: unknown kind %d", from, b.Kind)
	}
}

// HandleCall serves calls: relays, admin requests and barriers from this
// site's other nodes; link tests and drill queries from other sites. Each
// operation is allowed only from the side it is meant for.
func (r *receiver) HandleCall(ctx context.Context, from pki.Identity, c *transport.Call) (*transport.Reply, error) {
	n := (*Node)(r)
	if err := n.life.enter(); err != nil {
		return &transport.Reply{Error: n.cfg.Node + ": " + err.Error()}, nil
	}
	defer n.life.exit()
	own := from.Site == n.cfg.Site
	switch {
	case c.Op == callPropose && own:
		return n.handlePropose(ctx, c.Body)
	case c.Op == callAdmin && own:
		return n.serveRelayedAdmin(ctx, c.Body)
	case c.Op == callBarrier && own:
		if err := n.barrier(ctx); err != nil {
			return &transport.Reply{Error: err.Error()}, nil
		}
		return &transport.Reply{}, nil
	case c.Op == callReadIndex && own:
		return n.serveReadIndex(ctx)
	case c.Op == callUpPaths && own:
		return &transport.Reply{Body: []byte(strconv.Itoa(n.upPaths()))}, nil
	case c.Op == callReach && own:
		sites, paths := n.reach()
		return &transport.Reply{Body: fmt.Appendf(nil, "%d %d", sites, paths)}, nil
	case c.Op == callLinkTest && !own:
		return n.serveLinkTest(ctx)
	case c.Op == callDrillArrivals && !own:
		return n.serveArrivals(from.Site, c.Body)
	case c.Op == callDrillTransfer && !own:
		if !n.cfg.AllowRemoteDrills {
			return &transport.Reply{Error: fmt.Sprintf("site %s does not let other sites move its leader (set allow_remote_drills = true in its config to allow drills to)", n.cfg.Site)}, nil
		}
		n.log.Warn("leader transfer requested by another site's drill", "from", from)
		lt, err := n.transferLeader(ctx, string(c.Body))
		if err != nil {
			return &transport.Reply{Error: err.Error()}, nil
		}
		b, _ := json.Marshal(lt)
		return &transport.Reply{Body: b}, nil
	case !own && (c.Op == callPropose || c.Op == callAdmin || c.Op == callBarrier || c.Op == callUpPaths || c.Op == callReach || c.Op == callReadIndex):
		return &transport.Reply{Error: fmt.Sprintf("call %q is for nodes of site %s only", c.Op, n.cfg.Site)}, nil
	default:
		return &transport.Reply{Error: fmt.Sprintf("unknown call %q", c.Op)}, nil
	}
}
