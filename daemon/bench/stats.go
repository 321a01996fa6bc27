package bench

import (
	"encoding/binary"
	"time"

	"github.com/hotline-link/hotline/internal/latency"
)

// A bench payload begins with a fixed header that names the run and the
// message's index, so the receiving side can tell its own messages from
// anything else in the inbox: the magic "HLBENCH1", the 8-byte run id and
// the index as a big-endian uint64. Padding fills the rest.
const magic = "HLBENCH1"

// HeaderSize is the size of a bench payload's header, and so the least
// Options.Size.
const HeaderSize = len(magic) + 8 + 8

// runID identifies one bench run.
type runID [8]byte

// encodePayload returns a payload of exactly size bytes (at least
// HeaderSize) for message i of run.
func encodePayload(run runID, i uint64, size int) []byte {
	p := make([]byte, max(size, HeaderSize))
	copy(p, magic)
	copy(p[len(magic):], run[:])
	binary.BigEndian.PutUint64(p[len(magic)+8:], i)
	for k := HeaderSize; k < len(p); k++ {
		p[k] = 'a' + byte(k%26)
	}
	return p
}

// decodeHeader returns the run and index of a bench payload; ok is
// false when p does not start with a bench header.
func decodeHeader(p []byte) (run runID, i uint64, ok bool) {
	if len(p) < HeaderSize || string(p[:len(magic)]) != magic {
		return run, 0, false
	}
	copy(run[:], p[len(magic):])
	return run, binary.BigEndian.Uint64(p[len(magic)+8:]), true
}

// inboxCopy identifies one appearance of a message in the inbox.
type inboxCopy struct {
	id  string
	pos uint64
}

// tally accounts one bench run: which indexes were submitted, which
// arrived and how often. It is not safe for concurrent use.
type tally struct {
	n          int
	start      []time.Time     // request start of the first attempt; zero if never started
	ok         []bool          // submit succeeded
	submitLat  []time.Duration // of successful submits, by index
	copies     []int           // distinct inbox appearances, by index
	firstSeen  []time.Time
	seen       map[inboxCopy]bool
	okCount    int // successful submits
	okReceived int // successful submits that arrived
	failed     int // submits that failed for good
	distinct   int // indexes that arrived
	dups       int // appearances beyond the first of an index
	firstStart time.Time
	lastSeen   time.Time
}

func newTally(n int) *tally {
	return &tally{
		n:         n,
		start:     make([]time.Time, n),
		ok:        make([]bool, n),
		submitLat: make([]time.Duration, n),
		copies:    make([]int, n),
		firstSeen: make([]time.Time, n),
		seen:      make(map[inboxCopy]bool),
	}
}

// started records the start of the first submit attempt of index i.
func (t *tally) started(i int, at time.Time) {
	t.start[i] = at
	if t.firstStart.IsZero() || at.Before(t.firstStart) {
		t.firstStart = at
	}
}

// submitted records that index i was committed, lat after it started.
func (t *tally) submitted(i int, lat time.Duration) {
	if t.ok[i] {
		return
	}
	t.ok[i] = true
	t.submitLat[i] = lat
	t.okCount++
	if t.copies[i] > 0 {
		t.okReceived++
	}
}

// failedSubmit records that index i could not be submitted.
func (t *tally) failedSubmit(int) { t.failed++ }

// received records that the message with inbox id and position pos,
// carrying index i, was seen at time at. It reports whether this was a new
// appearance (one not seen before at that position), which the caller
// acknowledges. The same id at two positions is two appearances, and so is
// the same index under two ids: both are duplicates.
func (t *tally) received(i uint64, id string, pos uint64, at time.Time) bool {
	if i >= uint64(t.n) {
		return false
	}
	c := inboxCopy{id: id, pos: pos}
	if t.seen[c] {
		return false
	}
	t.seen[c] = true
	t.copies[i]++
	if t.copies[i] > 1 {
		t.dups++
		return true
	}
	t.distinct++
	t.firstSeen[i] = at
	if at.After(t.lastSeen) {
		t.lastSeen = at
	}
	if t.ok[i] {
		t.okReceived++
	}
	return true
}

// complete reports whether every successful submit has arrived.
func (t *tally) complete() bool { return t.okReceived == t.okCount }

// Result is the summary of a bench run; its JSON form is the output of
// `hotlinectl bench --json`. Latencies are in milliseconds: submit_* from
// the first attempt of a submit to its success, e2e_* from that same
// start to the message's first appearance in the destination's inbox.
type Result struct {
	RunID         string  `json:"run_id"`
	N             int     `json:"n"`
	Size          int     `json:"size"`
	Concurrency   int     `json:"concurrency"`
	Rate          float64 `json:"rate"`
	Precedence    string  `json:"precedence"`
	Submitted     int     `json:"submitted"`
	Delivered     int     `json:"delivered"`
	Lost          int     `json:"lost"`
	Duplicated    int     `json:"duplicated"`
	FailedSubmits int     `json:"failed_submits"`
	ElapsedS      float64 `json:"elapsed_s"`
	MsgsPerSec    float64 `json:"msgs_per_sec"`
	SubmitP50     float64 `json:"submit_p50_ms"`
	SubmitP90     float64 `json:"submit_p90_ms"`
	SubmitP99     float64 `json:"submit_p99_ms"`
	SubmitMax     float64 `json:"submit_max_ms"`
	E2EP50        float64 `json:"e2e_p50_ms"`
	E2EP90        float64 `json:"e2e_p90_ms"`
	E2EP99        float64 `json:"e2e_p99_ms"`
	E2EMax        float64 `json:"e2e_max_ms"`

	// CPUSPerMsg is the CPU seconds of the two daemons' processes (each
	// process once) per delivered message, over the bench (cpu.go);
	// absent when a daemon's could not be read (Nodes says why).
	CPUSPerMsg *float64  `json:"cpu_s_per_msg,omitempty"`
	Nodes      []NodeCPU `json:"nodes,omitempty"` // the sending daemon, then the receiving one
}

// result summarises the run as of end. Lost counts successful submits that
// never arrived; a failed submit is counted in FailedSubmits only (its
// message may still arrive, and then counts as delivered). Throughput is
// delivered messages over the time from the first submit to the last
// arrival.
func (t *tally) result(end time.Time) Result {
	r := Result{
		N:             t.n,
		Submitted:     t.okCount,
		Delivered:     t.distinct,
		Lost:          t.okCount - t.okReceived,
		Duplicated:    t.dups,
		FailedSubmits: t.failed,
	}
	if !t.firstStart.IsZero() {
		r.ElapsedS = end.Sub(t.firstStart).Seconds()
		if span := t.lastSeen.Sub(t.firstStart); t.distinct > 0 && span > 0 {
			r.MsgsPerSec = float64(t.distinct) / span.Seconds()
		}
	}
	var sub, e2e []time.Duration
	for i := range t.n {
		if t.ok[i] {
			sub = append(sub, t.submitLat[i])
		}
		if t.copies[i] > 0 && !t.start[i].IsZero() {
			e2e = append(e2e, t.firstSeen[i].Sub(t.start[i]))
		}
	}
	ms := latency.Millis
	s := latency.Of(sub)
	r.SubmitP50, r.SubmitP90, r.SubmitP99, r.SubmitMax = ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max)
	s = latency.Of(e2e)
	r.E2EP50, r.E2EP90, r.E2EP99, r.E2EMax = ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max)
	return r
}
