package transport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/hotline-link/hotline/internal/alpn"
	"github.com/hotline-link/hotline/transport/pki"
)

// Reasons a handshake is refused, as counted by HandshakeRejections.
const (
	RejectNoCertificate = "no_certificate"  // the client offered none
	RejectUnknownCA     = "unknown_ca"      // not issued by our CA
	RejectExpired       = "expired"         // expired or not yet valid
	RejectBadCert       = "bad_certificate" // other verification failures
	RejectNoIdentity    = "no_identity"     // valid, but names no hotline site/node
	RejectUnknownPeer   = "unknown_peer"    // a node not in Config.Peers
	// RejectProtocolVersion: the client offered none of the protocol
	// versions we speak (Protocols). Counted before the certificate
	// check, so the client may be anyone.
	RejectProtocolVersion = "protocol_version"
)

var rejectReasons = []string{RejectNoCertificate, RejectUnknownCA, RejectExpired, RejectBadCert, RejectNoIdentity, RejectUnknownPeer, RejectProtocolVersion}

// rejectReason classifies an error of pki.Bundle.ServerConfig's check.
func rejectReason(err error) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.Is(err, pki.ErrNoClientCert):
		return RejectNoCertificate
	case errors.As(err, &ua):
		return RejectUnknownCA
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return RejectExpired
	case errors.Is(err, pki.ErrUntrusted):
		return RejectBadCert
	case errors.Is(err, pki.ErrNoIdentity):
		return RejectNoIdentity
	case errors.Is(err, pki.ErrNotAllowed):
		return RejectUnknownPeer
	}
	return RejectBadCert
}

// rejectLogEvery is the least time between two log lines for one remote
// host and reason; the lines in between are counted and reported with the
// next one.
const rejectLogEvery = 10 * time.Second

// maxRejectKeys bounds the (host, reason) pairs rejectLog remembers; when
// it is full, pairs idle for rejectLogEvery are forgotten, and if none is,
// new pairs share one overflow entry.
const maxRejectKeys = 1024

// rejectLog counts refused handshakes by reason and logs them, at most one
// line per remote host and reason per rejectLogEvery. Safe for concurrent
// use.
type rejectLog struct {
	log *slog.Logger

	mu     sync.Mutex
	counts map[string]uint64       // by reason, every reason present
	recent map[rejectKey]*rejectRL // by (host, reason)
}

type rejectKey struct{ host, reason string }

type rejectRL struct {
	logged     time.Time // last line written
	suppressed int       // refusals since, not logged
}

func newRejectLog(log *slog.Logger) *rejectLog {
	r := &rejectLog{log: log, counts: make(map[string]uint64), recent: make(map[rejectKey]*rejectRL)}
	for _, reason := range rejectReasons {
		r.counts[reason] = 0
	}
	return r
}

// note records one handshake from remote (nil if unknown) refused by the
// certificate check.
func (r *rejectLog) note(remote net.Addr, err error, now time.Time) {
	r.record(remote, rejectReason(err), now, "err", err)
}

// noteProtocol records one handshake from remote refused because it
// offered none of ours.
func (r *rejectLog) noteProtocol(remote net.Addr, offered, ours []string, now time.Time) {
	addr := "unknown"
	if remote != nil {
		addr = remote.String()
	}
	r.record(remote, RejectProtocolVersion, now, "addr", addr,
		"offered", alpn.List(offered), "speaks", alpn.List(ours))
}

// record counts one refusal for reason and logs it with attrs, unless a
// line for the same host and reason was written less than rejectLogEvery
// ago.
func (r *rejectLog) record(remote net.Addr, reason string, now time.Time, attrs ...any) {
	host := "unknown"
	if remote != nil {
		host = remote.String()
		if h, _, e := net.SplitHostPort(host); e == nil {
			host = h
		}
	}
	r.mu.Lock()
	r.counts[reason]++
	k := rejectKey{host, reason}
	e, ok := r.recent[k]
	if !ok {
		if len(r.recent) >= maxRejectKeys {
			r.pruneLocked(now)
		}
		if len(r.recent) >= maxRejectKeys {
			k = rejectKey{"(many hosts)", reason}
			e, ok = r.recent[k]
		}
		if !ok {
			e = &rejectRL{}
			r.recent[k] = e
		}
	}
	if !e.logged.IsZero() && now.Sub(e.logged) < rejectLogEvery {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := e.suppressed
	e.logged, e.suppressed = now, 0
	r.mu.Unlock()
	args := append([]any{"remote", k.host, "reason", reason}, attrs...)
	args = append(args, "suppressed", suppressed, "suppressed_window", rejectLogEvery.String())
	r.log.Warn("transport: refused a handshake", args...)
}

func (r *rejectLog) pruneLocked(now time.Time) {
	for k, e := range r.recent {
		if now.Sub(e.logged) >= rejectLogEvery {
			delete(r.recent, k)
		}
	}
}

func (r *rejectLog) snapshot() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]uint64, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// HandshakeRejections returns how many handshakes this Link has refused
// since New, by reason (the Reject* constants; every reason is present).
// A client offering none of our protocol versions is counted under
// RejectProtocolVersion. Refusals crypto/tls makes by itself (no common
// TLS version or key exchange; a client that cannot prove it holds its
// certificate's key) are not seen and not counted.
func (l *Link) HandshakeRejections() map[string]uint64 { return l.rejects.snapshot() }

// remoteKey carries a connection's remote address from
// quic.Transport.ConnContext to the TLS config of its handshake.
type remoteKey struct{}

func withRemote(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	return context.WithValue(ctx, remoteKey{}, info.RemoteAddr), nil
}

// serverTLS is the TLS config a path listens with: pki's server config,
// whose refusals are counted and logged with the remote address. A client
// offering none of our protocol versions is noted here (counted, logged,
// reported to OnProtocolMismatch) and refused by crypto/tls with the alert
// no_application_protocol.
func (l *Link) serverTLS(path string) *tls.Config {
	base := l.cfg.TLS.ServerConfig(protocols, l.allow)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			remote, _ := hello.Context().Value(remoteKey{}).(net.Addr)
			if _, ok := alpn.Common(base.NextProtos, hello.SupportedProtos); !ok {
				l.protocolMismatch(remote, hello.SupportedProtos)
			}
			c := base.Clone()
			verify := base.VerifyConnection
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				err := verify(cs)
				if err != nil {
					l.rejects.note(remote, err, time.Now())
				}
				return err
			}
			return c, nil
		},
	}
}
