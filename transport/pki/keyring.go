package pki

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
	"time"
)

// Keyring is a node's TLS material that can be replaced while it is in
// use: the TLS configs it makes pick the current certificate and CA roots
// at every handshake, so connections made after Replace present the new
// certificate and trust the new roots; connections already open keep what
// they were made with. The identity never changes. Safe for concurrent use.
type Keyring struct {
	self Identity
	cur  atomic.Pointer[Bundle]
}

// NewKeyring returns a keyring holding b.
func NewKeyring(b *Bundle) *Keyring {
	k := &Keyring{self: b.Identity}
	k.cur.Store(b)
	return k
}

// Current returns the bundle in use now.
func (k *Keyring) Current() *Bundle { return k.cur.Load() }

// Self returns the node's identity.
func (k *Keyring) Self() Identity { return k.self }

// Replace puts b in use for the next handshakes. It refuses, keeping the
// current bundle, a bundle whose certificate names another identity or
// is not valid at now (expired, or not yet valid).
func (k *Keyring) Replace(b *Bundle, now time.Time) error {
	if b.Identity != k.self {
		return fmt.Errorf("pki: new certificate is for %s, not %s", b.Identity, k.self)
	}
	if now.After(b.Leaf.NotAfter) {
		return fmt.Errorf("pki: new certificate expired at %s", b.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(b.Leaf.NotBefore) {
		return fmt.Errorf("pki: new certificate is valid only from %s", b.Leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	k.cur.Store(b)
	return nil
}

// ServerConfig is [Bundle.ServerConfig] over the keyring's current bundle.
func (k *Keyring) ServerConfig(protos []string, allow func(Identity) error) *tls.Config {
	return serverConfig(k.cur.Load, protos, allow)
}

// ClientConfig is [Bundle.ClientConfig] over the keyring's current bundle.
func (k *Keyring) ClientConfig(protos []string, expect Identity) *tls.Config {
	return clientConfig(k.cur.Load, protos, expect)
}
