package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/hotline-link/hotline/transport/pki"
)

// serveConn serves the streams of one connection peer dialled to us. The
// TLS handshake has already admitted the peer (Link.allow).
func (l *Link) serveConn(ep *endpoint, conn *quic.Conn, peer pki.Identity) {
	defer func() {
		l.mu.Lock()
		if l.inbound != nil {
			delete(l.inbound, conn)
		}
		l.mu.Unlock()
	}()
	log := l.log.With("path", ep.name, "remote", conn.RemoteAddr().String(), "peer", peer.String())
	log.Debug("transport: peer connected")
	for {
		str, err := conn.AcceptStream(l.ctx)
		if err != nil {
			log.Debug("transport: peer connection ended", "err", err)
			return
		}
		l.wg.Go(func() { l.serveStream(conn, peer, str, log) })
	}
}

func peerIdentity(conn *quic.Conn) (pki.Identity, error) {
	certs := conn.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return pki.Identity{}, pki.ErrNoIdentity
	}
	return pki.IdentityOf(certs[0])
}

// errRequestTimeout ends a request whose frame did not arrive in time.
var errRequestTimeout = errors.New("transport: request did not arrive in time")

// serveStream reads one request frame, lets the Handler answer it and
// writes one reply frame. A protocol violation closes the whole connection;
// nothing of it reaches the Handler.
//
// What a request may cost is bounded: its frame must arrive within
// RequestTimeout plus one second per minRequestRate bytes; its body is
// read only once its claimed length is reserved in the Link's budget (held
// until the stream is done), into a buffer that grows as bytes arrive; the
// Handler's context ends after HandlerTimeout, and the reply must be
// written by then.
func (l *Link) serveStream(conn *quic.Conn, id pki.Identity, str *quic.Stream, log *slog.Logger) {
	l.serving.Add(1)
	defer l.serving.Add(-1)
	start := time.Now()
	str.SetReadDeadline(start.Add(l.cfg.RequestTimeout))
	typ, body, release, err := l.readRequest(str, start)
	defer release()
	var reply []byte
	if err == nil {
		// The handler's context ends when the requester cancels, the
		// connection dies, the link closes or HandlerTimeout passes.
		ctx, cancel := context.WithTimeout(str.Context(), l.cfg.HandlerTimeout)
		defer cancel()
		str.SetWriteDeadline(time.Now().Add(l.cfg.HandlerTimeout))
		switch typ {
		case frameBatch:
			reply, err = l.serveBatch(ctx, id, body)
		case frameCall:
			reply, err = l.serveCall(ctx, id, body)
		case frameProbe:
			reply, err = echoFrame(body)
		default:
			err = protocolErr("unexpected %s frame as a request", frameName(typ))
		}
	}
	if err != nil {
		if v, ok := asViolation(err); ok {
			cancelStream(str)
			log.Warn("transport: closing connection: peer broke the protocol", "err", v.msg)
			conn.CloseWithError(v.code, v.msg)
			return
		}
		if errors.Is(err, errRequestTimeout) {
			str.CancelRead(codeTimeout)
			str.CancelWrite(codeTimeout)
			l.timeouts.Add(1)
			log.Debug("transport: request reset", "err", err)
			return
		}
		cancelStream(str)
		log.Debug("transport: request abandoned", "err", err)
		return
	}
	if _, err := str.Write(reply); err != nil {
		cancelStream(str)
		log.Debug("transport: reply not sent", "err", err)
		return
	}
	str.Close()
}

// smallFrame: requests up to this size (probes, acks of small calls) skip
// the budget, so that a spent budget never delays a probe into a false
// "path down". They cost at most MaxStreams × smallFrame per connection.
const smallFrame = 4 << 10

// readRequest reads a request frame within its deadline, reserving its
// length in the budget first (unless it is a small frame). release gives the reservation back; it is
// never nil.
func (l *Link) readRequest(str *quic.Stream, start time.Time) (typ byte, body []byte, release func(), err error) {
	release = func() {}
	typ, n, err := readHeader(str, l.cfg.MaxFrame)
	if err != nil {
		return 0, nil, release, requestErr(err, "header")
	}
	deadline := start.Add(l.cfg.RequestTimeout + time.Duration(n)*time.Second/minRequestRate)
	str.SetReadDeadline(deadline)
	ctx, cancel := context.WithDeadline(str.Context(), deadline)
	defer cancel()
	if n > smallFrame {
		if err := l.budget.acquire(ctx, int64(n)); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return 0, nil, release, fmt.Errorf("%w: %s frame of %d bytes waited %v for the buffer budget", errRequestTimeout, frameName(typ), n, time.Since(start).Round(time.Millisecond))
			}
			return 0, nil, release, err
		}
		release = func() { l.budget.release(int64(n)) }
	}
	body, err = readBody(str, typ, n)
	if err == nil {
		err = readEOF(str)
	}
	if err != nil {
		return 0, nil, release, requestErr(err, fmt.Sprintf("%s frame of %d bytes", frameName(typ), n))
	}
	return typ, body, release, nil
}

// requestErr turns a read deadline into errRequestTimeout.
func requestErr(err error, what string) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %s incomplete after the deadline", errRequestTimeout, what)
	}
	return err
}

func (l *Link) serveBatch(ctx context.Context, id pki.Identity, body []byte) ([]byte, error) {
	if id.Site == l.self.Site {
		return nil, forbiddenErr("batch from %s: batches are inter-site only", id)
	}
	b, err := decodeBatch(body)
	if err != nil {
		return nil, err
	}
	if b.From != id.Site {
		return nil, forbiddenErr("batch says From %q but the peer is %s", b.From, id)
	}
	if b.To != l.self.Site {
		return nil, forbiddenErr("batch for site %q sent to %s", b.To, l.self)
	}
	ack, err := l.cfg.Handler.HandleBatch(ctx, id, b)
	switch {
	case err != nil:
		ack = l.cfg.Calls.refusal(err)
	case ack == nil:
		ack = &Ack{Error: "transport: handler returned no ack"}
	}
	if len(ack.Proof) > MaxProof {
		ack = &Ack{Error: fmt.Sprintf("transport: ack proof of %d bytes (at most %d)", len(ack.Proof), MaxProof)}
	}
	frame, err := sealFrame(appendAck(newFrame(ackSizeHint(ack)), ack), frameAck, l.cfg.MaxFrame)
	if err != nil {
		frame, _ = sealFrame(appendAck(newFrame(64), &Ack{Error: "transport: ack larger than MaxFrame"}), frameAck, l.cfg.MaxFrame)
	}
	return frame, nil
}

func (l *Link) serveCall(ctx context.Context, id pki.Identity, body []byte) ([]byte, error) {
	c, err := decodeCall(body)
	if err != nil {
		return nil, err
	}
	// The routing table decides the call's scope before any handler runs.
	r := l.cfg.Calls.Serve(ctx, l.self.Site, id, c)
	frame, err := sealFrame(appendReply(newFrame(len(r.Body)+len(r.Error)+len(r.Code)+len(r.Leader)+16), r), frameReply, l.cfg.MaxFrame)
	if err != nil {
		frame, _ = sealFrame(appendReply(newFrame(64), &Reply{Error: "transport: reply larger than MaxFrame"}), frameReply, l.cfg.MaxFrame)
	}
	return frame, nil
}

// echoFrame answers a probe: an echo frame with the probe's body, which
// must be at most maxProbeBody bytes.
func echoFrame(probe []byte) ([]byte, error) {
	if len(probe) > maxProbeBody {
		return nil, protocolErr("probe of %d bytes (at most %d)", len(probe), maxProbeBody)
	}
	return sealFrame(append(newFrame(len(probe)), probe...), frameEcho, maxProbeBody)
}

// errorText makes sure a handler error is never sent as "" (which would
// read as success).
func errorText(err error) string {
	if s := err.Error(); s != "" {
		return s
	}
	return "handler failed"
}

// cancelStream abandons both directions of a stream; safe to repeat and
// after Close.
func cancelStream(str *quic.Stream) {
	str.CancelWrite(codeCancelled)
	str.CancelRead(codeCancelled)
}
