package trust

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoints of a site's audit log are C2SP signed notes
// (golang.org/x/mod/sumdb/note) whose text is a C2SP tlog checkpoint:
//
//	hotline/SITE/audit
//	SIZE
//	BASE64(ROOT)
//
// signed with the site's hybrid key: the note signature's key hash is
// the KeyID, its bytes a hybrid signature of the text.

// Checkpoint is a signed statement of an audit log's size and root.
type Checkpoint struct {
	Site string
	Size int64
	Root Hash
}

// CheckpointOrigin is the origin line of site's checkpoints.
func CheckpointOrigin(site string) string { return "hotline/" + site + "/audit" }

// Text is the checkpoint's note text.
func (c Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", CheckpointOrigin(c.Site), c.Size, base64.StdEncoding.EncodeToString(c.Root[:]))
}

type noteSigner struct{ k *SigningKey }

func (s noteSigner) Name() string                    { return s.k.Site }
func (s noteSigner) KeyHash() uint32                 { return uint32(s.k.ID()) }
func (s noteSigner) Sign(msg []byte) ([]byte, error) { return s.k.Sign(msg) }

type noteVerifier struct{ v *VerifyKey }

func (v noteVerifier) Name() string    { return v.v.Site }
func (v noteVerifier) KeyHash() uint32 { return uint32(v.v.ID) }
func (v noteVerifier) Verify(msg, sig []byte) bool {
	return v.v.Verify(msg, sig) == nil
}

// NoteSigner is k as a note.Signer (name: the site).
func NoteSigner(k *SigningKey) note.Signer { return noteSigner{k} }

// NoteVerifier is v as a note.Verifier.
func NoteVerifier(v *VerifyKey) note.Verifier { return noteVerifier{v} }

// Verifiers is every pinned signing key as note verifiers.
func (k *Keyring) Verifiers() note.Verifiers {
	var vs []note.Verifier
	for _, keys := range k.sign {
		for _, v := range keys {
			vs = append(vs, NoteVerifier(v))
		}
	}
	return note.VerifierList(vs...)
}

// SignCheckpoint signs c with key (whose site must be c's) as a note.
func SignCheckpoint(key *SigningKey, c Checkpoint) ([]byte, error) {
	if c.Site != key.Site {
		return nil, fmt.Errorf("trust: checkpoint of %s signed with a key of %s", c.Site, key.Site)
	}
	return note.Sign(&note.Note{Text: c.Text()}, NoteSigner(key))
}

// MaxCheckpointSize bounds a signed checkpoint note.
const MaxCheckpointSize = 16 << 10

// OpenCheckpoint verifies a signed checkpoint note against the keyring and
// parses it. It must be signed by the site its origin line names.
func OpenCheckpoint(msg []byte, k *Keyring) (*Checkpoint, error) {
	c, _, err := openCheckpoint(msg, k)
	return c, err
}

// CanonicalCheckpoint verifies msg as OpenCheckpoint does and returns it
// in its canonical encoding: the text exactly Checkpoint.Text (a note
// with extension lines is refused, ErrMalformed: its signature covers
// them) and only the checkpoint site's own signature. What a site keeps
// of another's checkpoints is then what that site signed, not bytes a
// relay or a cosigner added.
func CanonicalCheckpoint(msg []byte, k *Keyring) ([]byte, *Checkpoint, error) {
	c, sig, err := openCheckpoint(msg, k)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasPrefix(string(msg), c.Text()+"\n") {
		return nil, nil, fmt.Errorf("%w: checkpoint of %s has lines besides its origin, size and root", ErrMalformed, c.Site)
	}
	return []byte(c.Text() + "\n\u2014 " + sig.Name + " " + sig.Base64 + "\n"), c, nil
}

// openCheckpoint is OpenCheckpoint, also returning the site's signature.
func openCheckpoint(msg []byte, k *Keyring) (*Checkpoint, *note.Signature, error) {
	if len(msg) > MaxCheckpointSize {
		return nil, nil, fmt.Errorf("%w: checkpoint of %d bytes (at most %d)", ErrMalformed, len(msg), MaxCheckpointSize)
	}
	n, err := note.Open(msg, k.Verifiers())
	if err != nil {
		var unk *note.UnverifiedNoteError
		if errors.As(err, &unk) {
			return nil, nil, fmt.Errorf("%w: checkpoint signed by no pinned key", ErrUnknownKey)
		}
		return nil, nil, fmt.Errorf("%w: checkpoint: %v", ErrBadSignature, err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return nil, nil, err
	}
	// The note package reads base64 leniently (padding bits ignored): a
	// signature has one spelling only, as a bundle's every byte counts.
	for _, s := range slices.Concat(n.Sigs, n.UnverifiedSigs) {
		if !canonicalBase64(s.Base64) {
			return nil, nil, fmt.Errorf("%w: checkpoint signature of %s is not canonical base64", ErrMalformed, s.Name)
		}
	}
	for i, s := range n.Sigs {
		if s.Name == c.Site {
			return c, &n.Sigs[i], nil
		}
	}
	return nil, nil, fmt.Errorf("%w: checkpoint of %s is not signed by %s", ErrBadSignature, c.Site, c.Site)
}

// ParseCheckpoint reads a checkpoint's text (not its signatures).
func ParseCheckpoint(text string) (*Checkpoint, error) {
	lines := strings.Split(text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return nil, fmt.Errorf("%w: checkpoint text has %d lines", ErrMalformed, len(lines)-1)
	}
	origin := lines[0]
	site, ok := strings.CutPrefix(origin, "hotline/")
	site, ok2 := strings.CutSuffix(site, "/audit")
	if !ok || !ok2 || site == "" {
		return nil, fmt.Errorf("%w: checkpoint origin %q is not hotline/SITE/audit", ErrMalformed, origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return nil, fmt.Errorf("%w: checkpoint size %q", ErrMalformed, lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != len(Hash{}) || !canonicalBase64(lines[2]) {
		return nil, fmt.Errorf("%w: checkpoint root %q", ErrMalformed, lines[2])
	}
	return &Checkpoint{Site: site, Size: size, Root: Hash(root)}, nil
}

// canonicalBase64 reports whether s is standard padded base64 in its one
// spelling (the unused bits of its last character zero).
func canonicalBase64(s string) bool {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	return err == nil && base64.StdEncoding.EncodeToString(b) == s
}
