package consensus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Stream layer defaults.
const (
	// handshakeTimeout bounds the TLS handshake of an accepted connection,
	// and of a dial when Raft gives no timeout.
	handshakeTimeout = 5 * time.Second
	// rejectLogEvery is how often repeated handshake failures from one
	// remote host are logged.
	rejectLogEvery = time.Minute
	// rejectLogHosts bounds the memory of the rejection log limiter.
	rejectLogHosts = 256
	// maxPending bounds the connections accepted but not yet handed to
	// Raft (in the TLS handshake, or handshaken and waiting for Accept);
	// a connection beyond it is closed at once.
	maxPending = 64
	// maxPendingPerHost bounds them per remote IP, so that one host
	// cannot take every slot from the site's other nodes.
	maxPendingPerHost = 8
)

// streamLayer is a raft.StreamLayer over TLS. Accepted connections are
// handshaken in their own goroutine with a deadline before Accept returns
// them, so Raft only ever sees authenticated peers and a slow or foreign
// peer cannot stall the accept loop. Dial completes the client handshake
// within the dial timeout.
//
// Unauthenticated connections are bounded in number and time: at most
// maxPending (maxPendingPerHost per remote IP) are held between the TCP
// accept and the hand-off to Raft, each for at most the handshake timeout;
// one beyond the bound is closed at once. Every refused or failed
// connection is counted (Rejections) and logged, rate-limited per host.
//
// The layer outlives Raft instances: each instance's transport uses a view
// (see view), whose Close detaches that instance and closes its
// connections, so a node can stop Raft and start it again on the same
// listener. While no view is attached, handshaken connections wait at most
// the handshake timeout for one and are then closed.
//
// Lifecycle: newStreamLayer starts the accept loop; Close stops it, aborts
// handshakes in progress and closes every connection.
type streamLayer struct {
	ln        net.Listener // raw TCP
	advertise net.Addr
	serverTLS *tls.Config
	clientTLS func(addr string) (*tls.Config, error)
	log       *slog.Logger
	// onMismatch, if set, is told of handshakes refused for want of a
	// common protocol version (Config.OnProtocolMismatch).
	onMismatch func(remote string, offered, ours []string)
	timeout    time.Duration // server handshake deadline

	conns chan net.Conn // handshaken, waiting for Accept
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup

	rejections atomic.Uint64 // connections refused or failed before Raft saw them

	mu          sync.Mutex
	closed      bool
	pending     map[net.Conn]struct{}     // accepted, not yet handed to Raft
	pendingHost map[string]int            // pending by remote IP
	active      map[*trackedConn]struct{} // handed to Raft, closed by Close
	rejected    map[string]*rejectState   // by remote host and kind, for the log limiter
	protos      map[string]*dialledPeer   // by dialled address (version.go)
}

type rejectState struct {
	last       time.Time
	suppressed int
}

// newStreamLayer takes ownership of ln and starts accepting on it; accepted
// connections must complete the TLS handshake within timeout. A client
// offering none of serverTLS's NextProtos is refused and reported to
// onMismatch (nil: not reported).
func newStreamLayer(ln net.Listener, advertise string, serverTLS *tls.Config,
	clientTLS func(string) (*tls.Config, error), log *slog.Logger, timeout time.Duration,
	onMismatch func(remote string, offered, ours []string)) *streamLayer {
	s := &streamLayer{
		ln:          ln,
		advertise:   advertiseAddr(advertise),
		serverTLS:   versionedServerTLS(serverTLS), // version.go
		clientTLS:   clientTLS,
		log:         log,
		onMismatch:  onMismatch,
		timeout:     timeout,
		conns:       make(chan net.Conn),
		done:        make(chan struct{}),
		pending:     make(map[net.Conn]struct{}),
		pendingHost: make(map[string]int),
		active:      make(map[*trackedConn]struct{}),
		rejected:    make(map[string]*rejectState),
		protos:      make(map[string]*dialledPeer),
	}
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

// advertiseAddr is the address this node gives its peers.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }

func (s *streamLayer) acceptLoop() {
	defer s.wg.Done()
	backoff := 5 * time.Millisecond
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			s.log.Warn("consensus: raft accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.done:
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		host := remoteHost(c.RemoteAddr())
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		var over error
		switch {
		case len(s.pending) >= maxPending:
			over = fmt.Errorf("%d connections already wait for their handshake (the limit)", maxPending)
		case s.pendingHost[host] >= maxPendingPerHost:
			over = fmt.Errorf("%d connections from %s already wait for their handshake (the per-host limit)", maxPendingPerHost, host)
		}
		if over != nil {
			s.mu.Unlock()
			c.Close()
			s.reject(c.RemoteAddr(), over)
			continue
		}
		s.pending[c] = struct{}{}
		s.pendingHost[host]++
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handshake(c, host)
	}
}

// remoteHost is the IP of a remote address, or the whole address.
func remoteHost(a net.Addr) string {
	h := a.String()
	if ip, _, err := net.SplitHostPort(h); err == nil {
		return ip
	}
	return h
}

// handshake completes the server side of the TLS handshake on raw and hands
// the connection to Accept within the handshake deadline, or closes it.
// raw stays pending until then.
func (s *streamLayer) handshake(raw net.Conn, host string) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.pending, raw)
		if s.pendingHost[host]--; s.pendingHost[host] <= 0 {
			delete(s.pendingHost, host)
		}
		s.mu.Unlock()
	}()
	tc := tls.Server(raw, s.serverTLS)
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	ctx, mismatch := withMismatchSlot(ctx)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		switch {
		case s.isClosed():
		case mismatch.set:
			s.rejectProtocol(raw.RemoteAddr(), mismatch.offered)
		default:
			s.reject(raw.RemoteAddr(), err)
		}
		return
	}
	select {
	case s.conns <- tc:
	case <-ctx.Done():
		// No Raft instance took it in time (Raft stopped, or overloaded).
		tc.Close()
	case <-s.done:
		tc.Close()
	}
}

func (s *streamLayer) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Pending returns the number of connections accepted but not yet handed to
// Raft.
func (s *streamLayer) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// Rejections returns the number of connections refused or closed before
// Raft saw them: failed handshakes (a client offering none of our protocol
// versions among them) and connections over the pending limits.
func (s *streamLayer) Rejections() uint64 { return s.rejections.Load() }

// trackedConn is a connection handed to Raft through view v. Close removes
// it from the stream layer's set; the view's and the stream layer's Close
// close every one left, so no Raft connection handler outlives its Raft
// instance.
type trackedConn struct {
	net.Conn
	s    *streamLayer
	v    *view
	once sync.Once
}

// Read reports the end of a connection closed by the stream layer's or
// its view's Close as io.EOF, which Raft treats as a normal end rather than
// an error to log.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		select {
		case <-c.s.done:
			err = io.EOF
		case <-c.v.done:
			err = io.EOF
		default:
		}
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.active, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// track registers c for v, or closes it and fails when the layer or v is
// closed.
func (s *streamLayer) track(c net.Conn, v *view) (net.Conn, error) {
	t := &trackedConn{Conn: c, s: s, v: v}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || v.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	s.active[t] = struct{}{}
	return t, nil
}

// reject counts a refused connection and logs it at Warn, at most once per
// rejectLogEvery per remote host, counting the ones it leaves out.
func (s *streamLayer) reject(remote net.Addr, err error) {
	s.rejectLine(remote, "", "consensus: rejected raft connection at TLS handshake", "err", err)
}

// rejectLine counts a refused connection and logs msg with attrs at Warn,
// at most once per rejectLogEvery per remote host and kind.
func (s *streamLayer) rejectLine(remote net.Addr, kind, msg string, attrs ...any) {
	s.rejections.Add(1)
	host := remoteHost(remote)
	key := host
	if kind != "" {
		key += " " + kind
	}
	now := time.Now()
	s.mu.Lock()
	st := s.rejected[key]
	if st != nil && now.Sub(st.last) < rejectLogEvery {
		st.suppressed++
		s.mu.Unlock()
		return
	}
	suppressed := 0
	if st != nil {
		suppressed = st.suppressed
	}
	if len(s.rejected) >= rejectLogHosts {
		clear(s.rejected)
	}
	s.rejected[key] = &rejectState{last: now}
	s.mu.Unlock()
	args := append([]any{"remote", remote.String()}, attrs...)
	s.log.Warn(msg, append(args, "suppressed_since_last", suppressed)...)
}

// view is one Raft instance's use of the stream layer: the
// raft.StreamLayer its transport owns. Closing it closes the connections
// it handed out and ends its Accept, not the stream layer.
type view struct {
	s    *streamLayer
	done chan struct{}
	// closed is guarded by s.mu.
	closed bool
}

var _ raft.StreamLayer = (*view)(nil)

// newView returns a view for one Raft instance.
func (s *streamLayer) newView() *view { return &view{s: s, done: make(chan struct{})} }

// Accept implements net.Listener: it returns connections whose TLS
// handshake has completed.
func (v *view) Accept() (net.Conn, error) {
	select {
	case c := <-v.s.conns:
		return v.s.track(c, v)
	case <-v.done:
		return nil, net.ErrClosed
	case <-v.s.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: it detaches this view and closes its
// connections. It is idempotent.
func (v *view) Close() error {
	s := v.s
	s.mu.Lock()
	if v.closed {
		s.mu.Unlock()
		return nil
	}
	v.closed = true
	close(v.done)
	var mine []*trackedConn
	for c := range s.active {
		if c.v == v {
			mine = append(mine, c)
		}
	}
	s.mu.Unlock()
	for _, c := range mine {
		c.Close()
	}
	return nil
}

// Addr implements net.Listener; it is the advertised address.
func (v *view) Addr() net.Addr { return v.s.advertise }

// Dial implements raft.StreamLayer.
func (v *view) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	c, err := v.s.dial(address, timeout)
	if err != nil {
		return nil, err
	}
	return v.s.track(c, v)
}

// Close stops the accept loop and closes every connection, pending or
// handed out. It is idempotent.
func (s *streamLayer) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	for c := range s.pending {
		c.Close()
	}
	active := make([]*trackedConn, 0, len(s.active))
	for c := range s.active {
		active = append(active, c)
	}
	s.mu.Unlock()
	for _, c := range active {
		c.Close()
	}
	err := s.ln.Close()
	s.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("consensus: close raft listener: %w", err)
	}
	return nil
}

// Addr is the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// dial is TCP plus a completed TLS client handshake, both within timeout.
func (s *streamLayer) dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	addr := string(address)
	cfg, err := s.clientTLS(addr)
	if err != nil {
		return nil, fmt.Errorf("consensus: dial %s: client TLS config: %w", addr, err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("consensus: dial %s: no client TLS config", addr)
	}
	if timeout <= 0 {
		timeout = handshakeTimeout
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, cfg)
	if err != nil {
		return nil, s.dialRefused(addr, cfg.NextProtos, err) // version.go
	}
	return s.noteDial(addr, c, time.Now()), nil // version.go
}
