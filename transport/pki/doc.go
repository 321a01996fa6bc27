// Package pki issues and loads the certificates hotline nodes use to
// authenticate each other, on the inter-site QUIC link and on intra-site
// Raft alike.
//
// Contract:
//
//   - One private CA per deployment, kept in a directory: ca.crt (0644) and
//     ca.key (0600), a self-signed Ed25519 certificate valid for 10 years
//     ([Init]).
//   - Each node gets <node>.crt and <node>.key in the same directory
//     ([Issue]): an Ed25519 key, 2 years, Subject CN=node O=site, DNS SAN
//     node, and exactly one URI SAN hotline://<site>/<node>, which is the
//     node's [Identity]. Only the URI SAN is authoritative ([IdentityOf]);
//     CN, O and the DNS name are for humans and for hostname verification.
//   - Nothing is ever overwritten: Init and Issue refuse when a target file
//     exists, and leave nothing behind when they fail.
//   - [Bundle.ServerConfig] and [Bundle.ClientConfig] build TLS 1.3 configs
//     with mutual authentication against the CA and post-quantum hybrid key
//     exchange (X25519MLKEM768) only. The server asks an allow function which
//     identities may connect; the client pins the exact identity it expects.
//
// Site and node names are 1-63 characters of [a-z0-9-] starting with a
// letter or digit ([ValidName]), so a node name is also a valid DNS label.
package pki
