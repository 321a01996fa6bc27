package bench

import (
	"bytes"
	"testing"
	"time"
)

func TestHeaderRoundTrip(t *testing.T) {
	run := runID{1, 2, 3, 4, 5, 6, 7, 8}
	for _, tt := range []struct {
		i    uint64
		size int
	}{{0, HeaderSize}, {1, 100}, {1<<40 + 7, 4096}, {^uint64(0), HeaderSize + 1}} {
		p := encodePayload(run, tt.i, tt.size)
		if len(p) != tt.size {
			t.Errorf("payload %d: %d bytes, want %d", tt.i, len(p), tt.size)
		}
		gotRun, gotI, ok := decodeHeader(p)
		if !ok || gotRun != run || gotI != tt.i {
			t.Errorf("decode(encode(%x, %d)) = %x, %d, %v", run, tt.i, gotRun, gotI, ok)
		}
	}
	other := runID{9}
	if r, _, _ := decodeHeader(encodePayload(other, 3, 64)); r == run {
		t.Errorf("another run decodes as this run")
	}
	for _, p := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte("x"), 100), []byte(magic)} {
		if _, _, ok := decodeHeader(p); ok {
			t.Errorf("decodeHeader(%q) ok, want not a bench payload", p)
		}
	}
}

func TestTally(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

	type seen struct {
		i   uint64
		id  string
		pos uint64
		ms  int
	}
	tests := []struct {
		name                 string
		n                    int
		ok                   []int // submitted successfully (started at 0, latency 10ms)
		failed               []int
		seen                 []seen
		newCopies            int // received() calls that returned true
		delivered, lost, dup int
		complete             bool
	}{
		{
			name: "all delivered once", n: 3, ok: []int{0, 1, 2},
			seen:      []seen{{0, "a", 1, 100}, {1, "b", 2, 110}, {2, "c", 3, 120}},
			newCopies: 3, delivered: 3, complete: true,
		},
		{
			name: "one lost", n: 3, ok: []int{0, 1, 2},
			seen:      []seen{{0, "a", 1, 100}, {2, "c", 3, 120}},
			newCopies: 2, delivered: 2, lost: 1,
		},
		{
			name: "re-read of the same position is not a duplicate", n: 2, ok: []int{0, 1},
			seen:      []seen{{0, "a", 1, 100}, {0, "a", 1, 150}, {1, "b", 2, 160}},
			newCopies: 2, delivered: 2, complete: true,
		},
		{
			name: "same id at two positions is a duplicate", n: 2, ok: []int{0, 1},
			seen:      []seen{{0, "a", 1, 100}, {1, "b", 2, 110}, {0, "a", 3, 150}},
			newCopies: 3, delivered: 2, dup: 1, complete: true,
		},
		{
			name: "same index under two ids is a duplicate", n: 1, ok: []int{0},
			seen:      []seen{{0, "a", 1, 100}, {0, "z", 2, 150}, {0, "y", 3, 160}},
			newCopies: 3, delivered: 1, dup: 2, complete: true,
		},
		{
			name: "failed submit is not lost, and may still arrive", n: 3, ok: []int{0, 1}, failed: []int{2},
			seen:      []seen{{0, "a", 1, 100}, {1, "b", 2, 110}},
			newCopies: 2, delivered: 2, complete: true,
		},
		{
			name: "failed submit that arrived anyway counts delivered", n: 2, ok: []int{0}, failed: []int{1},
			seen:      []seen{{1, "b", 2, 110}, {0, "a", 1, 100}},
			newCopies: 2, delivered: 2, complete: true,
		},
		{
			name: "index out of range is ignored", n: 1, ok: []int{0},
			seen:      []seen{{5, "x", 1, 100}},
			newCopies: 0, delivered: 0, lost: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := newTally(tt.n)
			for _, i := range append(append([]int{}, tt.ok...), tt.failed...) {
				tl.started(i, t0)
			}
			for _, i := range tt.failed {
				tl.failedSubmit(i)
			}
			// Half of the arrivals are recorded before their submit
			// returns, as happens when the reply is slower than delivery.
			for _, i := range tt.ok[:len(tt.ok)/2] {
				tl.submitted(i, 10*time.Millisecond)
			}
			newCopies := 0
			for _, s := range tt.seen {
				if tl.received(s.i, s.id, s.pos, at(s.ms)) {
					newCopies++
				}
			}
			for _, i := range tt.ok[len(tt.ok)/2:] {
				tl.submitted(i, 10*time.Millisecond)
			}
			r := tl.result(at(1000))
			if newCopies != tt.newCopies {
				t.Errorf("new copies = %d, want %d", newCopies, tt.newCopies)
			}
			if r.Delivered != tt.delivered || r.Lost != tt.lost || r.Duplicated != tt.dup {
				t.Errorf("delivered/lost/duplicated = %d/%d/%d, want %d/%d/%d", r.Delivered, r.Lost, r.Duplicated, tt.delivered, tt.lost, tt.dup)
			}
			if r.FailedSubmits != len(tt.failed) || r.Submitted != len(tt.ok) {
				t.Errorf("failed/submitted = %d/%d, want %d/%d", r.FailedSubmits, r.Submitted, len(tt.failed), len(tt.ok))
			}
			if got := tl.complete(); got != tt.complete {
				t.Errorf("complete = %v, want %v", got, tt.complete)
			}
		})
	}
}

func TestResultLatencies(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tl := newTally(4)
	for i := range 4 {
		start := t0.Add(time.Duration(i) * time.Second)
		tl.started(i, start)
		tl.submitted(i, time.Duration(i+1)*time.Millisecond)
		tl.received(uint64(i), string(rune('a'+i)), uint64(i+1), start.Add(time.Duration(10*(i+1))*time.Millisecond))
	}
	r := tl.result(t0.Add(4 * time.Second))
	if r.SubmitP50 != 2 || r.SubmitP99 != 4 || r.SubmitMax != 4 || r.SubmitP90 != 4 {
		t.Errorf("submit p50/p90/p99/max = %v/%v/%v/%v, want 2/4/4/4", r.SubmitP50, r.SubmitP90, r.SubmitP99, r.SubmitMax)
	}
	if r.E2EP50 != 20 || r.E2EP99 != 40 || r.E2EMax != 40 {
		t.Errorf("e2e p50/p99/max = %v/%v/%v, want 20/40/40", r.E2EP50, r.E2EP99, r.E2EMax)
	}
	// First submit at t0, last arrival at t0+3.04s: 4 messages.
	if want := 4 / 3.04; r.MsgsPerSec < want-1e-9 || r.MsgsPerSec > want+1e-9 {
		t.Errorf("msgs_per_sec = %v, want %v", r.MsgsPerSec, want)
	}
	if r.ElapsedS != 4 {
		t.Errorf("elapsed_s = %v, want 4", r.ElapsedS)
	}
}
