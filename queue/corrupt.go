package queue

import (
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
)

// ErrCorrupt is wrapped by every error about stored data or a log entry
// whose checksum or structure is wrong: a damaged file or a bug, never bad
// input. The data is not served, forwarded or applied; see
// [CorruptError] for where it was found and [Store.Corruption].
var ErrCorrupt = errors.New("queue: corrupt data")

// errCorrupt is the bare kind, for the few checks that have no better
// location than their caller adds.
var errCorrupt = ErrCorrupt

// CorruptError names damaged data: the file (the store's path; empty for
// a log entry, which is not in the store's file), the bucket and record
// ("in alpha/routine seq 7", "inbox pos 3") and what was wrong. It wraps
// [ErrCorrupt].
type CorruptError struct {
	File   string
	Record string
	Reason string

	entry bool // a log entry: not in the store's file
}

func (e *CorruptError) Error() string {
	s := "queue: corrupt data"
	if e.File != "" {
		s += " in " + e.File
	}
	return s + ": " + e.Record + ": " + e.Reason
}

func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corruptf(record, format string, args ...any) *CorruptError {
	return &CorruptError{Record: record, Reason: fmt.Sprintf(format, args...)}
}

// castagnoli is the CRC32C table: hardware-accelerated on amd64 and arm64.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// channelName formats a channel key for an error message.
func channelName(ck []byte) string {
	if site, p, ok := parseChanKey(ck); ok {
		return site + "/" + p.String()
	}
	return fmt.Sprintf("%q", ck)
}

// recordName names a stored message for an error message.
func recordName(kind byte, ck []byte, seq uint64) string {
	b := "out"
	if kind == finIn {
		b = "in"
	}
	return fmt.Sprintf("bucket %s, channel %s, seq %d", b, channelName(ck), seq)
}

// maxCorruptSeen bounds the set of distinct damaged records remembered.
const maxCorruptSeen = 4096

// corruption counts the distinct damaged records found since Open.
type corruption struct {
	mu    sync.Mutex
	seen  map[string]struct{} // File+Record
	count uint64
	last  error
}

// note records err if it is a CorruptError, filling in the file, and
// returns err.
func (s *Store) note(err error) error {
	var ce *CorruptError
	if err == nil || !errors.As(err, &ce) {
		return err
	}
	if ce.File == "" && !ce.entry {
		ce.File = s.path
	}
	c := &s.corrupt
	c.mu.Lock()
	defer c.mu.Unlock()
	k := ce.File + "\x00" + ce.Record
	if _, ok := c.seen[k]; ok {
		return err
	}
	if c.seen == nil {
		c.seen = map[string]struct{}{}
	}
	if len(c.seen) < maxCorruptSeen {
		c.seen[k] = struct{}{}
	}
	c.count++
	c.last = err
	return err
}

// Corruption returns how many distinct damaged records (stored records,
// index entries, log entries) this store has found since it was opened,
// and the error of the latest. Each is found where it is read: a damaged
// record that nobody reads is not counted. Once it is non-zero the node
// has data it cannot serve: rebuild it from the leader's snapshot (see
// the README, "Corruption and recovery").
func (s *Store) Corruption() (count uint64, last error) {
	s.corrupt.mu.Lock()
	defer s.corrupt.mu.Unlock()
	return s.corrupt.count, s.corrupt.last
}
