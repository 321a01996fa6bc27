package trust

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/pki"
)

// Errors of VerifyBundle's checks, besides ErrBadSignature, ErrUnknownKey
// and ErrMalformed.
var (
	// ErrNoEvidence: a bundle holds no signed statement, so nothing in it
	// covers the message.
	ErrNoEvidence = errors.New("trust: bundle holds no signed statement about the message")
	// ErrNotCovered: a leaf recomputed from the bundle (the message, a
	// receipt, an audit record) is not in the tree its statement or
	// checkpoint signs.
	ErrNotCovered = errors.New("trust: not covered by the signature")
	// ErrMismatch: a signed statement or an audit record is about
	// something else than the bundle's message, or the key id or
	// plaintext hash a bundle states is not its envelope's.
	ErrMismatch = errors.New("trust: not about this message")
	// ErrPlaintext: a plaintext is not the one a bundle proves, or the
	// bundle proves none (Report.CheckPlaintext).
	ErrPlaintext = errors.New("trust: not the plaintext the evidence proves")
)

// Report is what VerifyBundle checked: one Check per part of the bundle
// (the payload: "envelope", or else a "plaintext" note; each proof; each
// audit record), in its order.
type Report struct {
	Checks []Check
	// Plaintext is the plaintext's SHA-256 as the bundle proves it: its
	// envelope's header (the envelope hashing to the signed payload
	// hash), or the signed payload hash itself for a payload that is not
	// sealed. Nil if the bundle proves none; noPlaintext says why.
	Plaintext   *Digest
	noPlaintext string
}

// Check is the outcome of one proof: What names it ("sent", "read",
// "audit 2", "envelope"), Detail says what it shows, Err why it fails
// (nil if it verified). A Note is a remark, not a proof: what the bundle
// does not prove (Err is nil). For a statement that verified, Proves says
// what its signature shows (the end of Detail too): a "received" proof is
// the origin's signature over the message, as the destination holds it,
// the same evidence as "sent"; only "delivered" proves receipt.
type Check struct {
	What   string
	Detail string
	Err    error
	Note   bool
	Proves string
}

// CheckPlaintext checks that sum is the SHA-256 of the plaintext the
// verified bundle proves (Plaintext): ErrPlaintext, naming both hashes,
// if it is not or the bundle proves none. Only meaningful after
// VerifyBundle returned no error.
func (r *Report) CheckPlaintext(sum [sha256.Size]byte) error {
	switch {
	case r.Plaintext == nil:
		return fmt.Errorf("%w: the bundle proves no plaintext (%s)", ErrPlaintext, r.noPlaintext)
	case *r.Plaintext != Digest(sum):
		return fmt.Errorf("%w: its sha256 is %x, the evidence proves plaintext sha256 %x", ErrPlaintext, sum[:], r.Plaintext[:])
	}
	return nil
}

// Failed is the checks that failed.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Err != nil {
			out = append(out, c)
		}
	}
	return out
}

// VerifyBundle checks every part of b offline against the pinned keys of
// ring: the envelope (it is the signed payload, its header is what the
// bundle states, its key is the destination's) and so the plaintext hash
// (Report.Plaintext); each statement's signature, its kind, sites,
// precedence and range against the message, the inclusion of the leaf
// recomputed from the bundle's fields; each audit record's inclusion in
// the log its signed checkpoint states. It returns the report and, if
// anything failed (or the bundle has no signed statement, ErrNoEvidence),
// an error naming every failed part. A nil report means the message's
// metadata itself is invalid.
func VerifyBundle(b *Bundle, ring *Keyring) (*Report, error) {
	if err := b.checkMessage(); err != nil {
		return nil, err
	}
	if err := b.checkBounds(); err != nil {
		return nil, err
	}
	r := &Report{}
	r.Checks = append(r.Checks, b.checkPayload(r, ring))
	var readAt int64
	var readProven bool
	for i := range b.Proofs {
		p := &b.Proofs[i]
		c := Check{What: p.Kind}
		c.Detail, c.Err = b.checkProof(p, ring)
		if c.Err == nil {
			c.Proves = proves[p.Kind]
			if p.Receipt != nil && p.Receipt.Refused != "" {
				c.Proves = provesRefused
			}
			c.Detail += ": " + c.Proves
			// A refusal receipt's time is when the destination refused
			// the message: it proves no read, so no objective met.
			if p.Kind == ProofRead && p.Receipt != nil && p.Receipt.Refused == "" && !readProven {
				readAt, readProven = p.Receipt.ReadAt, true
			}
		}
		r.Checks = append(r.Checks, c)
	}
	if b.Objective != nil {
		r.Checks = append(r.Checks, b.checkObjective(readAt, readProven)) // objective.go
	}
	for i := range b.Audit {
		c := Check{What: fmt.Sprintf("audit %d", i)}
		c.Detail, c.Err = b.checkAudit(&b.Audit[i], ring)
		r.Checks = append(r.Checks, c)
	}
	for i := range b.Checkpoints {
		if !slices.ContainsFunc(b.Audit, func(a AuditProof) bool { return a.Checkpoint == i }) {
			r.Checks = append(r.Checks, Check{What: fmt.Sprintf("checkpoint %d", i),
				Err: fmt.Errorf("%w: no audit record is proven against it", ErrMalformed)})
		}
	}
	failed := r.Failed()
	if len(b.Proofs) > 0 && len(failed) == 0 {
		return r, nil
	}
	e := &BundleError{Failed: failed}
	if len(b.Proofs) == 0 {
		e.NoEvidence = true
	}
	return r, e
}

// BundleError is VerifyBundle's error: the checks that failed and whether
// the bundle held no statement at all. It matches (errors.Is) each
// failure's sentinel, and ErrNoEvidence or else ErrBadSignature. It does
// not repeat the message's id (the caller shows it, escaped as it needs).
type BundleError struct {
	NoEvidence bool
	Failed     []Check
}

func (e *BundleError) Error() string {
	var parts []string
	if e.NoEvidence {
		parts = append(parts, "no signed statement covers the message")
	}
	for _, c := range e.Failed {
		parts = append(parts, c.What+": "+c.Err.Error())
	}
	return "evidence does not verify: " + strings.Join(parts, "; ")
}

// Unwrap is the failures' errors and the kind of the whole.
func (e *BundleError) Unwrap() []error {
	out := []error{ErrBadSignature}
	if e.NoEvidence {
		out[0] = ErrNoEvidence
	}
	for _, c := range e.Failed {
		out = append(out, c.Err)
	}
	return out
}

// checkMessage checks the metadata's form.
func (b *Bundle) checkMessage() error {
	m := &b.Message
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: bundle: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	switch {
	case b.Version != BundleVersion:
		return bad("format version %d (this verifier reads %d)", b.Version, BundleVersion)
	case m.ID == "":
		return bad("message id is empty")
	case pki.ValidName(m.Origin) != nil || pki.ValidName(m.Dest) != nil:
		return bad("origin %q or destination %q is not a site name", m.Origin, m.Dest)
	case m.Origin == m.Dest:
		return bad("origin and destination are both %s", m.Origin)
	case !m.Precedence.Valid():
		return bad("precedence %d", m.Precedence)
	case m.Seq == 0:
		return bad("sequence 0 (sequences start at 1)")
	}
	return nil
}

// checkPayload checks the envelope, if the bundle holds one, and sets
// r.Plaintext to what the bundle proves of the plaintext.
func (b *Bundle) checkPayload(r *Report, ring *Keyring) Check {
	m := &b.Message
	switch {
	case m.Envelope != nil:
		c := Check{What: "envelope"}
		var sum Digest
		sum, c.Detail, c.Err = b.checkEnvelope(ring)
		if c.Err == nil {
			r.Plaintext = &sum
		}
		return c
	case m.Flags&queue.FlagTombstone != 0:
		r.noPlaintext = "a tombstone: the message expired before delivery, its payload is gone"
	case m.Flags&queue.FlagSealed == 0:
		// Sent before payloads were sealed: the payload is the plaintext.
		r.Plaintext = &m.PayloadSHA256
		return Check{What: "plaintext", Detail: fmt.Sprintf("sha256 %x: the payload is not sealed, the signed payload hash is the plaintext's", m.PayloadSHA256[:])}
	default:
		r.noPlaintext = "the bundle holds the sealed payload's SHA-256, not the envelope"
	}
	return Check{What: "plaintext", Note: true, Detail: "not proven: " + r.noPlaintext}
}

// checkEnvelope checks the bundle's envelope: that it is the payload the
// statements sign (its SHA-256 is the payload hash), that its header is
// what the bundle states, and that it is sealed to one of the
// destination's pinned encryption keys. It returns the plaintext hash the
// header states.
func (b *Bundle) checkEnvelope(ring *Keyring) (Digest, string, error) {
	m := &b.Message
	be := m.Envelope
	if m.Flags&queue.FlagSealed == 0 || m.Flags&queue.FlagTombstone != 0 {
		return Digest{}, "", fmt.Errorf("%w: an envelope, but the message's flags (%d) say its payload is not sealed or gone", ErrMalformed, m.Flags)
	}
	if sum := sha256.Sum256(be.Bytes); sum != m.PayloadSHA256 {
		return Digest{}, "", fmt.Errorf("%w: the envelope's sha256 %x is not the payload hash the statements sign", ErrNotCovered, sum[:])
	}
	e, err := ParseEnvelope(be.Bytes)
	if err != nil {
		return Digest{}, "", err
	}
	detail := fmt.Sprintf("sealed to %s's key %s, %d bytes, is the signed payload: plaintext sha256 %x",
		m.Dest, e.KeyID, len(be.Bytes), e.PlaintextHash[:])
	id, err := parseKeyID(be.KeyID)
	switch {
	case err != nil:
		return Digest{}, detail, err
	case id != e.KeyID:
		return Digest{}, detail, fmt.Errorf("%w: the bundle states key id %s, the envelope is sealed to %s", ErrMismatch, id, e.KeyID)
	case Digest(e.PlaintextHash) != be.PlaintextSHA256:
		return Digest{}, detail, fmt.Errorf("%w: the bundle states plaintext sha256 %x, the envelope %x", ErrMismatch, be.PlaintextSHA256[:], e.PlaintextHash[:])
	}
	for _, k := range ring.kem[m.Dest] {
		if k.ID == id {
			return Digest(e.PlaintextHash), detail, nil
		}
	}
	return Digest{}, detail, fmt.Errorf("%w: key %s is not one of %s's pinned encryption keys", ErrUnknownKey, id, m.Dest)
}

// proves is what each kind of proof shows once it verifies. "sent" and
// "received" are the same statement (the origin's), kept at either end:
// neither shows that the destination got the message.
var proves = map[string]string{
	ProofSent:      "the origin's signature over the message it sent",
	ProofReceived:  "the origin's signature over the message as the destination holds it (the origin's statement, not proof of receipt: only delivered proves receipt)",
	ProofDelivered: "the destination's signature that it holds the message (proof of receipt)",
	ProofRead:      "the reader site's signature that the message was read",
}

// provesRefused is what a read proof of a refusal receipt shows.
const provesRefused = "the destination site's signature that it refused the message, for the reason stated"

// leaves words a statement's leaf count: "1 leaf", "3 leaves".
func leaves(n uint32) string {
	if n == 1 {
		return "1 leaf"
	}
	return fmt.Sprintf("%d leaves", n)
}

// checkProof verifies one statement proof.
func (b *Bundle) checkProof(p *BundleProof, ring *Keyring) (string, error) {
	m := &b.Message
	var want Kind
	signer, peer := m.Dest, m.Origin
	switch p.Kind {
	case ProofSent, ProofReceived:
		want, signer, peer = KindMessages, m.Origin, m.Dest
	case ProofDelivered:
		want = KindDelivered
	case ProofRead:
		want = KindRead
	default:
		return "", fmt.Errorf("%w: unknown proof kind %q (want sent, received, delivered or read)", ErrMalformed, p.Kind)
	}
	s, err := DecodeSigned(p.Statement)
	if err != nil {
		return "", err
	}
	if err := ring.Verify(s); err != nil {
		return "", err
	}
	detail := fmt.Sprintf("%s (key %s) signed %s, %s, at %s", s.Site, s.KeyID, describe(s), leaves(s.Count), fmtNanos(s.Time))
	switch {
	case s.Kind != want:
		return detail, fmt.Errorf("%w: a %s proof needs a %s statement, this is %s", ErrMismatch, p.Kind, want, s.Kind)
	case s.Site != signer || s.Peer != peer:
		return detail, fmt.Errorf("%w: a %s proof needs a statement of %s about %s, this is of %s about %s", ErrMismatch, p.Kind, signer, peer, s.Site, s.Peer)
	case s.Kind != KindRead && s.Precedence != m.Precedence:
		// (Receipts of every precedence share one queue per origin: a
		// KindRead statement's precedence says nothing; each receipt's
		// leaf holds its own.)
		return detail, fmt.Errorf("%w: statement is about precedence %s, the message is %s", ErrMismatch, s.Precedence, m.Precedence)
	}
	item, leaf := m.Seq, b.messageLeaf()
	what := fmt.Sprintf("message %d", m.Seq)
	if p.Kind == ProofRead {
		if p.Receipt == nil {
			return detail, fmt.Errorf("%w: read proof without its receipt", ErrMalformed)
		}
		item, leaf = p.Receipt.RSeq, b.receiptLeaf(p.Receipt)
		what = fmt.Sprintf("receipt %d (read at %s)", p.Receipt.RSeq, fmtNanos(p.Receipt.ReadAt))
		if p.Receipt.Refused != "" {
			what = fmt.Sprintf("receipt %d (refused at %s: %q)", p.Receipt.RSeq, fmtNanos(p.Receipt.ReadAt), p.Receipt.Refused)
		}
	} else if p.Receipt != nil {
		return detail, fmt.Errorf("%w: a %s proof carries a receipt", ErrMalformed, p.Kind)
	}
	if item < s.First || item > s.Last || p.Index < 0 || uint64(p.Index) != item-s.First {
		return detail, fmt.Errorf("%w: %s is not leaf %d of a statement of %d..%d", ErrMismatch, what, p.Index, s.First, s.Last)
	}
	if CheckInclusion(s.Root, int64(s.Count), int64(p.Index), leaf, hashes(p.Path)) != nil {
		return detail, fmt.Errorf("%w: %s is not leaf %d of the signed Merkle tree (a field of the bundle, or the path, differs from what was signed)", ErrNotCovered, what, p.Index)
	}
	return fmt.Sprintf("%s; %s is leaf %d", detail, what, p.Index), nil
}

// checkAudit verifies one audit record's inclusion under its checkpoint.
func (b *Bundle) checkAudit(a *AuditProof, ring *Keyring) (string, error) {
	if a.Checkpoint < 0 || a.Checkpoint >= len(b.Checkpoints) {
		return "", fmt.Errorf("%w: checkpoint %d of %d", ErrMalformed, a.Checkpoint, len(b.Checkpoints))
	}
	c, err := OpenCheckpoint([]byte(b.Checkpoints[a.Checkpoint]), ring)
	if err != nil {
		return "", fmt.Errorf("checkpoint %d: %w", a.Checkpoint, err)
	}
	detail := fmt.Sprintf("record %d of %s's audit log, checkpoint of %d records (root %s)", a.Index, c.Site, c.Size, short(c.Root))
	switch {
	case c.Site != b.Message.Origin && c.Site != b.Message.Dest:
		return detail, fmt.Errorf("%w: checkpoint of %s, which is neither the origin nor the destination", ErrMismatch, c.Site)
	case len(a.Record) == 0:
		return detail, fmt.Errorf("%w: empty audit record", ErrMalformed)
	case a.Index < 0 || a.Index >= c.Size:
		return detail, fmt.Errorf("%w: record %d is outside a log of %d", ErrMismatch, a.Index, c.Size)
	}
	if CheckInclusion(c.Root, c.Size, a.Index, tlog.RecordHash(a.Record), hashes(a.Path)) != nil {
		return detail, fmt.Errorf("%w: record %d is not in the log the checkpoint signs (the record or the path differs)", ErrNotCovered, a.Index)
	}
	if err := b.aboutMessage(a.Record); err != nil {
		return detail, err
	}
	r, _ := queue.DecodeAuditRecord(a.Record)
	return fmt.Sprintf("%s at %s%s: %s", r.Kind, fmtNanos(r.Time), byWhom(r), detail), nil
}

// byWhom is " by user NAME (uid N)" (or " by uid N", " by node
// SITE/NODE") when the record names who asked for it (a held message's
// submitter and releaser, a reader), else "".
func byWhom(r *queue.AuditRecord) string {
	a := r.Actor
	switch {
	case a.Peer != "":
		return " by node " + a.Peer
	case a.UID < 0:
		return ""
	case a.User != "":
		return fmt.Sprintf(" by user %s (uid %d)", a.User, a.UID)
	}
	return fmt.Sprintf(" by uid %d", a.UID)
}

// describe says what a statement states: "messages 15..18 of
// alpha->bravo/flash", "delivered ...", "read receipts 3..3 of
// alpha->bravo".
func describe(s *Signed) string {
	switch s.Kind {
	case KindDelivered:
		return fmt.Sprintf("delivered %d..%d of %s", s.First, s.Last, queue.Channel{Origin: s.Peer, Dest: s.Site, Precedence: s.Precedence})
	case KindRead:
		return fmt.Sprintf("read receipts %d..%d of %s->%s", s.First, s.Last, s.Peer, s.Site)
	}
	return fmt.Sprintf("%s %d..%d of %s", s.Kind, s.First, s.Last, queue.Channel{Origin: s.Site, Dest: s.Peer, Precedence: s.Precedence})
}

func fmtNanos(ns int64) string {
	return time.Unix(0, ns).UTC().Format("2006-01-02T15:04:05.000Z")
}
