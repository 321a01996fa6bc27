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
)

// streamLayer is a raft.StreamLayer over TLS. Accepted connections are
// handshaken in their own goroutine with a deadline before Accept returns
// them, so Raft only ever sees authenticated peers and a slow or foreign
// peer cannot stall the accept loop. Dial completes the client handshake
// within the dial timeout.
//
// Lifecycle: newStreamLayer starts the accept loop; Close stops it, aborts
// handshakes in progress and closes connections not yet taken by Accept.
type streamLayer struct {
	ln        net.Listener // raw TCP
	advertise net.Addr
	serverTLS *tls.Config
	clientTLS func(addr string) (*tls.Config, error)
	log       *slog.Logger
	timeout   time.Duration // server handshake deadline

	conns chan net.Conn // handshaken, waiting for Accept
	done  chan struct{} // closed by Close
	wg    sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	pending  map[net.Conn]struct{}     // handshakes in progress
	active   map[*trackedConn]struct{} // handed to Raft, closed by Close
	rejected map[string]*rejectState   // by remote host
}

type rejectState struct {
	last       time.Time
	suppressed int
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// newStreamLayer takes ownership of ln and starts accepting on it; accepted
// connections must complete the TLS handshake within timeout.
func newStreamLayer(ln net.Listener, advertise string, serverTLS *tls.Config,
	clientTLS func(string) (*tls.Config, error), log *slog.Logger, timeout time.Duration) *streamLayer {
	s := &streamLayer{
		ln:        ln,
		advertise: advertiseAddr(advertise),
		serverTLS: serverTLS,
		clientTLS: clientTLS,
		log:       log,
		timeout:   timeout,
		conns:     make(chan net.Conn),
		done:      make(chan struct{}),
		pending:   make(map[net.Conn]struct{}),
		active:    make(map[*trackedConn]struct{}),
		rejected:  make(map[string]*rejectState),
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
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.pending[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handshake(c)
	}
}

// handshake completes the server side of the TLS handshake on raw and hands
// the connection to Accept, or rejects it.
func (s *streamLayer) handshake(raw net.Conn) {
	defer s.wg.Done()
	tc := tls.Server(raw, s.serverTLS)
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	s.mu.Lock()
	delete(s.pending, raw)
	closed := s.closed
	s.mu.Unlock()
	if err != nil {
		raw.Close()
		if !closed {
			s.logReject(raw.RemoteAddr(), err)
		}
		return
	}
	select {
	case s.conns <- tc:
	case <-s.done:
		tc.Close()
	}
}

// trackedConn is a connection handed to Raft. Close removes it from the
// stream layer's set; the stream layer's Close closes every one left, so no
// Raft connection handler outlives the node.
type trackedConn struct {
	net.Conn
	s    *streamLayer
	once sync.Once
}

// Read reports the end of a connection closed by the stream layer's Close
// as io.EOF, which Raft treats as a normal end rather than an error to log.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		select {
		case <-c.s.done:
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

// track registers c, or closes it and fails when the layer is closed.
func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	t := &trackedConn{Conn: c, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	s.active[t] = struct{}{}
	return t, nil
}

// logReject logs a failed handshake at Warn, at most once per
// rejectLogEvery per remote host, counting the ones it leaves out.
func (s *streamLayer) logReject(remote net.Addr, err error) {
	host := remote.String()
	if h, _, e := net.SplitHostPort(host); e == nil {
		host = h
	}
	now := time.Now()
	s.mu.Lock()
	st := s.rejected[host]
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
	s.rejected[host] = &rejectState{last: now}
	s.mu.Unlock()
	s.log.Warn("consensus: rejected raft connection at TLS handshake",
		"remote", remote.String(), "err", err, "suppressed_since_last", suppressed)
}

// Accept implements net.Listener: it returns connections whose TLS
// handshake has completed.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return s.track(c)
	case <-s.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener. It is idempotent.
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

// Addr implements net.Listener; it is the advertised address.
func (s *streamLayer) Addr() net.Addr { return s.advertise }

// Dial implements raft.StreamLayer: TCP plus a completed TLS client
// handshake, both within timeout.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
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
		return nil, fmt.Errorf("consensus: dial %s: %w", addr, err)
	}
	return s.track(c)
}
