package trust

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hotline-link/hotline/transport/pki"
)

// Key files. A site's private keys are PEM files, mode 0600, written once
// and never overwritten:
//
//	SITE.sign.key  HOTLINE SIGNING KEY  (Site and Key-Id headers; the
//	               Ed25519 seed then the ML-DSA-65 seed)
//	SITE.kem.key   HOTLINE KEM KEY      (the X-Wing private key)
//
// and its public keys are two lines of a keyring file, SITE.pub:
//
//	SITE sign KEYID BASE64
//	SITE kem KEYID BASE64
//
// Every site's config pins one keyring file holding the lines of all
// sites (its own included): cat alpha.pub bravo.pub > sites.pub.
const (
	pemSigning = "HOTLINE SIGNING KEY"
	pemKEM     = "HOTLINE KEM KEY"
)

// Key file names for a site.
func SigningKeyFile(site string) string    { return site + ".sign.key" }
func DecryptionKeyFile(site string) string { return site + ".kem.key" }
func PublicKeysFile(site string) string    { return site + ".pub" }

// CreateSiteKeys writes a new signing key, decryption key and public keys
// file for site in dir (created 0700 if missing). It refuses if any of the
// three exists and leaves nothing behind when it fails.
func CreateSiteKeys(dir, site string) (files []string, err error) {
	if err := pki.ValidName(site); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	sk, err := GenerateSigningKey(site)
	if err != nil {
		return nil, err
	}
	dk, err := GenerateDecryptionKey(site)
	if err != nil {
		return nil, err
	}
	writes := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{SigningKeyFile(site), pem.EncodeToMemory(&pem.Block{Type: pemSigning,
			Headers: map[string]string{"Site": site, "Key-Id": sk.ID().String()}, Bytes: sk.seed[:]}), 0o600},
		{DecryptionKeyFile(site), pem.EncodeToMemory(&pem.Block{Type: pemKEM,
			Headers: map[string]string{"Site": site, "Key-Id": dk.ID().String()}, Bytes: dk.raw}), 0o600},
		{PublicKeysFile(site), PublicLines(sk.Public(), dk.Public()), 0o644},
	}
	defer func() {
		if err != nil {
			for _, f := range files {
				os.Remove(f)
			}
			files = nil
		}
	}()
	for _, w := range writes {
		p := filepath.Join(dir, w.name)
		if err := pki.WriteNew(p, w.data, w.mode); err != nil {
			return files, err
		}
		files = append(files, p)
	}
	return files, nil
}

// PublicLines is the keyring lines of a site's public keys.
func PublicLines(sign *VerifyKey, kem *EncryptionKey) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s sign %s %s\n", sign.Site, sign.ID, base64.StdEncoding.EncodeToString(sign.raw))
	fmt.Fprintf(&b, "%s kem %s %s\n", kem.Site, kem.ID, base64.StdEncoding.EncodeToString(kem.raw))
	return b.Bytes()
}

// CredentialPrefix marks a key file named in a config as a systemd
// credential: "credential:NAME" is $CREDENTIALS_DIRECTORY/NAME
// (LoadCredential=NAME:/path in the unit).
const CredentialPrefix = "credential:"

// KeyPath resolves a key file named in a config: "credential:NAME" is read
// from $CREDENTIALS_DIRECTORY; anything else is a path.
func KeyPath(p string) (string, error) {
	name, ok := strings.CutPrefix(p, CredentialPrefix)
	if !ok {
		return p, nil
	}
	dir := os.Getenv("CREDENTIALS_DIRECTORY")
	switch {
	case name == "" || name == "." || name == ".." || strings.Contains(name, "/"):
		return "", fmt.Errorf("key file %q: a credential name is one file name, without /", p)
	case dir == "":
		return "", fmt.Errorf("key file %q is a systemd credential, but $CREDENTIALS_DIRECTORY is not set: load it with LoadCredential=%s:/path in the unit, or name a path", p, name)
	}
	return filepath.Join(dir, name), nil
}

// maxKeyFileSize bounds a private key file (a PEM block of a few hundred bytes).
const maxKeyFileSize = 64 << 10

// readPrivate reads a private key file (through KeyPath), refusing one
// that others than its owner may read.
func readPrivate(p, typ string) (*pem.Block, string, error) {
	path, err := KeyPath(p)
	if err != nil {
		return nil, "", err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, path, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxKeyFileSize {
		return nil, path, fmt.Errorf("%w: %s is not a key file (a regular file of at most %d bytes)", ErrMalformed, path, maxKeyFileSize)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, path, fmt.Errorf("%s is mode %04o: a private key must be readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, path, err
	}
	blk, rest := pem.Decode(data)
	if blk == nil || blk.Type != typ || len(bytes.TrimSpace(rest)) != 0 {
		return nil, path, fmt.Errorf("%w: %s is not one %s PEM block", ErrMalformed, path, typ)
	}
	if blk.Headers["Site"] == "" {
		return nil, path, fmt.Errorf("%w: %s has no Site header", ErrMalformed, path)
	}
	return blk, path, nil
}

// LoadSigningKey reads a site's signing key file (see KeyPath).
func LoadSigningKey(p string) (*SigningKey, error) {
	blk, path, err := readPrivate(p, pemSigning)
	if err != nil {
		return nil, err
	}
	if len(blk.Bytes) != signingSeedSize {
		return nil, fmt.Errorf("%w: %s holds %d bytes, want %d", ErrMalformed, path, len(blk.Bytes), signingSeedSize)
	}
	k := signingKeyFromSeed(blk.Headers["Site"], [signingSeedSize]byte(blk.Bytes))
	if id := blk.Headers["Key-Id"]; id != "" && id != k.ID().String() {
		return nil, fmt.Errorf("%w: %s says key id %s but holds key %s", ErrMalformed, path, id, k.ID())
	}
	return k, nil
}

// LoadDecryptionKey reads a site's KEM key file (see KeyPath).
func LoadDecryptionKey(p string) (*DecryptionKey, error) {
	blk, path, err := readPrivate(p, pemKEM)
	if err != nil {
		return nil, err
	}
	k, err := ParseDecryptionKey(blk.Headers["Site"], blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if id := blk.Headers["Key-Id"]; id != "" && id != k.ID().String() {
		return nil, fmt.Errorf("%w: %s says key id %s but holds key %s", ErrMalformed, path, id, k.ID())
	}
	return k, nil
}

// Keyring is the pinned public keys of every site: signing keys (all of
// them verify, for overlap while rotating) and encryption keys (a site's
// last one not marked "retired" is the one payloads are sealed to).
type Keyring struct {
	sign map[string][]*VerifyKey
	kem  map[string][]*EncryptionKey
	cur  map[string]*EncryptionKey
}

// LoadKeyring reads a keyring file.
func LoadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// MaxKeyringSize bounds a keyring file.
const MaxKeyringSize = 1 << 20

// ParseKeyring reads keyring lines: "SITE sign|kem KEYID BASE64
// [retired]"; blank lines and lines starting with # are ignored. A key id
// that does not match its key is an error; a line repeated is read once.
func ParseKeyring(data []byte) (*Keyring, error) {
	if len(data) > MaxKeyringSize {
		return nil, fmt.Errorf("%w: keyring of %d bytes (at most %d)", ErrMalformed, len(data), MaxKeyringSize)
	}
	k := &Keyring{sign: map[string][]*VerifyKey{}, kem: map[string][]*EncryptionKey{}, cur: map[string]*EncryptionKey{}}
	type seenKey struct {
		line    int
		raw     []byte
		retired bool
	}
	seen := map[string]seenKey{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), MaxKeyringSize)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		retired := len(f) == 5 && f[4] == "retired"
		if len(f) != 4 && !retired {
			return nil, fmt.Errorf("%w: line %d: want \"SITE sign|kem KEYID BASE64 [retired]\"", ErrMalformed, ln)
		}
		site, kind, id := f[0], f[1], f[2]
		if err := pki.ValidName(site); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrMalformed, ln, err)
		}
		raw, err := base64.StdEncoding.DecodeString(f[3])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: key is not base64: %v", ErrMalformed, ln, err)
		}
		var (
			got  KeyID
			v    *VerifyKey
			e    *EncryptionKey
			perr error
		)
		switch kind {
		case "sign":
			if v, perr = ParseVerifyKey(site, raw); perr == nil {
				got = v.ID
			}
		case "kem":
			if e, perr = ParseEncryptionKey(site, raw); perr == nil {
				got = e.ID
			}
		default:
			return nil, fmt.Errorf("%w: line %d: key kind %q (want sign or kem)", ErrMalformed, ln, kind)
		}
		if perr != nil {
			return nil, fmt.Errorf("line %d: %w", ln, perr)
		}
		if want, err := strconv.ParseUint(id, 16, 32); err != nil || KeyID(want) != got {
			return nil, fmt.Errorf("%w: line %d: key id %s does not match the key (its id is %s)", ErrMalformed, ln, id, got)
		}
		// A key listed twice is pinned once (note verifiers must be
		// unambiguous); two keys of a site with one id, or a kem key both
		// current and retired, are contradictions.
		name := site + " " + kind + " " + got.String()
		if prev, dup := seen[name]; dup {
			if !bytes.Equal(prev.raw, raw) {
				return nil, fmt.Errorf("%w: line %d: %s %s key id %s names two different keys (lines %d and %d)", ErrMalformed, ln, site, kind, got, prev.line, ln)
			}
			if kind == "kem" && prev.retired != retired {
				return nil, fmt.Errorf("%w: line %d: %s kem key %s is listed twice, once retired (lines %d and %d): keep one line", ErrMalformed, ln, site, got, prev.line, ln)
			}
			continue
		}
		seen[name] = seenKey{line: ln, raw: raw, retired: retired}
		if v != nil {
			k.sign[site] = append(k.sign[site], v)
		} else {
			k.kem[site] = append(k.kem[site], e)
			if !retired {
				k.cur[site] = e
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return k, nil
}

// Sites lists the sites with a signing key, unordered.
func (k *Keyring) Sites() []string {
	var out []string
	for s := range k.sign {
		out = append(out, s)
	}
	return out
}

// VerifyKey returns site's pinned signing key with id.
func (k *Keyring) VerifyKey(site string, id KeyID) (*VerifyKey, error) {
	for _, v := range k.sign[site] {
		if v.ID == id {
			return v, nil
		}
	}
	if len(k.sign[site]) == 0 {
		return nil, fmt.Errorf("%w: no signing key of site %q is pinned", ErrUnknownKey, site)
	}
	return nil, fmt.Errorf("%w: key %s is not one of site %q's pinned signing keys", ErrUnknownKey, id, site)
}

// EncryptionKey returns the key payloads to site are sealed to.
func (k *Keyring) EncryptionKey(site string) (*EncryptionKey, error) {
	if e := k.cur[site]; e != nil {
		return e, nil
	}
	return nil, fmt.Errorf("%w: no current encryption key of site %q is pinned", ErrUnknownKey, site)
}

// Verify checks s's signature with the pinned key it names.
func (k *Keyring) Verify(s *Signed) error {
	v, err := k.VerifyKey(s.Site, s.KeyID)
	if err != nil {
		return err
	}
	if err := v.Verify(s.Statement.Bytes(), s.Sig); err != nil {
		return fmt.Errorf("%s statement of %s (%d..%d): %w", s.Kind, s.Site, s.First, s.Last, err)
	}
	return nil
}

// SigningKeys returns site's pinned signing keys.
func (k *Keyring) SigningKeys(site string) []*VerifyKey { return k.sign[site] }

// KeyringFile is the name EnsureSiteKeys gives the keyring of all sites.
const KeyringFile = "sites.pub"

// EnsureSiteKeys creates in dir the keys of each site that has none
// (CreateSiteKeys) and (re)writes dir/sites.pub, the keyring of all of
// them, when its contents differ. It returns the files it wrote. For labs
// and first looks: a real deployment creates each site's keys on that
// site and exchanges only the .pub files.
func EnsureSiteKeys(dir string, sites []string) (written []string, err error) {
	var ring []byte
	for _, s := range sites {
		pub := filepath.Join(dir, PublicKeysFile(s))
		if _, err := os.Stat(pub); err != nil {
			files, err := CreateSiteKeys(dir, s)
			if err != nil {
				return written, err
			}
			written = append(written, files...)
		}
		b, err := os.ReadFile(pub)
		if err != nil {
			return written, err
		}
		ring = append(ring, b...)
	}
	p := filepath.Join(dir, KeyringFile)
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, ring) {
		return written, nil
	}
	if err := os.WriteFile(p+".tmp", ring, 0o644); err != nil {
		return written, err
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		return written, err
	}
	return append(written, p), nil
}
