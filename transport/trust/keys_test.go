package trust

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
)

// TestHybridNeedsBothHalves: a signature verifies only if its Ed25519 and
// its ML-DSA-65 half both do. Each half is spoiled in turn, by a flipped
// byte and by a valid signature of the same message made with another key
// of the same site; the error names the half that failed.
func TestHybridNeedsBothHalves(t *testing.T) {
	k, err := GenerateSigningKey("alpha")
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateSigningKey("alpha")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("statement")
	sig, err := k.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Public().Verify(msg, sig); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	otherSig, err := other.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	edEnd := ed25519.SignatureSize
	splice := func(ed, ml []byte) []byte { return append(append([]byte(nil), ed[:edEnd]...), ml[edEnd:]...) }
	flip := func(i int) []byte {
		b := append([]byte(nil), sig...)
		b[i] ^= 0x80
		return b
	}
	tests := []struct {
		name string
		sig  []byte
		want string
	}{
		{"Ed25519 byte flipped", flip(7), "Ed25519 half"},
		{"ML-DSA-65 byte flipped", flip(edEnd + mldsa65.SignatureSize/2), "ML-DSA-65 half"},
		{"Ed25519 half of another key", splice(otherSig, sig), "Ed25519 half"},
		{"ML-DSA-65 half of another key", splice(sig, otherSig), "ML-DSA-65 half"},
		{"both halves of another key", otherSig, "neither"},
		{"truncated", sig[:len(sig)-1], "bytes, want"},
		{"empty", nil, "bytes, want"},
	}
	for _, tt := range tests {
		err := k.Public().Verify(msg, tt.sig)
		if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrBadSignature naming %q", tt.name, err, tt.want)
		}
	}
	// The other key's signature is good for it: the halves were valid
	// signatures, only not both of one key.
	if err := other.Public().Verify(msg, otherSig); err != nil {
		t.Fatal(err)
	}
	// The Ed25519 half signs the context-prefixed message: a plain
	// Ed25519 signature of msg (the key used outside hotline) is refused.
	plain := splice(ed25519.Sign(k.ed, msg), sig)
	if err := k.Public().Verify(msg, plain); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Ed25519 signature without hotline's context: %v", err)
	}
}

// pubLines reads a site's .pub file.
func pubLines(t *testing.T, dir, site string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, PublicKeysFile(site)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lineOf returns the line of a .pub text with the given kind.
func lineOf(t *testing.T, pub, kind string) string {
	t.Helper()
	for _, l := range strings.Split(pub, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == kind {
			return l
		}
	}
	t.Fatalf("no %s line in %q", kind, pub)
	return ""
}

// TestRotationOverlap: while a site rotates, its old and new signing keys
// both verify (statements and checkpoints), payloads are sealed to its
// one current (not retired) KEM key wherever the lines stand, and
// envelopes sealed to the old key still open with the old key passed
// among the site's keys.
func TestRotationOverlap(t *testing.T) {
	oldDir, newDir := t.TempDir(), t.TempDir()
	oldSign, oldKEM := siteKeys(t, oldDir, "alpha")
	newSign, newKEM := siteKeys(t, newDir, "alpha")
	oldPub, newPub := pubLines(t, oldDir, "alpha"), pubLines(t, newDir, "alpha")

	before, err := ParseKeyring([]byte(oldPub))
	if err != nil {
		t.Fatal(err)
	}
	retiredOld := lineOf(t, oldPub, "kem") + " retired\n"
	overlaps := map[string]string{
		"old retired first": lineOf(t, oldPub, "sign") + "\n" + retiredOld + newPub,
		"old retired last":  newPub + lineOf(t, oldPub, "sign") + "\n" + retiredOld,
	}
	for name, text := range overlaps {
		ring, err := ParseKeyring([]byte(text))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n := len(ring.SigningKeys("alpha")); n != 2 {
			t.Fatalf("%s: %d signing keys of alpha, want 2", name, n)
		}
		for _, k := range []*SigningKey{oldSign, newSign} {
			st, err := NewStatement(KindMessages, "bravo", 0, 1, 1, []Hash{{1}}, 1)
			if err != nil {
				t.Fatal(err)
			}
			s, err := SignStatement(k, st)
			if err != nil {
				t.Fatal(err)
			}
			if err := ring.Verify(s); err != nil {
				t.Errorf("%s: statement signed with key %s: %v", name, k.ID(), err)
			}
			note, err := SignCheckpoint(k, Checkpoint{Site: "alpha", Size: 3})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := OpenCheckpoint(note, ring); err != nil {
				t.Errorf("%s: checkpoint signed with key %s: %v", name, k.ID(), err)
			}
		}
		cur, err := ring.EncryptionKey("alpha")
		if err != nil || cur.ID != newKEM.ID() {
			t.Errorf("%s: current encryption key %v, %v; want the new key %s", name, cur, err, newKEM.ID())
		}
	}

	// An envelope sealed before the rotation (to the old key) and one
	// sealed after (to the new): the site opens both with [new, old], and
	// the old one not without the old key.
	b := Binding{ID: "m1", Origin: "bravo", Dest: "alpha"}
	oldTo, err := before.EncryptionKey("alpha")
	if err != nil {
		t.Fatal(err)
	}
	sealedOld, err := Seal(oldTo, b, []byte("before"))
	if err != nil {
		t.Fatal(err)
	}
	sealedNew, err := Seal(newKEM.Public(), b, []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	keys := []*DecryptionKey{newKEM, oldKEM}
	for env, want := range map[*[]byte]string{&sealedOld: "before", &sealedNew: "after"} {
		pt, err := Open(keys, b, *env)
		if err != nil || string(pt) != want {
			t.Errorf("Open with new and old keys = %q, %v; want %q", pt, err, want)
		}
	}
	if _, err := Open([]*DecryptionKey{newKEM}, b, sealedOld); !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), oldKEM.ID().String()) {
		t.Errorf("Open of an old envelope without the old key: %v, want ErrUnknownKey naming %s", err, oldKEM.ID())
	}

	// A keyring whose every KEM line of a site is retired pins no current
	// key: nothing can be sealed to that site.
	allRetired := lineOf(t, oldPub, "sign") + "\n" + retiredOld
	ring, err := ParseKeyring([]byte(allRetired))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.EncryptionKey("alpha"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("EncryptionKey with every line retired: %v", err)
	}
}

// TestKeyFiles: private key files must be owner-only regular files; a
// credential:NAME is read from $CREDENTIALS_DIRECTORY, and without it the
// error says how to provide it.
func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	sk, dk := siteKeys(t, dir, "alpha")
	signFile := filepath.Join(dir, SigningKeyFile("alpha"))
	kemFile := filepath.Join(dir, DecryptionKeyFile("alpha"))

	for _, f := range []string{signFile, kemFile} {
		if err := os.Chmod(f, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadSigningKey(signFile)
	if err == nil || !strings.Contains(err.Error(), "is mode 0644") || !strings.Contains(err.Error(), "chmod 600 "+signFile) {
		t.Errorf("signing key of mode 0644: %v, want a refusal naming the mode and the fix", err)
	}
	if _, err := LoadDecryptionKey(kemFile); err == nil || !strings.Contains(err.Error(), "is mode 0644") {
		t.Errorf("KEM key of mode 0644: %v, want a refusal", err)
	}
	for _, f := range []string{signFile, kemFile} {
		if err := os.Chmod(f, 0o400); err != nil { // as systemd hands a credential over
			t.Fatal(err)
		}
	}

	// Credentials, named after the files here.
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	k, err := LoadSigningKey(CredentialPrefix + SigningKeyFile("alpha"))
	if err != nil || k.ID() != sk.ID() {
		t.Fatalf("signing key as a credential: %v", err)
	}
	d, err := LoadDecryptionKey(CredentialPrefix + DecryptionKeyFile("alpha"))
	if err != nil || d.ID() != dk.ID() {
		t.Fatalf("KEM key as a credential: %v", err)
	}
	for _, bad := range []string{"credential:", "credential:a/b", "credential:..", "credential:."} {
		if _, err := LoadSigningKey(bad); err == nil || !strings.Contains(err.Error(), "one file name") {
			t.Errorf("LoadSigningKey(%q): %v, want a refusal of the name", bad, err)
		}
	}
	if _, err := LoadSigningKey("credential:missing.key"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing credential: %v", err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	_, err = LoadSigningKey("credential:alpha.sign.key")
	if err == nil || !strings.Contains(err.Error(), "$CREDENTIALS_DIRECTORY is not set") || !strings.Contains(err.Error(), "LoadCredential=alpha.sign.key:") {
		t.Errorf("credential without $CREDENTIALS_DIRECTORY: %v", err)
	}

	// Not a key file: a directory, the wrong PEM type, a key id header
	// that lies.
	if _, err := LoadSigningKey(dir); !errors.Is(err, ErrMalformed) {
		t.Errorf("a directory as a key file: %v", err)
	}
	if _, err := LoadSigningKey(kemFile); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "HOTLINE SIGNING KEY") {
		t.Errorf("a KEM key as the signing key: %v", err)
	}
	b, err := os.ReadFile(signFile)
	if err != nil {
		t.Fatal(err)
	}
	liar := filepath.Join(dir, "liar.key")
	if err := os.WriteFile(liar, []byte(strings.Replace(string(b), "Key-Id: "+sk.ID().String(), "Key-Id: 00000000", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigningKey(liar); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "says key id 00000000") {
		t.Errorf("a key file with a wrong Key-Id: %v", err)
	}

	// CreateSiteKeys refuses to overwrite and leaves the old keys intact.
	if _, err := CreateSiteKeys(dir, "alpha"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("CreateSiteKeys over existing keys: %v", err)
	}
	if k, err := LoadSigningKey(signFile); err != nil || k.ID() != sk.ID() {
		t.Errorf("the existing key after a refused CreateSiteKeys: %v", err)
	}
}

// TestParseKeyringErrors: every malformed line is refused with its line
// number, and nothing is pinned.
func TestParseKeyringErrors(t *testing.T) {
	dir := t.TempDir()
	siteKeys(t, dir, "alpha")
	pub := pubLines(t, dir, "alpha")
	sign, kem := lineOf(t, pub, "sign"), lineOf(t, pub, "kem")
	sf, kf := strings.Fields(sign), strings.Fields(kem)
	withField := func(f []string, i int, v string) string {
		g := append([]string(nil), f...)
		g[i] = v
		return strings.Join(g, " ")
	}
	raw, _ := base64.StdEncoding.DecodeString(sf[3])
	tests := []struct {
		name, text, want string
	}{
		{"bad base64", withField(sf, 3, "not*base64"), "line 2: key is not base64"},
		{"wrong key id", withField(sf, 2, "deadbeef"), "line 2: key id deadbeef does not match the key (its id is " + sf[2] + ")"},
		{"key id not hex", withField(kf, 2, "zz"), "line 2: key id zz does not match"},
		{"unknown kind", withField(sf, 1, "tls"), `line 2: key kind "tls" (want sign or kem)`},
		{"another site's key id", withField(sf, 0, "bravo"), "line 2: key id " + sf[2] + " does not match"},
		{"bad site name", withField(sf, 0, "Alpha!"), "line 2:"},
		{"short signing key", withField(sf, 3, base64.StdEncoding.EncodeToString(raw[:100])), "line 2: trust: malformed: signing public key of alpha is 100 bytes"},
		{"KEM key as signing key", withField(kf, 1, "sign"), "line 2: trust: malformed: signing public key"},
		{"too few fields", strings.Join(sf[:3], " "), "line 2: want"},
		{"sixth field", sign + " retired extra", "line 2: want"},
		{"fifth field not retired", sign + " old", "line 2: want"},
		{"kem both current and retired", kem + "\n" + kem + " retired", "line 3: alpha kem key " + kf[2] + " is listed twice, once retired"},
	}
	for _, tt := range tests {
		_, err := ParseKeyring([]byte("# a comment\n" + tt.text + "\n"))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrMalformed with %q", tt.name, err, tt.want)
		}
	}
	if _, err := ParseKeyring(make([]byte, MaxKeyringSize+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized keyring: %v", err)
	}

	// A repeated line is pinned once, so note verifiers stay unambiguous.
	ring, err := ParseKeyring([]byte(pub + "\n" + pub + sign + " retired\n"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ring.SigningKeys("alpha")); n != 1 {
		t.Errorf("a repeated line: %d signing keys, want 1", n)
	}
	sk, err := LoadSigningKey(filepath.Join(dir, SigningKeyFile("alpha")))
	if err != nil {
		t.Fatal(err)
	}
	note, err := SignCheckpoint(sk, Checkpoint{Site: "alpha", Size: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenCheckpoint(note, ring); err != nil {
		t.Errorf("checkpoint against a keyring listing the key twice: %v", err)
	}
	if _, err := LoadKeyring(filepath.Join(dir, "none.pub")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing keyring file: %v", err)
	}
	bad := filepath.Join(dir, "bad.pub")
	if err := os.WriteFile(bad, []byte(withField(sf, 1, "tls")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(bad); err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("%s: trust: malformed: line 1:", bad)) {
		t.Errorf("LoadKeyring of a bad file: %v, want it to name the file and line", err)
	}
}
