// Package consensus runs one node of a site's Raft cluster (hashicorp/raft)
// and replicates an opaque [StateMachine] supplied by the caller.
//
// The package does not know what a message is: it moves byte slices into the
// Raft log and hands committed entries, in log order and in batches, to
// StateMachine.Apply. The caller owns the meaning of the bytes, their
// determinism, snapshots and restores.
//
// # Contract
//
//   - A node is opened with [Open] and closed with [Node.Close] (idempotent).
//     Raft state lives in Config.Dir: raft.db (log and stable store, bbolt)
//     and snapshots/ (the two newest snapshots are kept).
//   - The first Open on an empty Dir bootstraps the cluster with
//     Config.Peers; every node of the site bootstraps with the same list.
//     Later Opens ignore Peers and resume from the stored state. With
//     Config.Join an empty Dir is not bootstrapped: the node waits to be
//     added by the leader ([Node.AddNonvoter], [Node.AddVoter]) and catches
//     up from its snapshot and log. [Node.RemoveServer] takes a server out;
//     [CheckRemove] decides whether that keeps a live majority.
//   - [Node.Apply] returns after the entry is committed by a majority and
//     applied by the local state machine, with the state machine's result.
//     It fails with [ErrNotLeader] on a follower, [ErrNoQuorum] when
//     leadership is lost or no majority is reached, [ErrClosed] after Close,
//     or the context's error. After ErrNoQuorum or a context error the entry
//     may still commit later: commands must be idempotent.
//   - Every Raft byte between nodes is TLS: the node accepts with
//     Config.ServerTLS and dials with Config.ClientTLS(addr). The TLS
//     handshake is completed (with a deadline) before Raft sees the
//     connection, so a peer without an acceptable certificate is rejected at
//     the handshake and never reaches Raft's RPC decoding.
//   - The Raft port holds at most 64 unauthenticated connections (8 per
//     remote IP), each for at most the 5 s handshake deadline.
//   - Nodes negotiate the Raft protocol version in the handshake
//     ([Protocols], as ALPN; the accepting node's order wins). A node
//     offering none of ours is refused, counted, logged and reported to
//     Config.OnProtocolMismatch; a dial so refused fails with
//     [ErrProtocolVersion]. [Node.PeerProtocol] is the version the latest
//     dial of an address negotiated.
//   - [Node.LeaderCh] reports this node's own leadership transitions;
//     leadership changes are also logged at Info.
//   - A full disk (less than Config.StorageReserve free, or ENOSPC/EDQUOT on
//     a log write) makes the node stand by: no Raft instance, so it neither
//     leads nor votes; operations fail with [ErrStorageFull]. It takes part
//     again by itself once space is back (see [Node.StorageFull]).
//   - raft.db is checked (a walk of its pages, then bbolt's Check; package
//     boltcheck, as for the queue's state.db) at Open: a
//     corrupt file is an error naming it, never a panic. Files are 0600,
//     directories 0700.
//
// # Lifecycle
//
//	Open ──> running (follower ⇄ candidate ⇄ leader) ──Close──> closed
//	            ⇅ disk full / space back
//	         standing by ──Close──> closed
//
// Every method is safe for concurrent use. Operations called after Close
// return [ErrClosed]; State reports "shutdown" and the other accessors the
// last known values.
package consensus
