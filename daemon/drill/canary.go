package drill

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// newRunID returns a short random hex id that names one drill run.
func newRunID() (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("drill: run id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// keyPrefix is what every canary key of run begins with.
func keyPrefix(run string) string { return "drill-" + run + "-" }

// canaryKey is the idempotency key of canary n of run.
func canaryKey(run string, n int) string { return keyPrefix(run) + strconv.Itoa(n) }

// keyIndex returns n for a canary key of run; ok is false for any
// other key.
func keyIndex(run, key string) (n int, ok bool) {
	rest, found := strings.CutPrefix(key, keyPrefix(run))
	if !found || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// canaryPayload is a canary payload of exactly size bytes: the key, then
// padding (the key is cut short when size is smaller).
func canaryPayload(key string, size int) []byte {
	p := make([]byte, size)
	n := copy(p, key)
	for i := n; i < size; i++ {
		p[i] = '.'
	}
	return p
}

// arrivalLog accumulates the arrivals pages of one drill: the copies of
// this run's canaries committed at the destination, by key. It is not
// safe for concurrent use.
type arrivalLog struct {
	prefix string                 // this run's key prefix
	cursor uint64                 // pass as `after` for the next page
	last   uint64                 // highest destination Last seen
	seen   map[uint64]bool        // sequence numbers already counted
	byKey  map[string][]time.Time // key -> arrival times, one per copy
}

// newArrivalLog starts a log for run after the destination's sequence
// baseline (its Last before the drill).
func newArrivalLog(run string, baseline uint64) *arrivalLog {
	return &arrivalLog{
		prefix: keyPrefix(run),
		cursor: baseline,
		last:   baseline,
		seen:   make(map[uint64]bool),
		byKey:  make(map[string][]time.Time),
	}
}

// add merges one page and reports whether there may be more after it
// (its Next moved the cursor). Arrivals of other runs are skipped; a
// sequence number seen before is never counted twice, so two copies of a
// key are two distinct commits at the destination: a duplicate.
func (l *arrivalLog) add(page *client.ArrivalsReply) (more bool) {
	l.last = max(l.last, page.Last)
	for _, a := range page.Arrivals {
		if l.seen[a.Seq] || !strings.HasPrefix(a.Key, l.prefix) {
			continue
		}
		l.seen[a.Seq] = true
		l.byKey[a.Key] = append(l.byKey[a.Key], a.ArrivedAt)
	}
	if page.Next > l.cursor {
		l.cursor = page.Next
		return true
	}
	return false
}

// arrived is the number of distinct canaries that arrived.
func (l *arrivalLog) arrived() int { return len(l.byKey) }
