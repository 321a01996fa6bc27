package consensus

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// watch forwards this node's leadership transitions from Raft to LeaderCh
// and logs them and every leader change. It runs from Open until Close,
// after Raft has shut down, so the final "false" of a closing leader is
// forwarded too.
func (n *Node) watch() {
	defer close(n.watchDone)
	for {
		select {
		case v := <-n.notifyCh:
			n.transition(v)
		case o := <-n.obsCh:
			if lo, ok := o.Data.(raft.LeaderObservation); ok {
				switch string(lo.LeaderID) {
				case "":
					n.log.Info("consensus: no known leader", "term", n.term())
				case n.id:
					// logged by transition
				default:
					n.log.Info("consensus: leader changed", "leader", string(lo.LeaderID),
						"leader_addr", string(lo.LeaderAddr), "term", n.term())
				}
			}
		case <-n.closed:
			select {
			case v := <-n.notifyCh:
				n.transition(v)
			default:
			}
			return
		}
	}
}

// transition logs and forwards one leadership transition. LeaderCh never
// blocks the sender: when its buffer is full the backlog is dropped and only
// the latest state is kept.
func (n *Node) transition(leader bool) {
	if leader {
		n.log.Info("consensus: this node is now the leader", "term", n.term())
	} else {
		n.log.Info("consensus: this node is no longer the leader", "term", n.term())
	}
	select {
	case n.leaderCh <- leader:
		return
	default:
	}
	for {
		select {
		case <-n.leaderCh:
			continue
		case n.leaderCh <- leader:
			return
		}
	}
}

// LeaderCh delivers this node's leadership transitions: true when it
// becomes the leader, false when it stops (including at Close). It is
// buffered so Raft never waits for the consumer; a consumer more than 16
// transitions behind sees only the latest state. It has a single consumer
// and is never closed. The state at the time of the call is not sent: use
// IsLeader for that. A new leader's state machine may lag the log: call
// Barrier after true before relying on it.
func (n *Node) LeaderCh() <-chan bool { return n.leaderCh }

// WaitLeader waits until some leader is known and returns its ID. It fails
// with ErrClosed after Close or with the context's error.
func (n *Node) WaitLeader(ctx context.Context) (string, error) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if n.isClosed() {
			return "", &opError{op: "wait leader", kind: ErrClosed}
		}
		if id, _ := n.Leader(); id != "" {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("consensus: wait leader: %w", ctx.Err())
		case <-n.closed:
		case <-t.C:
		}
	}
}

// TransferLeadership hands leadership to the voter to, or to the most
// up-to-date other voter when to is "". It returns once this node has
// stepped down, and fails with ErrNotLeader when this node is not the
// leader, ErrUnknownServer when to is not in the configuration, or an error
// when the target did not take over within an election timeout. If ctx ends
// first, the transfer may still complete.
func (n *Node) TransferLeadership(ctx context.Context, to string) error {
	const op = "transfer leadership"
	r, err := n.active(op)
	if err != nil {
		return err
	}
	if r.State() != raft.Leader {
		return &opError{op: op, kind: ErrNotLeader}
	}
	var f raft.Future
	if to == "" {
		f = r.LeadershipTransfer()
	} else {
		if to == n.id {
			return fmt.Errorf("consensus: %s to %q: that is this node", op, to)
		}
		servers, err := n.Servers()
		if err != nil {
			return fmt.Errorf("consensus: %s to %q: %w", op, to, err)
		}
		addr := ""
		for _, s := range servers {
			if s.ID == to {
				addr = s.Addr
			}
		}
		if addr == "" {
			return &opError{op: fmt.Sprintf("%s to %q", op, to), kind: ErrUnknownServer}
		}
		f = r.LeadershipTransferToServer(raft.ServerID(to), raft.ServerAddress(addr))
	}
	_, err = n.wait(ctx, op, func() (any, error) { return nil, f.Error() })
	return err
}
