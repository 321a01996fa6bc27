package consensus

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/hotline-link/hotline/internal/alpn"
)

// Versions of the Raft stream protocol, as TLS application protocols
// (ALPN). The caller puts Protocols in Config.ServerTLS's and ClientTLS's
// NextProtos; the accepting node uses the first of its list the dialling
// node offers (see internal/alpn) and refuses a node that offers none.
//
// A version may change the framing, or only announce what the node
// understands: RaftProtocol2 has the framing of RaftProtocol1 and tells
// the leader that the node reads the state machine's newer formats (the
// caller's to define; see [Node.PeerProtocol]).
const (
	RaftProtocol1 = "hotline-raft/1"
	RaftProtocol2 = "hotline-raft/2"

	raftProtocolPrefix = "hotline-raft/"
)

// Protocols returns the Raft protocol versions this build speaks, highest
// first.
func Protocols() []string { return []string{RaftProtocol2, RaftProtocol1} }

// ProtocolVersion is N of a Raft protocol name "hotline-raft/N"; ok is
// false for any other name.
func ProtocolVersion(proto string) (n int, ok bool) { return alpn.Version(proto, raftProtocolPrefix) }

// peerProto is the protocol version negotiated by the latest dial of an
// address, and when.
type peerProto struct {
	version int
	at      time.Time
}

// maxPeerProtos bounds the addresses whose dial is remembered: Raft dials
// only the servers of its configuration, so this is never reached in use.
const maxPeerProtos = 256

// notePeerProto records the protocol negotiated by a dial of addr.
func (s *streamLayer) notePeerProto(addr, proto string, now time.Time) {
	v, ok := ProtocolVersion(proto)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, known := s.protos[addr]; !known && len(s.protos) >= maxPeerProtos {
		clear(s.protos)
	}
	s.protos[addr] = peerProto{version: v, at: now}
}

// PeerProtocol returns the Raft protocol version negotiated by this node's
// latest successful dial of addr (a ServerAddress of the Raft
// configuration), and when it was dialled. ok is false when this node has
// not dialled addr since Open (a follower dials only when it must: the
// leader dials every server it replicates to) or the dial negotiated no
// hotline-raft version.
//
// The leader can gate a change on it: a version every server of the
// configuration negotiated since it last restarted is one they all speak.
func (n *Node) PeerProtocol(addr string) (version int, at time.Time, ok bool) {
	s := n.stream
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.protos[addr]
	return p.version, p.at, ok
}

// mismatchKey carries a *mismatchSlot from handshake to the TLS config's
// GetConfigForClient through the handshake's context.
type mismatchKey struct{}

// mismatchSlot is set by GetConfigForClient when the client offered none
// of our versions.
type mismatchSlot struct {
	set     bool
	offered []string
}

// versionedServerTLS wraps the caller's server config so that a client
// offering none of its NextProtos is recorded in the handshake's
// mismatchSlot, then refused: by crypto/tls with the alert
// no_application_protocol, or here when it offered no protocol at all
// (crypto/tls would accept that over TCP).
func versionedServerTLS(base *tls.Config) *tls.Config {
	if base == nil || len(base.NextProtos) == 0 {
		return base
	}
	c := base.Clone()
	inner := base.GetConfigForClient
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		cfg := base
		if inner != nil {
			got, err := inner(hello)
			if err != nil {
				return nil, err
			}
			if got != nil {
				cfg = got
			}
		}
		if _, ok := alpn.Common(cfg.NextProtos, hello.SupportedProtos); ok || len(cfg.NextProtos) == 0 {
			return cfg, nil
		}
		if slot, _ := hello.Context().Value(mismatchKey{}).(*mismatchSlot); slot != nil {
			slot.set, slot.offered = true, slices.Clone(hello.SupportedProtos)
		}
		if len(hello.SupportedProtos) == 0 {
			return nil, fmt.Errorf("consensus: client offered no protocol version; this node speaks %s", alpn.List(cfg.NextProtos))
		}
		return cfg, nil
	}
	return c
}

// withMismatchSlot returns ctx carrying a fresh slot.
func withMismatchSlot(ctx context.Context) (context.Context, *mismatchSlot) {
	slot := &mismatchSlot{}
	return context.WithValue(ctx, mismatchKey{}, slot), slot
}

// rejectProtocol counts and logs (rate-limited) a client at remote that
// offered none of our versions, and reports it to the mismatch hook.
func (s *streamLayer) rejectProtocol(remote net.Addr, offered []string) {
	ours := s.serverTLS.NextProtos
	s.rejectLine(remote, "protocol", "consensus: rejected raft connection: no common protocol version",
		"offered", alpn.List(offered), "speaks", alpn.List(ours))
	if s.onMismatch != nil {
		s.onMismatch(remote.String(), offered, slices.Clone(ours))
	}
}

// dialRefused turns a dial error that is the server's refusal of every
// version we offered into an error saying so, and reports it to the
// mismatch hook.
func (s *streamLayer) dialRefused(addr string, offers []string, err error) error {
	if !alpn.Refused(err) {
		return fmt.Errorf("consensus: dial %s: %w", addr, err)
	}
	if s.onMismatch != nil {
		s.onMismatch(addr, slices.Clone(offers), nil)
	}
	return fmt.Errorf("consensus: dial %s: the node there refused every protocol version we offer (%s): it runs a release that speaks none of them; its log names its versions: %w: %w",
		addr, alpn.List(offers), ErrProtocolVersion, err)
}
