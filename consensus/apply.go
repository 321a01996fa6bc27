package consensus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Apply proposes data as a command entry and waits until it is committed by
// a majority and applied by the local state machine; it returns the state
// machine's result for the entry (which may itself be an error value the
// state machine chose to return). The context's deadline bounds the time to
// enqueue the entry too. Raft keeps data: the caller must not modify it
// afterwards.
//
// Errors: ErrNotLeader (not appended; ask Leader), ErrNoQuorum (leadership
// lost or no majority before commit), ErrStorageFull (this node's disk is
// full: not appended here; it stands by), ErrClosed, or the context's
// error, each wrapped. After ErrNoQuorum or a context error the entry may still
// commit later, so commands must be idempotent.
func (n *Node) Apply(ctx context.Context, data []byte) (any, error) {
	r, err := n.active("apply")
	if err != nil {
		return nil, err
	}
	return n.wait(ctx, "apply", func() (any, error) {
		f := r.Apply(data, enqueueTimeout(ctx))
		if err := f.Error(); err != nil {
			return nil, err
		}
		return f.Response(), nil
	})
}

// Barrier waits until every entry committed before it has been applied to
// the local state machine. It must run on the leader; errors are as for
// Apply.
func (n *Node) Barrier(ctx context.Context) error {
	r, err := n.active("barrier")
	if err != nil {
		return err
	}
	_, err = n.wait(ctx, "barrier", func() (any, error) {
		return nil, r.Barrier(enqueueTimeout(ctx)).Error()
	})
	return err
}

// VerifyLeader confirms that this node is still the leader: a majority of
// the cluster has answered it in its current term since the call began
// (Raft's read-index check, without a log entry). Errors are as for Apply;
// ErrNotLeader when it is not, or no longer, the leader.
func (n *Node) VerifyLeader(ctx context.Context) error {
	r, err := n.active("verify leader")
	if err != nil {
		return err
	}
	_, err = n.wait(ctx, "verify leader", func() (any, error) {
		return nil, r.VerifyLeader().Error()
	})
	return err
}

// enqueueTimeout is the time left before ctx's deadline, or 0 (no limit)
// without one.
func enqueueTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return 0
}

// wait runs call, which blocks on a Raft future, and returns its result,
// the context's error, or ErrClosed, whichever comes first. Raft futures
// cannot be cancelled: call keeps running in its goroutine until Raft
// answers it. Raft answers every entry it has taken; an entry still queued
// when Raft shuts down is never answered, and its goroutine stays blocked
// for the life of the process (rare: only proposals racing Close).
func (n *Node) wait(ctx context.Context, op string, call func() (any, error)) (any, error) {
	if n.isClosed() {
		return nil, &opError{op: op, kind: ErrClosed}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("consensus: %s: %w", op, err)
	}
	type result struct {
		v   any
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := call()
		done <- result{v, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("consensus: %s: %w", op, ctx.Err())
	case <-n.closed:
		select {
		case r = <-done:
		default:
			return nil, &opError{op: op, kind: ErrClosed, cause: raft.ErrRaftShutdown}
		}
	}
	if r.err != nil {
		if full := n.StorageFull(); full != nil && (errors.Is(r.err, raft.ErrRaftShutdown) || errors.Is(r.err, raft.ErrLeadershipLost)) {
			// The instance stopped because the disk is full.
			return nil, &opError{op: op, kind: ErrStorageFull, cause: full}
		}
		return nil, mapRaftError(op, r.err)
	}
	return r.v, nil
}
