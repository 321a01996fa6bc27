package trust

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/hotline-link/hotline/queue"
)

// An evidence bundle is everything that proves what happened to one
// message, in one JSON document a verifier checks offline with only the
// pinned public keys (VerifyBundle):
//
//   - the message's metadata and the SHA-256 of its payload as carried
//     (the envelope), from which its MessageLeaf is recomputed;
//   - the envelope itself (ciphertext, harmless to show) while the site
//     holds it: its SHA-256 is the signed payload hash, so the key id and
//     plaintext SHA-256 in its header are proven too, and whoever holds
//     the plaintext can show that this exact text was sent, delivered and
//     read (Report.CheckPlaintext). Without it (a tombstone, or a bundle
//     whose envelope was left out) the rest still verifies and the report
//     says that the plaintext is not proven;
//   - for each signed statement about it ("sent": the origin's
//     KindMessages statement as the origin keeps it; "received": the same
//     statement as the destination stored it; "delivered": the
//     destination's KindDelivered; "read": the reader's KindRead, with the
//     receipt's own fields), the statement, the leaf's index and its
//     inclusion path;
//   - for each audit record about it, the record, its index, its
//     inclusion path and which of the bundle's signed checkpoints it is
//     proven against (each checkpoint is held once).
//
// Every byte of it is checked: hashes are lowercase hex, binary fields
// strict base64, object keys and precedences spelled exactly as written
// here (not in another case, as encoding/json and queue would accept) and
// each key once, so no two spellings decode to the same value.

// BundleVersion is the bundle format this package writes and reads.
const BundleVersion = 1

// Proof kinds of a bundle.
const (
	ProofSent      = "sent"
	ProofReceived  = "received"
	ProofDelivered = "delivered"
	ProofRead      = "read"
)

// Bounds of a bundle a verifier reads (ParseBundle). A verifier does not
// know the node's max_message_size, so an envelope may be as large as the
// largest any node accepts (64 MiB of plaintext, sealed); the rest of a
// bundle (statements, paths, audit records, checkpoints) fits in 4 MiB.
// ParseBundle holds a few times MaxBundleSize at most.
const (
	MaxEnvelopeSize = 64<<20 + EnvelopeOverhead
	MaxBundleSize   = 4<<20 + (MaxEnvelopeSize+2)/3*4 // the envelope in base64
	MaxBundleProofs = 16
	MaxBundleAudit  = 256
	maxCheckpoints  = 16
	MaxAuditRecord  = 64 << 10
	maxPath         = 64 // hashes of an inclusion path (a tree of 2^64 leaves)
)

// Bundle is a message's evidence bundle.
type Bundle struct {
	Version int           `json:"version"`
	Message BundleMessage `json:"message"`
	Proofs  []BundleProof `json:"proofs"`
	Audit   []AuditProof  `json:"audit,omitempty"`
	// Checkpoints are the signed checkpoint notes (SignCheckpoint) the
	// audit records are proven against.
	Checkpoints []string `json:"checkpoints,omitempty"`
	// Objective is the message's read objective, as the site states it
	// (not signed; objective.go).
	Objective *BundleObjective `json:"objective,omitempty"`
}

// BundleMessage is the message a bundle is about: what MessageLeaf covers,
// with the payload's hash in place of the payload.
type BundleMessage struct {
	ID          string           `json:"id"`
	Origin      string           `json:"origin"`
	Dest        string           `json:"dest"`
	Precedence  queue.Precedence `json:"precedence"`
	Seq         uint64           `json:"seq"`
	Flags       uint32           `json:"flags"`
	SubmittedAt int64            `json:"submitted_at"`
	ExpiresAt   int64            `json:"expires_at"`
	// Mailbox (the destination's), From (the sending mailbox) and Type
	// (media type): "" for the default mailboxes and
	// application/octet-stream.
	Mailbox       string `json:"mailbox,omitempty"`
	From          string `json:"from,omitempty"`
	Type          string `json:"type,omitempty"`
	PayloadSHA256 Digest `json:"payload_sha256"`
	// Envelope is the sealed payload itself, when the message is sealed
	// (not a tombstone) and the site still holds it; nil otherwise.
	Envelope *BundleEnvelope `json:"envelope,omitempty"`
}

// BundleEnvelope is a sealed payload: its header's destination key id and
// plaintext SHA-256, stated for the reader, and its bytes, whose SHA-256
// is the payload hash the statements sign. VerifyBundle checks the stated
// copies against the header.
type BundleEnvelope struct {
	KeyID           string `json:"key_id"`
	PlaintextSHA256 Digest `json:"plaintext_sha256"`
	Bytes           Blob   `json:"bytes"`
}

// BundleProof is one signed statement covering the message (or, for
// "read", its receipt): the statement, the leaf's index and its path.
type BundleProof struct {
	Kind      string   `json:"kind"`
	Statement Blob     `json:"statement"` // Signed.Encode
	Index     int      `json:"index"`
	Path      []Digest `json:"path"`
	// Receipt is the read receipt's own fields ("read" only); the rest of
	// its leaf (id, precedence, seq) is the message's.
	Receipt *BundleReceipt `json:"receipt,omitempty"`
}

// BundleReceipt is what a read receipt adds to the message's fields.
// A refusal receipt (the destination refused the message) has Refused,
// the reason, and ReadAt is when it refused it.
type BundleReceipt struct {
	RSeq    uint64 `json:"rseq"`
	ReadAt  int64  `json:"read_at"`
	Refused string `json:"refused,omitempty"`
}

// AuditProof is one audit record and its inclusion, at Index, in the log
// whose signed checkpoint is the bundle's Checkpoints[Checkpoint]. The
// record's leaf is tlog's record hash of its bytes.
type AuditProof struct {
	Record     Blob     `json:"record"`
	Index      int64    `json:"index"`
	Path       []Digest `json:"path"`
	Checkpoint int      `json:"checkpoint"`
}

// StoredAudit is an audit record about a message as a site proves it: the
// record, its index, its inclusion proof and the signed checkpoint note
// the proof is against.
type StoredAudit struct {
	Record     []byte
	Index      int64
	Proof      []Hash
	Checkpoint []byte
}

// Digest is a SHA-256 hash, in JSON lowercase hex.
type Digest [sha256.Size]byte

// MarshalText is d in lowercase hex.
func (d Digest) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(d[:])), nil }

// UnmarshalText reads exactly 64 lowercase hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 2*len(d) {
		return fmt.Errorf("%w: hash of %d hex digits, want %d", ErrMalformed, len(b), 2*len(d))
	}
	if _, err := hex.Decode(d[:], b); err != nil || hex.EncodeToString(d[:]) != string(b) {
		return fmt.Errorf("%w: hash %q is not lowercase hex", ErrMalformed, b)
	}
	return nil
}

// Blob is bytes, in JSON standard base64 with padding, read strictly.
type Blob []byte

// MarshalText is b in standard base64.
func (b Blob) MarshalText() ([]byte, error) { return []byte(base64.StdEncoding.EncodeToString(b)), nil }

// UnmarshalText reads standard base64 in its one canonical spelling.
func (b *Blob) UnmarshalText(t []byte) error {
	v, err := base64.StdEncoding.Strict().DecodeString(string(t))
	if err != nil || base64.StdEncoding.EncodeToString(v) != string(t) {
		return fmt.Errorf("%w: not canonical base64 (%d characters)", ErrMalformed, len(t))
	}
	*b = v
	return nil
}

// Marshal is the bundle as indented JSON.
func (b *Bundle) Marshal() ([]byte, error) {
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// ParseBundle reads a bundle: one JSON object of known fields, at most
// MaxBundleSize bytes. It checks the form (and the bounds of its lists),
// not the evidence (VerifyBundle does).
func ParseBundle(data []byte) (*Bundle, error) {
	if len(data) > MaxBundleSize {
		return nil, fmt.Errorf("%w: bundle of %d bytes (at most %d)", ErrMalformed, len(data), MaxBundleSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b Bundle
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: bundle: data after the JSON object", ErrMalformed)
	}
	if err := exactSpelling(data); err != nil {
		return nil, err
	}
	if err := b.checkBounds(); err != nil {
		return nil, err
	}
	return &b, nil
}

func (b *Bundle) checkBounds() error {
	if len(b.Proofs) > MaxBundleProofs || len(b.Audit) > MaxBundleAudit || len(b.Checkpoints) > maxCheckpoints {
		return fmt.Errorf("%w: bundle of %d proofs, %d audit records and %d checkpoints (at most %d, %d and %d)", ErrMalformed,
			len(b.Proofs), len(b.Audit), len(b.Checkpoints), MaxBundleProofs, MaxBundleAudit, maxCheckpoints)
	}
	if e := b.Message.Envelope; e != nil && len(e.Bytes) > MaxEnvelopeSize {
		return fmt.Errorf("%w: envelope of %d bytes (at most %d)", ErrMalformed, len(e.Bytes), MaxEnvelopeSize)
	}
	for i, p := range b.Proofs {
		if len(p.Path) > maxPath {
			return fmt.Errorf("%w: proof %d: path of %d hashes (at most %d)", ErrMalformed, i, len(p.Path), maxPath)
		}
	}
	for i, a := range b.Audit {
		if len(a.Path) > maxPath || len(a.Record) > MaxAuditRecord {
			return fmt.Errorf("%w: audit record %d: too large (path of %d hashes, record of %d bytes)", ErrMalformed, i, len(a.Path), len(a.Record))
		}
	}
	for i, c := range b.Checkpoints {
		if len(c) > MaxCheckpointSize {
			return fmt.Errorf("%w: checkpoint %d of %d bytes (at most %d)", ErrMalformed, i, len(c), MaxCheckpointSize)
		}
	}
	return nil
}

// NewBundle builds the bundle of st's message from the proofs its site
// stores (queue.Store.Proofs) and its audit records' proofs. A proof or
// an audit record about another message with the same id is left out, and
// audit records beyond MaxBundleAudit; for "read", the receipt's RSeq is
// the statement's First plus the leaf index and its ReadAt the message's
// (a refused message's: its RefusedAt and RefusedReason).
func NewBundle(st *queue.Status, proofs []queue.Proof, audit []StoredAudit) (*Bundle, error) {
	m := &st.Message
	b := &Bundle{Version: BundleVersion, Message: BundleMessage{
		ID: m.ID, Origin: m.Origin, Dest: m.Dest, Precedence: m.Precedence, Seq: m.Seq,
		Flags: m.Flags, SubmittedAt: m.SubmittedAt, ExpiresAt: m.ExpiresAt,
		Mailbox: m.Mailbox, From: m.From, Type: m.Type,
		PayloadSHA256: sha256.Sum256(m.Payload),
	}}
	for _, a := range audit {
		// A record about another message (the same id) is left out; one
		// that does not decode is kept, for the verifier to name.
		if err := b.aboutMessage(a.Record); len(b.Audit) == MaxBundleAudit || (err != nil && !errors.Is(err, ErrMalformed)) {
			continue
		}
		c := slices.Index(b.Checkpoints, string(a.Checkpoint))
		if c < 0 {
			c = len(b.Checkpoints)
			b.Checkpoints = append(b.Checkpoints, string(a.Checkpoint))
		}
		b.Audit = append(b.Audit, AuditProof{Record: a.Record, Index: a.Index, Path: digests(a.Proof), Checkpoint: c})
	}
	if m.Flags&queue.FlagSealed != 0 && !m.Tombstone() && len(m.Payload) <= MaxEnvelopeSize {
		if e, err := ParseEnvelope(m.Payload); err == nil {
			b.Message.Envelope = &BundleEnvelope{KeyID: e.KeyID.String(), PlaintextSHA256: e.PlaintextHash, Bytes: m.Payload}
		}
	}
	for _, p := range proofs {
		s, err := DecodeSigned(p.Statement)
		if err != nil {
			return nil, fmt.Errorf("trust: stored %s proof of %s: %w", p.Kind, m.ID, err)
		}
		if p.Index < 0 || p.Index >= len(p.Leaves) {
			return nil, fmt.Errorf("trust: stored %s proof of %s: leaf %d of %d", p.Kind, m.ID, p.Index, len(p.Leaves))
		}
		bp := BundleProof{Kind: p.Kind, Statement: p.Statement, Index: p.Index}
		var leaf [sha256.Size]byte
		if p.Kind == ProofRead {
			bp.Receipt = &BundleReceipt{RSeq: s.First + uint64(p.Index), ReadAt: st.ReadAt}
			if st.State == queue.Refused {
				bp.Receipt.ReadAt, bp.Receipt.Refused = st.RefusedAt, st.RefusedReason
			}
			leaf = b.receiptLeaf(bp.Receipt)
		} else {
			leaf = b.messageLeaf()
		}
		if leaf != p.Leaves[p.Index] {
			continue
		}
		leaves := make([]Hash, len(p.Leaves))
		for i, l := range p.Leaves {
			leaves[i] = l
		}
		path, err := Prove(leaves, p.Index)
		if err != nil {
			return nil, fmt.Errorf("trust: stored %s proof of %s: %w", p.Kind, m.ID, err)
		}
		bp.Path = digests(path)
		b.Proofs = append(b.Proofs, bp)
	}
	return b, nil
}

// messageLeaf is the MessageLeaf the bundle's metadata stands for.
func (b *Bundle) messageLeaf() Hash {
	m := &b.Message
	return MessageLeafOfHash(&queue.Message{ID: m.ID, Origin: m.Origin, Dest: m.Dest, Precedence: m.Precedence,
		Seq: m.Seq, Flags: m.Flags, SubmittedAt: m.SubmittedAt, ExpiresAt: m.ExpiresAt,
		Mailbox: m.Mailbox, From: m.From, Type: m.Type}, m.PayloadSHA256)
}

// receiptLeaf is the ReceiptLeaf of r, a receipt of the bundle's message
// sent by its destination.
func (b *Bundle) receiptLeaf(r *BundleReceipt) Hash {
	m := &b.Message
	return ReceiptLeaf(m.Dest, m.Origin, &queue.Receipt{RSeq: r.RSeq, Precedence: m.Precedence, Seq: m.Seq, ID: m.ID, ReadAt: r.ReadAt, Refused: r.Refused})
}

func digests(hs []Hash) []Digest {
	out := make([]Digest, len(hs))
	for i, h := range hs {
		out[i] = Digest(h)
	}
	return out
}

func hashes(ds []Digest) []Hash {
	out := make([]Hash, len(ds))
	for i, d := range ds {
		out[i] = Hash(d)
	}
	return out
}

// aboutMessage checks that an audit record is a message event of the
// bundle's message: its id, channel and sequence (none, 0, in the
// submitted record of a message held for release, which got its
// sequence when released), and the payload's hash if it states one.
func (b *Bundle) aboutMessage(record []byte) error {
	r, err := queue.DecodeAuditRecord(record)
	if err != nil {
		return fmt.Errorf("%w: audit record: %v", ErrMalformed, err)
	}
	m := &b.Message
	switch {
	case r.Kind == queue.AuditOperator:
		return fmt.Errorf("%w: an operator record, not about the message", ErrMismatch)
	case r.ID != m.ID || r.Origin != m.Origin || r.Dest != m.Dest || r.Precedence != m.Precedence ||
		r.Seq != m.Seq && !(r.Seq == 0 && r.Kind == queue.AuditSubmitted):
		return fmt.Errorf("%w: a %s record of message %q, %s -> %s/%s seq %d, not of this one", ErrMismatch, r.Kind, r.ID, r.Origin, r.Dest, r.Precedence, r.Seq)
	case len(r.PayloadHash) != 0 && !bytes.Equal(r.PayloadHash, m.PayloadSHA256[:]):
		return fmt.Errorf("%w: the %s record states payload sha256 %x, not the bundle's", ErrMismatch, r.Kind, r.PayloadHash)
	}
	return nil
}

// short is the first 8 hex digits of h, for reports.
func short(h [sha256.Size]byte) string { return hex.EncodeToString(h[:4]) }

func parseKeyID(s string) (KeyID, error) {
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil || len(s) != 8 || KeyID(v).String() != s {
		return 0, fmt.Errorf("%w: key id %q is not 8 lowercase hex digits", ErrMalformed, s)
	}
	return KeyID(v), nil
}
