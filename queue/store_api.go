package queue

// This file is the contract of the Store: types returned by its methods.
// The implementation lives in store.go and friends.

import "errors"

// Sentinel errors.
var (
	// ErrNotFound: no message with that ID (never stored, or purged).
	ErrNotFound = errors.New("queue: message not found")
	// ErrKeyConflict: an idempotency key was reused for a message with a
	// different destination, precedence or payload.
	ErrKeyConflict = errors.New("queue: idempotency key already used for a different message")
)

// Entry is one committed log entry handed to Apply.
type Entry struct {
	Index uint64
	Data  []byte
}

// Result is the outcome of applying one Entry. Exactly one field matching
// the command's Op is set, or Err when the entry could not be decoded or
// applied. It is JSON-encodable so a leader can return it to a follower.
type Result struct {
	Submit   []SubmitResult  `json:"submit,omitempty"`
	Receive  *ReceiveResult  `json:"receive,omitempty"`
	MarkRead *MarkReadResult `json:"mark_read,omitempty"`
	Receipts *ReceiptsResult `json:"receipts,omitempty"`
	Expire   *ExpireResult   `json:"expire,omitempty"`
	Purge    *PurgeResult    `json:"purge,omitempty"`
	Audit    *AuditResult    `json:"audit,omitempty"` // OpAudit, OpCheckpoint
	Release  *ReleaseResult  `json:"release,omitempty"`
	// SiteVersion is an OpSiteVersion's outcome (siteversion.go).
	SiteVersion *SiteVersionResult `json:"site_version,omitempty"`
	Err         string             `json:"err,omitempty"`
	// Skipped is true when the entry's index was at or below the store's
	// applied index (a replay after restart) and nothing was done.
	Skipped bool `json:"skipped,omitempty"`
}

// Direction says whether a message left or arrived at this site.
type Direction string

// Directions.
const (
	Outbound Direction = "outbound"
	Inbound  Direction = "inbound"
)

// Status is everything known about one message. Times are Unix
// nanoseconds, 0 when the event has not happened.
type Status struct {
	Message     Message   `json:"message"`
	Direction   Direction `json:"direction"`
	State       State     `json:"state"`
	SubmittedAt int64     `json:"submitted_at"`
	DeliveredAt int64     `json:"delivered_at,omitempty"` // outbound: ack from destination; inbound: applied here
	ReadAt      int64     `json:"read_at,omitempty"`
	ExpiredAt   int64     `json:"expired_at,omitempty"`
	InboxPos    uint64    `json:"inbox_pos,omitempty"` // inbound only
	// RefusedAt and RefusedReason are when and why the destination
	// refused the message (State Refused): at the destination, when it
	// applied the message; at the origin, as its refusal receipt says.
	RefusedAt     int64  `json:"refused_at,omitempty"`
	RefusedReason string `json:"refused_reason,omitempty"`

	payloadSum []byte // outbound with a key: the SHA-256 of the payload (SameSubmission)
}

// OutChannel describes one outbound channel (local origin, Dest, Precedence).
type OutChannel struct {
	Dest       string     `json:"dest"`
	Precedence Precedence `json:"precedence"`
	Last       uint64     `json:"last"`  // highest sequence assigned
	Acked      uint64     `json:"acked"` // highest sequence the destination acked
	// OldestQueuedAt is the SubmittedAt of message Acked+1, 0 if none.
	OldestQueuedAt int64 `json:"oldest_queued_at,omitempty"`
}

// InChannel describes one inbound channel (Origin, local site, Precedence).
type InChannel struct {
	Origin     string     `json:"origin"`
	Precedence Precedence `json:"precedence"`
	Last       uint64     `json:"last"` // highest sequence applied
}

// InboxItem is one unread inbox message. Pos is its position in this site's
// inbox (arrival order, gap-free from 1, the same on every node of the site).
type InboxItem struct {
	Pos        uint64  `json:"pos"`
	Message    Message `json:"message"`
	ReceivedAt int64   `json:"received_at"`
}

// ReceiptQueue describes the read receipts queued for one origin site.
type ReceiptQueue struct {
	Origin string `json:"origin"`
	Last   uint64 `json:"last"`  // highest RSeq assigned
	Acked  uint64 `json:"acked"` // highest RSeq the origin acked
}
