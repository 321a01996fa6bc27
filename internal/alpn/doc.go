// Package alpn is the version negotiation of hotline's protocols, carried
// in TLS's application protocol negotiation (ALPN, RFC 7301).
//
// Each side lists the versions of a protocol it speaks, highest first
// ("hotline-raft/2", "hotline-raft/1"). The server uses the first of its
// own list that the client offers: crypto/tls's server walks its
// NextProtos in order and, for each, the client's offer, so the server's
// order wins. A client offering none of the server's versions is refused
// in the handshake with the TLS alert no_application_protocol (120); over
// QUIC that alert is the transport error CRYPTO_ERROR 0x178 (0x100 + the
// alert). The refusal comes before the certificate check, so the server
// knows the client only by its address.
//
// This package holds what the link (transport) and Raft (consensus) share:
// the choice (Common), the version number of a name (Version), the words
// of a list in logs and alarms (List), and recognising a refusal from the
// dialling side (Refused).
package alpn
