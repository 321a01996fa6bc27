package consensus

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"
)

// Sentinel errors. Callers branch on them with errors.Is; the returned errors
// also wrap Raft's own error where there is one.
var (
	// ErrNotLeader means this node is not the leader (or is handing
	// leadership over): send the request to [Node.Leader] instead. The entry
	// was not appended.
	ErrNotLeader = errors.New("consensus: not the leader")
	// ErrNoQuorum means leadership was lost, or no majority answered, before
	// the entry committed. The entry may still commit later.
	ErrNoQuorum = errors.New("consensus: leadership lost or no quorum before the entry committed")
	// ErrClosed means the node has been closed.
	ErrClosed = errors.New("consensus: node closed")
	// ErrStorageFull means this node's disk is full (less than
	// Config.StorageReserve free, or a write failed with ENOSPC or
	// EDQUOT): it stands by, taking no part in Raft, until space is freed.
	// The entry was not appended on this node. The error is a
	// *StorageError naming the directory and the free bytes.
	ErrStorageFull = errors.New("consensus: storage full")
	// ErrUnknownServer means a server ID is not in the current configuration.
	ErrUnknownServer = errors.New("consensus: unknown server")
	// ErrProtocolVersion means a node we dialled refused every Raft
	// protocol version we offered (see Protocols).
	ErrProtocolVersion = errors.New("consensus: no common protocol version")
)

// opError is an error of one operation: a sentinel kind (what callers branch
// on) and the cause reported by Raft. It reads
// "consensus: apply: not the leader: node is not the leader".
type opError struct {
	op    string
	kind  error
	cause error
}

func (e *opError) Error() string {
	s := "consensus: " + e.op + ": " + strings.TrimPrefix(e.kind.Error(), "consensus: ")
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *opError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// mapRaftError translates an error from a Raft future into this package's
// sentinels, naming the operation. Unknown errors are wrapped as they are.
func mapRaftError(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// A leader that is handing over rejects new entries without
		// appending them: for the caller that is "not the leader".
		return &opError{op: op, kind: ErrNotLeader, cause: err}
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrAbortedByRestore):
		return &opError{op: op, kind: ErrNoQuorum, cause: err}
	case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, raft.ErrTransportShutdown):
		return &opError{op: op, kind: ErrClosed}
	default:
		return fmt.Errorf("consensus: %s: %w", op, err)
	}
}
