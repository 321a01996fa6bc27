package transport

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/hotline-link/hotline/internal/alpn"
	"github.com/hotline-link/hotline/transport/pki"
)

// Protocol versions on the link. Each end offers Protocols; the accepting
// end uses the first of its list the dialler offers. Neither end needs
// another to upgrade with it: a build that adds hotline/2 keeps hotline/1
// in its list for as long as peers of the previous release may dial or be
// dialled.

// ErrProtocolVersion is the error (wrapped) of a dial the peer refused
// because it speaks none of the protocol versions we offer.
var ErrProtocolVersion = errors.New("transport: no common protocol version")

// versionRefusal is a dial refused for want of a common version.
type versionRefusal struct {
	peer   pki.Identity
	offers []string
	cause  error
}

func (e *versionRefusal) Error() string {
	return fmt.Sprintf("peer %s refused every protocol version we offer (%s): it runs a release that speaks none of them; its log names its versions",
		e.peer, alpn.List(e.offers))
}

func (e *versionRefusal) Unwrap() []error { return []error{ErrProtocolVersion, e.cause} }

// cryptoErrorNoALPN is QUIC's CRYPTO_ERROR for the TLS alert
// no_application_protocol.
const cryptoErrorNoALPN = quic.TransportErrorCode(0x100 + uint64(alpn.NoApplicationProtocol))

// versionRefused reports whether err, from quic.Transport.Dial, is the
// peer's refusal of every version offered.
func versionRefused(err error) bool {
	var te *quic.TransportError
	return errors.As(err, &te) && te.Remote && te.ErrorCode == cryptoErrorNoALPN
}

// dialRefused turns a dial error of pp that is a version refusal into a
// versionRefusal, and reports it to OnProtocolMismatch; other errors are
// returned as they are.
func (l *Link) dialRefused(pp *peerPath, err error) error {
	if err == nil || !versionRefused(err) {
		return err
	}
	offers := slices.Clone(pp.tls.NextProtos)
	if h := l.cfg.OnProtocolMismatch; h != nil {
		h(fmt.Sprintf("%s at %s", pp.peer, pp.addr), offers, nil)
	}
	return &versionRefusal{peer: pp.peer, offers: offers, cause: err}
}

// protocolMismatch notes a client at remote that offered none of our
// versions: counted, logged (rate-limited) and reported.
func (l *Link) protocolMismatch(remote net.Addr, offered []string) {
	l.rejects.noteProtocol(remote, offered, protocols, time.Now())
	if h := l.cfg.OnProtocolMismatch; h != nil {
		addr := "unknown"
		if remote != nil {
			addr = remote.String()
		}
		h(addr, slices.Clone(offered), Protocols())
	}
}
