package trust

import (
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// Sizes of the hybrid signing key's parts and of a signature.
const (
	// SignaturePublicSize is an encoded VerifyKey: Ed25519 then ML-DSA-65.
	SignaturePublicSize = ed25519.PublicKeySize + mldsa65.PublicKeySize
	// SignatureSize is a hybrid signature: Ed25519 then ML-DSA-65.
	SignatureSize = ed25519.SignatureSize + mldsa65.SignatureSize
	// signingSeedSize is the private key file's body: the two seeds.
	signingSeedSize = ed25519.SeedSize + mldsa65.SeedSize
)

// Errors callers branch on with errors.Is.
var (
	// ErrBadSignature: a signature does not verify (either half).
	ErrBadSignature = errors.New("trust: signature does not verify")
	// ErrUnknownKey: no pinned key of that site has the key id.
	ErrUnknownKey = errors.New("trust: unknown key")
	// ErrMalformed: bytes that should hold a key, statement, envelope or
	// proof do not parse.
	ErrMalformed = errors.New("trust: malformed")
)

// sigContext separates hotline's signatures from any other use of the
// same key (ML-DSA's context string; prefixed to Ed25519's message).
var sigContext = []byte("hotline/sig/v1")

// KeyID names a public key: the first four bytes of SHA-256 over the
// site name, a newline, the algorithm byte and the key, as in the C2SP
// signed-note format, so a checkpoint's note signature and a statement
// carry the same id.
type KeyID uint32

func (id KeyID) String() string { return fmt.Sprintf("%08x", uint32(id)) }

// Algorithm bytes of the key ids (note format: the byte before the key).
const (
	algSign byte = 0x48 // 'H': hybrid Ed25519 + ML-DSA-65
	algKEM  byte = 0x58 // 'X': X-Wing (ML-KEM-768 + X25519)
)

func keyID(site string, alg byte, pub []byte) KeyID {
	h := sha256.New()
	h.Write([]byte(site))
	h.Write([]byte{'\n', alg})
	h.Write(pub)
	var sum [sha256.Size]byte
	return KeyID(binary.BigEndian.Uint32(h.Sum(sum[:0])))
}

// SigningKey is a site's private hybrid signing key. A signature made with
// it is valid only if both halves verify.
type SigningKey struct {
	Site string
	ed   ed25519.PrivateKey
	ml   *mldsa65.PrivateKey
	pub  *VerifyKey
	seed [signingSeedSize]byte
}

// VerifyKey is a site's public hybrid key, as pinned by every site.
type VerifyKey struct {
	Site string
	ID   KeyID
	ed   ed25519.PublicKey
	ml   *mldsa65.PublicKey
	raw  []byte // Ed25519 then ML-DSA-65
}

// GenerateSigningKey makes a new hybrid signing key for site.
func GenerateSigningKey(site string) (*SigningKey, error) {
	var seed [signingSeedSize]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	return signingKeyFromSeed(site, seed), nil
}

func signingKeyFromSeed(site string, seed [signingSeedSize]byte) *SigningKey {
	k := &SigningKey{Site: site, seed: seed}
	k.ed = ed25519.NewKeyFromSeed(seed[:ed25519.SeedSize])
	var ms [mldsa65.SeedSize]byte
	copy(ms[:], seed[ed25519.SeedSize:])
	mpub, mpriv := mldsa65.NewKeyFromSeed(&ms)
	k.ml = mpriv
	raw := make([]byte, 0, SignaturePublicSize)
	raw = append(raw, k.ed.Public().(ed25519.PublicKey)...)
	mb, _ := mpub.MarshalBinary()
	raw = append(raw, mb...)
	k.pub = &VerifyKey{Site: site, ID: keyID(site, algSign, raw), ed: k.ed.Public().(ed25519.PublicKey), ml: mpub, raw: raw}
	return k
}

// Public returns the key's public half.
func (k *SigningKey) Public() *VerifyKey { return k.pub }

// ID is the key's id (its public half's).
func (k *SigningKey) ID() KeyID { return k.pub.ID }

// Sign returns the hybrid signature of msg: Ed25519 then ML-DSA-65
// (hedged, so two signatures of one message differ), SignatureSize bytes.
func (k *SigningKey) Sign(msg []byte) ([]byte, error) {
	sig := make([]byte, SignatureSize)
	copy(sig, ed25519.Sign(k.ed, edMessage(msg)))
	if err := mldsa65.SignTo(k.ml, msg, sigContext, true, sig[ed25519.SignatureSize:]); err != nil {
		return nil, fmt.Errorf("trust: ML-DSA-65 sign: %w", err)
	}
	return sig, nil
}

func edMessage(msg []byte) []byte {
	b := make([]byte, 0, len(sigContext)+1+len(msg))
	b = append(b, sigContext...)
	b = append(b, 0)
	return append(b, msg...)
}

// ParseVerifyKey reads an encoded public key (Bytes) of site.
func ParseVerifyKey(site string, raw []byte) (*VerifyKey, error) {
	if len(raw) != SignaturePublicSize {
		return nil, fmt.Errorf("%w: signing public key of %s is %d bytes, want %d", ErrMalformed, site, len(raw), SignaturePublicSize)
	}
	var ml mldsa65.PublicKey
	if err := ml.UnmarshalBinary(raw[ed25519.PublicKeySize:]); err != nil {
		return nil, fmt.Errorf("%w: ML-DSA-65 public key of %s: %v", ErrMalformed, site, err)
	}
	raw = append([]byte(nil), raw...)
	return &VerifyKey{Site: site, ID: keyID(site, algSign, raw), ed: ed25519.PublicKey(raw[:ed25519.PublicKeySize]), ml: &ml, raw: raw}, nil
}

// Bytes is the encoded public key: Ed25519 then ML-DSA-65.
func (v *VerifyKey) Bytes() []byte { return v.raw }

// Verify reports whether sig is v's hybrid signature of msg: nil only if
// both halves verify, else an error wrapping ErrBadSignature that says
// which half failed.
func (v *VerifyKey) Verify(msg, sig []byte) error {
	if len(sig) != SignatureSize {
		return fmt.Errorf("%w: signature is %d bytes, want %d", ErrBadSignature, len(sig), SignatureSize)
	}
	edOK := ed25519.Verify(v.ed, edMessage(msg), sig[:ed25519.SignatureSize])
	mlOK := mldsa65.Verify(v.ml, msg, sigContext, sig[ed25519.SignatureSize:])
	switch {
	case !edOK && !mlOK:
		return fmt.Errorf("%w: neither Ed25519 nor ML-DSA-65 half (key %s of %s)", ErrBadSignature, v.ID, v.Site)
	case !edOK:
		return fmt.Errorf("%w: Ed25519 half (key %s of %s)", ErrBadSignature, v.ID, v.Site)
	case !mlOK:
		return fmt.Errorf("%w: ML-DSA-65 half (key %s of %s)", ErrBadSignature, v.ID, v.Site)
	}
	return nil
}

// kem is X-Wing (ML-KEM-768 + X25519) in HPKE, the standard library's.
func kem() hpke.KEM { return hpke.MLKEM768X25519() }

// DecryptionKey is a site's private X-Wing key: payloads sent to the site
// are sealed to its public half.
type DecryptionKey struct {
	Site string
	priv hpke.PrivateKey
	pub  *EncryptionKey
	raw  []byte
}

// EncryptionKey is a site's public X-Wing key, as pinned by every site.
type EncryptionKey struct {
	Site string
	ID   KeyID
	pub  hpke.PublicKey
	raw  []byte
}

// GenerateDecryptionKey makes a new X-Wing key pair for site.
func GenerateDecryptionKey(site string) (*DecryptionKey, error) {
	priv, err := kem().GenerateKey()
	if err != nil {
		return nil, err
	}
	raw, err := priv.Bytes()
	if err != nil {
		return nil, err
	}
	return decryptionKey(site, priv, raw)
}

// ParseDecryptionKey reads an encoded private key (as written by a key file).
func ParseDecryptionKey(site string, raw []byte) (*DecryptionKey, error) {
	priv, err := kem().NewPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: X-Wing private key of %s: %v", ErrMalformed, site, err)
	}
	return decryptionKey(site, priv, append([]byte(nil), raw...))
}

func decryptionKey(site string, priv hpke.PrivateKey, raw []byte) (*DecryptionKey, error) {
	pb := priv.PublicKey().Bytes()
	return &DecryptionKey{Site: site, priv: priv, raw: raw,
		pub: &EncryptionKey{Site: site, ID: keyID(site, algKEM, pb), pub: priv.PublicKey(), raw: pb}}, nil
}

// Public returns the key's public half.
func (k *DecryptionKey) Public() *EncryptionKey { return k.pub }

// ID is the key's id (its public half's).
func (k *DecryptionKey) ID() KeyID { return k.pub.ID }

// ParseEncryptionKey reads an encoded public key (Bytes) of site.
func ParseEncryptionKey(site string, raw []byte) (*EncryptionKey, error) {
	pub, err := kem().NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: X-Wing public key of %s: %v", ErrMalformed, site, err)
	}
	raw = append([]byte(nil), raw...)
	return &EncryptionKey{Site: site, ID: keyID(site, algKEM, raw), pub: pub, raw: raw}, nil
}

// Bytes is the encoded public key.
func (e *EncryptionKey) Bytes() []byte { return e.raw }
