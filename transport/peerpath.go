package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"hotline/transport/pki"
)

// Redial backoff after consecutive failures on one (peer, path): 100ms,
// 200ms, ... up to 5s. A reply resets it.
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

// peerPath is the state of one (peer node, path): the cached outgoing
// connection, dialling and backoff, and health figures. It is the unit a
// future prober would keep warm.
//
// Connection states:
//
//	idle ──conn()──> dialling ──ok──> connected ──dies/violation──> idle (backoff)
//	                     └──fails──> idle (backoff: no dial before retryAt)
//	any ──shutdown()──> closed
type peerPath struct {
	link *Link
	peer pki.Identity
	ep   *endpoint
	addr *net.UDPAddr
	tls  *tls.Config

	mu      sync.Mutex
	conn    *quic.Conn    // nil unless connected (it may have died since)
	dialing chan struct{} // non-nil while a dial runs; closed when it ends
	dialErr error         // outcome of the last dial
	fails   int           // consecutive failures
	retryAt time.Time     // no new dial before this
	closed  bool
	stats   pathStats
}

// pathStats are the health figures of a peerPath, guarded by its mu.
type pathStats struct {
	lastOK, lastErrAt time.Time
	lastErr           string
	sent, failed      uint64
	rtt               time.Duration
	// Byte counts of connections already dropped.
	bytesSent, bytesRecv uint64
}

// errBackoff is returned without trying when a (peer, path) failed recently.
type errBackoff struct {
	until time.Time
	last  string
}

func (e *errBackoff) Error() string {
	return fmt.Sprintf("not redialling for %v after: %s", time.Until(e.until).Round(time.Millisecond), e.last)
}

func (pp *peerPath) String() string { return pp.peer.String() + " via " + pp.ep.name }

// getConn returns the live connection, dialling one if there is none. It
// fails at once while in backoff.
func (pp *peerPath) getConn(ctx context.Context) (*quic.Conn, error) {
	pp.mu.Lock()
	if pp.closed {
		pp.mu.Unlock()
		return nil, ErrClosed
	}
	if c := pp.conn; c != nil {
		if c.Context().Err() == nil {
			pp.mu.Unlock()
			return c, nil
		}
		pp.dropLocked(c)
	}
	if pp.dialing == nil {
		if time.Now().Before(pp.retryAt) {
			err := &errBackoff{until: pp.retryAt, last: pp.stats.lastErr}
			pp.mu.Unlock()
			return nil, err
		}
		ch := make(chan struct{})
		if !pp.link.goTracked(func() { pp.dial(ch) }) {
			pp.mu.Unlock()
			return nil, ErrClosed
		}
		pp.dialing = ch
	}
	ch := pp.dialing
	pp.mu.Unlock()

	select {
	case <-ch:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.conn != nil {
		return pp.conn, nil
	}
	if pp.dialErr != nil {
		return nil, pp.dialErr
	}
	return nil, errors.New("connection lost")
}

// dial runs on its own goroutine, bounded by HandshakeTimeout and the
// link's life, so that callers giving up does not abort a dial others wait
// for.
func (pp *peerPath) dial(done chan struct{}) {
	l := pp.link
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	conn, err := pp.ep.tr.Dial(ctx, pp.addr, pp.tls, l.qconf)
	cancel()

	pp.mu.Lock()
	pp.dialing = nil
	if err == nil && pp.closed {
		defer conn.CloseWithError(codeClosing, "link closing")
		err = ErrClosed
	}
	if err != nil {
		pp.dialErr = fmt.Errorf("dial %s: %w", pp.addr, err)
		pp.noteErrLocked(pp.dialErr)
		pp.backoffLocked()
	} else {
		pp.conn, pp.dialErr = conn, nil
	}
	pp.mu.Unlock()
	close(done)
	if err == nil {
		l.log.Debug("transport: connected", "peer", pp.peer.String(), "path", pp.ep.name, "remote", pp.addr.String())
	} else if !l.closed.Load() {
		l.log.Debug("transport: dial failed", "peer", pp.peer.String(), "path", pp.ep.name, "err", err)
	}
}

// request sends one request frame on a new stream and decodes the reply
// frame, which must be of type want. A protocol violation in the reply
// closes the connection.
func (pp *peerPath) request(ctx context.Context, frame []byte, want byte, decode func([]byte) error) error {
	conn, err := pp.getConn(ctx)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			return err
		}
		var eb *errBackoff
		if !errors.As(err, &eb) {
			pp.mu.Lock()
			pp.stats.failed++
			pp.noteErrLocked(err)
			pp.mu.Unlock()
		}
		return fmt.Errorf("%s: %w", pp, err)
	}
	err = pp.exchange(ctx, conn, frame, want, decode)
	pp.finish(ctx, conn, err)
	if err != nil {
		return fmt.Errorf("%s: %w", pp, err)
	}
	return nil
}

func (pp *peerPath) exchange(ctx context.Context, conn *quic.Conn, frame []byte, want byte, decode func([]byte) error) error {
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { cancelStream(str) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		str.SetDeadline(dl)
	}
	if _, err := str.Write(frame); err != nil {
		cancelStream(str)
		return fmt.Errorf("send: %w", err)
	}
	if err := str.Close(); err != nil {
		cancelStream(str)
		return fmt.Errorf("send: %w", err)
	}
	typ, body, err := readFrame(str, pp.link.cfg.MaxFrame)
	if err == nil && typ != want {
		err = protocolErr("%s frame in reply, want %s", frameName(typ), frameName(want))
	}
	if err == nil {
		err = readEOF(str)
	}
	if err == nil {
		err = decode(body)
	}
	if err != nil {
		cancelStream(str)
		if ctx.Err() != nil {
			return fmt.Errorf("receive: %w (%w)", context.Cause(ctx), err)
		}
		return fmt.Errorf("receive: %w", err)
	}
	return nil
}

// finish records the outcome of a request and reacts to failures: a
// protocol violation closes the connection, a dead connection is dropped,
// and both start the redial backoff. A caller giving up is counted but not
// held against the path.
func (pp *peerPath) finish(ctx context.Context, conn *quic.Conn, err error) {
	pp.mu.Lock()
	now := time.Now()
	if err == nil {
		pp.stats.sent++
		pp.stats.lastOK = now
		pp.fails, pp.retryAt = 0, time.Time{}
		pp.mu.Unlock()
		return
	}
	pp.stats.failed++
	pp.noteErrLocked(err)
	v, isViolation := asViolation(err)
	switch {
	case isViolation:
		pp.dropLocked(conn)
		pp.backoffLocked()
	case ctx.Err() != nil:
	case conn.Context().Err() != nil:
		pp.dropLocked(conn)
		pp.backoffLocked()
	}
	pp.mu.Unlock()
	if isViolation {
		pp.link.log.Warn("transport: closing connection: peer broke the protocol", "peer", pp.peer.String(), "path", pp.ep.name, "err", v.msg)
		conn.CloseWithError(v.code, v.msg)
	}
}

func (pp *peerPath) noteErrLocked(err error) {
	pp.stats.lastErr = err.Error()
	pp.stats.lastErrAt = time.Now()
}

func (pp *peerPath) backoffLocked() {
	pp.fails++
	d := backoffMin << min(pp.fails-1, 10)
	pp.retryAt = time.Now().Add(min(d, backoffMax))
}

// dropLocked forgets conn if it is the cached one, keeping its figures.
func (pp *peerPath) dropLocked(conn *quic.Conn) {
	if conn == nil || pp.conn != conn {
		return
	}
	cs := conn.ConnectionStats()
	pp.stats.bytesSent += cs.BytesSent
	pp.stats.bytesRecv += cs.BytesReceived
	if cs.SmoothedRTT > 0 {
		pp.stats.rtt = cs.SmoothedRTT
	}
	pp.conn = nil
}

// shutdown closes the connection for good (Link.Close).
func (pp *peerPath) shutdown() {
	pp.mu.Lock()
	pp.closed = true
	c := pp.conn
	pp.dropLocked(c)
	pp.mu.Unlock()
	if c != nil {
		c.CloseWithError(codeClosing, "link closing")
	}
}
