package consensus

import (
	"context"
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
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

// dialledPeer is what this node's open dialled connections to one
// address negotiated: the version of each, and when the latest was
// dialled.
type dialledPeer struct {
	open map[*dialledConn]int // open connection → negotiated version
	at   time.Time            // the latest successful dial
}

// maxPeerProtos bounds the addresses whose dials are remembered: Raft
// dials only the servers of its configuration, so this is never reached
// in use.
const maxPeerProtos = 256

// dialledConn is a Raft connection this node dialled. While it is open,
// the protocol it negotiated counts for PeerProtocol; closing it (Raft
// closes a connection once an RPC on it fails, as when the peer stops)
// takes it back.
type dialledConn struct {
	*tls.Conn
	s    *streamLayer
	addr string
	once sync.Once
}

func (c *dialledConn) Close() error {
	c.once.Do(func() { c.s.forgetDial(c.addr, c) })
	return c.Conn.Close()
}

// noteDial records the protocol c negotiated with addr, and returns the
// connection to hand to Raft: c itself if it negotiated no hotline-raft
// version (nothing recorded), else c wrapped so that closing it forgets
// the record.
func (s *streamLayer) noteDial(addr string, c *tls.Conn, now time.Time) net.Conn {
	v, ok := ProtocolVersion(c.ConnectionState().NegotiatedProtocol)
	if !ok {
		return c
	}
	d := &dialledConn{Conn: c, s: s, addr: addr}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.protos[addr]
	if p == nil {
		if len(s.protos) >= maxPeerProtos {
			return c // not counted: PeerProtocol stays conservative
		}
		p = &dialledPeer{open: map[*dialledConn]int{}}
		s.protos[addr] = p
	}
	p.open[d] = v
	p.at = now
	return d
}

// forgetDial drops a closed connection's record.
func (s *streamLayer) forgetDial(addr string, c *dialledConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.protos[addr]; p != nil {
		delete(p.open, c)
		if len(p.open) == 0 {
			delete(s.protos, addr)
		}
	}
}

// PeerProtocol returns the Raft protocol version that this node's open
// dialled connections to addr (a ServerAddress of the Raft configuration)
// negotiated — the lowest, if they differ — and when the latest of them
// was dialled. ok is false while this node holds no open connection it
// dialled to addr: before it first dials it (a follower dials only when it
// must; the leader dials every server it replicates to), and from the
// moment Raft closes the last one, as it does once an RPC fails because
// the peer stopped.
//
// The leader can gate a change on it: a version every server of the
// configuration negotiated on a connection still open is one they all
// speak now. A peer that stopped a moment ago may still count until
// Raft's next RPC to it fails (a heartbeat interval).
func (n *Node) PeerProtocol(addr string) (version int, at time.Time, ok bool) {
	return n.stream.peerProtocol(addr)
}

// peerProtocol is PeerProtocol of the stream layer.
func (s *streamLayer) peerProtocol(addr string) (version int, at time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.protos[addr]
	if p == nil || len(p.open) == 0 {
		return 0, time.Time{}, false
	}
	version = math.MaxInt
	for _, v := range p.open {
		version = min(version, v)
	}
	return version, p.at, true
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
