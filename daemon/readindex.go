package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
)

// Consistent reads (Raft's "read index", dissertation §6.4). A client may
// read on one node what it wrote or acknowledged through another, so a
// read first learns the site's read index and waits until this node's
// store has applied up to it:
//
//  1. The leader takes its commit index, then confirms that it still leads
//     (a heartbeat round answered by a majority in its term), so no newer
//     leader can have committed anything the index misses. Whatever any
//     node could show when the read arrived was committed by then. A new
//     leader's commit index may lag what its predecessor committed until
//     it has committed an entry of its own term, so once per term it first
//     commits a no-op command.
//  2. A follower asks the leader for that index over the site's LAN; every
//     node then waits until its own store has applied it. (The store's
//     applied index, not Raft's: Raft's counts entries handed to the store,
//     not entries stored.)
//
// The store records only command entries, so an index that names another
// entry (a Raft barrier, a configuration change) would never be reached;
// a node whose Raft has passed the index while its store has not reached
// it for a moment commits a no-op command and waits for that instead. No
// node commits Raft barriers for this reason (link tests commit the no-op
// command too).
//
// Reads are coalesced: one round in flight per node (and one verification
// in flight on the leader); a read that arrives meanwhile joins the next
// round, never the one in flight, which may have started before it came.
// So the cost grows with rounds, not with readers.
type readIndex struct {
	node   coalescer // this node's reads: local on the leader, else asked of it
	leader coalescer // on the leader: commit index and verification, for itself and followers

	termReady atomic.Uint64 // the term in which this node, as leader, committed its no-op
}

// noopCommand is a command that changes nothing but the applied index of
// every store: a purge of what finished before 1970.
func noopCommand() *queue.Command {
	return &queue.Command{Op: queue.OpPurge, Time: time.Now().UnixNano(), Purge: &queue.Purge{Before: 0, Max: 1}}
}

// errReadIndex wraps every failure to make a read consistent.
var errReadIndex = errors.New("cannot serve a consistent read now")

// readBarrier waits, within ctx and the submit timeout, until this node's
// store includes everything the site had committed when it was called.
// Errors wrap errReadIndex, or are errShuttingDown.
func (c *committer) readBarrier(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	idx, err := c.reads.node.do(ctx, c.stop, c.timeout, c.fetchReadIndex)
	if err != nil {
		return fmt.Errorf("%w: learning the site's commit point: %v", errReadIndex, err)
	}
	nudge := time.NewTimer(250 * time.Millisecond)
	defer nudge.Stop()
	for {
		changed := c.store.Changed()
		have := c.store.AppliedIndex()
		if have >= idx {
			return nil
		}
		select {
		case <-changed:
		case <-nudge.C:
			if c.raft.Stats().AppliedIndex < idx {
				nudge.Reset(250 * time.Millisecond) // still coming
				continue
			}
			a, err := c.commit(ctx, noopCommand())
			if err != nil {
				return fmt.Errorf("%w: committing a no-op after index %d: %v", errReadIndex, idx, err)
			}
			idx = max(idx, a.Index)
		case <-ctx.Done():
			return fmt.Errorf("%w: this node has applied up to %d, the leader %d: %v", errReadIndex, have, idx, ctx.Err())
		case <-c.stop.Done():
			return errShuttingDown
		}
	}
}

// fetchReadIndex gets the read index from the leader (itself, or asked
// over the LAN), retrying through leader changes until ctx ends. The
// leader's refusal arrives as a *transport.CallError wrapping its
// sentinel.
func (c *committer) fetchReadIndex(ctx context.Context) (uint64, error) {
	backoff := 20 * time.Millisecond
	for {
		var err error
		if c.raft.IsLeader() {
			var idx uint64
			if idx, err = c.leaderReadIndex(ctx); err == nil {
				return idx, nil
			}
		} else if leader, _ := c.raft.Leader(); leader != "" && leader != c.node {
			var rep *transport.Reply
			rep, err = c.link.Call(ctx, leader, &transport.Call{Op: callReadIndex})
			if err == nil {
				if err = callCodes.Err(callReadIndex, rep); err != nil {
					err = fmt.Errorf("leader %s: %w", leader, err)
				} else if idx, perr := strconv.ParseUint(string(rep.Body), 10, 64); perr == nil {
					return idx, nil
				} else {
					err = fmt.Errorf("leader %s: bad read index %q", leader, rep.Body)
				}
			}
		} else {
			err = errNoLeaderKnown
		}
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
}

// leaderReadIndex is step 1 on the leader, coalesced.
func (c *committer) leaderReadIndex(ctx context.Context) (uint64, error) {
	return c.reads.leader.do(ctx, c.stop, c.timeout, func(ctx context.Context) (uint64, error) {
		if !c.raft.IsLeader() {
			return 0, fmt.Errorf("%s: %w", c.node, consensus.ErrNotLeader)
		}
		if term := c.raft.Stats().Term; c.reads.termReady.Load() != term {
			data, err := noopCommand().Encode()
			if err != nil {
				return 0, err
			}
			if _, err := c.raft.Apply(ctx, data); err != nil {
				return 0, err
			}
			c.reads.termReady.Store(term)
		}
		idx := c.raft.Stats().CommitIndex
		if err := c.raft.VerifyLeader(ctx); err != nil {
			return 0, err
		}
		return idx, nil
	})
}

// serveReadIndex answers a follower's callReadIndex on the leader; its
// errors travel with their codes (ErrNotLeader, Raft's own).
func (c *committer) serveReadIndex(ctx context.Context) ([]byte, error) {
	if !c.raft.IsLeader() {
		return nil, fmt.Errorf("%s: %w", c.node, consensus.ErrNotLeader)
	}
	idx, err := c.leaderReadIndex(ctx)
	if err != nil {
		return nil, err
	}
	return strconv.AppendUint(nil, idx, 10), nil
}

// readBarrier is the socket API's step before a read: it answers 503
// unavailable (retryable) and returns false when the read cannot be made
// consistent in time.
func (a *apiServer) readBarrier(w http.ResponseWriter, r *http.Request) bool {
	if err := a.commit.readBarrier(r.Context()); err != nil {
		if r.Context().Err() == nil {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, client.CodeUnavailable, fmt.Sprintf("%s: %v; retry", a.cfg.Node, err))
		}
		return false
	}
	return true
}

// coalescer runs one fetch at a time and shares its result with every
// caller that arrived before it started.
type coalescer struct {
	mu      sync.Mutex
	running bool       // a round is in flight
	next    *readRound // the round new callers join; nil until one does
}

type readRound struct {
	done  chan struct{} // closed when index and err are set
	index uint64
	err   error
}

// do returns the result of a fetch that started after the call, or ctx's
// error. Each fetch runs under parent with its own timeout, whoever still
// waits.
func (c *coalescer) do(ctx, parent context.Context, timeout time.Duration, fetch func(context.Context) (uint64, error)) (uint64, error) {
	c.mu.Lock()
	if c.next == nil {
		c.next = &readRound{done: make(chan struct{})}
	}
	r := c.next
	if !c.running {
		c.running = true
		c.next = nil
		go c.run(parent, r, timeout, fetch)
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run runs rounds until nobody waits for a next one.
func (c *coalescer) run(parent context.Context, r *readRound, timeout time.Duration, fetch func(context.Context) (uint64, error)) {
	for r != nil {
		ctx, cancel := context.WithTimeout(parent, timeout)
		r.index, r.err = fetch(ctx)
		cancel()
		close(r.done)
		c.mu.Lock()
		r, c.next = c.next, nil
		c.running = r != nil
		c.mu.Unlock()
	}
}
