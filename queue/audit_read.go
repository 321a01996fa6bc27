package queue

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrNoCheckpoint: no signed checkpoint covers what was asked (yet: the
// leader signs one within the audit checkpoint interval).
var ErrNoCheckpoint = errors.New("queue: no audit checkpoint covers it")

// MaxAuditPage bounds the entries one read returns.
const MaxAuditPage = 10000

// AuditEntry is one record of the audit log as stored: its index, its
// encoding (AuditRecord.Encode, the bytes the tree hashes) and the leaf
// hash stored for it when it was appended. A record read back is checked
// against its Hash (tlog.RecordHash): one changed after it was appended is
// an error wrapping ErrCorrupt, never returned.
type AuditEntry struct {
	Index  int64     `json:"index"`
	Record []byte    `json:"record"`
	Hash   tlog.Hash `json:"hash"`
}

// AuditCheckpoint is a stored signed checkpoint: of this site (own), or
// held of another site, or a fork of one (Fork). Note is the C2SP signed
// note; Time is when it was applied here (the command's time). For held
// checkpoints and forks, Proof is the consistency proof from the held
// checkpoint of size Prev (0: none) to this one, as received.
type AuditCheckpoint struct {
	Site  string      `json:"site"`
	Size  int64       `json:"size"`
	Root  tlog.Hash   `json:"root"`
	Note  []byte      `json:"note"`
	Time  int64       `json:"time"`
	Fork  bool        `json:"fork,omitempty"`
	Prev  int64       `json:"prev,omitempty"`
	Proof []tlog.Hash `json:"proof,omitempty"`
}

// AuditSize returns the number of records in the audit log (0 when
// closed).
func (s *Store) AuditSize() int64 {
	var n int64
	_ = s.view(func(tx *bolt.Tx) error {
		n = int64(getU64(tx.Bucket(bucketMeta), metaAuditSize))
		return nil
	})
	return n
}

// AuditEntries returns the records from index from on, at most max
// (bounded by MaxAuditPage), and the log's size.
func (s *Store) AuditEntries(from int64, max int) (entries []AuditEntry, size int64, err error) {
	max = auditPage(max)
	err = s.view(func(tx *bolt.Tx) error {
		size = int64(getU64(tx.Bucket(bucketMeta), metaAuditSize))
		log, hashes := tx.Bucket(bucketAudit), tx.Bucket(bucketAuditHashes)
		for i := max64(from, 0); i < size && len(entries) < max; i++ {
			e, err := auditEntry(log, hashes, i)
			if err != nil {
				return err
			}
			entries = append(entries, e)
		}
		return nil
	})
	return entries, size, s.note(err)
}

// AuditEntriesOf returns the records about message id (both directions),
// in log order, at most MaxAuditPage.
func (s *Store) AuditEntriesOf(id string) ([]AuditEntry, error) {
	var out []AuditEntry
	err := s.view(func(tx *bolt.Tx) error {
		log, hashes := tx.Bucket(bucketAudit), tx.Bucket(bucketAuditHashes)
		prefix := append([]byte(id), 0)
		c := tx.Bucket(bucketAuditIDs).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(out) < MaxAuditPage; k, _ = c.Next() {
			if len(k) != len(prefix)+8 {
				continue // a longer ID that merely starts with id 0: impossible, IDs hold no 0 byte
			}
			e, err := auditEntry(log, hashes, int64(be.Uint64(k[len(prefix):])))
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	return out, s.note(err)
}

func auditEntry(log, hashes *bolt.Bucket, i int64) (AuditEntry, error) {
	v := log.Get(u64(uint64(i)))
	if v == nil {
		return AuditEntry{}, corruptf(fmt.Sprintf("audit record %d", i), "missing below the log's size")
	}
	hs, err := hashReader(hashes).ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
	if err != nil {
		return AuditEntry{}, err
	}
	if h := tlog.RecordHash(v); h != hs[0] {
		return AuditEntry{}, corruptf(fmt.Sprintf("audit record %d", i), "record hashes to %x, stored leaf hash %x", h[:8], hs[0][:8])
	}
	return AuditEntry{Index: i, Record: bytes.Clone(v), Hash: hs[0]}, nil
}

// AuditTreeHash returns the tree hash of the log's first size records.
func (s *Store) AuditTreeHash(size int64) (tlog.Hash, error) {
	var h tlog.Hash
	err := s.auditView(size, func(r tlog.HashReader) (err error) {
		h, err = tlog.TreeHash(size, r)
		return err
	})
	return h, err
}

// AuditProveRecord returns the proof that record index is in the tree of
// size records (tlog.CheckRecord checks it).
func (s *Store) AuditProveRecord(index, size int64) (tlog.RecordProof, error) {
	var p tlog.RecordProof
	err := s.auditView(size, func(r tlog.HashReader) (err error) {
		if index < 0 || index >= size {
			return fmt.Errorf("queue: audit: %w: record %d is not in a tree of size %d", ErrInvalid, index, size)
		}
		p, err = tlog.ProveRecord(size, index, r)
		return err
	})
	return p, err
}

// AuditProveTree returns the proof that the tree of size old is a prefix
// of the tree of size size (tlog.CheckTree checks it).
func (s *Store) AuditProveTree(size, old int64) (tlog.TreeProof, error) {
	var p tlog.TreeProof
	err := s.auditView(size, func(r tlog.HashReader) (err error) {
		if old <= 0 || old > size {
			return fmt.Errorf("queue: audit: %w: no consistency proof from size %d to %d", ErrInvalid, old, size)
		}
		p, err = tlog.ProveTree(size, old, r)
		return err
	})
	return p, err
}

// auditView runs fn with a reader of the stored hashes, after checking
// that the log has at least size records.
func (s *Store) auditView(size int64, fn func(tlog.HashReader) error) error {
	err := s.view(func(tx *bolt.Tx) error {
		if n := int64(getU64(tx.Bucket(bucketMeta), metaAuditSize)); size < 0 || size > n {
			return fmt.Errorf("queue: audit: %w: size %d, but the log has %d records", ErrInvalid, size, n)
		}
		return fn(hashReader(tx.Bucket(bucketAuditHashes)))
	})
	return s.note(err)
}

// AuditInclusion returns the latest own signed checkpoint and the proof
// that record index is in its tree: what shows a third party that the
// record is part of the log this site signed. ErrNoCheckpoint if no
// checkpoint covers index yet.
func (s *Store) AuditInclusion(index int64) (*AuditCheckpoint, tlog.RecordProof, error) {
	cp, err := s.AuditCheckpoint(s.site)
	switch {
	case errors.Is(err, ErrNoCheckpoint) || (err == nil && cp.Size <= index):
		return nil, nil, fmt.Errorf("%w: record %d", ErrNoCheckpoint, index)
	case err != nil:
		return nil, nil, err
	}
	p, err := s.AuditProveRecord(index, cp.Size)
	if err != nil {
		return nil, nil, err
	}
	return cp, p, nil
}

// AuditCheckpoint returns the latest checkpoint of site: this site's own
// latest signed one, or the latest held of another site.
// ErrNoCheckpoint if there is none.
func (s *Store) AuditCheckpoint(site string) (*AuditCheckpoint, error) {
	kind := byte(cpHeld)
	if site == s.site {
		kind = cpOwn
	}
	var cp AuditCheckpoint
	var ok bool
	err := s.view(func(tx *bolt.Tx) (err error) {
		cp, ok, err = lastCheckpoint(tx.Bucket(bucketAuditCPs), kind, site)
		return err
	})
	if err = s.note(err); err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: none of site %s", ErrNoCheckpoint, site)
	}
	return &cp, nil
}

// AuditCheckpoints lists the checkpoints of site with a size above after,
// ascending, at most max (bounded by MaxAuditPage): this site's own, or
// those held of another site, or, with forks, the forks kept of site.
func (s *Store) AuditCheckpoints(site string, forks bool, after int64, max int) ([]AuditCheckpoint, error) {
	kind := byte(cpHeld)
	switch {
	case forks:
		kind = cpFork
	case site == s.site:
		kind = cpOwn
	}
	max = auditPage(max)
	var out []AuditCheckpoint
	err := s.view(func(tx *bolt.Tx) error {
		prefix := cpPrefix(kind, site)
		c := tx.Bucket(bucketAuditCPs).Cursor()
		for k, v := c.Seek(cpKey(kind, site, max64(after+1, 0))); k != nil && bytes.HasPrefix(k, prefix) && len(out) < max; k, v = c.Next() {
			cp, err := parseCheckpoint(k, v)
			if err != nil {
				return err
			}
			out = append(out, cp)
		}
		return nil
	})
	return out, s.note(err)
}

// AuditForks returns how many forked checkpoints are kept (of every site)
// and the latest applied of them (nil if none).
func (s *Store) AuditForks() (int, *AuditCheckpoint, error) {
	n := 0
	var latest *AuditCheckpoint
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAuditCPs).Cursor()
		prefix := []byte{cpFork}
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			cp, err := parseCheckpoint(k, v)
			if err != nil {
				return err
			}
			n++
			if latest == nil || cp.Time > latest.Time {
				latest = &cp
			}
		}
		return nil
	})
	return n, latest, s.note(err)
}

func auditPage(max int) int {
	if max <= 0 || max > MaxAuditPage {
		return MaxAuditPage
	}
	return max
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
