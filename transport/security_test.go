package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/pki"
)

// rawClient is a bare quic-go client for sending hand-made frames.
type rawClient struct {
	t    *testing.T
	conn *quic.Conn
}

// rawDial connects to addr with tlsConf from a fresh UDP socket. It returns
// the dial error, if any.
func rawDial(t *testing.T, addr net.Addr, tlsConf *tls.Config) (*rawClient, error) {
	t.Helper()
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	t.Cleanup(func() { tr.Close(); udp.Close() })
	ctx := testCtx(t, 10*time.Second)
	conn, err := tr.Dial(ctx, addr, tlsConf, &quic.Config{HandshakeIdleTimeout: 3 * time.Second, MaxIdleTimeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	return &rawClient{t: t, conn: conn}, nil
}

// request writes data as the whole request on a new stream and returns the
// reply's frame type and body, or the error that ended the exchange.
func (c *rawClient) request(data []byte) (byte, []byte, error) {
	ctx := testCtx(c.t, 10*time.Second)
	str, err := c.conn.OpenStreamSync(ctx)
	if err != nil {
		return 0, nil, err
	}
	str.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := str.Write(data); err != nil {
		return 0, nil, err
	}
	str.Close()
	typ, body, err := readFrame(str, DefaultMaxFrame)
	return typ, body, err
}

// closedWith waits for the connection to be closed by the peer and returns
// the application error code it sent.
func (c *rawClient) closedWith() (quic.ApplicationErrorCode, error) {
	select {
	case <-c.conn.Context().Done():
	case <-time.After(10 * time.Second):
		return 0, errors.New("connection still open")
	}
	var ae *quic.ApplicationError
	if err := context.Cause(c.conn.Context()); !errors.As(err, &ae) || !ae.Remote {
		return 0, err
	}
	return ae.ErrorCode, nil
}

func frameOf(typ byte, body []byte) []byte {
	f := newFrame(len(body))
	f = append(f, body...)
	binary.BigEndian.PutUint32(f, uint32(len(body)))
	f[4] = typ
	return f
}

func batchFrame(b *Batch) []byte {
	return frameOf(frameBatch, appendBatch(nil, b))
}

func TestCorruptFramesCloseTheConnection(t *testing.T) {
	ca := linktest.NewCA(t)
	const maxFrame = 4096
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1")}, func(c *Config) { c.MaxFrame = maxFrame })
	a1 := ca.Bundle("alpha", "a1")
	addr := b1.link.Addr("fiber")

	good := batchFrame(msgBatch("alpha", "bravo", queue.Routine, 1, 2, 16))
	oversizeHeader := frameOf(frameBatch, nil)
	binary.BigEndian.PutUint32(oversizeHeader, maxFrame+1)
	oversize := batchFrame(msgBatch("alpha", "bravo", queue.Routine, 1, 10, 512))
	cases := []struct {
		name string
		data []byte
	}{
		{"unknown type", frameOf(9, []byte{1, 2, 3})},
		{"type zero", frameOf(0, nil)},
		{"garbage body", frameOf(frameBatch, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})},
		{"truncated body", good[:len(good)-3]},
		{"length beyond data", append(frameOf(frameBatch, nil)[:4:4], frameBatch, 1)},
		{"trailing bytes in body", func() []byte {
			body := append(appendBatch(nil, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8)), 0)
			return frameOf(frameBatch, body)
		}()},
		{"data after frame", append(append([]byte{}, good...), 0)},
		{"two frames", append(append([]byte{}, good...), good...)},
		{"header only, oversize length", oversizeHeader},
		{"oversize frame", oversize},
		{"ack as request", frameOf(frameAck, appendAck(nil, &Ack{Last: 1}))},
		{"reply as request", frameOf(frameReply, appendReply(nil, &Reply{}))},
		{"half a header", []byte{0, 0}},
		{"bad precedence", batchFrame(&Batch{Kind: BatchMessages, From: "alpha", To: "bravo", Precedence: 4})},
		{"bad kind", batchFrame(&Batch{Kind: 3, From: "alpha", To: "bravo"})},
		{"huge count", frameOf(frameBatch, append(appendBatch(nil, &Batch{Kind: BatchMessages, From: "alpha", To: "bravo"})[:14], 0xff, 0xff, 0xff, 0x7f))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := b1.h.count()
			cl, err := rawDial(t, addr, a1.ClientConfig(protocols, b1.id))
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			typ, _, err := cl.request(c.data)
			if err == nil {
				t.Fatalf("got a %s reply", frameName(typ))
			}
			code, err := cl.closedWith()
			if err != nil || code != codeProtocol {
				t.Fatalf("connection closed with code %#x, err %v; want %#x", code, err, codeProtocol)
			}
			if got := b1.h.count(); got != before {
				t.Fatalf("handler was called")
			}
		})
	}
	if !b1.logs.contains("peer broke the protocol") {
		t.Error("no log line for the violations")
	}

	// After all that, a well-formed request on a new connection works.
	cl, err := rawDial(t, addr, a1.ClientConfig(protocols, b1.id))
	if err != nil {
		t.Fatal(err)
	}
	typ, body, err := cl.request(good)
	if err != nil || typ != frameAck {
		t.Fatalf("good request: type %d, %v", typ, err)
	}
	if ack, err := decodeAck(body); err != nil || ack.Last != 2 {
		t.Fatalf("ack %+v, %v", ack, err)
	}
	if b1.h.count() != 1 {
		t.Fatalf("handler saw %d requests, want 1", b1.h.count())
	}
}

func TestIdentityViolationsCloseTheConnection(t *testing.T) {
	ca := linktest.NewCA(t)
	b1 := startNode(t, ca, "bravo", "b1", []Peer{listed("alpha", "a1"), listed("bravo", "b2"), listed("charlie", "c1")})
	addr := b1.link.Addr("fiber")
	cases := []struct {
		name     string
		as       *pki.Bundle
		data     []byte
		wantCode quic.ApplicationErrorCode
	}{
		{"From names another site", ca.Bundle("alpha", "a1"),
			batchFrame(msgBatch("charlie", "bravo", queue.Routine, 1, 1, 8)), codeForbidden},
		{"From names the receiver's site", ca.Bundle("alpha", "a1"),
			batchFrame(msgBatch("bravo", "bravo", queue.Routine, 1, 1, 8)), codeForbidden},
		{"To names another site", ca.Bundle("alpha", "a1"),
			batchFrame(msgBatch("alpha", "charlie", queue.Routine, 1, 1, 8)), codeForbidden},
		{"batch from our own site", ca.Bundle("bravo", "b2"),
			batchFrame(msgBatch("bravo", "bravo", queue.Routine, 1, 1, 8)), codeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl, err := rawDial(t, addr, c.as.ClientConfig(protocols, b1.id))
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if typ, _, err := cl.request(c.data); err == nil {
				t.Fatalf("got a %s reply", frameName(typ))
			}
			code, err := cl.closedWith()
			if err != nil || code != c.wantCode {
				t.Fatalf("closed with %#x, %v; want %#x", code, err, c.wantCode)
			}
			if b1.h.count() != 0 {
				t.Fatal("handler was called")
			}
		})
	}
	// The legitimate forms from the same peers are served.
	cl, err := rawDial(t, addr, ca.Bundle("alpha", "a1").ClientConfig(protocols, b1.id))
	if err != nil {
		t.Fatal(err)
	}
	if typ, _, err := cl.request(batchFrame(msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8))); err != nil || typ != frameAck {
		t.Fatalf("batch from alpha: %d %v", typ, err)
	}
	cl, err = rawDial(t, addr, ca.Bundle("bravo", "b2").ClientConfig(protocols, b1.id))
	if err != nil {
		t.Fatal(err)
	}
	if typ, _, err := cl.request(frameOf(frameCall, appendCall(nil, &Call{Op: "x"}))); err != nil || typ != frameReply {
		t.Fatalf("call from b2: %d %v", typ, err)
	}
}

// sameCAOtherDir issues site/node with ca's key in a separate directory, so
// a node name already used in ca.Dir can be issued again for another site.
func sameCAOtherDir(t *testing.T, ca *linktest.CA, site, node string) *pki.Bundle {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		data, err := os.ReadFile(filepath.Join(ca.Dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := pki.Issue(dir, site, node); err != nil {
		t.Fatal(err)
	}
	b, err := pki.LoadDir(dir, node)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandshakeRefusesStrangers(t *testing.T) {
	ca := linktest.NewCA(t)
	a1 := startNode(t, ca, "alpha", "a1", []Peer{listed("bravo", "b1")})
	addr := a1.link.Addr("fiber")
	roots := ca.Bundle("alpha", "a1").Roots

	otherCA := linktest.NewCA(t)
	foreign := otherCA.Bundle("bravo", "b1") // right name, wrong CA
	foreignConf := foreign.ClientConfig(protocols, a1.id)
	foreignConf.RootCAs = roots // it trusts us, so only our refusal can stop it

	cases := []struct {
		name   string
		conf   *tls.Config
		reason string // counted as; "" for refusals made before the certificate check
	}{
		{"certificate from another CA", foreignConf, RejectUnknownCA},
		{"expired certificate", expiredClient(t, ca, "bravo", "b1", a1.id), RejectExpired},
		{"unconfigured node", ca.Bundle("bravo", "b7").ClientConfig(protocols, a1.id), RejectUnknownPeer},
		{"alpha node where bravo b1 is configured", ca.Bundle("alpha", "a9").ClientConfig(protocols, a1.id), RejectUnknownPeer},
		{"node name b1 but site alpha", sameCAOtherDir(t, ca, "alpha", "b1").ClientConfig(protocols, a1.id), RejectUnknownPeer},
		{"no client certificate", func() *tls.Config {
			c := ca.Bundle("bravo", "b1").ClientConfig(protocols, a1.id)
			c.Certificates = nil
			return c
		}(), RejectNoCertificate},
		{"wrong ALPN", ca.Bundle("bravo", "b1").ClientConfig([]string{"other/1"}, a1.id), RejectProtocolVersion},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := a1.link.HandshakeRejections()
			cl, err := rawDial(t, addr, c.conf)
			if err == nil {
				// TLS 1.3: the client may finish before the server
				// has checked its certificate; then the server
				// closes the connection and no request gets through.
				if typ, _, err := cl.request(batchFrame(msgBatch("bravo", "alpha", queue.Routine, 1, 1, 8))); err == nil {
					t.Fatalf("request answered with %s", frameName(typ))
				}
				select {
				case <-cl.conn.Context().Done():
				case <-time.After(10 * time.Second):
					t.Fatal("connection not closed")
				}
				err = context.Cause(cl.conn.Context())
			}
			// The refusal is the server's, at the TLS layer.
			var te *quic.TransportError
			if !errors.As(err, &te) || !te.Remote || te.ErrorCode < 0x100 || te.ErrorCode > 0x1ff {
				t.Fatalf("want a TLS alert from the server, got %v", err)
			}
			if a1.h.count() != 0 {
				t.Fatal("handler was called")
			}
			// Counted once, under its reason.
			after := a1.link.HandshakeRejections()
			for _, r := range rejectReasons {
				want := before[r]
				if r == c.reason {
					want++
				}
				if after[r] != want {
					t.Errorf("rejections[%s] = %d, want %d", r, after[r], want)
				}
			}
			if c.reason != "" && !a1.logs.contains("reason="+c.reason) {
				t.Errorf("no log line for reason %s", c.reason)
			}
		})
	}
	// Three unknown_peer refusals from one host: one log line (rate limit).
	if n := a1.logs.count("remote=127.0.0.1 reason=unknown_peer"); n != 1 {
		t.Errorf("%d log lines for the unknown_peer refusals from 127.0.0.1, want 1", n)
	}

	// The same through a Link: a stranger's SendBatch never arrives.
	stranger := startNode(t, ca, "bravo", "b8", []Peer{peerOf(a1)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := stranger.link.SendBatch(ctx, msgBatch("bravo", "alpha", queue.Routine, 1, 1, 8)); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("stranger's SendBatch: %v", err)
	}
	if a1.h.count() != 0 {
		t.Fatal("handler was called")
	}

	// And the configured b1 gets through.
	b1 := startNode(t, ca, "bravo", "b1", []Peer{peerOf(a1)})
	if _, err := b1.link.SendBatch(testCtx(t, 10*time.Second), msgBatch("bravo", "alpha", queue.Routine, 1, 1, 8)); err != nil {
		t.Fatalf("configured peer: %v", err)
	}
}

func TestDiallerPinsServerIdentity(t *testing.T) {
	ca := linktest.NewCA(t)
	// b2 listens where a1 believes b1 is.
	b2 := startNode(t, ca, "bravo", "b2", []Peer{listed("alpha", "a1")})
	impostor := Peer{Site: "bravo", Node: "b1", Addrs: map[string]string{"fiber": b2.link.Addr("fiber").String()}}
	a1 := startNode(t, ca, "alpha", "a1", []Peer{impostor})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := a1.link.SendBatch(ctx, msgBatch("alpha", "bravo", queue.Routine, 1, 1, 8))
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("SendBatch to an impostor: %v", err)
	}
	if b2.h.count() != 0 {
		t.Fatal("impostor received the batch")
	}
}

func TestReadFrameLimits(t *testing.T) {
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte{0, 0, 0x10, 0x01, frameBatch})
		pw.Close()
	}()
	_, _, err := readFrame(pr, 4096)
	if _, ok := asViolation(err); !ok {
		t.Fatalf("oversize header: %v", err)
	}
}

// expiredClient is a client config for site/node whose certificate, signed
// by ca, expired an hour ago.
func expiredClient(t *testing.T, ca *linktest.CA, site, node string, server pki.Identity) *tls.Config {
	t.Helper()
	caTLS, err := tls.LoadX509KeyPair(filepath.Join(ca.Dir, pki.CACertFile), filepath.Join(ca.Dir, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caTLS.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := pki.Identity{Site: site, Node: node}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: node, Organization: []string{site}},
		NotBefore:    time.Now().Add(-48 * time.Hour),
		NotAfter:     time.Now().Add(-time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{id.URI()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caTLS.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	conf := ca.Bundle("bravo", "b2").ClientConfig(protocols, server)
	conf.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}}
	return conf
}

func TestRejectLogRateLimits(t *testing.T) {
	logs := &logBuf{}
	r := newRejectLog(slog.New(slog.NewTextHandler(logs, nil)))
	a := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
	b := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 4000}
	notAllowed := fmt.Errorf("%w: x", pki.ErrNotAllowed)
	t0 := time.Now()
	for i := range 50 {
		a.Port = 4000 + i // another port is the same host
		r.note(a, notAllowed, t0.Add(time.Duration(i)*time.Millisecond))
	}
	r.note(b, notAllowed, t0)
	r.note(a, pki.ErrNoClientCert, t0)
	if got := logs.count("refused a handshake"); got != 3 {
		t.Fatalf("%d lines, want 3 (one per host and reason):\n%s", got, logs.buf.String())
	}
	r.note(a, notAllowed, t0.Add(rejectLogEvery))
	if !logs.contains("remote=192.0.2.1 reason=unknown_peer err=\"pki: peer not allowed: x\" suppressed=49") {
		t.Fatalf("no line with the suppressed count:\n%s", logs.buf.String())
	}
	got := r.snapshot()
	if got[RejectUnknownPeer] != 52 || got[RejectNoCertificate] != 1 || got[RejectExpired] != 0 || len(got) != len(rejectReasons) {
		t.Fatalf("counts %v", got)
	}
	// The memory of hosts is bounded.
	for i := range 3 * maxRejectKeys {
		r.note(&net.UDPAddr{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Port: 1}, notAllowed, t0.Add(rejectLogEvery))
	}
	if n := len(r.recent); n > maxRejectKeys+1 {
		t.Fatalf("%d hosts remembered", n)
	}
}
