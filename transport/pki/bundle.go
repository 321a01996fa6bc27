package pki

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Bundle is a node's loaded TLS material: its certificate and key, the CA
// roots it trusts and the identity its certificate carries. A Bundle is
// read-only after Load and safe for concurrent use.
type Bundle struct {
	Cert     tls.Certificate
	Leaf     *x509.Certificate
	Roots    *x509.CertPool
	CAs      []*x509.Certificate // the certificates in Roots, as read
	Identity Identity
}

// Load reads the CA certificate(s) from caFile and the node's certificate and
// private key (PEM, PKCS#8) from certFile and keyFile. It checks that the key
// matches the certificate, that the certificate chains to the CA for both
// server and client authentication, and that it carries an identity. Errors
// name the file and the problem.
func Load(caFile, certFile, keyFile string) (*Bundle, error) {
	cas, err := readCerts(caFile)
	if err != nil {
		return nil, fmt.Errorf("pki: load CA: %w", err)
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		if !c.IsCA {
			return nil, fmt.Errorf("pki: load CA: %s: certificate %q is not a CA", caFile, c.Subject.CommonName)
		}
		roots.AddCert(c)
	}
	chain, err := readCerts(certFile)
	if err != nil {
		return nil, fmt.Errorf("pki: load certificate: %w", err)
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: load key: %w", err)
	}
	leaf := chain[0]
	eq, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("pki: load: private key %s does not match certificate %s", keyFile, certFile)
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{usage}})
		if err != nil {
			return nil, fmt.Errorf("pki: load: certificate %s does not verify against CA %s: %w", certFile, caFile, err)
		}
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("pki: load: certificate %s: %w", certFile, err)
	}
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	return &Bundle{
		Cert:     tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: leaf},
		Leaf:     leaf,
		Roots:    roots,
		CAs:      cas,
		Identity: id,
	}, nil
}

// LoadDir loads the bundle of node from a PKI directory laid out by Init and
// Issue: dir/ca.crt, dir/<node>.crt, dir/<node>.key.
func LoadDir(dir, node string) (*Bundle, error) {
	if err := ValidName(node); err != nil {
		return nil, fmt.Errorf("pki: load: %w", err)
	}
	return Load(filepath.Join(dir, CACertFile), filepath.Join(dir, node+".crt"), filepath.Join(dir, node+".key"))
}

// Errors of ServerConfig's client check, wrapped (with the x509 cause,
// when there is one) so that callers can tell why a handshake was refused.
var (
	// ErrNoClientCert: the client offered no certificate.
	ErrNoClientCert = errors.New("pki: client presented no certificate")
	// ErrUntrusted: the client's certificate does not verify against
	// the CA (another CA, expired, not for client authentication...).
	ErrUntrusted = errors.New("pki: client certificate not trusted")
	// ErrNotAllowed: the certificate is valid but allow refused its
	// identity.
	ErrNotAllowed = errors.New("pki: peer not allowed")
)

// ServerConfig returns a TLS config for accepting connections: TLS 1.3 only,
// X25519MLKEM768 key exchange only, the application protocols (ALPN)
// protos in our order of preference, highest version first (crypto/tls
// picks the first of them the client offers and refuses a client that
// offers none with the alert no_application_protocol), client certificates required
// and verified against the CA. After verification the client's identity is
// taken from its certificate and passed to allow; an error from allow fails
// the handshake. A nil allow accepts any identity the CA issued.
//
// The client's certificate is verified in VerifyConnection, as crypto/tls
// would (roots b.Roots, client-auth key usage, the other certificates as
// intermediates), so that every refusal carries a reason: the error wraps
// ErrNoClientCert, ErrUntrusted (and the x509 error), ErrNoIdentity or
// ErrNotAllowed (and allow's error). crypto/tls checks the client's proof
// of its key afterwards, as it does in any mode.
func (b *Bundle) ServerConfig(protos []string, allow func(Identity) error) *tls.Config {
	return serverConfig(func() *Bundle { return b }, protos, allow)
}

// ClientConfig returns a TLS config for dialling the node expect: TLS 1.3
// only, X25519MLKEM768 key exchange only, the application protocols protos
// offered (highest version first), our certificate offered
// for client authentication, the server verified against the CA for server
// authentication with DNS name expect.Node, and its certificate's identity
// required to equal expect exactly.
//
// The config is plain data (Certificates, RootCAs), so a caller may adjust
// it; [Keyring.ClientConfig] is the same check over replaceable material.
func (b *Bundle) ClientConfig(protos []string, expect Identity) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		MaxVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768},
		NextProtos:       slices.Clone(protos),
		Certificates:     []tls.Certificate{b.Cert},
		RootCAs:          b.Roots,
		ServerName:       expect.Node,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return checkServerIdentity(cs, expect)
		},
	}
}

// checkServerIdentity requires the server's certificate to carry exactly
// the identity expect.
func checkServerIdentity(cs tls.ConnectionState, expect Identity) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("pki: server presented no certificate")
	}
	id, err := IdentityOf(cs.PeerCertificates[0])
	if err != nil {
		return err
	}
	if id != expect {
		return fmt.Errorf("pki: server is %s, expected %s", id, expect)
	}
	return nil
}

// Self returns the identity the bundle's certificate carries.
func (b *Bundle) Self() Identity { return b.Identity }

// serverConfig builds ServerConfig over whatever bundle cur returns at each
// handshake: the certificate is chosen in GetCertificate and the client
// verified against the roots of that moment, so a replaced bundle takes
// effect for the next handshake.
func serverConfig(cur func() *Bundle, protos []string, allow func(Identity) error) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		MaxVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768},
		NextProtos:       slices.Clone(protos),
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &cur().Cert, nil
		},
		ClientAuth: tls.RequestClientCert,
		// Only advertised in this mode (as the acceptable CAs); the
		// verification below uses the roots current at the handshake.
		ClientCAs: cur().Roots,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrNoClientCert
			}
			if err := verifyChain(cur().Roots, cs.PeerCertificates, x509.ExtKeyUsageClientAuth, ""); err != nil {
				return fmt.Errorf("%w: %w", ErrUntrusted, err)
			}
			id, err := IdentityOf(cs.PeerCertificates[0])
			if err != nil {
				return err
			}
			if allow != nil {
				if err := allow(id); err != nil {
					return fmt.Errorf("%w: %s: %w", ErrNotAllowed, id, err)
				}
			}
			return nil
		},
	}
}

// clientConfig builds Keyring.ClientConfig over whatever bundle cur returns
// at each handshake. crypto/tls's own server verification is replaced by the same
// check in VerifyConnection (roots, intermediates, server-auth key usage,
// DNS name expect.Node, validity), because its RootCAs cannot change after
// the config is made; crypto/tls still checks the server's proof of its
// key, as it does in any mode.
func clientConfig(cur func() *Bundle, protos []string, expect Identity) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS13,
		MaxVersion:       tls.VersionTLS13,
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768},
		NextProtos:       slices.Clone(protos),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cur().Cert, nil
		},
		ServerName:         expect.Node,
		InsecureSkipVerify: true, // verified in VerifyConnection, against the current roots
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("pki: server presented no certificate")
			}
			if err := verifyChain(cur().Roots, cs.PeerCertificates, x509.ExtKeyUsageServerAuth, expect.Node); err != nil {
				return fmt.Errorf("pki: server certificate not trusted: %w", err)
			}
			return checkServerIdentity(cs, expect)
		},
	}
}

// verifyChain verifies a peer's chain (leaf first) against roots for usage,
// and for dnsName when it is not "".
func verifyChain(roots *x509.CertPool, chain []*x509.Certificate, usage x509.ExtKeyUsage, dnsName string) error {
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{usage},
		DNSName:       dnsName,
	}
	for _, c := range chain[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := chain[0].Verify(opts)
	return err
}

// readCerts parses every CERTIFICATE block of a PEM file; at least one.
func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s: unexpected PEM block %q (want CERTIFICATE)", path, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", path)
	}
	return certs, nil
}

// readKey parses the single PKCS#8 PRIVATE KEY block of a PEM file.
func readKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: unexpected PEM block %q (want PRIVATE KEY, PKCS#8)", path, block.Type)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unsupported key type %T", path, key)
	}
	return signer, nil
}
