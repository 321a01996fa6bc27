// Package trust is the cryptography that lets a site prove what it sent,
// what it received and what was read, to itself, to the other site and to
// an auditor, independently of the transport: site keys, hybrid
// signatures, signed batch statements with Merkle inclusion proofs,
// payload envelopes, and signed audit checkpoints. Everything here is
// pure (no I/O but key files) and usable offline by a verifier.
//
// # Keys
//
// Each site has one signing identity and one encryption key, held by all
// of its nodes (the site, not a node, is what signs: a statement is made
// after Raft committed what it states, by whichever node leads):
//
//   - [SigningKey]: Ed25519 (standard library) and ML-DSA-65 (circl),
//     a signature valid only if both halves verify ([VerifyKey.Verify]).
//   - [DecryptionKey]: X-Wing (ML-KEM-768 + X25519) through the standard
//     library's HPKE; payloads to the site are sealed to its public half.
//
// Public keys are pinned in a [Keyring] file shared by all sites; each key
// has a [KeyID] carried in every signature and envelope, so a site can
// rotate with an overlap (both keys listed, the old one marked retired).
//
// # Statements
//
// A site signs batches, not messages: a [Statement] says that the Merkle
// root of Count leaves ([MessageLeaf], [ReceiptLeaf]) is what its [Kind]
// asserts (messages sent, messages delivered, receipts read) for a range
// of one channel. Each item keeps its leaf index and inclusion proof
// ([Prove], [CheckInclusion]) so it can be shown alone.
//
// # Envelopes
//
// [Seal] encrypts a payload to the destination site's key, bound to the
// message's id, origin and destination; the envelope carries the
// plaintext's SHA-256 in clear so that the origin keeps (and signs) the
// hash and not the plaintext. [Open] decrypts and checks that hash. A
// node seals with a [Sealer], which reuses one KEM encapsulation per
// destination key for a short window (each message still gets its own
// key), and opens with an [Opener], which caches decapsulated windows.
//
// # Checkpoints
//
// An audit log's size and root are signed as a C2SP signed note
// ([SignCheckpoint], [OpenCheckpoint]).
//
// # Evidence
//
// A [Bundle] gathers, for one message, its metadata and payload hash, its
// envelope (while the site holds it), the statements covering it (sent,
// received, delivered, read) with their inclusion paths, and its audit
// records with their signed checkpoints, as JSON; [VerifyBundle] checks
// all of it with only a [Keyring], the envelope's plaintext hash included
// ([Report.CheckPlaintext] then matches a plaintext against it).
package trust
