package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"github.com/hotline-link/hotline/transport/pki"
)

// Link is this node's end of the hotline link: one UDP socket and QUIC
// transport per path, listening for peers and dialling them. All methods
// are safe for concurrent use.
//
// Lifecycle:
//
//	New ──> open (accepting; dialling lazily) ──Close──> closed
//
// Close is idempotent. After Close every method returns ErrClosed or an
// error wrapping it.
type Link struct {
	cfg   Config
	self  pki.Identity
	log   *slog.Logger
	qconf *quic.Config

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	closed atomic.Bool
	once   sync.Once
	wg     sync.WaitGroup // accept loops, connection servers, stream handlers, dials

	endpoints []*endpoint            // in path preference order
	byPath    map[string]*endpoint   // by path name
	peers     map[pki.Identity]*peer // every configured peer
	order     []*peer                // peers in config order
	sites     map[string][]*peer     // peers by site, config order

	evMu sync.Mutex
	ev   chan struct{} // closed and replaced whenever a dial ends

	budget   *budget       // bytes of request frames being received or served
	serving  atomic.Int64  // requests (inbound streams) being served
	timeouts atomic.Uint64 // requests reset because they arrived too slowly
	rejects  *rejectLog    // refused handshakes

	mu        sync.Mutex
	preferred map[string]string           // site → node set by SetPreferred
	lastAcked map[string]*peerPath        // site → (node, path) that last acked a batch
	inbound   map[*quic.Conn]*inboundConn // connections peers dialled to us
}

// HandlerFunc is a function that serves batches, as a Handler.
type HandlerFunc func(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error)

// HandleBatch calls f.
func (f HandlerFunc) HandleBatch(ctx context.Context, from pki.Identity, b *Batch) (*Ack, error) {
	return f(ctx, from, b)
}

// inboundConn is a connection a peer dialled to us.
type inboundConn struct {
	ep   *endpoint
	peer pki.Identity
	seq  uint64 // accept order, to find a peer's oldest connection
}

// endpoint is one path's local side: its socket, QUIC transport and listener,
// and the path's administrative state on this node.
type endpoint struct {
	name  string
	udp   *net.UDPConn
	gate  *gatedConn
	tr    *quic.Transport
	ln    *quic.Listener
	admin atomic.Int32 // an AdminMode
}

// peer is a configured remote node.
type peer struct {
	id    pki.Identity
	tls   *tls.Config // client config pinned to id
	paths []*peerPath // in path preference order; only paths with an address
}

// New validates cfg, binds one UDP socket and QUIC transport per path and
// starts accepting connections from the configured peers. Connections to
// peers are dialled lazily. Errors name the bad config field or the path
// that could not bind.
func New(cfg Config) (*Link, error) {
	specs, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	l := &Link{
		cfg:       cfg,
		self:      cfg.TLS.Self(),
		log:       cfg.Logger.With("node", cfg.TLS.Self().String()),
		byPath:    make(map[string]*endpoint),
		peers:     make(map[pki.Identity]*peer),
		sites:     make(map[string][]*peer),
		preferred: make(map[string]string),
		lastAcked: make(map[string]*peerPath),
		inbound:   make(map[*quic.Conn]*inboundConn),
		ev:        make(chan struct{}),
		budget:    newBudget(cfg.MaxBuffered),
	}
	l.rejects = newRejectLog(l.log)
	l.qconf = &quic.Config{
		HandshakeIdleTimeout: cfg.HandshakeTimeout,
		MaxIdleTimeout:       cfg.IdleTimeout,
		KeepAlivePeriod:      cfg.KeepAlive,
		// Every request is a bidirectional stream; a peer past
		// MaxStreams waits (OpenStreamSync) for one to finish.
		MaxIncomingStreams:         int64(cfg.MaxStreams),
		MaxIncomingUniStreams:      -1,
		MaxStreamReceiveWindow:     maxStreamWindow,
		MaxConnectionReceiveWindow: maxConnWindow,
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())

	// The peer table is complete before the first listener can call
	// l.allow; it is read-only afterwards except for pr.paths, filled in
	// below, which the accepting side never reads.
	for _, s := range specs {
		pr := &peer{id: s.id, tls: cfg.TLS.ClientConfig(protocols, s.id)}
		l.peers[s.id] = pr
		l.order = append(l.order, pr)
		l.sites[s.id.Site] = append(l.sites[s.id.Site], pr)
	}
	for _, p := range cfg.Paths {
		ep, err := l.bind(p)
		if err != nil {
			l.closeEndpoints()
			l.cancel()
			return nil, err
		}
		l.endpoints = append(l.endpoints, ep)
		l.byPath[p.Name] = ep
	}
	for i, s := range specs {
		pr := l.order[i]
		for _, ep := range l.endpoints {
			if addr, ok := s.addrs[ep.name]; ok {
				pr.paths = append(pr.paths, &peerPath{link: l, peer: s.id, ep: ep, addr: addr, tls: pr.tls})
			}
		}
	}
	for _, ep := range l.endpoints {
		l.wg.Go(func() { l.acceptLoop(ep) })
	}
	for _, pr := range l.order {
		for _, pp := range pr.paths {
			l.wg.Go(pp.probeLoop)
		}
	}
	l.log.Debug("transport: link up", "paths", len(l.endpoints), "peers", len(l.order))
	return l, nil
}

// bind opens the socket, transport and listener of one path.
func (l *Link) bind(p Path) (*endpoint, error) {
	ua, err := net.ResolveUDPAddr("udp", p.Listen)
	if err != nil {
		return nil, fmt.Errorf("transport: path %s: listen address %q: %w", p.Name, p.Listen, err)
	}
	udp, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("transport: path %s: %w", p.Name, err)
	}
	gate := &gatedConn{udp: udp}
	tr := &quic.Transport{Conn: gate, ConnContext: withRemote}
	ln, err := tr.Listen(l.serverTLS(p.Name), l.qconf)
	if err != nil {
		tr.Close()
		udp.Close()
		return nil, fmt.Errorf("transport: path %s: listen: %w", p.Name, err)
	}
	return &endpoint{name: p.Name, udp: udp, gate: gate, tr: tr, ln: ln}, nil
}

// allow admits at the TLS handshake only nodes named in Config.Peers.
func (l *Link) allow(id pki.Identity) error {
	if _, ok := l.peers[id]; !ok {
		return fmt.Errorf("%w: %s is not a configured peer", ErrUnknownPeer, id)
	}
	return nil
}

// Addr returns the local address bound for the named path, nil if there is
// no such path.
func (l *Link) Addr(path string) net.Addr {
	ep, ok := l.byPath[path]
	if !ok {
		return nil
	}
	return ep.udp.LocalAddr()
}

// Identity returns this node's identity, from its certificate.
func (l *Link) Identity() pki.Identity { return l.self }

// SetPreferred makes node the first one SendBatch tries for site, e.g. the
// leader named by an Ack. An empty node clears the preference; SendBatch
// then starts with the node that last acked.
func (l *Link) SetPreferred(site, node string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if node == "" {
		delete(l.preferred, site)
		return
	}
	l.preferred[site] = node
}

// Close shuts the link down: it closes every connection (telling peers),
// the listeners and the UDP sockets, and waits for its goroutines, including
// Handler calls in progress, whose contexts end. In-flight SendBatch and
// Call return errors. Close is idempotent and always returns nil.
func (l *Link) Close() error {
	l.once.Do(func() {
		// Under mu so that goTracked and acceptLoop never start a
		// goroutine once Close may be waiting.
		l.mu.Lock()
		l.closed.Store(true)
		in := l.inbound
		l.inbound = nil
		l.mu.Unlock()
		l.cancel()
		for _, ep := range l.endpoints {
			ep.ln.Close()
		}
		for _, pr := range l.order {
			for _, pp := range pr.paths {
				pp.shutdown()
			}
		}
		for c := range in {
			c.CloseWithError(codeClosing, "link closing")
		}
		l.closeEndpoints()
		l.wg.Wait()
		l.log.Debug("transport: link closed")
	})
	return nil
}

func (l *Link) closeEndpoints() {
	for _, ep := range l.endpoints {
		ep.tr.Close()
		ep.udp.Close()
	}
}

// goTracked runs f on a goroutine Close waits for, unless the link is
// closed. It reports whether f was started.
func (l *Link) goTracked(f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return false
	}
	l.wg.Go(f)
	return true
}

// dialEvents returns a channel that is closed when the next dial ends.
func (l *Link) dialEvents() <-chan struct{} {
	l.evMu.Lock()
	defer l.evMu.Unlock()
	return l.ev
}

func (l *Link) signalDial() {
	l.evMu.Lock()
	defer l.evMu.Unlock()
	close(l.ev)
	l.ev = make(chan struct{})
}

// surplusConnLocked returns the oldest connection of peer on ep when the
// peer holds more than maxConnsPerPeerPath there, nil otherwise. A peer
// uses one; the second is a redial whose predecessor has not timed out.
func (l *Link) surplusConnLocked(ep *endpoint, peer pki.Identity) *quic.Conn {
	var oldest *quic.Conn
	var oldestSeq uint64
	n := 0
	for c, in := range l.inbound {
		if in.ep != ep || in.peer != peer {
			continue
		}
		n++
		if oldest == nil || in.seq < oldestSeq {
			oldest, oldestSeq = c, in.seq
		}
	}
	if n <= maxConnsPerPeerPath {
		return nil
	}
	return oldest
}

// acceptLoop accepts the connections peers dial to one path.
func (l *Link) acceptLoop(ep *endpoint) {
	var seq uint64
	for {
		conn, err := ep.ln.Accept(l.ctx)
		if err != nil {
			if !l.closed.Load() && !errors.Is(err, quic.ErrServerClosed) {
				l.log.Error("transport: accept failed; path no longer accepts", "path", ep.name, "err", err)
			}
			return
		}
		l.mu.Lock()
		if l.inbound == nil { // closing
			l.mu.Unlock()
			conn.CloseWithError(codeClosing, "link closing")
			continue
		}
		if AdminMode(ep.admin.Load()) == AdminClose {
			l.mu.Unlock()
			conn.CloseWithError(codePathDisabled, "path "+ep.name+" is disabled on "+l.self.String())
			continue
		}
		id, err := peerIdentity(conn)
		if err != nil {
			// Unreachable: the handshake verified the identity.
			l.mu.Unlock()
			l.log.Error("transport: accepted connection without identity", "path", ep.name, "err", err)
			conn.CloseWithError(codeForbidden, "no identity")
			continue
		}
		seq++
		l.inbound[conn] = &inboundConn{ep: ep, peer: id, seq: seq}
		old := l.surplusConnLocked(ep, id)
		l.wg.Go(func() { l.serveConn(ep, conn, id) })
		l.mu.Unlock()
		if old != nil {
			l.log.Debug("transport: closing a peer's oldest connection", "path", ep.name, "peer", id.String(), "remote", old.RemoteAddr().String())
			old.CloseWithError(codeClosing, "replaced by a newer connection")
		}
	}
}
