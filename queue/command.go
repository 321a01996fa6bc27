package queue

// Op names a state-machine command.
type Op string

// The commands the state machine applies.
const (
	OpSubmit        Op = "submit"         // enqueue outbound messages
	OpDelivered     Op = "delivered"      // destination acked an outbound channel up to a sequence
	OpReceive       Op = "receive"        // apply an inbound batch (destination side)
	OpMarkRead      Op = "mark_read"      // a local client read inbox messages
	OpReceipts      Op = "receipts"       // read receipts arrived from a destination site
	OpReceiptsAcked Op = "receipts_acked" // the origin site acked our receipts up to an RSeq
	OpExpire        Op = "expire"         // expire queued messages whose TTL ran out
	OpPurge         Op = "purge"          // delete finished messages older than the retention period
	OpAudit         Op = "audit"          // record an operator action or a refusal in the audit log (audit.go)
	OpCheckpoint    Op = "checkpoint"     // keep a signed audit checkpoint, ours or another site's (audit.go)
	OpRelease       Op = "release"        // release a held message into its channel (held.go)
	OpSiteVersion   Op = "site_version"   // raise the site version, a feature gate (siteversion.go)
)

// Command is one state-machine command: exactly one of the pointer fields
// matching Op is set. Time (Unix nanoseconds) is chosen by the proposer and
// is the only clock the state machine sees.
type Command struct {
	Op            Op             `json:"op"`
	Time          int64          `json:"time"`
	Submit        *Submit        `json:"submit,omitempty"`
	Delivered     *DeliveredCmd  `json:"delivered,omitempty"`
	Receive       *Receive       `json:"receive,omitempty"`
	MarkRead      *MarkRead      `json:"mark_read,omitempty"`
	Receipts      *Receipts      `json:"receipts,omitempty"`
	ReceiptsAcked *ReceiptsAcked `json:"receipts_acked,omitempty"`
	Purge         *Purge         `json:"purge,omitempty"`
	Audit         *AuditCmd      `json:"audit,omitempty"`
	Checkpoint    *CheckpointCmd `json:"checkpoint,omitempty"`
	// Release is OpRelease's body; on an OpSubmit it holds the items
	// for two-person release (held.go).
	Release *Release `json:"release,omitempty"`
	// SiteVersion is OpSiteVersion's body (log entry format 6; never
	// in the JSON format).
	SiteVersion *SiteVersionCmd `json:"site_version,omitempty"`

	// format is the log entry format the command was decoded from
	// (command_codec.go: '{' for JSON, else the version byte); 0 for a
	// command built in memory, which counts as the current format. Apply
	// appends audit records only for the current format (audited).
	format byte
}

// audited reports whether applying c appends audit records: only entries
// of version 4 and later (or built in memory) do, so that a node that applies old
// entries after an upgrade appends what its peers, which applied them
// with the old build, appended: nothing.
func (c *Command) audited() bool {
	return c.format == 0 || c.format == cmdVersion4 || c.format == cmdVersion5 || c.format == cmdVersion6
}

// Submit enqueues messages on outbound channels. Origin is the local site.
type Submit struct {
	Origin string       `json:"origin"`
	Items  []SubmitItem `json:"items"`
}

// SubmitItem is one message to enqueue. ID is chosen by the node that
// accepted it (a UUIDv7) so a retried proposal is recognised: an item whose
// ID already exists, or whose Key was already used, enqueues nothing and
// returns the existing message.
//
// Idempotency holds for the retention period: once OpPurge has deleted the
// message (it reached a final state before Purge.Before), its ID and Key
// are forgotten and may be used again for a new message.
type SubmitItem struct {
	ID         string     `json:"id"`
	Key        string     `json:"key,omitempty"`
	Dest       string     `json:"dest"`
	Precedence Precedence `json:"precedence"`
	Payload    []byte     `json:"payload"`
	Flags      uint32     `json:"flags,omitempty"`
	ExpiresAt  int64      `json:"expires_at,omitempty"`
	// Mailbox, From and Type are the message's (Message): the
	// destination's mailbox, the sending mailbox, the media type.
	Mailbox string `json:"mailbox,omitempty"`
	From    string `json:"from,omitempty"`
	Type    string `json:"type,omitempty"`
}

// attrs is a message holding only its attributes, for the codec.
func (it *SubmitItem) attrs() Message {
	return Message{Flags: it.Flags, Mailbox: it.Mailbox, From: it.From, Type: it.Type}
}

// SubmitResult is the outcome of one SubmitItem, in the same order.
// Existing is true when the ID or Key was already known; ID and Seq then
// name the message stored earlier. Err is set (and nothing stored) when
// the item is rejected, e.g. a Key reused for a different destination or
// payload (ErrKeyConflict's text).
type SubmitResult struct {
	ID       string `json:"id"`
	Seq      uint64 `json:"seq"`
	Existing bool   `json:"existing,omitempty"`
	Err      string `json:"err,omitempty"`
}

// DeliveredCmd records the destination's cumulative ack: every message of
// channel (local origin, Dest, Precedence) with Seq <= UpTo is durable at the
// destination. Applying a lower or equal UpTo again changes nothing.
type DeliveredCmd struct {
	Dest       string     `json:"dest"`
	Precedence Precedence `json:"precedence"`
	UpTo       uint64     `json:"up_to"`
	// Proofs are the destination's proofs of delivery, one per batch, in
	// ascending order of their first message, each continuing the one
	// before (they may overlap), the last ending at UpTo. None: a fenced
	// channel's resync, which lifts the fence (see Store.OutFenced).
	Proofs []DeliveredProof `json:"proofs,omitempty"`
}

// DeliveredProof is the proof that the destination holds the messages of
// one batch: its signed statement (KindDelivered) of the messages it
// covers, and Sent, this site's own statement of the batch it sent them
// in (KindMessages; may be nil).
type DeliveredProof struct {
	Evidence *Evidence `json:"evidence"`
	Sent     *Evidence `json:"sent,omitempty"`
}

// Receive applies an inbound batch of channel (Origin, local site,
// Precedence). Messages must be in ascending Seq order. Messages at or below
// the channel's last applied sequence are duplicates and skipped; applying
// stops at the first gap. Tombstones, link-test and drill messages advance
// the sequence but never enter the inbox.
type Receive struct {
	Origin     string     `json:"origin"`
	Precedence Precedence `json:"precedence"`
	Messages   []Message  `json:"messages"`
	// Evidence is the origin's signed statement of the batch (package
	// transport/trust, KindMessages): leaf i is Messages[i]'s.
	Evidence *Evidence `json:"evidence,omitempty"`
	// Refused are the messages this site refuses, by index in Messages,
	// ascending (refuse.go): decided by the node that took the batch, so
	// that every node applies the same. A refused message is stored in
	// state Refused, never enters the inbox, and a receipt with the
	// reason goes back to its origin; a duplicate stays as it was.
	Refused []Refusal `json:"refused,omitempty"`
}

// Evidence is a signed statement, opaque here (package transport/trust
// makes and checks it; this package only stores it), and its leaves: leaf
// i is about the item with sequence (RSeq for receipts) First+i of the
// command's channel. Apply keeps, for each item it applies or already
// holds, a reference to the statement and the item's leaf, so that the
// item's proof can be shown later (Store.Proofs).
type Evidence struct {
	Statement []byte     `json:"statement"`
	First     uint64     `json:"first"`
	Leaves    [][32]byte `json:"leaves"`
}

// ReceiveResult is the channel's last applied sequence after the command
// (the cumulative ack to send back) and how many messages were new. Held
// is how many of the command's leading messages the state now holds
// exactly as the command carries them (applied now, or held from before
// with the same id, flags, times and payload); it stops at the first that
// is not, so a destination signs delivery only of what it holds, never of
// a different message an origin resends under a sequence already used.
type ReceiveResult struct {
	Last    uint64 `json:"last"`
	Applied int    `json:"applied"`
	Held    int    `json:"held,omitempty"`
}

// MarkRead marks inbox messages read and queues a read receipt for each to
// its origin site. Unknown IDs are reported; already-read IDs are no-ops.
type MarkRead struct {
	IDs []string `json:"ids"`
	// By is who acknowledged (the caller's credentials, recorded with
	// each message's read record in the audit log; nil: nobody known) and
	// Node the node that took the ack. Mailboxes, when not nil, limits
	// the ack to messages of those mailboxes ("" the default): a message
	// with one of IDs in another mailbox is left unread and reported as
	// errNotMailbox (the caller may acknowledge only these).
	By        *Actor   `json:"by,omitempty"`
	Node      string   `json:"node,omitempty"`
	Mailboxes []string `json:"mailboxes,omitempty"`
}

// MarkReadResult has one entry per ID: "" for success, else the reason.
type MarkReadResult struct {
	Errs []string `json:"errs"`
}

// Receipts applies read receipts sent by site From for messages this site
// originated. Receipts at or below the last applied RSeq from From are
// duplicates; applying stops at the first gap.
type Receipts struct {
	From     string    `json:"from"`
	Receipts []Receipt `json:"receipts"`
	// Evidence is From's signed statement of the receipts (KindRead):
	// leaf i is Receipts[i]'s.
	Evidence *Evidence `json:"evidence,omitempty"`
}

// ReceiptsResult is the last applied RSeq from that site (the cumulative ack).
type ReceiptsResult struct {
	Last uint64 `json:"last"`
}

// ReceiptsAcked drops queued receipts to Origin with RSeq <= UpTo.
type ReceiptsAcked struct {
	Origin string `json:"origin"`
	UpTo   uint64 `json:"up_to"`
}

// ExpireResult counts the messages expired by an OpExpire command.
type ExpireResult struct {
	Expired int `json:"expired"`
}

// DefaultPurgeMax is the number of messages an OpPurge command deletes at
// most when Purge.Max is 0.
const DefaultPurgeMax = 10000

// Purge deletes, deterministically, messages whose life ended before
// Before (Unix nanoseconds), at most Max of them (0: DefaultPurgeMax) per
// command, oldest final time first:
//
//   - outbound messages that are Read, Refused, Expired or Delivered,
//     whose ReadAt (a Refused one's refusal time), ExpiredAt or
//     DeliveredAt (by state) is before Before, and that the
//     destination has acknowledged (Seq <= the channel's Acked), so the
//     channel's Last and Acked and the gap-free unsent tail are untouched;
//     a message delivered but never read is purged after the retention
//     too (a receipt arriving later is skipped, its RSeq still counts);
//   - inbound messages that are Read (by ReadAt) or never entered the inbox
//     (tombstones, link-test, drill and refused messages, by DeliveredAt); channel
//     cursors and inbox positions are kept, so duplicates are still
//     recognised and positions are never reused;
//   - their ID and idempotency-key index entries: Lookup and LookupKey then
//     return ErrNotFound, and the ID and Key may be used again.
//
// PurgeResult.More reports that the limit stopped it: propose another.
type Purge struct {
	Before int64 `json:"before"`
	Max    int   `json:"max,omitempty"`
}

// PurgeResult counts the messages deleted by an OpPurge command; More is
// true when more were due but the command's Max was reached.
type PurgeResult struct {
	Purged int  `json:"purged"`
	More   bool `json:"more,omitempty"`
}
