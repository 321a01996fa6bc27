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

	"github.com/hotline-link/hotline/transport/pki"
)

// Redial backoff after consecutive failures on one (peer, path): 100ms,
// 200ms, ... up to 5s. A reply resets it.
const (
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

// peerPath is the state of one (peer node, path): the cached outgoing
// connection, dialling and backoff, probing and health figures. Its prober
// (probeLoop) keeps it connected and detects a silent failure.
//
// Connection states:
//
//	idle ──ready()──> dialling ──ok──> connected (up) ──dies/violation/probes unanswered──> down (backoff)
//	                     └──fails──> idle (backoff: no dial before retryAt)
//	down ──prober redials──> dialling ──ok──> up
//	any ──shutdown()──> closed
type peerPath struct {
	link *Link
	peer pki.Identity
	ep   *endpoint
	addr *net.UDPAddr
	tls  *tls.Config

	mu      sync.Mutex
	conn    *quic.Conn // nil unless connected (it may have died since)
	dialing bool       // a dial goroutine is running
	fails   int        // consecutive failures
	retryAt time.Time  // no new dial before this
	closed  bool
	// down: the path failed (probes unanswered, connection lost, dial
	// failed after it had been up). Senders skip it; only the prober
	// redials it, and a successful dial clears it.
	down   bool
	everUp bool      // a connection was established at least once
	since  time.Time // when the state (up, down) last changed
	stats  pathStats
	probe  probeStats
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

// errPathDown is returned without trying when the path is down: the
// prober declared it failed and is redialling it.
type errPathDown struct {
	since time.Time
	last  string
}

func (e *errPathDown) Error() string {
	return fmt.Sprintf("path down for %v: %s", time.Since(e.since).Round(time.Millisecond), e.last)
}

// errPathDisabled is returned when an operator disabled the path (AdminClose).
var errPathDisabled = errors.New("path disabled by an operator")

// ready returns the live connection if there is one. Otherwise it reports
// whether a dial is under way, starting one unless the path is in backoff
// (then the error says until when and why) or, for senders (prober false),
// down. A connection found dead counts as a failure, marks the path down
// and starts the backoff.
func (pp *peerPath) ready(prober bool) (conn *quic.Conn, dialing bool, err error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	if pp.closed {
		return nil, false, ErrClosed
	}
	if AdminMode(pp.ep.admin.Load()) == AdminClose {
		return nil, false, errPathDisabled
	}
	if c := pp.conn; c != nil {
		if c.Context().Err() == nil {
			return c, false, nil
		}
		pp.failLocked(c, fmt.Errorf("connection lost: %w", context.Cause(c.Context())))
	}
	if pp.down && !prober {
		return nil, pp.dialing, &errPathDown{since: pp.since, last: pp.stats.lastErr}
	}
	if pp.dialing {
		return nil, true, nil
	}
	if time.Now().Before(pp.retryAt) {
		return nil, false, &errBackoff{until: pp.retryAt, last: pp.stats.lastErr}
	}
	if !pp.link.goTracked(pp.dial) {
		return nil, false, ErrClosed
	}
	pp.dialing = true
	return nil, true, nil
}

// isUp reports whether the path is connected, not down and enabled.
func (pp *peerPath) isUp() bool {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return pp.stateLocked() == PathUp
}

// dial runs on its own goroutine, bounded by HandshakeTimeout and the
// link's life, so that no caller giving up aborts a dial others wait for.
// It wakes everyone waiting for a dial (Link.dialEvents) when done.
func (pp *peerPath) dial() {
	l := pp.link
	defer l.signalDial()
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	conn, err := pp.ep.tr.Dial(ctx, pp.addr, pp.tls, l.qconf)
	cancel()
	err = l.dialRefused(pp, err) // version.go

	pp.mu.Lock()
	pp.dialing = false
	if err == nil && pp.closed {
		defer conn.CloseWithError(codeClosing, "link closing")
		err = ErrClosed
	}
	wasDown := pp.down
	if err != nil {
		pp.stats.failed++
		pp.noteErrLocked(fmt.Errorf("dial %s: %w", pp.addr, err))
		pp.backoffLocked()
		if pp.everUp && !pp.down {
			pp.down, pp.since = true, time.Now()
		}
	} else {
		pp.conn = conn
		pp.down, pp.everUp, pp.since = false, true, time.Now()
		pp.probe.lastEcho = pp.since
		pp.probe.resetWindow()
	}
	pp.mu.Unlock()
	switch {
	case err == nil && wasDown:
		l.log.Info("transport: path up", "peer", pp.peer.String(), "path", pp.ep.name, "remote", pp.addr.String())
	case err == nil:
		l.log.Debug("transport: connected", "peer", pp.peer.String(), "path", pp.ep.name, "remote", pp.addr.String())
	case !l.closed.Load():
		l.log.Debug("transport: dial failed", "peer", pp.peer.String(), "path", pp.ep.name, "err", err)
	}
}

// failLocked records that conn failed: it is dropped, the path is down
// and the redial backoff starts.
func (pp *peerPath) failLocked(conn *quic.Conn, err error) {
	pp.noteErrLocked(err)
	pp.dropLocked(conn)
	pp.backoffLocked()
	if !pp.down {
		pp.down, pp.since = true, time.Now()
		pp.link.log.Warn("transport: path down", "peer", pp.peer.String(), "path", pp.ep.name, "err", err)
	}
}

// request sends one request frame on a new stream of conn and decodes the
// reply frame, which must be of type want. A protocol violation in the
// reply closes the connection.
func (pp *peerPath) request(ctx context.Context, conn *quic.Conn, frame []byte, want byte, decode func([]byte) error) error {
	err := pp.exchange(ctx, conn, frame, want, decode)
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
		pp.failLocked(conn, err)
	case ctx.Err() != nil:
	case conn.Context().Err() != nil:
		pp.failLocked(conn, err)
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
