package trust

import (
	"bytes"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// A sealed payload (an envelope) is what the origin stores and sends in
// place of a message's plaintext:
//
//	"HLE1" | key id (4, big endian) | SHA-256 of the plaintext (32) |
//	HPKE encapsulated key (EncapsulatedSize) | AEAD ciphertext
//
// sealed with HPKE (RFC 9180) base mode, X-Wing KEM, HKDF-SHA256,
// ChaCha20-Poly1305, to the destination site's EncryptionKey. The HPKE
// info binds the envelope to its message: the id, origin and destination
// (Binding). The plaintext's hash travels in clear inside the envelope so
// that the origin keeps it (and signs it, the envelope being signed) while
// holding no plaintext; Open checks the decrypted plaintext against it.
var envelopeMagic = []byte("HLE1")

// EncapsulatedSize is X-Wing's encapsulated key.
const EncapsulatedSize = 1120

// envelopeHeader is the bytes before the ciphertext.
const envelopeHeader = 4 + 4 + sha256.Size + EncapsulatedSize

// EnvelopeOverhead is how many bytes sealing adds to a payload.
const EnvelopeOverhead = envelopeHeader + 16

// Binding is what an envelope is bound to: the message it belongs to.
// Opening with another binding fails.
type Binding struct {
	ID, Origin, Dest string
}

func (b Binding) info() []byte {
	var buf bytes.Buffer
	buf.WriteString("hotline/payload/v1")
	for _, s := range []string{b.ID, b.Origin, b.Dest} {
		buf.WriteByte(0)
		buf.WriteString(s)
	}
	return buf.Bytes()
}

func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.ChaCha20Poly1305() }

// Seal encrypts plaintext to to (the destination site's key) for the
// message named by b, returning the envelope.
func Seal(to *EncryptionKey, b Binding, plaintext []byte) ([]byte, error) {
	kdf, aead := suite()
	enc, s, err := hpke.NewSender(to.pub, kdf, aead, b.info())
	if err != nil {
		return nil, fmt.Errorf("trust: seal payload to %s key %s: %w", to.Site, to.ID, err)
	}
	if len(enc) != EncapsulatedSize {
		return nil, fmt.Errorf("trust: X-Wing encapsulated key is %d bytes, want %d", len(enc), EncapsulatedSize)
	}
	out := make([]byte, 0, EnvelopeOverhead+len(plaintext))
	out = append(out, envelopeMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(to.ID))
	sum := sha256.Sum256(plaintext)
	out = append(out, sum[:]...)
	out = append(out, enc...)
	ct, err := s.Seal(nil, plaintext)
	if err != nil {
		return nil, fmt.Errorf("trust: seal payload: %w", err)
	}
	return append(out, ct...), nil
}

// Envelope is a parsed envelope's header.
type Envelope struct {
	KeyID         KeyID
	PlaintextHash [sha256.Size]byte
	enc, ct       []byte
}

// ParseEnvelope reads an envelope's header without decrypting it.
func ParseEnvelope(env []byte) (*Envelope, error) {
	if len(env) < EnvelopeOverhead || !bytes.HasPrefix(env, envelopeMagic) {
		return nil, fmt.Errorf("%w: not a sealed payload (%d bytes)", ErrMalformed, len(env))
	}
	e := &Envelope{KeyID: KeyID(binary.BigEndian.Uint32(env[4:8]))}
	copy(e.PlaintextHash[:], env[8:8+sha256.Size])
	e.enc = env[8+sha256.Size : envelopeHeader]
	e.ct = env[envelopeHeader:]
	return e, nil
}

// PlaintextLen is the length of the plaintext an envelope of n bytes holds.
func PlaintextLen(n int) int { return n - EnvelopeOverhead }

// Open decrypts an envelope sealed to one of keys (the site's current and
// retired decryption keys) for the message named by b, and checks the
// plaintext against the hash the envelope carries.
func Open(keys []*DecryptionKey, b Binding, env []byte) ([]byte, error) {
	e, err := ParseEnvelope(env)
	if err != nil {
		return nil, err
	}
	var key *DecryptionKey
	for _, k := range keys {
		if k.ID() == e.KeyID {
			key = k
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: payload of %s is sealed to key %s, which this site does not hold", ErrUnknownKey, b.ID, e.KeyID)
	}
	kdf, aead := suite()
	r, err := hpke.NewRecipient(e.enc, key.priv, kdf, aead, b.info())
	if err != nil {
		return nil, fmt.Errorf("trust: open payload of %s: %w", b.ID, err)
	}
	pt, err := r.Open(nil, e.ct)
	if err != nil {
		return nil, fmt.Errorf("%w: payload of %s does not decrypt with key %s (tampered, or sealed for another message)", ErrBadSignature, b.ID, e.KeyID)
	}
	if sha256.Sum256(pt) != e.PlaintextHash {
		return nil, fmt.Errorf("%w: payload of %s decrypts but does not match its signed hash", ErrBadSignature, b.ID)
	}
	return pt, nil
}
