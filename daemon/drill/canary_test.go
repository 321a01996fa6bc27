package drill

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

func TestDrillKeys(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		run, err := newRunID()
		if err != nil {
			t.Fatal(err)
		}
		if len(run) != 8 || strings.Trim(run, "0123456789abcdef") != "" {
			t.Fatalf("run id %q is not 8 hex digits", run)
		}
		if seen[run] {
			t.Fatalf("run id %q repeated", run)
		}
		seen[run] = true
	}
	if got := canaryKey("0a1b2c3d", 42); got != "drill-0a1b2c3d-42" {
		t.Errorf("canaryKey = %q", got)
	}
	for _, tt := range []struct {
		key string
		n   int
		ok  bool
	}{
		{"drill-0a1b2c3d-0", 0, true},
		{"drill-0a1b2c3d-1499", 1499, true},
		{"drill-0a1b2c3d-", 0, false},
		{"drill-0a1b2c3d-07", 0, false},
		{"drill-0a1b2c3d--1", 0, false},
		{"drill-0a1b2c3d-1x", 0, false},
		{"drill-ffffffff-1", 0, false},
		{"drill-0a1b2c3dd-1", 0, false},
		{"bench-0a1b2c3d-1", 0, false},
	} {
		n, ok := keyIndex("0a1b2c3d", tt.key)
		if n != tt.n || ok != tt.ok {
			t.Errorf("keyIndex(%q) = %d, %v; want %d, %v", tt.key, n, ok, tt.n, tt.ok)
		}
	}
	for n := range 2000 {
		if got, ok := keyIndex("0a1b2c3d", canaryKey("0a1b2c3d", n)); !ok || got != n {
			t.Fatalf("round trip of %d: %d, %v", n, got, ok)
		}
	}
}

func TestDrillPayload(t *testing.T) {
	key := "drill-0a1b2c3d-7"
	p := canaryPayload(key, 256)
	if len(p) != 256 || !bytes.HasPrefix(p, []byte(key)) {
		t.Errorf("payload(256) = %q", p)
	}
	if p := canaryPayload(key, 5); string(p) != "drill" {
		t.Errorf("payload(5) = %q, want the key cut short", p)
	}
	if p := canaryPayload(key, 1); len(p) != 1 {
		t.Errorf("payload(1) has %d bytes", len(p))
	}
}

func TestArrivalLog(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	arr := func(seq uint64, key string, ms int) client.Arrival {
		return client.Arrival{Seq: seq, ID: fmt.Sprintf("id-%d", seq), Key: key, ArrivedAt: at(ms)}
	}
	run := "0a1b2c3d"
	k := func(n int) string { return canaryKey(run, n) }

	l := newArrivalLog(run, 100)
	if l.cursor != 100 || l.last != 100 {
		t.Fatalf("new log: cursor %d, last %d; want the baseline 100", l.cursor, l.last)
	}
	pages := []struct {
		page client.ArrivalsReply
		more bool
	}{
		{client.ArrivalsReply{Last: 104, Next: 104, Arrivals: []client.Arrival{
			arr(101, k(0), 10),
			arr(102, "drill-ffffffff-0", 11), // another run
			arr(103, "", 12),                 // no key
			arr(104, k(1), 13),
		}}, true},
		// A page re-read from an older cursor must not count copies twice.
		{client.ArrivalsReply{Last: 106, Next: 106, Arrivals: []client.Arrival{
			arr(104, k(1), 13),
			arr(105, k(2), 20),
			arr(106, k(1), 25), // a second commit of canary 1: duplicated
		}}, true},
		{client.ArrivalsReply{Last: 110, Next: 110, Arrivals: []client.Arrival{
			arr(108, keyPrefix(run)+"9", 30),
		}}, true},
		{client.ArrivalsReply{Last: 110, Next: 110}, false},
	}
	for i, p := range pages {
		if more := l.add(&p.page); more != p.more {
			t.Errorf("page %d: more = %v, want %v", i, more, p.more)
		}
	}
	if l.cursor != 110 || l.last != 110 {
		t.Errorf("cursor %d, last %d; want 110, 110", l.cursor, l.last)
	}
	want := map[string][]time.Time{
		k(0): {at(10)},
		k(1): {at(13), at(25)},
		k(2): {at(20)},
		k(9): {at(30)},
	}
	if len(l.byKey) != len(want) || l.arrived() != 4 {
		t.Fatalf("byKey = %v, want %v", l.byKey, want)
	}
	for key, times := range want {
		if !slices.EqualFunc(l.byKey[key], times, time.Time.Equal) {
			t.Errorf("arrivals of %s = %v, want %v", key, l.byKey[key], times)
		}
	}
	// A page whose Next is behind the cursor never moves it back.
	if l.add(&client.ArrivalsReply{Last: 110, Next: 50}) || l.cursor != 110 {
		t.Errorf("stale page moved the cursor to %d", l.cursor)
	}
}
