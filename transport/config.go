package transport

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"time"

	"github.com/hotline-link/hotline/transport/pki"
)

// Versions of the link protocol, as TLS application protocols (ALPN). A
// change to the frame format gets a new version: a constant here and its
// name at the head of protocols.
const (
	// Protocol1 is the frame format described in the package doc.
	Protocol1 = "hotline/1"
)

// protocols are the versions this build speaks, highest first. Both ends
// offer theirs; the side that accepts the connection uses the first of its
// list the other offers (see internal/alpn), and refuses a peer that
// offers none (RejectProtocolVersion, Config.OnProtocolMismatch).
var protocols = []string{Protocol1}

// Protocols returns the link protocol versions this build speaks, highest
// first.
func Protocols() []string { return slices.Clone(protocols) }

// Defaults for zero Config fields.
const (
	DefaultMaxFrame         = 64 << 20
	DefaultHandshakeTimeout = 3 * time.Second
	DefaultIdleTimeout      = 10 * time.Second
	DefaultKeepAlive        = 1 * time.Second
	DefaultProbeInterval    = 100 * time.Millisecond
	DefaultProbeMisses      = 5
	DefaultMaxStreams       = 256
	DefaultRequestTimeout   = 10 * time.Second
	DefaultHandlerTimeout   = 60 * time.Second
	// DefaultMaxBuffered is the least default for Config.MaxBuffered;
	// the default is the larger of this and 4 × MaxFrame.
	DefaultMaxBuffered = 64 << 20
)

// Limits of the request-serving knobs.
const (
	maxMaxStreams = 4096
	// minRequestRate is the slowest a request body may arrive: a
	// request's deadline grows by one second per this many bytes.
	minRequestRate = 1 << 20
	// maxConnsPerPeerPath bounds the connections one peer node may hold
	// open to us on one path: one in use plus one being replaced. Beyond
	// it the oldest is closed.
	maxConnsPerPeerPath = 2
	// QUIC flow-control windows for data received and not yet read: per
	// stream and per connection.
	maxStreamWindow = 6 << 20
	maxConnWindow   = 16 << 20
)

// Bounds of the probe settings.
const (
	minProbeInterval = 10 * time.Millisecond
	maxProbeMisses   = 100
)

// maxMaxFrame keeps MaxFrame within the 4-byte length field with room to
// spare.
const maxMaxFrame = math.MaxInt32

// minMaxFrame leaves room for acks, replies and their error texts.
const minMaxFrame = 1024

// Path is a named network route. Listen is the local UDP host:port this node
// binds for the path (port 0 picks one; see Link.Addr). Traffic on the path,
// in and out, uses that socket.
type Path struct {
	Name, Listen string
}

// Peer is a node this node may talk to, with its UDP address per path name.
// A path the peer has no address for is not used to reach it.
type Peer struct {
	Site, Node string
	Addrs      map[string]string
}

// Credentials make the TLS configs of the link: *pki.Bundle and
// *pki.Keyring implement it.
type Credentials interface {
	// Self is this node's identity; it never changes.
	Self() pki.Identity
	// ServerConfig and ClientConfig take the application protocols
	// (ALPN) in order of preference, highest version first.
	ServerConfig(protos []string, allow func(pki.Identity) error) *tls.Config
	ClientConfig(protos []string, expect pki.Identity) *tls.Config
}

// Config configures a Link. TLS, Paths and Handler are required.
type Config struct {
	// TLS holds this node's certificate, key and CA: a *pki.Bundle, or a
	// *pki.Keyring whose material can be replaced while the link runs
	// (new connections use the new material). Its identity names this
	// node and its site.
	TLS Credentials
	// Paths in operator preference order; at least one.
	Paths []Path
	// Peers lists every node this node may talk to: the other sites' nodes
	// and its own site's other nodes. Only they may connect.
	Peers []Peer
	// Handler serves batches from peers.
	Handler Handler
	// Calls is the table of the calls this node serves, each with the
	// scope it may be called from; nil refuses every call.
	Calls *Routes
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
	// MaxFrame is the largest frame body accepted or sent, in bytes;
	// 0 means DefaultMaxFrame (64 MiB).
	MaxFrame int
	// HandshakeTimeout, IdleTimeout and KeepAlive tune QUIC; 0 means 3s,
	// 10s and 1s. A connection without any packet from the peer for
	// IdleTimeout is dead; keepalives keep idle connections alive.
	HandshakeTimeout, IdleTimeout, KeepAlive time.Duration
	// ProbeInterval and ProbeMisses set failure detection, BFD-style:
	// every (peer, path) connection is probed each ProbeInterval, and one
	// with no probe answered for ProbeInterval × ProbeMisses is declared
	// down. 0 means 100ms and 5 (detection within 500ms).
	ProbeInterval time.Duration
	ProbeMisses   int

	// Limits on what peers can make this node hold (see the README's
	// "Limits and memory budget"). 0 means the default.
	//
	// MaxStreams is how many requests one connection may have open at
	// once (QUIC's MaxIncomingStreams); a peer beyond it waits for one to
	// finish. Default 256.
	MaxStreams int
	// MaxBuffered is how many bytes of request frames the Link receives
	// and serves at once, over all connections: a request reserves its
	// claimed length before its body is read and waits while the budget
	// is spent. At least MaxFrame; default the larger of 64 MiB and
	// 4 × MaxFrame.
	MaxBuffered int64
	// RequestTimeout bounds the arrival of a request: its whole frame
	// must arrive within RequestTimeout plus one second per MiB, or the
	// stream is reset (stream error 0x21). Default 10s.
	RequestTimeout time.Duration
	// HandlerTimeout bounds serving a request: the Handler's context
	// ends after it and the reply must have been written by then.
	// Default 60s.
	HandlerTimeout time.Duration

	// OnProtocolMismatch, if set, is called when a handshake fails for
	// want of a common protocol version (Protocols), at both ends:
	//   - a peer dialled us offering none of ours: remote is its UDP
	//     address (it is not authenticated yet: the refusal comes before
	//     the certificate check), offered its offer, ours our list;
	//   - a peer we dialled refused every version we offered: remote is
	//     "SITE/NODE at ADDRESS", offered our list, ours nil (its list is
	//     in its log).
	// It is called once per refused handshake, on the handshake's
	// goroutine: it must not block. The lists are the caller's to keep.
	OnProtocolMismatch func(remote string, offered, ours []string)
}

// peerSpec is a validated Peer with resolved addresses, by path name.
type peerSpec struct {
	id    pki.Identity
	addrs map[string]*net.UDPAddr
}

// validate checks cfg, fills in defaults and resolves peer addresses. Errors
// name the bad field.
func (cfg *Config) validate() ([]peerSpec, error) {
	if cfg.TLS == nil {
		return nil, fmt.Errorf("transport: config: TLS is nil")
	}
	self := cfg.TLS.Self()
	if err := self.Validate(); err != nil {
		return nil, fmt.Errorf("transport: config: TLS identity: %w", err)
	}
	if cfg.Handler == nil {
		return nil, fmt.Errorf("transport: config: Handler is nil")
	}
	if len(cfg.Paths) == 0 {
		return nil, fmt.Errorf("transport: config: Paths: at least one path is required")
	}
	pathNames := make(map[string]bool, len(cfg.Paths))
	for i, p := range cfg.Paths {
		if err := pki.ValidName(p.Name); err != nil {
			return nil, fmt.Errorf("transport: config: Paths[%d].Name: %w", i, err)
		}
		if pathNames[p.Name] {
			return nil, fmt.Errorf("transport: config: Paths[%d]: duplicate path name %q", i, p.Name)
		}
		pathNames[p.Name] = true
		if p.Listen == "" {
			return nil, fmt.Errorf("transport: config: Paths[%d] (%s).Listen is empty", i, p.Name)
		}
	}
	var specs []peerSpec
	seen := make(map[pki.Identity]bool, len(cfg.Peers))
	for i, p := range cfg.Peers {
		id := pki.Identity{Site: p.Site, Node: p.Node}
		if err := id.Validate(); err != nil {
			return nil, fmt.Errorf("transport: config: Peers[%d]: %w", i, err)
		}
		if id == self {
			return nil, fmt.Errorf("transport: config: Peers[%d]: %s is this node", i, id)
		}
		if seen[id] {
			return nil, fmt.Errorf("transport: config: Peers[%d]: duplicate peer %s", i, id)
		}
		seen[id] = true
		if len(p.Addrs) == 0 {
			return nil, fmt.Errorf("transport: config: Peers[%d] (%s).Addrs: no address on any path", i, id)
		}
		spec := peerSpec{id: id, addrs: make(map[string]*net.UDPAddr, len(p.Addrs))}
		for name, a := range p.Addrs {
			if !pathNames[name] {
				return nil, fmt.Errorf("transport: config: Peers[%d] (%s).Addrs: unknown path %q", i, id, name)
			}
			ua, err := net.ResolveUDPAddr("udp", a)
			if err != nil {
				return nil, fmt.Errorf("transport: config: Peers[%d] (%s).Addrs[%s]: %w", i, id, name, err)
			}
			if ua.Port == 0 {
				return nil, fmt.Errorf("transport: config: Peers[%d] (%s).Addrs[%s]: %q has no port", i, id, name, a)
			}
			spec.addrs[name] = ua
		}
		specs = append(specs, spec)
	}
	if cfg.MaxFrame < 0 || cfg.MaxFrame > maxMaxFrame {
		return nil, fmt.Errorf("transport: config: MaxFrame %d out of range (0 for the default, at most %d)", cfg.MaxFrame, maxMaxFrame)
	}
	if cfg.MaxFrame == 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.MaxFrame < minMaxFrame {
		return nil, fmt.Errorf("transport: config: MaxFrame %d is too small (at least %d)", cfg.MaxFrame, minMaxFrame)
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"HandshakeTimeout", &cfg.HandshakeTimeout, DefaultHandshakeTimeout},
		{"IdleTimeout", &cfg.IdleTimeout, DefaultIdleTimeout},
		{"KeepAlive", &cfg.KeepAlive, DefaultKeepAlive},
		{"RequestTimeout", &cfg.RequestTimeout, DefaultRequestTimeout},
		{"HandlerTimeout", &cfg.HandlerTimeout, DefaultHandlerTimeout},
	} {
		if *d.v < 0 {
			return nil, fmt.Errorf("transport: config: %s is negative (%v)", d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	switch {
	case cfg.ProbeInterval == 0:
		cfg.ProbeInterval = DefaultProbeInterval
	case cfg.ProbeInterval < minProbeInterval:
		return nil, fmt.Errorf("transport: config: ProbeInterval %v is below the minimum %v", cfg.ProbeInterval, minProbeInterval)
	}
	switch {
	case cfg.ProbeMisses == 0:
		cfg.ProbeMisses = DefaultProbeMisses
	case cfg.ProbeMisses < 0 || cfg.ProbeMisses > maxProbeMisses:
		return nil, fmt.Errorf("transport: config: ProbeMisses %d out of range (1 to %d)", cfg.ProbeMisses, maxProbeMisses)
	}
	switch {
	case cfg.MaxStreams == 0:
		cfg.MaxStreams = DefaultMaxStreams
	case cfg.MaxStreams < 0 || cfg.MaxStreams > maxMaxStreams:
		return nil, fmt.Errorf("transport: config: MaxStreams %d out of range (1 to %d)", cfg.MaxStreams, maxMaxStreams)
	}
	switch {
	case cfg.MaxBuffered == 0:
		cfg.MaxBuffered = max(DefaultMaxBuffered, 4*int64(cfg.MaxFrame))
	case cfg.MaxBuffered < int64(cfg.MaxFrame):
		return nil, fmt.Errorf("transport: config: MaxBuffered %d is below MaxFrame %d (one frame must fit)", cfg.MaxBuffered, cfg.MaxFrame)
	}
	if cfg.KeepAlive >= cfg.IdleTimeout {
		return nil, fmt.Errorf("transport: config: KeepAlive (%v) must be shorter than IdleTimeout (%v)", cfg.KeepAlive, cfg.IdleTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return specs, nil
}
