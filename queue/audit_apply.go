package queue

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// Audit log buckets (audit.go). Integers are big-endian.
var (
	bucketAudit       = []byte("audit")        // index(8) -> record (AuditRecord.Encode)
	bucketAuditHashes = []byte("audit_hashes") // tlog stored hash index(8) -> hash(32)
	bucketAuditIDs    = []byte("audit_ids")    // message id 0 index(8) -> nil
	bucketAuditCPs    = []byte("audit_cps")    // cpKey -> cpValue, checkpoints (below)

	metaAuditSize = []byte("audit_size") // in bucketMeta: the number of records
)

// Checkpoint keys: a kind byte, the site, a 0 byte, the size (8); a fork's
// key ends with its root (32), so that forks of one size are all kept.
//
//	cpOwn  'o' site 0 size          this site's own signed checkpoints
//	cpHeld 'h' site 0 size          another site's checkpoints, each consistent with the one before
//	cpFork 'f' site 0 size root     another site's checkpoints inconsistent with the held ones
//
// Values: time(8) root(32) prev(8) n(1) proof(32 each) note, where prev is
// the size of the held checkpoint the proof starts from (0: none).
const (
	cpOwn  = 'o'
	cpHeld = 'h'
	cpFork = 'f'
)

// maxForksPerSite bounds the forks kept of one site: after a fork every
// later checkpoint of that site is one too, and the first ones are the
// evidence.
const maxForksPerSite = 16

func cpPrefix(kind byte, site string) []byte {
	k := make([]byte, 0, 2+len(site)+8+32)
	k = append(k, kind)
	k = append(k, site...)
	return append(k, 0)
}

func cpKey(kind byte, site string, size int64) []byte {
	return be.AppendUint64(cpPrefix(kind, site), uint64(size))
}

// auditTx is the audit buckets of one write transaction, with the log's
// size and the stored hashes appended in it kept in memory: a message
// event appends a record, whose stored hashes need the ones appended just
// before, and a transaction appends many (one Get and one Put of the size
// per record, and most hash reads, saved; flush writes the size once).
type auditTx struct {
	log, hashes, ids, cps *bolt.Bucket

	size   int64 // records, once known (sizeOK)
	sizeOK bool
	dirty  bool                // size changed since read
	recent map[int64]tlog.Hash // stored hashes appended in this transaction
}

func openAuditTx(tx *bolt.Tx) auditTx {
	t := auditTx{log: tx.Bucket(bucketAudit), hashes: tx.Bucket(bucketAuditHashes),
		ids: tx.Bucket(bucketAuditIDs), cps: tx.Bucket(bucketAuditCPs)}
	if t.log != nil {
		t.log.FillPercent = seqFill
		t.hashes.FillPercent = seqFill
	}
	return t
}

// count returns the number of records, as this transaction left it.
func (t *auditTx) count(meta *bolt.Bucket) int64 {
	if !t.sizeOK {
		t.size, t.sizeOK = int64(getU64(meta, metaAuditSize)), true
	}
	return t.size
}

// flush writes the log's size if this transaction appended records.
func (t *auditTx) flush(meta *bolt.Bucket) error {
	if !t.dirty {
		return nil
	}
	t.dirty = false
	return meta.Put(metaAuditSize, u64(uint64(t.size)))
}

// reader reads stored hashes, the ones appended in this transaction from
// memory.
func (t *auditTx) reader() tlog.HashReader {
	stored := hashReader(t.hashes)
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			h, ok := t.recent[x]
			if !ok {
				hs, err := stored.ReadHashes([]int64{x})
				if err != nil {
					return nil, err
				}
				h = hs[0]
			}
			out[i] = h
		}
		return out, nil
	})
}

// hashReader reads stored hashes from b; a missing or malformed one is
// corruption.
func hashReader(b *bolt.Bucket) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			v := b.Get(u64(uint64(x)))
			if len(v) != len(tlog.Hash{}) {
				return nil, corruptf(fmt.Sprintf("bucket %s, stored hash %d", bucketAuditHashes, x), "missing or malformed (%d bytes)", len(v))
			}
			copy(out[i][:], v)
		}
		return out, nil
	})
}

// auditAppend appends r to the log and returns its index.
func (a *applier) auditAppend(r *AuditRecord) (int64, error) {
	data := r.Encode()
	n := a.aud.count(a.meta)
	hashes, err := tlog.StoredHashes(n, data, a.aud.reader())
	if err != nil {
		return 0, fmt.Errorf("audit record %d: %w", n, err)
	}
	base := tlog.StoredHashIndex(0, n)
	if a.aud.recent == nil {
		a.aud.recent = make(map[int64]tlog.Hash)
	}
	for i, h := range hashes {
		if err := a.aud.hashes.Put(u64(uint64(base+int64(i))), bytes.Clone(h[:])); err != nil {
			return 0, err
		}
		a.aud.recent[base+int64(i)] = h
	}
	if err := a.aud.log.Put(u64(uint64(n)), data); err != nil {
		return 0, err
	}
	if r.ID != "" {
		k := append(append([]byte(r.ID), 0), u64(uint64(n))...)
		if err := a.aud.ids.Put(k, nil); err != nil {
			return 0, err
		}
	}
	a.aud.size, a.aud.dirty = n+1, true
	return n, nil
}

// auditMsg appends the record of a message's event: the message at seq of
// channel ck, outbound (out: origin is this site) or inbound. payload, if
// not nil, is hashed into the record. Entries of older formats append
// nothing (Command.audited).
func (a *applier) auditMsg(kind AuditKind, out bool, now int64, ck []byte, seq uint64, id string, flags uint32, payload []byte) error {
	return a.auditMsgDetail(kind, out, now, ck, seq, id, flags, payload, "")
}

// auditMsgDetail is auditMsg with the record's Detail (a refusal's reason).
func (a *applier) auditMsgDetail(kind AuditKind, out bool, now int64, ck []byte, seq uint64, id string, flags uint32, payload []byte, detail string) error {
	if !a.audited {
		return nil
	}
	site, p, ok := parseChanKey(ck)
	if !ok {
		return corruptf(channelName(ck), "malformed channel key")
	}
	r := &AuditRecord{Kind: kind, Time: now, ID: id, Origin: site, Dest: a.site, Precedence: p, Seq: seq, Flags: flags, Actor: NoActor, Node: a.actorNode, Detail: detail}
	if a.actor != nil {
		r.Actor = *a.actor
	}
	if out {
		r.Origin, r.Dest = a.site, site
	}
	if kind == AuditSubmitted || kind == AuditReceived {
		h := sha256.Sum256(payload)
		r.PayloadHash = h[:]
	}
	_, err := a.auditAppend(r)
	return err
}

// auditOp applies OpAudit: an operator record.
func (a *applier) auditOp(now int64, c *AuditCmd) (Result, error) {
	if err := c.valid(); err != nil {
		return Result{Err: "queue: audit: " + err.Error()}, nil
	}
	idx, err := a.auditAppend(&AuditRecord{Kind: AuditOperator, Time: now, Node: c.Node, Actor: c.Actor, Action: c.Action, Detail: c.Detail})
	return Result{Audit: &AuditResult{Index: idx}}, err
}

// checkpoint applies OpCheckpoint; see CheckpointCmd.
func (a *applier) checkpoint(now int64, k *CheckpointCmd) (Result, error) {
	refuse := func(format string, args ...any) (Result, error) {
		return Result{Err: fmt.Sprintf("queue: checkpoint of %s at %d: %v: ", k.Site, k.Size, ErrInvalid) + fmt.Sprintf(format, args...)}, nil
	}
	switch {
	case validName(k.Site) != nil:
		return refuse("%v", validName(k.Site))
	case k.Size <= 0:
		return refuse("size must be positive")
	case len(k.Note) == 0 || len(k.Note) > MaxCheckpointNote:
		return refuse("note of %d bytes (1 to %d)", len(k.Note), MaxCheckpointNote)
	case len(k.Proof) > MaxCheckpointProof:
		return refuse("proof of %d hashes (at most %d)", len(k.Proof), MaxCheckpointProof)
	}
	if k.Site == a.site {
		size := a.aud.count(a.meta)
		if k.Size > size {
			return refuse("the log has %d records", size)
		}
		th, err := tlog.TreeHash(k.Size, a.aud.reader())
		if err != nil {
			return Result{}, err
		}
		if th != k.Root {
			return refuse("root %s is not the tree hash %s at that size", k.Root, th)
		}
		key := cpKey(cpOwn, k.Site, k.Size)
		if a.aud.cps.Get(key) != nil {
			return Result{Audit: &AuditResult{}}, nil // signed before: keep the first
		}
		return Result{Audit: &AuditResult{}}, a.aud.cps.Put(key, cpValue(now, k.Root, 0, nil, k.Note))
	}
	held, ok, err := lastCheckpoint(a.aud.cps, cpHeld, k.Site)
	if err != nil {
		return Result{}, err
	}
	prev := int64(0)
	if ok {
		prev = held.Size
	}
	if k.From != prev {
		return Result{Err: fmt.Sprintf("queue: checkpoint of %s at %d: %v (the proof starts at size %d, the checkpoint held is of size %d)", k.Site, k.Size, ErrCheckpointMoved, k.From, prev),
			Audit: &AuditResult{Moved: true, Held: prev}}, nil
	}
	fork := false
	if ok {
		switch {
		case k.Size < held.Size:
			return refuse("older than the last one held (size %d)", held.Size)
		case k.Size == held.Size:
			if k.Root == held.Root {
				return Result{Audit: &AuditResult{}}, nil // held already
			}
			fork = true
		default:
			fork = tlog.CheckTree(k.Proof, k.Size, k.Root, held.Size, held.Root) != nil
		}
	}
	v := cpValue(now, k.Root, prev, k.Proof, k.Note)
	if !fork {
		return Result{Audit: &AuditResult{}}, a.aud.cps.Put(cpKey(cpHeld, k.Site, k.Size), v)
	}
	res := Result{Audit: &AuditResult{Fork: true}}
	prefix := cpPrefix(cpFork, k.Site)
	n := 0
	c := a.aud.cps.Cursor()
	for key, _ := c.Seek(prefix); key != nil && bytes.HasPrefix(key, prefix); key, _ = c.Next() {
		n++
	}
	if n >= maxForksPerSite {
		return res, nil // enough evidence kept
	}
	return res, a.aud.cps.Put(append(cpKey(cpFork, k.Site, k.Size), k.Root[:]...), v)
}

// cpValue encodes a stored checkpoint's value.
func cpValue(now int64, root tlog.Hash, prev int64, proof []tlog.Hash, note []byte) []byte {
	v := make([]byte, 0, 8+32+8+1+32*len(proof)+len(note))
	v = be.AppendUint64(v, uint64(now))
	v = append(v, root[:]...)
	v = be.AppendUint64(v, uint64(prev))
	v = append(v, byte(len(proof)))
	for _, h := range proof {
		v = append(v, h[:]...)
	}
	return append(v, note...)
}

// parseCheckpoint decodes a stored checkpoint (key and value).
func parseCheckpoint(k, v []byte) (AuditCheckpoint, error) {
	bad := func(why string) (AuditCheckpoint, error) {
		return AuditCheckpoint{}, corruptf(fmt.Sprintf("bucket %s, key %x", bucketAuditCPs, k), "%s", why)
	}
	i := bytes.IndexByte(k, 0)
	if len(k) < 1 || i < 2 || (len(k) != i+9 && len(k) != i+9+32) {
		return bad("malformed key")
	}
	cp := AuditCheckpoint{Site: string(k[1:i]), Size: int64(be.Uint64(k[i+1:])), Fork: k[0] == cpFork}
	if len(v) < 49 || len(v) < 49+32*int(v[48]) {
		return bad("malformed value")
	}
	cp.Time = int64(be.Uint64(v))
	copy(cp.Root[:], v[8:])
	cp.Prev = int64(be.Uint64(v[40:]))
	n := int(v[48])
	v = v[49:]
	for range n {
		var h tlog.Hash
		copy(h[:], v)
		cp.Proof = append(cp.Proof, h)
		v = v[32:]
	}
	cp.Note = bytes.Clone(v)
	return cp, nil
}

// lastCheckpoint returns the stored checkpoint of kind and site with the
// largest size, ok false if none.
func lastCheckpoint(b *bolt.Bucket, kind byte, site string) (cp AuditCheckpoint, ok bool, err error) {
	prefix := cpPrefix(kind, site)
	c := b.Cursor()
	k, v := c.Seek(append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return AuditCheckpoint{}, false, nil
	}
	cp, err = parseCheckpoint(k, v)
	return cp, err == nil, err
}
