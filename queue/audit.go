package queue

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// The audit log: an append-only list of records, one per event that
// matters (a message submitted, released, received, delivered, read,
// refused or expired; an operator's action or a refusal the daemon
// proposes with OpAudit), kept
// as a Merkle tree (golang.org/x/mod/sumdb/tlog, RFC 6962 hashing) whose
// size and root the site signs as checkpoints (OpCheckpoint; package
// transport/trust makes and checks the signatures). Apply appends the
// records, so every node of a site holds the same log, byte for byte:
// a record's time is its command's.
//
// Storage (bucket audit*, see auditBuckets): the records by index, the
// tree's stored hashes by tlog.StoredHashIndex, an index from message ID
// to the indices of its records, the checkpoints, and the size in meta.
// Purge never deletes any of it. A message leaves about three records at
// its origin (submitted, delivered, read) and two at its destination
// (received, read), each about 100 bytes plus two stored hashes (64
// bytes) and an ID index entry: roughly 0.5 to 1 KB per message and site,
// for as long as the state lives. Retention of the audit log (archiving a
// signed prefix and dropping it) is left to do.

// AuditKind is what an audit record is about.
type AuditKind uint8

// The kinds of audit record. The numbers are part of the record encoding.
const (
	AuditSubmitted AuditKind = 1 + iota // a new outbound message (OpSubmit)
	AuditReceived                       // a new inbound message (OpReceive)
	AuditDelivered                      // an outbound message the destination acknowledged (OpDelivered)
	AuditRead                           // read: marked read here (destination), or its receipt applied (origin)
	AuditExpired                        // an outbound message expired before delivery (OpExpire)
	AuditOperator                       // an operator's action or a refusal (OpAudit)
	AuditReleased                       // a held message released into its channel (OpRelease, held.go)
	AuditRefused                        // refused by the destination: there (OpReceive), or its receipt applied (origin); Detail is the reason
)

var auditKindNames = [...]string{"", "submitted", "received", "delivered", "read", "expired", "operator", "released", "refused"}

// Valid reports whether k is a known kind.
func (k AuditKind) Valid() bool { return k > 0 && int(k) < len(auditKindNames) }

func (k AuditKind) String() string {
	if !k.Valid() {
		return fmt.Sprintf("audit_kind(%d)", uint8(k))
	}
	return auditKindNames[k]
}

// MarshalText encodes k as its name.
func (k AuditKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Limits of an audit record's fields (OpAudit's are checked when applied;
// the others come from validated messages).
const (
	MaxAuditAction = 64      // an operator record's action
	MaxAuditDetail = 1024    // its detail
	MaxAuditUser   = 256     // the caller's user name
	MaxAuditPeer   = 512     // a remote caller, "site/node"
	MaxAuditRecord = 4 << 10 // an encoded record
)

// auditRecordVersion is the first byte of every encoded record.
const auditRecordVersion = 1

// AuditRecord is one audit log entry. Message events fill the message's
// fields; operator records fill Node, Actor, Action and Detail. Time is
// the command's (Unix nanoseconds).
type AuditRecord struct {
	Kind AuditKind `json:"kind"`
	Time int64     `json:"time"`

	ID          string     `json:"id,omitempty"`
	Origin      string     `json:"origin,omitempty"`
	Dest        string     `json:"dest,omitempty"`
	Precedence  Precedence `json:"precedence"`
	Seq         uint64     `json:"seq,omitempty"`
	Flags       uint32     `json:"flags,omitempty"`
	PayloadHash []byte     `json:"payload_hash,omitempty"` // SHA-256 of the payload as stored (submitted, received)

	Node   string `json:"node,omitempty"` // the node that recorded an operator record
	Actor  Actor  `json:"actor"`
	Action string `json:"action,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Actor is who did an operator action: a caller of the node's socket (its
// peer credentials: UID, PID, and the user name of UID), or a node of
// another site (Peer, "site/node"). UID and PID are -1 when not known.
type Actor struct {
	UID  int64  `json:"uid"`
	User string `json:"user,omitempty"`
	PID  int64  `json:"pid"`
	Peer string `json:"peer,omitempty"`
}

// NoActor is the actor of records no caller asked for.
var NoActor = Actor{UID: -1, PID: -1}

// Encode returns the record's canonical encoding, the bytes its tree leaf
// hashes (tlog.RecordHash):
//
//	record = version:byte(1) kind:byte time:varint
//	         id:string origin:string dest:string precedence:byte
//	         seq:uvarint flags:uvarint payload_hash:bytes(0 or 32)
//	         node:string uid:varint user:string pid:varint peer:string
//	         action:string detail:string
//
// in the package's encoding (encoding.go): every record has exactly one
// encoding, which DecodeAuditRecord accepts and nothing else.
func (r *AuditRecord) Encode() []byte {
	b := make([]byte, 0, 96+len(r.ID)+len(r.Origin)+len(r.Dest)+len(r.PayloadHash)+len(r.Node)+len(r.Actor.User)+len(r.Actor.Peer)+len(r.Action)+len(r.Detail))
	b = append(b, auditRecordVersion, byte(r.Kind))
	b = binary.AppendVarint(b, r.Time)
	b = AppendString(b, r.ID)
	b = AppendString(b, r.Origin)
	b = AppendString(b, r.Dest)
	b = append(b, byte(r.Precedence))
	b = binary.AppendUvarint(b, r.Seq)
	b = binary.AppendUvarint(b, uint64(r.Flags))
	b = AppendBytes(b, r.PayloadHash)
	return appendOperator(b, r.Node, r.Actor, r.Action, r.Detail)
}

// appendOperator appends the fields an operator record and OpAudit's body
// share: node, uid, user, pid, peer, action, detail.
func appendOperator(b []byte, node string, a Actor, action, detail string) []byte {
	b = AppendString(b, node)
	b = binary.AppendVarint(b, a.UID)
	b = AppendString(b, a.User)
	b = binary.AppendVarint(b, a.PID)
	b = AppendString(b, a.Peer)
	b = AppendString(b, action)
	return AppendString(b, detail)
}

// operator reads what appendOperator appends, each field within its limit.
func (d *Decoder) operator() (node string, a Actor, action, detail string) {
	node = d.limited("node", MaxNameLen)
	a.UID = d.Varint()
	a.User = d.limited("user", MaxAuditUser)
	a.PID = d.Varint()
	a.Peer = d.limited("peer", MaxAuditPeer)
	return node, a, d.limited("action", MaxAuditAction), d.limited("detail", MaxAuditDetail)
}

// DecodeAuditRecord parses a record written by Encode. Anything else (an
// unknown version or kind, a field over its limit, trailing bytes, input
// over MaxAuditRecord) is an error wrapping ErrInvalid.
func DecodeAuditRecord(b []byte) (*AuditRecord, error) {
	if len(b) > MaxAuditRecord {
		return nil, fmt.Errorf("queue: audit record: %w: %d bytes (at most %d)", ErrInvalid, len(b), MaxAuditRecord)
	}
	d := NewDecoder(b)
	if v := d.Byte(); d.Err() == nil && v != auditRecordVersion {
		d.fail("unknown audit record version %d", v)
	}
	r := &AuditRecord{Kind: AuditKind(d.Byte())}
	if d.Err() == nil && !r.Kind.Valid() {
		d.fail("unknown audit record kind %d", uint8(r.Kind))
	}
	r.Time = d.Varint()
	r.ID = d.limited("id", MaxIDLen)
	r.Origin = d.limited("origin", MaxNameLen)
	r.Dest = d.limited("dest", MaxNameLen)
	r.Precedence = d.Precedence()
	r.Seq = d.Uvarint()
	r.Flags = d.flags()
	r.PayloadHash = d.Bytes()
	if n := len(r.PayloadHash); n != 0 && n != sha256.Size {
		d.fail("payload hash of %d bytes", n)
	}
	r.Node, r.Actor, r.Action, r.Detail = d.operator()
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("queue: audit record: %w: %w", ErrInvalid, err)
	}
	return r, nil
}

// limited reads a string of at most max bytes.
func (d *Decoder) limited(what string, max int) string {
	p := d.raw()
	if len(p) > max {
		d.fail("%s of %d bytes (at most %d)", what, len(p), max)
		return ""
	}
	return string(p)
}

// AuditCmd is OpAudit's body: an operator action (or a refusal) the
// daemon records, as recorded on Node. Apply refuses (Result.Err) a
// command whose fields are over their limits or hold control characters.
type AuditCmd struct {
	Node   string `json:"node"`
	Actor  Actor  `json:"actor"`
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
}

func (c *AuditCmd) valid() error {
	if err := validName(c.Node); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if c.Action == "" {
		return fmt.Errorf("%w: empty action", ErrInvalid)
	}
	for _, f := range []struct {
		what, s string
		max     int
	}{{"action", c.Action, MaxAuditAction}, {"detail", c.Detail, MaxAuditDetail},
		{"user", c.Actor.User, MaxAuditUser}, {"peer", c.Actor.Peer, MaxAuditPeer}} {
		if err := validText(f.what, f.s, f.max); err != nil {
			return err
		}
	}
	return nil
}

// CheckpointCmd is OpCheckpoint's body: a signed checkpoint (Note, a C2SP
// signed note, opaque here) of Site's audit log at Size with root Root.
//
// For this site, apply checks that Root is the tree hash at Size (a
// checkpoint of a tree this state does not hold is refused, Result.Err)
// and keeps the note; a checkpoint at a size already signed is kept once.
//
// For another site, the note is kept as held, with Proof, the consistency
// proof (tlog.ProveTree) from From, the size of the last checkpoint held
// of that site when the proposer looked (0: none), to this one. If the
// last one held is no longer at From when the command applies (another
// offer, or a node that served the offer from a state that lagged), the
// command fails (Result.Err, ErrCheckpointMoved's text; Result.Audit.Moved)
// and changes nothing: the offerer offers again. Otherwise apply alone
// decides, with the proof (tlog.CheckTree): a checkpoint that does not
// extend the last one held is kept apart as a fork, evidence that Site
// rewrote its history (Result.Audit.Fork), and the held chain does not
// move. A checkpoint no larger than the last held one with the same root
// changes nothing.
type CheckpointCmd struct {
	Site  string      `json:"site"`
	Size  int64       `json:"size"`
	Root  tlog.Hash   `json:"root"`
	Note  []byte      `json:"note"`
	From  int64       `json:"from,omitempty"`
	Proof []tlog.Hash `json:"proof,omitempty"`
}

// ErrCheckpointMoved is the text of an OpCheckpoint's Result.Err when the
// checkpoint held of its site is no longer the one its proof starts from.
var ErrCheckpointMoved = errors.New("held checkpoint moved; offer again")

// Limits of a checkpoint command.
const (
	MaxCheckpointNote  = 16 << 10 // a signed note (trust.MaxCheckpointSize)
	MaxCheckpointProof = 64       // hashes in a consistency proof (2 per tree level at most)
)

// AuditResult is the outcome of OpAudit (the record's index) and
// OpCheckpoint (Fork: kept as a fork, not held; Moved: refused, the held
// checkpoint is not at the command's From but at Held).
type AuditResult struct {
	Index int64 `json:"index,omitempty"`
	Fork  bool  `json:"fork,omitempty"`
	Moved bool  `json:"moved,omitempty"`
	Held  int64 `json:"held,omitempty"`
}

// appendAudit encodes the OpAudit and OpCheckpoint bodies of the log entry
// format (command_codec.go):
//
//	Audit      = node:string uid:varint user:string pid:varint peer:string
//	             action:string detail:string
//	Checkpoint = site:string size:varint root:bytes(32) note:bytes
//	             proof:list(bytes(32)) from:uvarint
func appendAudit(b []byte, c *Command) []byte {
	if a := c.Audit; a != nil {
		b = appendOperator(b, a.Node, a.Actor, a.Action, a.Detail)
	}
	if k := c.Checkpoint; k != nil {
		b = AppendString(b, k.Site)
		b = binary.AppendVarint(b, k.Size)
		b = AppendBytes(b, k.Root[:])
		b = AppendBytes(b, k.Note)
		b = binary.AppendUvarint(b, uint64(len(k.Proof)))
		for _, h := range k.Proof {
			b = AppendBytes(b, h[:])
		}
		b = binary.AppendUvarint(b, uint64(k.From))
	}
	return b
}

// auditSizeHint is the size of appendAudit's encoding (or a few bytes more).
func auditSizeHint(c *Command) int {
	n := 0
	if a := c.Audit; a != nil {
		n += 2*binary.MaxVarintLen64 + stringLen(len(a.Node)) + stringLen(len(a.Actor.User)) +
			stringLen(len(a.Actor.Peer)) + stringLen(len(a.Action)) + stringLen(len(a.Detail))
	}
	if k := c.Checkpoint; k != nil {
		n += stringLen(len(k.Site)) + binary.MaxVarintLen64 + 33 + stringLen(len(k.Note)) +
			uvarintLen(uint64(len(k.Proof))) + 33*len(k.Proof) + binary.MaxVarintLen64
	}
	return n
}

// decodeAudit reads the bodies appendAudit writes (bits: bodyAudit,
// bodyCheckpoint).
func decodeAudit(d *Decoder, c *Command, bodies uint64) {
	if bodies&bodyAudit != 0 {
		a := &AuditCmd{}
		a.Node, a.Actor, a.Action, a.Detail = d.operator()
		c.Audit = a
	}
	if bodies&bodyCheckpoint != 0 {
		k := &CheckpointCmd{Site: d.limited("site", MaxNameLen), Size: d.Varint()}
		k.Root = d.hash()
		if k.Note = d.Bytes(); len(k.Note) > MaxCheckpointNote {
			d.fail("checkpoint note of %d bytes (at most %d)", len(k.Note), MaxCheckpointNote)
		}
		if n := d.Count(33, MaxCheckpointProof); n > 0 {
			k.Proof = make([]tlog.Hash, n)
			for i := range k.Proof {
				k.Proof[i] = d.hash()
			}
		}
		if k.From = int64(d.Uvarint()); k.From < 0 {
			d.fail("checkpoint from %d out of range", uint64(k.From))
		}
		c.Checkpoint = k
	}
}

// hash reads a 32-byte hash as bytes.
func (d *Decoder) hash() tlog.Hash {
	var h tlog.Hash
	p := d.raw()
	if d.Err() == nil && len(p) != len(h) {
		d.fail("hash of %d bytes", len(p))
	}
	copy(h[:], p)
	return h
}

// Body bits of the audit commands in the log entry format
// (command_codec.go), after bodyPurge's.
const (
	bodyAudit      = 1 << 7
	bodyCheckpoint = 1 << 8
	bodyAllAudit   = bodyAll | bodyAudit | bodyCheckpoint
)
