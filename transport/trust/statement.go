package trust

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hotline-link/hotline/queue"
)

// Kind says what a Statement asserts.
type Kind uint8

// Statement kinds. The values are part of the signed encoding.
const (
	// KindMessages: Site (the origin) sent these messages of channel
	// (Site, Peer, Precedence), sequences First..Last. Leaves: MessageLeaf.
	KindMessages Kind = 1
	// KindDelivered: Site (the destination) holds durably these messages
	// of channel (Peer, Site, Precedence), First..Last. Leaves: MessageLeaf.
	KindDelivered Kind = 2
	// KindRead: Site (the reader) says its clients read these messages of
	// Peer; receipts RSeq First..Last. Leaves: ReceiptLeaf.
	KindRead Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindMessages:
		return "messages"
	case KindDelivered:
		return "delivered"
	case KindRead:
		return "read"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// MaxLeaves bounds a statement's leaves (a batch's items).
const MaxLeaves = 10000

// Statement is what a site signs once per batch: that the Count leaves
// whose Merkle root is Root are what the kind says. Every item keeps its
// leaf index and inclusion proof, so one item can be shown to a third
// party with the statement alone.
type Statement struct {
	Kind       Kind
	Site       string // the signer's site
	KeyID      KeyID  // the signer's key
	Peer       string // the other site of the channel
	Precedence queue.Precedence
	First      uint64 // sequence (RSeq for KindRead) of the first leaf
	Last       uint64 // ... and of the last
	Count      uint32 // number of leaves
	Root       Hash
	Time       int64 // when it was signed, Unix nanoseconds (informative)
}

var statementMagic = []byte("hotline/statement/v1\x00")

// Bytes is the canonical encoding that is signed.
func (s *Statement) Bytes() []byte {
	b := make([]byte, 0, 128)
	b = append(b, statementMagic...)
	b = append(b, byte(s.Kind))
	b = appendString(b, s.Site)
	b = binary.BigEndian.AppendUint32(b, uint32(s.KeyID))
	b = appendString(b, s.Peer)
	b = append(b, byte(s.Precedence))
	b = binary.BigEndian.AppendUint64(b, s.First)
	b = binary.BigEndian.AppendUint64(b, s.Last)
	b = binary.BigEndian.AppendUint32(b, s.Count)
	b = append(b, s.Root[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(s.Time))
}

// Signed is a statement and its signer's hybrid signature.
type Signed struct {
	Statement
	Sig []byte
}

// SignStatement fills s.Site and s.KeyID from key and signs it.
func SignStatement(key *SigningKey, s Statement) (*Signed, error) {
	s.Site, s.KeyID = key.Site, key.ID()
	sig, err := key.Sign(s.Bytes())
	if err != nil {
		return nil, err
	}
	return &Signed{Statement: s, Sig: sig}, nil
}

// NewStatement builds the statement of leaves (Count, Root) with the given
// kind, peer, precedence and range; Site and KeyID are set by signing.
func NewStatement(kind Kind, peer string, prec queue.Precedence, first, last uint64, leaves []Hash, now int64) (Statement, error) {
	if len(leaves) == 0 || len(leaves) > MaxLeaves {
		return Statement{}, fmt.Errorf("trust: a statement covers 1 to %d leaves, not %d", MaxLeaves, len(leaves))
	}
	root, err := Root(leaves)
	if err != nil {
		return Statement{}, err
	}
	return Statement{Kind: kind, Peer: peer, Precedence: prec, First: first, Last: last,
		Count: uint32(len(leaves)), Root: root, Time: now}, nil
}

// Encode is the signed statement's wire and storage form: the statement's
// bytes, then the signature.
func (s *Signed) Encode() []byte {
	b := s.Statement.Bytes()
	out := make([]byte, 0, 2+len(b)+len(s.Sig))
	out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
	out = append(out, b...)
	return append(out, s.Sig...)
}

// DecodeSigned parses Encode's output. It checks the form, not the
// signature (Keyring.Verify does).
func DecodeSigned(b []byte) (*Signed, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: signed statement of %d bytes", ErrMalformed, len(b))
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b) != 2+n+SignatureSize {
		return nil, fmt.Errorf("%w: signed statement of %d bytes, want %d", ErrMalformed, len(b), 2+n+SignatureSize)
	}
	s, err := parseStatement(b[2 : 2+n])
	if err != nil {
		return nil, err
	}
	return &Signed{Statement: *s, Sig: append([]byte(nil), b[2+n:]...)}, nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.err = errors.New("short")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *reader) str() string {
	v := r.take(2)
	if v == nil {
		return ""
	}
	return string(r.take(int(binary.BigEndian.Uint16(v))))
}

func parseStatement(b []byte) (*Statement, error) {
	r := &reader{b: b}
	if m := r.take(len(statementMagic)); r.err != nil || string(m) != string(statementMagic) {
		return nil, fmt.Errorf("%w: not a hotline statement", ErrMalformed)
	}
	s := &Statement{}
	s.Kind = Kind(r.u8())
	s.Site = r.str()
	s.KeyID = KeyID(r.u32())
	s.Peer = r.str()
	s.Precedence = queue.Precedence(r.u8())
	s.First = r.u64()
	s.Last = r.u64()
	s.Count = r.u32()
	copy(s.Root[:], r.take(len(s.Root)))
	s.Time = int64(r.u64())
	switch {
	case r.err != nil:
		return nil, fmt.Errorf("%w: statement truncated", ErrMalformed)
	case len(r.b) != 0:
		return nil, fmt.Errorf("%w: %d bytes after the statement", ErrMalformed, len(r.b))
	case s.Kind < KindMessages || s.Kind > KindRead:
		return nil, fmt.Errorf("%w: statement of unknown kind %d", ErrMalformed, s.Kind)
	case s.Count == 0 || s.Count > MaxLeaves:
		return nil, fmt.Errorf("%w: statement of %d leaves (1 to %d)", ErrMalformed, s.Count, MaxLeaves)
	case s.Last < s.First:
		return nil, fmt.Errorf("%w: statement range %d..%d", ErrMalformed, s.First, s.Last)
	}
	return s, nil
}

// Covers checks that the signed statement s is about leaves: its root is
// theirs. The caller checks kind, sites, precedence and range against what
// it expected, and the signature with Keyring.Verify.
func (s *Statement) Covers(leaves []Hash) error {
	if int(s.Count) != len(leaves) {
		return fmt.Errorf("%w: %s statement of %s covers %d items, the batch has %d", ErrBadSignature, s.Kind, s.Site, s.Count, len(leaves))
	}
	root, err := Root(leaves)
	if err != nil {
		return err
	}
	if root != s.Root {
		return fmt.Errorf("%w: %s statement of %s does not cover these items (Merkle root differs)", ErrBadSignature, s.Kind, s.Site)
	}
	return nil
}
