package daemon

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/hotline-link/hotline/transport/trust"
)

// siteKeys is the site's trust material (config [trust], package
// transport/trust): the key it signs statements and checkpoints with, the
// keys it opens payloads sealed to it with, and every site's pinned
// public keys. Loaded once at Open; changing keys takes a restart.
type siteKeys struct {
	site string
	sign *trust.SigningKey
	dec  []*trust.DecryptionKey // the current key first, then old_kem_keys
	ring *trust.Keyring
}

// loadSiteKeys reads the [trust] files and checks them against each other
// and the config: the keys are this site's, the keyring pins them, and it
// pins a signing and an encryption key of every configured site.
func loadSiteKeys(cfg *Config) (*siteKeys, error) {
	bad := func(key, format string, a ...any) error {
		return &ConfigError{File: cfg.file, Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	k := &siteKeys{site: cfg.Site}
	var err error
	if k.sign, err = trust.LoadSigningKey(cfg.Trust.SignKey); err != nil {
		return nil, bad("trust.sign_key", "%v", err)
	}
	if k.sign.Site != cfg.Site {
		return nil, bad("trust.sign_key", "%s is a key of site %s, but this node is in %s", cfg.Trust.SignKey, k.sign.Site, cfg.Site)
	}
	for i, p := range append([]string{cfg.Trust.KEMKey}, cfg.Trust.OldKEMKeys...) {
		key := "trust.kem_key"
		if i > 0 {
			key = fmt.Sprintf("trust.old_kem_keys[%d]", i-1)
		}
		d, err := trust.LoadDecryptionKey(p)
		if err != nil {
			return nil, bad(key, "%v", err)
		}
		if d.Site != cfg.Site {
			return nil, bad(key, "%s is a key of site %s, but this node is in %s", p, d.Site, cfg.Site)
		}
		k.dec = append(k.dec, d)
	}
	if k.ring, err = trust.LoadKeyring(cfg.Trust.Keys); err != nil {
		return nil, bad("trust.keys", "%v", err)
	}
	if v, err := k.ring.VerifyKey(cfg.Site, k.sign.ID()); err != nil || !bytes.Equal(v.Bytes(), k.sign.Public().Bytes()) {
		return nil, bad("trust.keys", "%s does not pin this site's signing key %s (from %s): add the lines of %s", cfg.Trust.Keys, k.sign.ID(), cfg.Trust.SignKey, trust.PublicKeysFile(cfg.Site))
	}
	if e, err := k.ring.EncryptionKey(cfg.Site); err != nil || e.ID != k.dec[0].ID() {
		return nil, bad("trust.keys", "%s does not pin this site's kem_key %s as its current encryption key: add the lines of %s", cfg.Trust.Keys, k.dec[0].ID(), trust.PublicKeysFile(cfg.Site))
	}
	for _, s := range cfg.Sites {
		if len(k.ring.SigningKeys(s.Name)) == 0 {
			return nil, bad("trust.keys", "%s pins no signing key of site %s", cfg.Trust.Keys, s.Name)
		}
		if _, err := k.ring.EncryptionKey(s.Name); err != nil {
			return nil, bad("trust.keys", "%s pins no current encryption key of site %s", cfg.Trust.Keys, s.Name)
		}
	}
	return k, nil
}

// summary is check-config's rows about the keys: this site's key ids and
// every pinned site's signing and current encryption key ids.
func (k *siteKeys) summary(cfg *Config) [][2]string {
	rows := [][2]string{
		{"sign key", fmt.Sprintf("%s (%s)", k.sign.ID(), cfg.Trust.SignKey)},
		{"kem key", fmt.Sprintf("%s (%s)", k.dec[0].ID(), cfg.Trust.KEMKey)},
	}
	if len(k.dec) > 1 {
		var old []string
		for i, d := range k.dec[1:] {
			old = append(old, fmt.Sprintf("%s (%s)", d.ID(), cfg.Trust.OldKEMKeys[i]))
		}
		rows = append(rows, [2]string{"old kem keys", strings.Join(old, ", ")})
	}
	rows = append(rows, [2]string{"keyring", cfg.Trust.Keys + ", pinning:"})
	var sites []string
	for _, s := range cfg.Sites {
		sites = append(sites, s.Name)
	}
	extra := k.ring.Sites()
	slices.Sort(extra)
	for _, s := range extra {
		if !slices.Contains(sites, s) {
			sites = append(sites, s)
		}
	}
	for _, s := range sites {
		var sign []string
		for _, v := range k.ring.SigningKeys(s) {
			sign = append(sign, v.ID.String())
		}
		d := "sign " + strings.Join(sign, " ")
		if e, err := k.ring.EncryptionKey(s); err == nil {
			d += ", kem " + e.ID.String()
		}
		if !slices.ContainsFunc(cfg.Sites, func(c SiteConfig) bool { return c.Name == s }) {
			d += " (not a configured site)"
		}
		rows = append(rows, [2]string{"  " + s, d})
	}
	return rows
}

// credentialHint is added to a [trust] problem that is a systemd
// credential named while check-config runs outside the unit.
func credentialHint(msg string) string {
	if !strings.Contains(msg, "$CREDENTIALS_DIRECTORY is not set") {
		return ""
	}
	return "; to check the files outside the unit, run check-config with CREDENTIALS_DIRECTORY set to the directory holding them under those names"
}
