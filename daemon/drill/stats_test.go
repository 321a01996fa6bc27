package drill

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// The statistics behind hotlinectl drill's summary (its printing is
// tested in daemon/ctl): one of six canaries lost fails the drill.
func TestReportOneLost(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	in := &record{Scenario: CutActivePath, From: "alpha", To: "bravo", Precedence: "routine", Rate: 1, Size: 256,
		Start: t0, FaultAt: t0.Add(2 * time.Second), RestoreAt: t0.Add(4 * time.Second), End: t0.Add(5 * time.Second)}
	for n := range 6 {
		c := canary{N: n, Key: canaryKey("0a1b2c3d", n), ID: fmt.Sprint(n), SentAt: t0.Add(time.Duration(n) * time.Second)}
		c.AckedAt = c.SentAt.Add(time.Millisecond)
		if n != 3 {
			c.Arrivals = []time.Time{c.SentAt.Add(20 * time.Millisecond)}
		}
		in.Canaries = append(in.Canaries, c)
	}
	r := newReport(in)
	if r.Passed || r.Lost != 1 || r.Duplicated != 0 || r.Delivered != 5 {
		t.Errorf("passed %v, lost %d, duplicated %d, delivered %d; want a failure with 1 lost, 0 duplicated, 5 delivered",
			r.Passed, r.Lost, r.Duplicated, r.Delivered)
	}
	if l := r.Latency.During; l.Count != 1 || l.P50Ms != 20 {
		t.Errorf("latency during = %+v, want one sample of 20 ms", l)
	}
}

// A drill that could not submit 95% of rate × duration canaries fails and
// says why, even when nothing was lost (issue 11: it printed PASS with
// 1,190 of 1,500). The summary's side is TestDrillRateNotHeld in
// daemon/ctl.
func TestReportRateNotHeld(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	build := func(rate float64, n int) *Report {
		in := &record{Scenario: CutActivePath, From: "alpha", To: "bravo", Precedence: "routine",
			Rate: rate, Duration: 30 * time.Second, Size: 256,
			Start: t0, FaultAt: t0.Add(10 * time.Second), RestoreAt: t0.Add(20 * time.Second), End: t0.Add(30 * time.Second)}
		for i := range n {
			c := canary{N: i, Key: canaryKey("0a1b2c3d", i), ID: fmt.Sprint(i), SentAt: t0.Add(time.Duration(i) * 30 * time.Second / time.Duration(n))}
			c.AckedAt = c.SentAt.Add(time.Millisecond)
			c.Arrivals = []time.Time{c.SentAt.Add(20 * time.Millisecond)}
			in.Canaries = append(in.Canaries, c)
		}
		return newReport(in)
	}
	for _, tc := range []struct {
		n    int
		pass bool
	}{{1500, true}, {1425, true}, {1424, false}, {1190, false}, {0, false}} {
		r := build(50, tc.n)
		if r.Planned != 1500 || r.RateHeld != tc.pass || r.Passed != tc.pass || r.Lost != 0 {
			t.Errorf("%d of 1500 sent: planned %d, rate held %v, passed %v, lost %d; want held and passed %v",
				tc.n, r.Planned, r.RateHeld, r.Passed, r.Lost, tc.pass)
		}
		md := markdown(r)
		why := fmt.Sprintf("rate not held: %d of 1500 planned canaries submitted", tc.n)
		if tc.pass {
			if strings.Contains(md, "rate not held") {
				t.Errorf("%d sent: report.md says the rate was not held:\n%s", tc.n, md)
			}
			continue
		}
		if !strings.Contains(r.RateFailure(), why) || !strings.Contains(r.RateFailure(), "at least 95% needed") {
			t.Errorf("%d sent: RateFailure() = %q, want %q and the 95%%", tc.n, r.RateFailure(), why)
		}
		if !strings.Contains(md, "# Drill cut-active-path: FAIL") || !strings.Contains(md, why) {
			t.Errorf("%d sent: report.md does not say why it failed:\n%s", tc.n, md)
		}
	}
}
