package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
	"github.com/hotline-link/hotline/transport/trust"
)

// ErrNoQuorum is returned when the site could not commit a command before
// the caller's deadline: no leader, no majority, or the leader unreachable.
var ErrNoQuorum = errors.New("the site could not commit in time (no leader or no majority)")

// errNoLeaderKnown is a failed attempt while this node knows no leader.
var errNoLeaderKnown = errors.New("no leader known")

// propose commits cmd on the site's Raft log, through the leader, and
// returns its result. It retries through leader changes until ctx ends;
// every command is idempotent, so a retry after an unknown outcome is safe.
func (c *committer) propose(ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
	a, err := c.commit(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return &a.Result, nil
}

// proposeRYW is propose with read-your-writes: it also waits (within ctx)
// until this node's own state includes the command, so that a client
// reading from this node next sees its effect.
func (c *committer) proposeRYW(ctx context.Context, cmd *queue.Command) (*queue.Result, error) {
	a, err := c.commit(ctx, cmd)
	if err != nil {
		return nil, err
	}
	for {
		changed := c.store.Changed()
		if c.store.AppliedIndex() >= a.Index {
			return &a.Result, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return &a.Result, nil // committed; this node is just behind
		}
	}
}

// commit is propose with the command's log index.
//
// A leader's refusal keeps its identity (a *transport.CallError wrapping
// the sentinel). This node's own errors end the retries (its disk full:
// ErrStorageFull, it stands by; its Raft closed), and so does a leader's
// refusal of the command itself (queue.ErrInvalid, errBadRelay): asking
// again gets the same answer, so it is returned at once. A leader that
// answers ErrNotLeader names the leader it knows, and the next attempt
// goes there unless Raft has named another meanwhile.
func (c *committer) commit(ctx context.Context, cmd *queue.Command) (*applied, error) {
	data, err := cmd.Encode()
	if err != nil {
		return nil, err
	}
	backoff := 20 * time.Millisecond
	var last error
	var hint, refused string // the leader named by the node that refused as not the leader
	for {
		var res *applied
		leader, _ := c.raft.Leader()
		if hint != "" && (leader == "" || leader == refused) {
			leader = hint
		}
		hint = ""
		switch {
		case c.raft.IsLeader():
			res, err = c.applyLocal(ctx, cmd, data)
		case leader != "" && leader != c.node:
			res, err = c.relay(ctx, leader, data)
		default:
			err = errNoLeaderKnown
		}
		if err == nil {
			if res.Result.Err != "" {
				return nil, fmt.Errorf("apply %s: %s", cmd.Op, res.Result.Err)
			}
			return res, nil
		}
		last = err
		var remote *transport.CallError
		local := !errors.As(err, &remote)
		if local && errors.Is(err, consensus.ErrStorageFull) {
			return nil, err // nothing was appended; this node stands by
		}
		if !local && (errors.Is(err, queue.ErrInvalid) || errors.Is(err, errBadRelay)) {
			return nil, err // the leader refused the command, not the moment
		}
		if ctx.Err() != nil || local && errors.Is(err, consensus.ErrClosed) {
			break
		}
		if !local && errors.Is(err, consensus.ErrNotLeader) && remote.Leader != c.node {
			hint, refused = remote.Leader, leader
		}
		select {
		case <-ctx.Done():
		case <-c.stop.Done():
			return nil, fmt.Errorf("%s: node is shutting down", cmd.Op)
		case <-time.After(backoff):
		}
		if ctx.Err() != nil {
			break
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
	return nil, fmt.Errorf("%w: %s: %v", ErrNoQuorum, cmd.Op, last)
}

// applyLocal applies on this node, which believes it leads. An inbound
// batch first waits briefly for its predecessor (batches of one channel may
// arrive out of order on parallel streams) so it is not rejected as a gap.
func (c *committer) applyLocal(ctx context.Context, cmd *queue.Command, data []byte) (*applied, error) {
	if cmd.Op == queue.OpReceive && cmd.Receive != nil && len(cmd.Receive.Messages) > 0 {
		c.awaitPredecessor(ctx, cmd.Receive)
	}
	v, err := c.raft.Apply(ctx, data)
	if err != nil {
		return nil, err
	}
	res, ok := v.(applied)
	if !ok {
		return nil, fmt.Errorf("apply %s: unexpected result %T", cmd.Op, v)
	}
	return &res, nil
}

// awaitPredecessor waits up to 500ms until the channel of r has applied the
// sequence just before r's first message.
func (c *committer) awaitPredecessor(ctx context.Context, r *queue.Receive) {
	first := r.Messages[0].Seq
	deadline := time.NewTimer(500 * time.Millisecond)
	defer deadline.Stop()
	for {
		changed := c.store.Changed()
		if c.inboundLast(r.Origin, r.Precedence)+1 >= first {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

func (c *committer) inboundLast(origin string, p queue.Precedence) uint64 {
	for _, ch := range c.store.Inbound() {
		if ch.Origin == origin && ch.Precedence == p {
			return ch.Last
		}
	}
	return 0
}

// relay hands an encoded command to the leader over the intra-site link.
// The leader's refusal is returned as a *transport.CallError wrapping its
// sentinel.
func (c *committer) relay(ctx context.Context, leader string, data []byte) (*applied, error) {
	// Abandon the attempt as soon as Raft names another leader: a leader
	// killed mid-call never answers, and the retry is idempotent.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	named, _ := c.raft.Leader()
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if now, _ := c.raft.Leader(); now != named {
					cancel()
					return
				}
			}
		}
	}()
	rep, err := c.link.Call(ctx, leader, &transport.Call{Op: callPropose, Body: data})
	if err != nil {
		return nil, fmt.Errorf("relay to leader %s: %w", leader, err)
	}
	if err := callCodes.Err(callPropose, rep); err != nil {
		return nil, fmt.Errorf("leader %s: %w", leader, err)
	}
	var res applied
	if err := json.Unmarshal(rep.Body, &res); err != nil {
		return nil, fmt.Errorf("relay to leader %s: bad reply: %w", leader, err)
	}
	return &res, nil
}

// servePropose serves a follower's relayed command on the leader. Its
// errors travel back with their codes (callCodes): ErrNotLeader,
// queue.ErrInvalid for a command that does not decode or that
// checkRelayed refuses (a refused signature keeps its own code: the
// relaying node tells the sending site why), and Raft's own. from is the
// relaying node, as its certificate names it.
func (c *committer) servePropose(ctx context.Context, from pki.Identity, body []byte) ([]byte, error) {
	if !c.raft.IsLeader() {
		return nil, fmt.Errorf("%s: %w", c.node, consensus.ErrNotLeader)
	}
	if len(body) > 0 && body[0] == '{' {
		// The leader appends a relayed command's bytes as they are, and
		// every build since log entry format 2 relays the binary format;
		// a JSON entry is read alike by every build only as far as its
		// fields are known to all.
		return nil, fmt.Errorf("%w: a relayed command in the JSON log format: nodes relay the binary format", queue.ErrInvalid)
	}
	cmd, err := queue.DecodeCommand(body)
	if err != nil {
		if !errors.Is(err, queue.ErrInvalid) {
			err = fmt.Errorf("%w: %w", queue.ErrInvalid, err)
		}
		return nil, err
	}
	if err := c.check(from, cmd); err != nil {
		c.log.Warn("refused a relayed command", "op", cmd.Op, "from", from, "err", err)
		return nil, fmt.Errorf("refused: %w (%w)", err, queue.ErrInvalid) // a trust code wins (callCodes)
	}
	res, err := c.applyLocal(ctx, cmd, body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// checkRelayed refuses a command relayed by another node of the site that
// no node of this site proposes: a command without its operation's data,
// a submit for another origin or to a site that is not configured, a
// receive, receipts or acks naming our own or an unconfigured site, an
// inbound batch that checkBatch would refuse, an inbound batch or an ack
// whose evidence does not hold (checkRelayedProof), a delivery without
// proofs that continue what the state records (checkRelayedDelivered), an
// operator record in the name of another node than from, the relaying
// node (so a node's stolen key records actions in its own name only).
// Nothing of a refused command is applied. The state machine checks the
// rest when it applies.
func (n *Node) checkRelayed(from pki.Identity, cmd *queue.Command) error {
	remote := func(site string) error {
		if site == n.cfg.Site || n.cfg.siteConfig(site) == nil {
			return fmt.Errorf("%q is not another configured site (%s)", site, strings.Join(n.cfg.remoteSites(), ", "))
		}
		return nil
	}
	missing := fmt.Errorf("%s command without its %s data", cmd.Op, cmd.Op)
	switch cmd.Op {
	case queue.OpSubmit:
		if cmd.Submit == nil {
			return missing
		}
		if cmd.Submit.Origin != n.cfg.Site {
			return fmt.Errorf("submit with origin %q at site %s", cmd.Submit.Origin, n.cfg.Site)
		}
		for _, it := range cmd.Submit.Items {
			if err := remote(it.Dest); err != nil {
				return fmt.Errorf("submit of %s: destination %w", it.ID, err)
			}
			if it.Flags&queue.FlagSealed == 0 {
				return fmt.Errorf("submit of %s: payload not sealed (every node of site %s seals what it accepts)", it.ID, n.cfg.Site)
			}
			if int64(len(it.Payload)) > n.cfg.payloadLimit() {
				return fmt.Errorf("submit of %s: %d bytes sealed, over max_message_size %d plus the envelope's %d", it.ID, len(it.Payload), n.cfg.MaxMessageSize, trust.EnvelopeOverhead)
			}
		}
	case queue.OpReceive:
		r := cmd.Receive
		if r == nil {
			return missing
		}
		if err := remote(r.Origin); err != nil {
			return fmt.Errorf("receive: origin %w", err)
		}
		if err := n.checkBatch(cmd); err != nil {
			return err
		}
		return n.checkRelayedProof(r.Origin, cmd)
	case queue.OpReceipts:
		r := cmd.Receipts
		if r == nil {
			return missing
		}
		if err := remote(r.From); err != nil {
			return fmt.Errorf("receipts: sender %w", err)
		}
		if err := n.checkBatch(cmd); err != nil {
			return err
		}
		return n.checkRelayedProof(r.From, cmd)
	case queue.OpDelivered:
		d := cmd.Delivered
		if d == nil {
			return missing
		}
		if err := remote(d.Dest); err != nil {
			return fmt.Errorf("delivered: destination %w", err)
		}
		if !d.Precedence.Valid() {
			return fmt.Errorf("delivered: invalid precedence %d", d.Precedence)
		}
		return n.checkRelayedDelivered(cmd) // linktrust.go
	case queue.OpReceiptsAcked:
		if cmd.ReceiptsAcked == nil {
			return missing
		}
		if err := remote(cmd.ReceiptsAcked.Origin); err != nil {
			return fmt.Errorf("receipts acked: origin %w", err)
		}
	case queue.OpMarkRead:
		if cmd.MarkRead == nil || len(cmd.MarkRead.IDs) == 0 {
			return missing
		}
	case queue.OpPurge:
		if cmd.Purge == nil {
			return missing
		}
	case queue.OpExpire:
	case queue.OpAudit:
		if cmd.Audit == nil {
			return missing
		}
		if cmd.Audit.Node != from.Node {
			return fmt.Errorf("audit record in the name of node %q relayed by %s", cmd.Audit.Node, from)
		}
	case queue.OpCheckpoint:
		if cmd.Checkpoint == nil {
			return missing
		}
		return n.audit.checkRelayed(cmd.Checkpoint) // audit_exchange.go
	case queue.OpRelease:
		if cmd.Release == nil {
			return missing
		}
	case queue.OpSiteVersion:
		// The leader raises the site version itself (siteversion.go),
		// from what its own Raft connections negotiated.
		return fmt.Errorf("%s is proposed by the leader only, not relayed", cmd.Op)
	default:
		return fmt.Errorf("unknown operation %q", cmd.Op)
	}
	if rel := cmd.Release; rel != nil && rel.Node != from.Node { // release.go
		return fmt.Errorf("%s naming node %q as the one that took it, relayed by %s", cmd.Op, rel.Node, from)
	}
	return nil
}
