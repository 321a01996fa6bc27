// Package transport is hotline's node-to-node link: QUIC (quic-go) with
// mutual TLS 1.3 and X25519MLKEM768 key exchange, over one or more named
// paths. It carries batches of messages or receipts between sites, with
// their acks, and calls: requests for a named operation of another node,
// within the site (a follower relaying to its leader) or between sites (a
// link test), routed by a table that says which side may call each. It
// touches no storage.
//
// # Paths and connections
//
// Each path binds one UDP socket and one quic.Transport that both listens
// and dials, so traffic on a path always leaves from that path's local
// address. For every (peer node, path) the Link keeps one outgoing
// connection, dialled lazily and redialled after a failure with a backoff
// (100ms doubling to 5s, reset by a reply). Connections peers dial to us are
// used only to serve their requests.
//
// # Requests
//
// Every request is a new bidirectional stream: the requester writes one
// frame and closes its side, the server reads it, hands it to the Handler
// (a batch) or to the call's handler in the routing table (a call), writes
// one reply frame and closes. A frame is a 4-byte big-endian body length, a
// 1-byte type (1 batch, 2 ack, 3 call, 4 reply) and the body, a compact
// binary encoding (see codec.go). The requester's context deadline is the
// stream deadline; when it gives up the stream is reset and the server's
// handler context ends.
//
// SendBatch tries the site's nodes (preferred first) and, for each, the
// paths in preference order, in rounds until one replies or the context
// ends (ErrUnreachable). A connected candidate is used at once; for one
// that must be dialled it waits at most a third of HandshakeTimeout (at
// most 1s) before also trying the next, so a dead node delays a send by
// that much at worst, and a node that failed recently is skipped during its
// backoff. A connection whose peer vanished silently is noticed only when
// QUIC's idle timeout expires: until then requests on it wait for their
// context. Resending is always safe: the receiver applies a channel's
// sequence numbers exactly once.
//
// # Trust
//
//   - The handshake admits only nodes listed in Config.Peers whose
//     certificate is from our CA (pki.Bundle.ServerConfig); the dialler pins
//     the exact identity of the node it dials (pki.Bundle.ClientConfig).
//   - A refused handshake is counted by reason (Link.HandshakeRejections)
//     and logged, at most once per remote host and reason per 10s.
//   - Both ends offer the protocol versions they speak (Protocols, as
//     ALPN); the accepting end uses the first of its list the dialler
//     offers. A dialler offering none is refused (RejectProtocolVersion)
//     and the dialler's error wraps ErrProtocolVersion; both ends call
//     Config.OnProtocolMismatch.
//   - The identity handed to the Handler and to call handlers is the peer
//     certificate's, never frame contents.
//   - A batch must come from another site, say From = the peer's site and
//     To = ours, and every message in it must belong to the batch's channel.
//   - A call's scope is decided once, by the routing table (Config.Calls,
//     a *Routes): every operation is registered as SiteInternal (callable
//     only by the nodes of our own site) or InterSite (only by the nodes
//     of other sites) with its handler. Before any handler runs, a call of
//     an operation the table does not hold is refused with ErrUnknownCall,
//     and one from the other side of the site boundary with ErrCallScope;
//     the refusal is a Reply naming the op and its scope, and the
//     connection stays up.
//   - An oversize frame (more than MaxFrame), an unknown frame type, an
//     undecodable body or a batch that contradicts the peer's identity
//     closes the whole connection with a QUIC application error (0x10
//     protocol, 0x11 forbidden) and a log line; nothing of it reaches the
//     Handler. Handler errors, by contrast, travel back as Ack.Error or
//     Reply.Error and leave the connection alone. Either also carries a
//     code (Ack.Code, Reply.Code) from one table, the Routes' Codes (a
//     Handler's refusal: Codes.Refusal), so that the sender rebuilds an
//     error wrapping the same sentinel (Ack.Err, Codes.Err) and branches
//     with errors.Is, never on the text. An ack or reply without a code
//     (an older peer) encodes as before codes existed.
//   - A batch and its ack may carry a Proof (the sender's signature of
//     its items; the receiver's of what it now holds: a trust.Signed,
//     package transport/trust). The link bounds it (MaxProof) and carries
//     it; it knows no keys, so verifying is the Handler's and the sender's.
//
// # Limits
//
// What a peer can make a node hold is bounded (README, "Limits and memory
// budget"): a frame's buffer grows as its bytes arrive, never from the
// header alone; a request reserves its claimed length in a Link-wide byte
// budget (Config.MaxBuffered) before its body is read; a connection has at
// most Config.MaxStreams requests open and a peer at most two connections
// per path; a request must arrive within Config.RequestTimeout plus 1s per
// MiB and is served within Config.HandlerTimeout; a batch carries at most
// MaxBatchItems items and a proof of at most MaxProof bytes, checked
// before anything is allocated.
//
// Stream error codes: 0x20 requester gave up, 0x21 request did not arrive
// in time.
package transport
