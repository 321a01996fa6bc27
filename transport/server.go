package transport

import (
	"context"
	"log/slog"

	"github.com/quic-go/quic-go"

	"hotline/transport/pki"
)

// serveConn serves the streams of one connection a peer dialled to us. The
// TLS handshake has already admitted the peer (Link.allow).
func (l *Link) serveConn(ep *endpoint, conn *quic.Conn) {
	defer func() {
		l.mu.Lock()
		if l.inbound != nil {
			delete(l.inbound, conn)
		}
		l.mu.Unlock()
	}()
	log := l.log.With("path", ep.name, "remote", conn.RemoteAddr().String())
	id, err := peerIdentity(conn)
	if err != nil {
		// Unreachable: the handshake verified the identity.
		log.Error("transport: accepted connection without identity", "err", err)
		conn.CloseWithError(codeForbidden, "no identity")
		return
	}
	log = log.With("peer", id.String())
	log.Debug("transport: peer connected")
	for {
		str, err := conn.AcceptStream(l.ctx)
		if err != nil {
			log.Debug("transport: peer connection ended", "err", err)
			return
		}
		l.wg.Go(func() { l.serveStream(conn, id, str, log) })
	}
}

func peerIdentity(conn *quic.Conn) (pki.Identity, error) {
	certs := conn.ConnectionState().TLS.PeerCertificates
	if len(certs) == 0 {
		return pki.Identity{}, pki.ErrNoIdentity
	}
	return pki.IdentityOf(certs[0])
}

// serveStream reads one request frame, lets the Handler answer it and
// writes one reply frame. A protocol violation closes the whole connection;
// nothing of it reaches the Handler.
func (l *Link) serveStream(conn *quic.Conn, id pki.Identity, str *quic.Stream, log *slog.Logger) {
	typ, body, err := readFrame(str, l.cfg.MaxFrame)
	if err == nil {
		err = readEOF(str)
	}
	var reply []byte
	if err == nil {
		// The stream's context ends when the requester cancels, the
		// connection dies or the link closes.
		ctx := str.Context()
		switch typ {
		case frameBatch:
			reply, err = l.serveBatch(ctx, id, body)
		case frameCall:
			reply, err = l.serveCall(ctx, id, body)
		case frameProbe:
			if len(body) > maxProbeBody {
				err = protocolErr("probe of %d bytes (at most %d)", len(body), maxProbeBody)
				break
			}
			reply, err = sealFrame(append(newFrame(len(body)), body...), frameEcho, l.cfg.MaxFrame)
		default:
			err = protocolErr("unexpected %s frame as a request", frameName(typ))
		}
	}
	if err != nil {
		cancelStream(str)
		if v, ok := asViolation(err); ok {
			log.Warn("transport: closing connection: peer broke the protocol", "err", v.msg)
			conn.CloseWithError(v.code, v.msg)
			return
		}
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
		ack = &Ack{Error: errorText(err)}
	case ack == nil:
		ack = &Ack{Error: "transport: handler returned no ack"}
	}
	frame, err := sealFrame(appendAck(newFrame(16+len(ack.Leader)+len(ack.Error)), ack), frameAck, l.cfg.MaxFrame)
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
	r, err := l.cfg.Handler.HandleCall(ctx, id, c)
	switch {
	case err != nil:
		r = &Reply{Error: errorText(err)}
	case r == nil:
		r = &Reply{Error: "transport: handler returned no reply"}
	}
	frame, err := sealFrame(appendReply(newFrame(len(r.Body)+len(r.Error)+16), r), frameReply, l.cfg.MaxFrame)
	if err != nil {
		frame, _ = sealFrame(appendReply(newFrame(64), &Reply{Error: "transport: reply larger than MaxFrame"}), frameReply, l.cfg.MaxFrame)
	}
	return frame, nil
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
