package client

import "time"

// The local API is HTTP/JSON on a Unix socket. Every path is below /v1.
// Errors are returned with a 4xx/5xx status and an Error body.
const (
	PathMessages = "/v1/messages" // POST: submit (raw body = payload); GET /v1/messages/{id}: status
	PathInbox    = "/v1/inbox"    // GET: unread messages (long-poll)
	PathAck      = "/v1/inbox/ack"
	PathStatus   = "/v1/status"
)

// Error codes in Error.Code. Clients branch on these, not on the text.
const (
	CodeBadRequest = "bad_request" // 400: malformed parameter
	CodeEmpty      = "empty"       // 400: empty message
	// CodeInvalidPayload (400): the payload is not what its type says
	// (a STIX 2.1 bundle that does not validate); the message names the
	// object and the property.
	CodeInvalidPayload = "invalid_payload"
	CodeUnknownSite    = "unknown_site" // 400: destination site not configured
	CodeTooLarge       = "too_large"    // 413: message over the configured limit
	CodeKeyConflict    = "key_conflict" // 409: idempotency key reused for a different message
	CodeNotFound       = "not_found"    // 404: no such message
	CodeNoQuorum       = "no_quorum"    // 503: the site could not commit in time; retrying with the same id is safe
	CodeUnavailable    = "unavailable"  // 503: node starting or shutting down
	CodeInternal       = "internal"     // 500
	// CodeStorageFull (507): this node's disk is full; it stores nothing
	// until space is freed. Nothing was stored: submit through another
	// node of the site (same id), or retry once space is back.
	CodeStorageFull = "storage_full"

	CodeMethodNotAllowed = "method_not_allowed" // 405: the path takes other methods (the Allow header lists them)
	CodeBusy             = "busy"               // 503: too many requests already waiting on the node (long-polls, submit waits); retry later

	// The origin knows the destination site's mailbox list (the sites
	// exchange them) and the message does not fit it; nothing is stored.
	CodeUnknownMailbox = "unknown_mailbox"  // 400: the destination site has no such mailbox (the message names its mailboxes)
	CodeTypeNotAllowed = "type_not_allowed" // 400: the destination mailbox does not take the media type (the message names those it takes)
)

// HeaderMessageID is set on a failed submit's error reply (no_quorum,
// unavailable) to the id the message was given: the outcome is unknown, so
// it may have been stored under that id (GET /v1/messages/{id} tells).
const HeaderMessageID = "Hotline-Message-Id"

// Error is the body of every non-2xx reply.
type Error struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Submit query parameters: to (required), precedence (flash|immediate|
// priority|routine, default routine), id (idempotency key), ttl (Go
// duration, default none), wait (queued|delivered|read, default queued),
// timeout (Go duration for wait, default 30s, at most 1h). The request body
// is the payload. Every parameter is parsed strictly: an unknown, repeated,
// malformed or out-of-range one is a 400 naming it, and nothing is stored.
// Replies 201 for a new message, 200 when the id was known; 202 when the
// message is committed but the wait for its state timed out (or this node
// has not applied it yet): WaitTimedOut is set and State is the state it
// has reached ("queued" when not yet applied here). A committed submit is
// never answered with an error.

// Message is the status of one message, as returned by submit and get.
type Message struct {
	ID          string     `json:"id"`
	Key         string     `json:"key,omitempty"`
	Direction   string     `json:"direction"` // outbound | inbound
	From        string     `json:"from"`      // origin site
	To          string     `json:"to"`        // destination site
	Mailbox     string     `json:"mailbox"`   // the destination's mailbox ("default" for the default one)
	FromMailbox string     `json:"from_mailbox"`
	Type        string     `json:"type"` // media type
	Precedence  string     `json:"precedence"`
	Seq         uint64     `json:"seq"`
	Size        int        `json:"size"`  // the plaintext's bytes (0 once expired)
	State       string     `json:"state"` // queued | delivered | read | expired | held (two-person release) | refused
	Existing    bool       `json:"existing,omitempty"`
	SubmittedAt time.Time  `json:"submitted_at"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	ReadAt      *time.Time `json:"read_at,omitempty"`
	ExpiredAt   *time.Time `json:"expired_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	// RefusedAt and RefusedReason: when and why the destination refused
	// the message (state refused: a mailbox it does not have, or a type
	// the mailbox does not take).
	RefusedAt     *time.Time `json:"refused_at,omitempty"`
	RefusedReason string     `json:"refused_reason,omitempty"`

	// WaitTimedOut: the message is committed but had not reached the
	// submit's wait state when its timeout passed (HTTP 202).
	WaitTimedOut bool `json:"wait_timed_out,omitempty"`

	// PayloadSHA256 is the plaintext's SHA-256 (hex), read from the
	// payload's envelope: a site keeps payloads sealed, and `get` never
	// shows one. Empty once the message expired.
	PayloadSHA256 string `json:"payload_sha256,omitempty"`

	// ReadObjective is the message's read objective (a Go duration: its
	// mailbox's for its precedence) and ReadDue when it is due
	// (submitted_at + ReadObjective); ObjectiveMet, once it is read,
	// whether read_at was at or before ReadDue. Absent for link tests,
	// drills and expiry notices. Set by get (GET /v1/messages/{id}).
	ReadObjective string     `json:"read_objective,omitempty"`
	ReadDue       *time.Time `json:"read_due,omitempty"`
	ObjectiveMet  *bool      `json:"objective_met,omitempty"`
}

// Inbox query parameters: after (position, default 0), max (default 100,
// at most 1000), max_bytes (payload, id and key bytes per reply, default
// 4 MiB, at most 16 MiB; a reply always holds the first unread message,
// however large), wait (Go duration to long-poll when nothing is unread
// after `after`, default 0, at most 5m).

// InboxMessage is one unread message delivered to this site.
type InboxMessage struct {
	ID          string    `json:"id"`
	Key         string    `json:"key,omitempty"`
	From        string    `json:"from"`
	Mailbox     string    `json:"mailbox"`      // the mailbox it arrived in
	FromMailbox string    `json:"from_mailbox"` // the origin's mailbox it was sent from
	Type        string    `json:"type"`         // media type
	Precedence  string    `json:"precedence"`
	Seq         uint64    `json:"seq"`
	Pos         uint64    `json:"pos"`     // position in this site's inbox; pass as `after` to continue
	Payload     []byte    `json:"payload"` // base64 in JSON; empty when Error is set
	SubmittedAt time.Time `json:"submitted_at"`
	ReceivedAt  time.Time `json:"received_at"`

	// Error says why the payload is not served: its envelope does not
	// open with this site's keys (tampered, or sealed to a key the site
	// does not hold).
	Error string `json:"error,omitempty"`
}

// Inbox is the reply of GET /v1/inbox.
type Inbox struct {
	Messages []InboxMessage `json:"messages"`
	Next     uint64         `json:"next"` // the highest Pos returned, or `after` when none
}

// AckRequest is the body of POST /v1/inbox/ack. Unknown ids are rejected
// (404, nothing marked).
type AckRequest struct {
	IDs []string `json:"ids"`
}

// AckReply is the reply of POST /v1/inbox/ack.
type AckReply struct {
	Acked int `json:"acked"`
}

// Status is the reply of GET /v1/status.
type Status struct {
	Site    string `json:"site"`
	Node    string `json:"node"`
	PID     int    `json:"pid"`
	Version string `json:"version"`
	// SiteVersion is the site's feature level (1 until the leader raises
	// it: README, Upgrading a site); SiteVersionWait, on the leader, names
	// the nodes it waits for before it can raise it.
	SiteVersion     uint64     `json:"site_version"`
	SiteVersionWait string     `json:"site_version_waiting_for,omitempty"`
	Role            string     `json:"role"`   // leader | follower | candidate | shutdown
	Leader          string     `json:"leader"` // node name, "" if unknown
	Term            uint64     `json:"term"`
	AppliedIndex    uint64     `json:"applied_index"`
	Peers           []Peer     `json:"peers"`
	Outbound        []OutQueue `json:"outbound"`
	Inbound         []InQueue  `json:"inbound"`
	Links           []SiteLink `json:"links"`            // per other site
	Alarms          []string   `json:"alarms,omitempty"` // current alarms: paths down, failed link tests
	InboxUnread     int        `json:"inbox_unread"`
	ReceiptsPending int        `json:"receipts_pending"`
	Uptime          string     `json:"uptime"`
	// Mailboxes are this site's mailboxes (configured, or holding unread
	// messages), by name; Overdue lists messages past their read
	// objective (at most 100, oldest due first).
	Mailboxes []MailboxStatus `json:"mailboxes,omitempty"`
	Overdue   []Overdue       `json:"overdue,omitempty"`
}

// Peer is a node this node knows from its config.
type Peer struct {
	Site      string `json:"site"`
	Node      string `json:"node"`
	Role      string `json:"role,omitempty"` // own site: voter; other sites: remote
	Connected bool   `json:"connected"`      // a link connection is up on some path
	// Protocol is the link protocol version (e.g. "hotline/1") of a
	// connection up to the peer; "" without one.
	Protocol  string     `json:"protocol,omitempty"`
	RTTMillis float64    `json:"rtt_ms,omitempty"`
	LastOK    *time.Time `json:"last_ok,omitempty"`
	LastError string     `json:"last_error,omitempty"`
	// RaftProtocol is the intra-site protocol this node's latest Raft
	// connection to the peer negotiated ("hotline-raft/2"); own site only,
	// "" until this node has dialled it (a leader dials every follower).
	RaftProtocol string `json:"raft_protocol,omitempty"`
}

// OutQueue is one outbound channel.
type OutQueue struct {
	To              string `json:"to"`
	Precedence      string `json:"precedence"`
	Last            uint64 `json:"last"`
	Acked           uint64 `json:"acked"`
	Queued          uint64 `json:"queued"` // last - acked
	OldestAgeMillis int64  `json:"oldest_age_ms,omitempty"`
}

// InQueue is one inbound channel.
type InQueue struct {
	From       string `json:"from"`
	Precedence string `json:"precedence"`
	Last       uint64 `json:"last"`
}

// The admin API. Every request under /v1/admin is refused (403, CodeForbidden)
// unless the caller's socket credentials (SO_PEERCRED) are root or a member
// of the configured admin_group. Requests that take `node` (a node of this
// site, default the node serving the socket) are relayed to that node over
// the intra-site link.
const (
	PathAdminPaths    = "/v1/admin/paths"           // GET: PathsReply (?node=)
	PathAdminPath     = "/v1/admin/paths/"          // POST /v1/admin/paths/{name}/down?mode=close|drop&node= ; POST .../{name}/up?node=
	PathAdminLeader   = "/v1/admin/leader/transfer" // POST ?to=NODE (default: the most up-to-date other node) &site=SITE (another site: needs its allow_remote_drills)
	PathAdminArrivals = "/v1/admin/drill/arrivals"  // GET ?site=DEST&precedence=P&after=SEQ&max=N (0: only Last; at most 1000): ArrivalsReply
)

// Submit with query parameter drill=true marks the message as drill canary
// traffic (admin only): carried and acknowledged like any other, never put
// into the destination's inbox.

// More error codes.
const (
	CodeForbidden = "forbidden" // 403: the admin API needs root or the admin group
	CodeConflict  = "conflict"  // 409: the request contradicts the current state (e.g. no leader to transfer from)
)

// Path states in PathInfo.State.
const (
	PathUp         = "up"         // connected and answering probes
	PathDown       = "down"       // probes unanswered for the detection time, or the connection failed
	PathConnecting = "connecting" // no connection yet (dialling or waiting to redial)
	PathAdminDown  = "admin-down" // disabled on this node by an operator
)

// Path down modes.
const (
	ModeClose = "close" // close the path's connections with a reason; peers see it at once
	ModeDrop  = "drop"  // silently drop the path's packets both ways, as a real cut would
)

// PathInfo is one (peer node, path) as seen by the node that reports it.
type PathInfo struct {
	Site        string     `json:"site"`
	Node        string     `json:"node"`
	Path        string     `json:"path"`
	Remote      string     `json:"remote"` // the peer's UDP address on the path
	State       string     `json:"state"`  // PathUp, PathDown, PathConnecting, PathAdminDown
	Since       *time.Time `json:"since,omitempty"`
	Active      bool       `json:"active,omitempty"` // carried the last batch this node sent to the peer's site
	RTTMillis   float64    `json:"rtt_ms,omitempty"` // smoothed probe round trip
	LossPct     float64    `json:"loss_pct"`         // probes unanswered among the recent ones
	LastOK      *time.Time `json:"last_ok,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	BytesSent   uint64     `json:"bytes_sent"`
	BytesRecv   uint64     `json:"bytes_recv"`
	// LinkTest is the last periodic link test on this path to the peer's
	// site (only on the leader, only for other sites' nodes).
	LinkTest *LinkTest `json:"link_test,omitempty"`
}

// LinkTest is the outcome of one periodic link test.
type LinkTest struct {
	At        time.Time `json:"at"`
	OK        bool      `json:"ok"`
	RTTMillis float64   `json:"rtt_ms,omitempty"`
	Error     string    `json:"error,omitempty"`
}

// PathAdmin is the administrative state of one of a node's paths.
type PathAdmin struct {
	Node  string `json:"node"`
	Path  string `json:"path"`
	State string `json:"state"`          // up | down
	Mode  string `json:"mode,omitempty"` // ModeClose | ModeDrop when down
}

// PathsReply is the reply of GET /v1/admin/paths.
type PathsReply struct {
	Site  string      `json:"site"`
	Node  string      `json:"node"`
	Admin []PathAdmin `json:"admin"` // this node's paths, in preference order
	Paths []PathInfo  `json:"paths"` // every peer node × path
}

// LeaderTransfer is the reply of POST /v1/admin/leader/transfer.
type LeaderTransfer struct {
	Site string `json:"site"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Arrival is one drill canary as committed at the destination site.
type Arrival struct {
	Seq         uint64    `json:"seq"`
	ID          string    `json:"id"`
	Key         string    `json:"key,omitempty"`
	SubmittedAt time.Time `json:"submitted_at"` // origin's commit time
	ArrivedAt   time.Time `json:"arrived_at"`   // destination's receive time
}

// ArrivalsReply is the reply of GET /v1/admin/drill/arrivals: the drill
// canaries of channel (this site → site, precedence) with sequence numbers
// after `after`, in order, read from a node of the destination site.
type ArrivalsReply struct {
	Site       string    `json:"site"`
	Precedence string    `json:"precedence"`
	Last       uint64    `json:"last"` // the destination's last sequence on the channel
	Next       uint64    `json:"next"` // pass as `after` to continue; == after when nothing more
	Arrivals   []Arrival `json:"arrivals"`
}

// SiteLink summarizes, in Status, how this node reaches one other site.
type SiteLink struct {
	Site       string `json:"site"`
	ActiveNode string `json:"active_node,omitempty"` // node and path that carried the last batch
	ActivePath string `json:"active_path,omitempty"`
	PathsUp    int    `json:"paths_up"`    // (node, path) pairs up
	PathsTotal int    `json:"paths_total"` // (node, path) pairs configured
	// Mailboxes are the site's mailboxes as it last stated them (the
	// mailbox exchange); absent until this node has heard from it.
	Mailboxes []string `json:"mailboxes,omitempty"`
}
