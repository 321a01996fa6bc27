package queue

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash/crc32"

	bolt "go.etcd.io/bbolt"
)

// Evidence in the state (format 4). A statement is stored once, under the
// SHA-256 of its bytes, with its leaves and a count of the messages that
// refer to it; each message refers to at most one statement per kind:
//
//	ev_stmts  sha256(statement) -> version(1) first(8) n(4) leaves(32n) statement sum(4)
//	ev_count  sha256(statement) -> refs(8) sum(4)
//	ev_refs   kind(1) ref       -> sha256(statement)(32) index(4) sum(4)
//
// kind is evSent, evReceived, evDelivered or evRead; ref (seq(8) channel
// key) locates an outbound message (sent, delivered, read) or an inbound
// one (received). Each sum is the CRC32C of the bucket's tag byte, the
// key and the value's bytes before the sum, so a record that moved does
// not verify; a statement is also checked against its key's SHA-256
// when served. A damaged record is an error wrapping ErrCorrupt: never
// served, and it stops Apply when a command must change it.
//
// The first reference of a kind is kept: a later statement for the same
// message and kind (a duplicate resend signed again) adds nothing, and
// neither does a statement already stored with other leaves. Purging a
// message drops its references; a statement goes with its last one, so
// evidence takes space only while messages it covers are kept.
var (
	bucketEvStmts = []byte("ev_stmts")
	bucketEvCount = []byte("ev_count")
	bucketEvRefs  = []byte("ev_refs")
)

// Tags bound into the sums, one per bucket.
const (
	evTagStmt  = 'S'
	evTagCount = 'C'
	evTagRef   = 'R'

	evStmtVersion = 1
	evStmtHeader  = 1 + 8 + 4
	evRefLen      = sha256.Size + 4 + evSumLen
	evCountLen    = 8 + evSumLen
	evSumLen      = 4
)

// evKind is a kind of reference: its key byte, its Proof.Kind and the
// direction of the messages it is about.
type evKind struct {
	b    byte
	name string
	dir  byte // finOut or finIn
}

// Reference kinds, in the order Proofs returns them.
var (
	evSent      = evKind{'s', ProofSent, finOut}
	evReceived  = evKind{'v', ProofReceived, finIn}
	evDelivered = evKind{'d', ProofDelivered, finOut}
	evRead      = evKind{'r', ProofRead, finOut}
	evKinds     = []evKind{evSent, evReceived, evDelivered, evRead}
)

func evRefKey(k evKind, r []byte) []byte { return append([]byte{k.b}, r...) }

func evSum(tag byte, key, body []byte) uint32 {
	c := crc32.Update(0, castagnoli, []byte{tag})
	c = crc32.Update(c, castagnoli, key)
	return crc32.Update(c, castagnoli, body)
}

func evName(bucket, key []byte) string { return fmt.Sprintf("bucket %s, key %x", bucket, key) }

// checkSum verifies the trailing sum of the record v at key and returns
// its body.
func checkSum(bucket []byte, tag byte, key, v []byte) ([]byte, error) {
	if len(v) < evSumLen {
		return nil, corruptf(evName(bucket, key), "record of %d bytes", len(v))
	}
	body := v[:len(v)-evSumLen]
	if got, want := evSum(tag, key, body), be.Uint32(v[len(body):]); got != want {
		return nil, corruptf(evName(bucket, key), "checksum %08x, stored %08x", got, want)
	}
	return body, nil
}

func encodeEvRef(key, sk []byte, index int) []byte {
	b := make([]byte, 0, evRefLen)
	b = append(b, sk...)
	b = be.AppendUint32(b, uint32(index))
	return be.AppendUint32(b, evSum(evTagRef, key, b))
}

// decodeEvRef returns the statement key (aliasing v) and leaf index.
func decodeEvRef(key, v []byte) ([]byte, int, error) {
	body, err := checkSum(bucketEvRefs, evTagRef, key, v)
	if err != nil {
		return nil, 0, err
	}
	if len(body) != sha256.Size+4 {
		return nil, 0, corruptf(evName(bucketEvRefs, key), "reference of %d bytes", len(v))
	}
	return body[:sha256.Size], int(be.Uint32(body[sha256.Size:])), nil
}

func encodeEvCount(sk []byte, n uint64) []byte {
	b := be.AppendUint64(make([]byte, 0, evCountLen), n)
	return be.AppendUint32(b, evSum(evTagCount, sk, b))
}

func decodeEvCount(sk, v []byte) (uint64, error) {
	body, err := checkSum(bucketEvCount, evTagCount, sk, v)
	if err != nil {
		return 0, err
	}
	if len(body) != 8 || be.Uint64(body) == 0 {
		return 0, corruptf(evName(bucketEvCount, sk), "bad count %x", body)
	}
	return be.Uint64(body), nil
}

func encodeEvStmt(sk []byte, e *Evidence) []byte {
	b := make([]byte, 0, evStmtHeader+32*len(e.Leaves)+len(e.Statement)+evSumLen)
	b = append(b, evStmtVersion)
	b = be.AppendUint64(b, e.First)
	b = be.AppendUint32(b, uint32(len(e.Leaves)))
	for i := range e.Leaves {
		b = append(b, e.Leaves[i][:]...)
	}
	b = append(b, e.Statement...)
	return be.AppendUint32(b, evSum(evTagStmt, sk, b))
}

// storedStmt is a stored statement; leaves and statement alias the record.
type storedStmt struct {
	first     uint64
	leaves    []byte // 32 bytes each
	statement []byte
}

// decodeEvStmt checks the statement record v at key sk: its sum, its
// layout and that the statement hashes to sk.
func decodeEvStmt(sk, v []byte) (storedStmt, error) {
	var st storedStmt
	body, err := checkSum(bucketEvStmts, evTagStmt, sk, v)
	if err != nil {
		return st, err
	}
	if len(body) < evStmtHeader || body[0] != evStmtVersion {
		return st, corruptf(evName(bucketEvStmts, sk), "not a version %d statement record (%d bytes)", evStmtVersion, len(v))
	}
	n := int(be.Uint32(body[9:]))
	if n == 0 || n > MaxEvidenceLeaves || len(body) < evStmtHeader+32*n+1 {
		return st, corruptf(evName(bucketEvStmts, sk), "%d leaves in %d bytes", n, len(body))
	}
	st.first = be.Uint64(body[1:])
	st.leaves = body[evStmtHeader : evStmtHeader+32*n]
	st.statement = body[evStmtHeader+32*n:]
	if h := sha256.Sum256(st.statement); !bytes.Equal(h[:], sk) {
		return st, corruptf(evName(bucketEvStmts, sk), "statement hashes to %x", h[:8])
	}
	return st, nil
}

// same reports whether e is the stored statement's range and leaves.
func (st *storedStmt) same(e *Evidence) bool {
	if st.first != e.First || len(st.leaves) != 32*len(e.Leaves) {
		return false
	}
	for i := range e.Leaves {
		if !bytes.Equal(st.leaves[32*i:32*i+32], e.Leaves[i][:]) {
			return false
		}
	}
	return true
}

// leafOf returns the leaf index of the item with sequence (RSeq) seq.
func (e *Evidence) leafOf(seq uint64) (int, bool) {
	if seq < e.First || seq-e.First >= uint64(len(e.Leaves)) {
		return 0, false
	}
	return int(seq - e.First), true
}

// evItem is a reference to add: its ev_refs key and leaf index.
type evItem struct {
	key   []byte
	index int
}

// addEvidence stores e (if new) and a reference to it for each item that
// has none of its kind yet.
func (a *applier) addEvidence(e *Evidence, items []evItem) error {
	if e == nil || len(items) == 0 {
		return nil
	}
	stmts, counts, refs := a.tx.Bucket(bucketEvStmts), a.tx.Bucket(bucketEvCount), a.tx.Bucket(bucketEvRefs)
	h := sha256.Sum256(e.Statement)
	sk := h[:]
	sv, cv := stmts.Get(sk), counts.Get(sk)
	if (sv == nil) != (cv == nil) {
		return corruptf(evName(bucketEvStmts, sk), "statement and reference count not stored together")
	}
	var have uint64
	if sv != nil {
		st, err := decodeEvStmt(sk, sv)
		if err != nil {
			return err
		}
		if !st.same(e) {
			return nil // the stored statement's leaves are kept
		}
		if have, err = decodeEvCount(sk, cv); err != nil {
			return err
		}
	}
	added := uint64(0)
	for _, it := range items {
		if refs.Get(it.key) != nil {
			continue // the first reference of a kind is kept
		}
		if err := refs.Put(it.key, encodeEvRef(it.key, sk, it.index)); err != nil {
			return err
		}
		added++
	}
	if added == 0 {
		return nil
	}
	if sv == nil {
		if err := stmts.Put(sk, encodeEvStmt(sk, e)); err != nil {
			return err
		}
	}
	return counts.Put(sk, encodeEvCount(sk, have+added))
}

// dropEvidence removes the references of the message at ref r (of
// direction dir, being purged) and each statement that loses its last.
func (a *applier) dropEvidence(dir byte, r []byte) error {
	stmts, counts, refs := a.tx.Bucket(bucketEvStmts), a.tx.Bucket(bucketEvCount), a.tx.Bucket(bucketEvRefs)
	for _, k := range evKinds {
		if k.dir != dir {
			continue
		}
		key := evRefKey(k, r)
		v := refs.Get(key)
		if v == nil {
			continue
		}
		sk, _, err := decodeEvRef(key, v)
		if err != nil {
			return err
		}
		sk = clone(sk)
		if err := refs.Delete(key); err != nil {
			return err
		}
		cv := counts.Get(sk)
		if cv == nil {
			return corruptf(evName(bucketEvCount, sk), "missing, but %s refers to it", evName(bucketEvRefs, key))
		}
		n, err := decodeEvCount(sk, cv)
		if err != nil {
			return err
		}
		if n > 1 {
			if err := counts.Put(sk, encodeEvCount(sk, n-1)); err != nil {
				return err
			}
			continue
		}
		if err := counts.Delete(sk); err != nil {
			return err
		}
		if err := stmts.Delete(sk); err != nil {
			return err
		}
	}
	return nil
}

// storedID returns the ID of the message stored at l in msgs (nil: no
// such channel), and false if there is none (purged, or lost with a
// backup's later state).
func storedID(msgs *bolt.Bucket, l loc) (string, bool, error) {
	if msgs == nil {
		return "", false, nil
	}
	v := msgs.Get(u64(l.seq))
	if v == nil {
		return "", false, nil
	}
	rec, err := decodeMeta(v, l)
	return rec.id, err == nil, err
}

// receiveEvidence refers each message of r that channel ck holds (applied
// now or before: Seq <= last, same ID) to r's evidence, as received.
func (a *applier) receiveEvidence(r *Receive, ck []byte, last uint64) error {
	e := r.Evidence
	if e == nil {
		return nil
	}
	msgs := a.in.Bucket(ck)
	var items []evItem
	for i := range r.Messages {
		m := &r.Messages[i]
		idx, ok := e.leafOf(m.Seq)
		if !ok || m.Seq > last {
			continue
		}
		id, ok, err := storedID(msgs, loc{finIn, ck, m.Seq})
		if err != nil {
			return err
		}
		if ok && id == m.ID {
			items = append(items, evItem{evRefKey(evReceived, ref(m.Seq, ck)), idx})
		}
	}
	return a.addEvidence(e, items)
}

// deliveredEvidence refers the outbound messages of channel ck that each
// of d's proofs covers, up to d.UpTo, to its statements: Sent as sent,
// Evidence as delivered (the first reference of a kind is kept where
// proofs overlap).
func (a *applier) deliveredEvidence(d *DeliveredCmd, ck []byte) error {
	msgs := a.out.Bucket(ck)
	if msgs == nil {
		return nil
	}
	for _, p := range d.Proofs {
		if err := a.proofEvidence(d.UpTo, msgs, ck, p); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) proofEvidence(upTo uint64, msgs *bolt.Bucket, ck []byte, p DeliveredProof) error {
	for _, x := range []struct {
		e    *Evidence
		kind evKind
	}{{p.Sent, evSent}, {p.Evidence, evDelivered}} {
		if x.e == nil {
			continue
		}
		var items []evItem
		for i := range x.e.Leaves {
			seq := x.e.First + uint64(i)
			if seq > upTo {
				break
			}
			if msgs.Get(u64(seq)) != nil {
				items = append(items, evItem{evRefKey(x.kind, ref(seq, ck)), i})
			}
		}
		if err := a.addEvidence(x.e, items); err != nil {
			return err
		}
	}
	return nil
}

// receiptsEvidence refers the outbound message of each receipt of r that
// is applied (RSeq <= last) to r's evidence, as read, if the message is
// kept and has the receipt's ID.
func (a *applier) receiptsEvidence(r *Receipts, last uint64) error {
	e := r.Evidence
	if e == nil {
		return nil
	}
	var items []evItem
	for i := range r.Receipts {
		rc := &r.Receipts[i]
		idx, ok := e.leafOf(rc.RSeq)
		if !ok || rc.RSeq > last || !rc.Precedence.Valid() {
			continue
		}
		ck := chanKey(r.From, rc.Precedence)
		id, ok, err := storedID(a.out.Bucket(ck), loc{finOut, ck, rc.Seq})
		if err != nil {
			return err
		}
		if ok && (rc.ID == "" || rc.ID == id) {
			items = append(items, evItem{evRefKey(evRead, ref(rc.Seq, ck)), idx})
		}
	}
	return a.addEvidence(e, items)
}

// Proofs returns the signed statements this site holds about the message
// with that ID, ordered sent, received, delivered, read (kinds it has no
// statement of are left out): "sent", "delivered" and "read" for an
// outbound message, "received" for an inbound one (the first indexed, if
// several share the ID). It returns ErrNotFound for an unknown (or
// purged) ID, and an error wrapping ErrCorrupt for a damaged record,
// which is not served.
func (s *Store) Proofs(id string) ([]Proof, error) {
	var out []Proof
	err := s.view(func(tx *bolt.Tx) error {
		at := map[byte][]byte{
			finOut: tx.Bucket(bucketOutIDs).Get([]byte(id)),
			finIn:  tx.Bucket(bucketInIDs).Get([]byte(id)),
		}
		if at[finOut] == nil && at[finIn] == nil {
			return ErrNotFound
		}
		stmts, refs := tx.Bucket(bucketEvStmts), tx.Bucket(bucketEvRefs)
		for _, k := range evKinds {
			if at[k.dir] == nil {
				continue
			}
			key := evRefKey(k, at[k.dir])
			v := refs.Get(key)
			if v == nil {
				continue
			}
			sk, idx, err := decodeEvRef(key, v)
			if err != nil {
				return err
			}
			sv := stmts.Get(sk)
			if sv == nil {
				return corruptf(evName(bucketEvStmts, sk), "missing, but %s refers to it", evName(bucketEvRefs, key))
			}
			st, err := decodeEvStmt(sk, sv)
			if err != nil {
				return err
			}
			if idx >= len(st.leaves)/32 {
				return corruptf(evName(bucketEvRefs, key), "leaf %d of a statement of %d", idx, len(st.leaves)/32)
			}
			p := Proof{Kind: k.name, Statement: clone(st.statement), Index: idx, Leaves: make([][32]byte, len(st.leaves)/32)}
			for i := range p.Leaves {
				copy(p.Leaves[i][:], st.leaves[32*i:])
			}
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, s.lookupErr("proofs", id, err)
	}
	return out, nil
}
