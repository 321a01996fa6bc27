package trust

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// A sealed payload (an envelope) is what the origin stores and sends in
// place of a message's plaintext:
//
//	"HLE1" | key id (4, big endian) | SHA-256 of the plaintext (32) |
//	HPKE encapsulated key (EncapsulatedSize) | nonce (12) | ciphertext
//
// The encapsulated key is an HPKE (RFC 9180) base mode sender context to
// the destination site's EncryptionKey (X-Wing KEM, HKDF-SHA256,
// export-only), which a [Sealer] reuses for the messages it seals to that
// key within a short window (sealWindow, at most sealUses messages): a KEM
// encapsulation per window, not per message. From the context's exported
// secret each message gets its own AES-256-GCM key, derived (HKDF-Expand)
// from the message's Binding (id, origin, destination) and the envelope's
// random nonce; the ciphertext's additional data is the envelope's whole
// header and the binding, so a changed byte anywhere, or another message's
// binding, fails to open. The plaintext's hash travels in clear inside the
// envelope so that the origin keeps it (and signs it, the envelope being
// signed) while holding no plaintext; Open checks the decrypted plaintext
// against it.
//
// What the window costs: a sender context's exported secret stays in the
// sealing node's memory for at most the window (then it is dropped; Go
// does not promise to erase it), and whoever learns it can open that
// window's messages to that key, and no others. The destination's
// private key opens them all anyway, and an [Opener] caches exported
// secrets next to it. An observer learns which envelopes share a window
// (same encapsulated key): the same origin node, destination and second,
// which the link's timing shows already. Binding and nonce make every
// message's key unique (a binding sealed twice in one window still gets
// two random nonces, hence two keys), so no key and nonce pair repeats.
var envelopeMagic = []byte("HLE1")

// EncapsulatedSize is X-Wing's encapsulated key.
const EncapsulatedSize = 1120

const (
	// nonceSize is the envelope's random nonce (the AEAD's, and an input
	// of the message key).
	nonceSize = 12
	// encOffset is where the encapsulated key begins.
	encOffset = 4 + 4 + sha256.Size
	// envelopeHeader is the bytes before the ciphertext.
	envelopeHeader = encOffset + EncapsulatedSize + nonceSize
)

// EnvelopeOverhead is how many bytes sealing adds to a payload.
const EnvelopeOverhead = envelopeHeader + 16

// Binding is what an envelope is bound to: the message it belongs to.
// Opening with another binding fails.
type Binding struct {
	ID, Origin, Dest string
}

// hpkeInfo is the sender contexts' HPKE info: they are shared by the
// messages of a window, so the binding goes into each message's key.
const hpkeInfo = "hotline/payload/v2"

// exportLabel names the secret exported from a context.
const exportLabel = "hotline/payload/v2 window secret"

// encode is b, length-prefixed, after a version label.
func (b Binding) encode(dst []byte) []byte {
	dst = append(dst, "hotline/payload/v2 message"...)
	for _, s := range []string{b.ID, b.Origin, b.Dest} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// messageAEAD is the AEAD of the message bound to b with nonce, under a
// window's exported secret.
func messageAEAD(secret []byte, b Binding, nonce []byte) (cipher.AEAD, error) {
	info := append(b.encode(nil), nonce...)
	key, err := hkdf.Expand(sha256.New, secret, string(info), 32)
	if err != nil {
		return nil, err
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// suite is the sender contexts' HPKE KDF and AEAD (export only: messages
// are encrypted with keys derived from the exported secret).
func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.ExportOnly() }

// window is one sender context: its encapsulated key and exported secret.
type window struct {
	enc, secret []byte
}

// newWindow encapsulates a new context to to.
func newWindow(to *EncryptionKey) (*window, error) {
	kdf, aead := suite()
	enc, s, err := hpke.NewSender(to.pub, kdf, aead, []byte(hpkeInfo))
	if err != nil {
		return nil, fmt.Errorf("trust: seal payload to %s key %s: %w", to.Site, to.ID, err)
	}
	if len(enc) != EncapsulatedSize {
		return nil, fmt.Errorf("trust: X-Wing encapsulated key is %d bytes, want %d", len(enc), EncapsulatedSize)
	}
	secret, err := s.Export(exportLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("trust: seal payload to %s key %s: %w", to.Site, to.ID, err)
	}
	return &window{enc: enc, secret: secret}, nil
}

// seal encrypts plaintext under w to key id for the message named by b.
func (w *window) seal(id KeyID, b Binding, plaintext []byte) ([]byte, error) {
	out := make([]byte, envelopeHeader, EnvelopeOverhead+len(plaintext))
	copy(out, envelopeMagic)
	binary.BigEndian.PutUint32(out[4:8], uint32(id))
	sum := sha256.Sum256(plaintext)
	copy(out[8:encOffset], sum[:])
	copy(out[encOffset:], w.enc)
	nonce := out[envelopeHeader-nonceSize : envelopeHeader]
	rand.Read(nonce)
	a, err := messageAEAD(w.secret, b, nonce)
	if err != nil {
		return nil, fmt.Errorf("trust: seal payload: %w", err)
	}
	return a.Seal(out, nonce, plaintext, b.encode(out[:envelopeHeader:envelopeHeader])), nil
}

// Seal encrypts plaintext to to (the destination site's key) for the
// message named by b, returning the envelope. It encapsulates a new
// context for this one message; a [Sealer] amortizes that.
func Seal(to *EncryptionKey, b Binding, plaintext []byte) ([]byte, error) {
	w, err := newWindow(to)
	if err != nil {
		return nil, err
	}
	return w.seal(to.ID, b, plaintext)
}

// Envelope is a parsed envelope's header.
type Envelope struct {
	KeyID         KeyID
	PlaintextHash [sha256.Size]byte
	header, enc   []byte
	nonce, ct     []byte
}

// ParseEnvelope reads an envelope's header without decrypting it.
func ParseEnvelope(env []byte) (*Envelope, error) {
	if len(env) < EnvelopeOverhead || !bytes.HasPrefix(env, envelopeMagic) {
		return nil, fmt.Errorf("%w: not a sealed payload (%d bytes)", ErrMalformed, len(env))
	}
	e := &Envelope{KeyID: KeyID(binary.BigEndian.Uint32(env[4:8]))}
	copy(e.PlaintextHash[:], env[8:encOffset])
	e.header = env[:envelopeHeader:envelopeHeader]
	e.enc = env[encOffset : encOffset+EncapsulatedSize]
	e.nonce = env[envelopeHeader-nonceSize : envelopeHeader]
	e.ct = env[envelopeHeader:]
	return e, nil
}

// PlaintextLen is the length of the plaintext an envelope of n bytes holds.
func PlaintextLen(n int) int { return n - EnvelopeOverhead }

// Open decrypts an envelope sealed to one of keys (the site's current and
// retired decryption keys) for the message named by b, and checks the
// plaintext against the hash the envelope carries. It decapsulates the
// envelope's key every time; an [Opener] caches that.
func Open(keys []*DecryptionKey, b Binding, env []byte) ([]byte, error) {
	return (&Opener{keys: keys}).Open(b, env) // caches nothing
}

// decapsulate recovers the exported secret of e's sender context with key.
func decapsulate(key *DecryptionKey, e *Envelope, b Binding) ([]byte, error) {
	kdf, aead := suite()
	r, err := hpke.NewRecipient(e.enc, key.priv, kdf, aead, []byte(hpkeInfo))
	if err != nil {
		return nil, fmt.Errorf("trust: open payload of %s: %w", b.ID, err)
	}
	secret, err := r.Export(exportLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("trust: open payload of %s: %w", b.ID, err)
	}
	return secret, nil
}

// openWith decrypts e (bound to b) with a window's secret.
func openWith(secret []byte, e *Envelope, b Binding) ([]byte, error) {
	a, err := messageAEAD(secret, b, e.nonce)
	if err != nil {
		return nil, fmt.Errorf("trust: open payload of %s: %w", b.ID, err)
	}
	pt, err := a.Open(nil, e.nonce, e.ct, b.encode(e.header))
	if err != nil {
		return nil, fmt.Errorf("%w: payload of %s does not decrypt with key %s (tampered, or sealed for another message)", ErrBadSignature, b.ID, e.KeyID)
	}
	if sha256.Sum256(pt) != e.PlaintextHash {
		return nil, fmt.Errorf("%w: payload of %s decrypts but does not match its signed hash", ErrBadSignature, b.ID)
	}
	return pt, nil
}
