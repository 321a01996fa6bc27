// Package queue is the replicated state machine of one site: outbound
// channels and their sequence numbers, the inbox of inbound messages, read
// receipts in both directions and expiry, stored in one bbolt file.
//
// # Contract
//
//   - Deterministic. State changes depend only on the stored state and the
//     command: time comes from [Command.Time] (and a receipt's ReadAt), never
//     from the clock; nothing here starts goroutines, opens sockets or knows
//     about Raft. Every node of a site that applies the same entries holds
//     the same keys and values, however the entries were split into Apply
//     calls.
//   - [Store.Apply] applies a batch of committed log entries in one bbolt
//     write transaction, together with the highest applied index. Entries at
//     or below [Store.AppliedIndex] are skipped, so replaying the log after
//     a restart changes nothing. A command that cannot be decoded or is
//     invalid gets Result.Err and still consumes its index; other entries
//     of the batch apply normally.
//   - Storage failures (a failed commit) are not deterministic: the batch
//     is rolled back, every result of it carries the error, and the store
//     refuses all later Apply calls ([Store.Err] reports why) until a
//     successful [Store.Restore] or a restart, because applying later
//     entries without the lost ones would diverge from the other nodes.
//   - Channels (origin, dest, precedence) have gap-free sequence numbers
//     from 1. Outbound messages are assigned Seq at commit; inbound ones are
//     applied only at last+1 (duplicates skipped, stop at a gap). Acks and
//     receipt acks are cumulative and idempotent.
//   - Two-person release (held.go): an OpSubmit with a Release body holds
//     its items (state Held, outside every channel, no sequence number,
//     never expired or purged while held); OpRelease by another UID than
//     the submitter's moves one into its channel. IDs and idempotency
//     keys are shared between held and outbound messages.
//   - Messages are kept after delivery so their status can be queried,
//     until an OpPurge command (the retention) deletes those whose life
//     ended before its cutoff: acknowledged outbound messages that are
//     delivered, read, refused or expired, and inbound ones that are read
//     or never entered the inbox (refused ones included). Channel cursors
//     and inbox positions stay, so sequencing and duplicate detection are
//     unaffected; IDs and idempotency keys are remembered for the
//     retention period only.
//   - Refusals (refuse.go): an OpReceive names the messages its proposer
//     refused (Receive.Refused); apply stores them as Refused, outside
//     the inbox, and queues a refusal receipt (Receipt.Refused) to the
//     origin, whose apply makes the outbound message Refused.
//     A purge reads an index ordered by that end time and deletes at most
//     Purge.Max messages, so its cost is bounded.
//   - Expiry removes the payload of an undelivered message and leaves a
//     tombstone that keeps its channel gap-free. [Store.NextExpiry] says
//     when an OpExpire can next do something. It also puts an expiry
//     notice into the sending mailbox's inbox (notice.go), a local
//     message that is never receipted.
//   - The unread index (unread.go) lists unread outbound and inbox
//     messages by group and submission time, so that [Store.Overdue]
//     reads only the messages past their read objective.
//   - One encoding of messages and receipts (encoding.go: [AppendMessage],
//     [AppendReceipt], [Decoder]): canonical, bounded, varint times, nil
//     and empty alike. The log entries use it and package transport's
//     batch frames use it, so a message has one encoding on the wire and
//     in the log. Log entries ([Command.Encode]: format version 5, or 6
//     for a command that needs it, command_codec.go) begin with their
//     format version and end with a CRC32C; entries of the earlier
//     formats still decode: versions 3 and 4 (checked), version 2
//     (checked), version 1 and JSON (unchecked; logs begun before
//     2026-11-28 and 2026-11-24, whose state files, formats 2 and 1,
//     Open still upgrades); an entry of a newer version stops Apply
//     ([NewerFormatError]). Stored records
//     hold the same fields in a fixed layout (codec.go) so that a state
//     change patches bytes in place: message records and queued
//     receipts keep times as 8-byte integers, and a stored receipt is
//     the wire receipt's fields with its RSeq and origin in its key. The
//     store file carries its own format version and is upgraded in place
//     when opened (after a copy of it is written beside it, upgrade.go)
//     or restored.
//   - Site version (siteversion.go): a feature gate in the replicated
//     state, raised by [OpSiteVersion] once every node understands the
//     new version; [Store.SiteVersion] reads it. Apply stops at a raise
//     beyond [MaxSiteVersion] rather than misapply what follows.
//   - Evidence (evidence.go, evidence_store.go). OpReceive, OpReceipts
//     and OpDelivered may carry signed statements ([Evidence]: opaque
//     bytes made and checked by package transport/trust, and their
//     leaves), at most [MaxStatementLen] bytes and [MaxEvidenceLeaves]
//     leaves each; a Receive's or Receipts' evidence has exactly one leaf
//     per item, the first about the first item; an OpDelivered carries
//     up to [MaxDeliveredProofs] proofs ([DeliveredProof]: the
//     destination's statement and our own of one batch), ordered by
//     their first message, each continuing the run before it, the run
//     ending at UpTo (none: a resync's); otherwise the command is
//     refused (ErrInvalid: by Validate, Encode, DecodeCommand and Apply)
//     and changes nothing. Apply never interprets a statement. For each
//     item it applies or already holds it keeps one reference per
//     (message, kind): "received" (the origin's statement of an inbound
//     batch), "read" (the reader site's statement of its receipts),
//     "sent" and "delivered" (the origin's and the destination's
//     statements of the outbound messages up to the ack's UpTo); the
//     first reference of a kind is kept, a later statement (a resend
//     signed again) adds nothing. A statement is stored once (keyed by
//     its SHA-256) with a reference count; purging a message drops its
//     references and a statement goes with its last, so evidence is
//     bounded by the messages kept. [Store.Proofs] reads them.
//   - Backup and restore ([Store.Backup], [RestoreBackup]): a backup is one
//     read transaction framed with a header and a SHA-256 trailer. A
//     restored state starts a new Raft log (applied index 0) and is
//     fenced towards every other site until it learns how far that site
//     got: submits to a fenced destination fail with [ErrResyncing]; an
//     OpDelivered on a fenced channel moves its last up to the
//     destination's (those numbers were used by messages lost with the
//     old state, so the channel's records have a hole there, below
//     Acked); an OpReceiptsAcked renumbers receipts past the origin's;
//     the first receipts from a site are taken from where they start.
//   - Audit log (audit.go): apply appends a record for every event that
//     matters (a message submitted, received, delivered, read, refused
//     or expired; OpAudit's operator actions and refusals) to an append-only Merkle
//     tree (golang.org/x/mod/sumdb/tlog), with the command's time, so
//     every node holds the same log. Only entries of log format 4 or later (or
//     commands built in memory) append records: an entry of an older
//     format appends none, as it did not when the nodes that applied it
//     before an upgrade did (Command.audited). OpCheckpoint keeps signed
//     checkpoints (opaque notes): ours only if their root is the tree's
//     at their size; another site's as held while each extends the last
//     (a consistency proof apply checks from the held checkpoint of the
//     command's From: if the held one is no longer there the command
//     fails, ErrCheckpointMoved, and changes nothing), else apart as a
//     fork; apply alone decides which. Purge
//     never deletes audit records; they go with backups and snapshots.
//   - Integrity. Message records, queued receipts and evidence records
//     carry CRC32C checksums bound to their location (a stored statement
//     is also checked against its SHA-256), checked wherever they are read,
//     applied, served or forwarded; index entries are checked against the
//     record they name. Damage is an error wrapping [ErrCorrupt] (a
//     [*CorruptError] naming file and record) and is counted
//     ([Store.Corruption]); it is never served. Damage found while
//     applying stops the store like a storage failure, because skipping
//     would diverge from the other nodes. Open walks the file's pages and
//     runs bbolt's check first, so a damaged file is an error, not a panic.
//
// # Concurrency
//
// One writer (Apply or Restore; Raft never runs them concurrently, and the
// store serialises them anyway) and any number of readers. Readers see
// committed state only. A [Snapshot] is a bbolt read transaction: taking
// one is cheap, and writing it out runs concurrently with later Apply
// calls. Restore swaps the database file; readers wait only for the swap,
// and open snapshots keep reading the old file until released.
//
// The database is memory-mapped with a large initial mapping (see
// initialMmapSize) because bbolt must wait for every open read transaction,
// including an open Snapshot, before it can grow the mapping.
//
// # Lifecycle
//
//	Open ──> open ──Apply/Restore/reads──> open ──Close──> closed
//	           │                                 ▲
//	           └──commit failure──> failed ──────┘ (reads still work;
//	                                  │             Restore recovers)
//	                                  └──Restore──> open
//
// Close is idempotent; after it every method returns [ErrClosed] (or a zero
// value for the methods without an error).
package queue
