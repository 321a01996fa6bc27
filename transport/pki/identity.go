package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
)

// URIScheme is the scheme of the URI SAN that carries a node's identity:
// hotline://<site>/<node>.
const URIScheme = "hotline"

// ErrNoIdentity is returned (wrapped) by IdentityOf when a certificate has no
// usable hotline:// URI SAN.
var ErrNoIdentity = errors.New("pki: certificate has no hotline identity")

// Identity names a node: the site it belongs to and its name within the site.
type Identity struct {
	Site, Node string
}

// String returns "site/node".
func (id Identity) String() string { return id.Site + "/" + id.Node }

// URI returns the identity as the URI carried in certificates:
// hotline://site/node.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: URIScheme, Host: id.Site, Path: "/" + id.Node}
}

// Validate checks both names (see ValidName).
func (id Identity) Validate() error {
	if err := ValidName(id.Site); err != nil {
		return fmt.Errorf("site: %w", err)
	}
	if err := ValidName(id.Node); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// ValidName checks a site or node name: 1 to 63 characters from [a-z0-9-],
// starting with a letter or a digit. The error quotes the bad name.
func ValidName(s string) error {
	if s == "" {
		return errors.New("pki: empty name (want 1-63 characters [a-z0-9-])")
	}
	if len(s) > 63 {
		return fmt.Errorf("pki: name %.20q... is %d characters long (at most 63)", s, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		case c == '-':
			return fmt.Errorf("pki: name %q starts with '-' (must start with a letter or digit)", s)
		default:
			return fmt.Errorf("pki: name %q contains %q (allowed: a-z, 0-9 and '-')", s, rune(c))
		}
	}
	return nil
}

// IdentityOf returns the identity a certificate carries in its single
// hotline://<site>/<node> URI SAN. URI SANs of other schemes are ignored. It
// fails (wrapping ErrNoIdentity) when there is no such SAN, when there are
// several, or when the one there is malformed. It does not verify the
// certificate: callers check the chain first.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrNoIdentity)
	}
	var found []*url.URL
	for _, u := range cert.URIs {
		if u != nil && u.Scheme == URIScheme {
			found = append(found, u)
		}
	}
	switch len(found) {
	case 0:
		return Identity{}, fmt.Errorf("%w: no %s:// URI SAN", ErrNoIdentity, URIScheme)
	case 1:
	default:
		return Identity{}, fmt.Errorf("%w: %d %s:// URI SANs (want exactly one)", ErrNoIdentity, len(found), URIScheme)
	}
	u := found[0]
	bad := func(why string) (Identity, error) {
		return Identity{}, fmt.Errorf("%w: malformed URI SAN %q: %s", ErrNoIdentity, u.String(), why)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.ForceQuery {
		return bad("want hotline://<site>/<node> and nothing else")
	}
	if u.Port() != "" || u.Hostname() != u.Host {
		return bad("site must not carry a port")
	}
	if len(u.Path) < 2 || u.Path[0] != '/' || u.RawPath != "" {
		return bad("want hotline://<site>/<node>")
	}
	id := Identity{Site: u.Host, Node: u.Path[1:]}
	if err := id.Validate(); err != nil {
		return bad(err.Error())
	}
	return id, nil
}
