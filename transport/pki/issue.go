package pki

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// File names inside a PKI directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Validity periods.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	NodeValidity = 2 * 365 * 24 * time.Hour
)

// clockSkew backdates NotBefore so a certificate is usable at once on a node
// whose clock is slightly behind.
const clockSkew = 5 * time.Minute

// Init creates a new CA in dir: dir/ca.crt (0644), a self-signed Ed25519
// certificate valid for 10 years, and dir/ca.key (0600). It creates dir with
// mode 0700 if needed. It refuses, changing nothing, when ca.crt or ca.key
// already exists.
func Init(dir string) error {
	if dir == "" {
		return errors.New("pki: init: empty directory name")
	}
	certFile, keyFile := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	for _, f := range []string{keyFile, certFile} {
		if err := refuseExisting(f); err != nil {
			return fmt.Errorf("pki: init: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: init: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: init: generate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return fmt.Errorf("pki: init: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "hotline CA", Organization: []string{"hotline"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return fmt.Errorf("pki: init: create certificate: %w", err)
	}
	if err := writePair(certFile, keyFile, der, priv); err != nil {
		return fmt.Errorf("pki: init: %w", err)
	}
	return nil
}

// Issue signs a certificate for node of site with the CA in dir, writing
// dir/<node>.crt (0644) and dir/<node>.key (0600), and returns their paths.
// The certificate has an Ed25519 key, is valid for 2 years, has Subject
// CN=node O=site, DNS SAN node, URI SAN hotline://site/node and extended key
// usage server and client authentication. Issue refuses, changing nothing,
// when either file already exists, when a name is invalid or when the CA
// cannot be read.
func Issue(dir, site, node string) (certFile, keyFile string, err error) {
	return IssueValid(dir, site, node, NodeValidity)
}

// IssueValid is Issue with a validity period other than NodeValidity (at
// most the CA's own): for renewals on a schedule of one's own, and for
// tests of expiry warnings.
func IssueValid(dir, site, node string, validity time.Duration) (certFile, keyFile string, err error) {
	id := Identity{Site: site, Node: node}
	if validity <= 0 {
		return "", "", fmt.Errorf("pki: issue %s: validity %v is not positive", id, validity)
	}
	if err := id.Validate(); err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	certFile, keyFile = filepath.Join(dir, node+".crt"), filepath.Join(dir, node+".key")
	for _, f := range []string{keyFile, certFile} {
		if err := refuseExisting(f); err != nil {
			return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
		}
	}
	caCert, caKey, err := loadCA(dir)
	if err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("pki: issue %s: generate key: %w", id, err)
	}
	serial, err := newSerial()
	if err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: node, Organization: []string{site}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{node},
		URIs:         []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caKey)
	if err != nil {
		return "", "", fmt.Errorf("pki: issue %s: create certificate: %w", id, err)
	}
	if err := writePair(certFile, keyFile, der, priv); err != nil {
		return "", "", fmt.Errorf("pki: issue %s: %w", id, err)
	}
	return certFile, keyFile, nil
}

// loadCA reads dir/ca.crt and dir/ca.key and checks they belong together.
func loadCA(dir string) (*x509.Certificate, ed25519.PrivateKey, error) {
	certFile, keyFile := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certs, err := readCerts(certFile)
	if err != nil {
		return nil, nil, fmt.Errorf("CA (run init first?): %w", err)
	}
	ca := certs[0]
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("%s: certificate is not a CA", certFile)
	}
	key, err := readKey(keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("CA (run init first?): %w", err)
	}
	edKey, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("%s: CA key is %T, want Ed25519", keyFile, key)
	}
	if pub, ok := ca.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(edKey.Public()) {
		return nil, nil, fmt.Errorf("%s does not match %s", keyFile, certFile)
	}
	return ca, edKey, nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil
}

func refuseExisting(path string) error {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return fmt.Errorf("%s already exists; refusing to overwrite it", path)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return err
	}
}

// writePair writes the key (0600) and then the certificate (0644), both with
// O_EXCL; if anything fails it removes what it wrote.
func writePair(certFile, keyFile string, der []byte, key ed25519.PrivateKey) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := WriteNew(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	if err := WriteNew(certFile, certPEM, 0o644); err != nil {
		os.Remove(keyFile)
		return err
	}
	return nil
}

// WriteNew creates path exclusively with the given mode, writes data and
// syncs. On failure it removes the file it created.
func WriteNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists; refusing to overwrite it", path)
		}
		return err
	}
	// The umask may have narrowed the mode; 0644 for certificates is part
	// of the contract.
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
