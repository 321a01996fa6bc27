package drill

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hotline-link/hotline/internal/latency"
)

// canary is one canary message a drill submitted.
type canary struct {
	N        int         // 0-based index in sending order
	Key      string      // idempotency key, "drill-<run>-<n>"
	ID       string      // message id; "" if the origin never acknowledged it
	SentAt   time.Time   // first submit attempt (client clock)
	AckedAt  time.Time   // origin acknowledged (durable at origin); zero if never
	Arrivals []time.Time // destination commit times, one per copy committed there (len > 1: duplicated)
}

// event is something the drill did or saw, for the timeline.
type event struct {
	At   time.Time
	What string
}

// record is everything a drill recorded.
type record struct {
	Scenario   string
	From, To   string // origin and destination sites
	Precedence string
	Rate       float64       // canaries per second
	Duration   time.Duration // planned sending time (--duration); 0: not checked
	Size       int           // payload bytes
	Start      time.Time
	FaultAt    time.Time // fault applied
	RestoreAt  time.Time // fault restored (for instant faults: end of the "during" window)
	End        time.Time // last canary sent
	Events     []event
	Canaries   []canary
	Notes      []string // free text for the report (topology, active path, warnings)
}

// The window in which a gap between arrivals counts as "during the fault":
// gaps that start between FaultAt-gapLead and RestoreAt+gapTrail.
const (
	gapLead  = time.Second
	gapTrail = 10 * time.Second
)

// phase names the phase a canary sent at t belongs to: before FaultAt,
// during [FaultAt, RestoreAt) (to the end when RestoreAt is zero), after.
// With no fault (zero FaultAt) everything is "before".
func (in *record) phase(t time.Time) string {
	switch {
	case in.FaultAt.IsZero() || t.Before(in.FaultAt):
		return "before"
	case in.RestoreAt.IsZero() || t.Before(in.RestoreAt):
		return "during"
	default:
		return "after"
	}
}

// inFaultGapWindow reports whether a gap starting at t counts as during the
// fault.
func (in *record) inFaultGapWindow(t time.Time) bool {
	if in.FaultAt.IsZero() || t.Before(in.FaultAt.Add(-gapLead)) {
		return false
	}
	return in.RestoreAt.IsZero() || !t.After(in.RestoreAt.Add(gapTrail))
}

// firstArrival is the earliest of a canary's arrivals; zero if none. The
// arrivals need not be sorted.
func (c *canary) firstArrival() time.Time {
	var first time.Time
	for _, a := range c.Arrivals {
		if first.IsZero() || a.Before(first) {
			first = a
		}
	}
	return first
}

// delivered reports whether c was acknowledged and arrived.
func (c *canary) delivered() bool { return !c.AckedAt.IsZero() && len(c.Arrivals) > 0 }

// latency is first arrival minus send time; meaningful only if delivered.
func (c *canary) latency() time.Duration { return c.firstArrival().Sub(c.SentAt) }

// newReport computes the report from what the drill recorded. It
// does not modify in; canaries, their arrivals and the events may be in any
// order.
func newReport(in *record) *Report {
	r := &Report{
		Scenario: in.Scenario, From: in.From, To: in.To, Precedence: in.Precedence,
		Rate: in.Rate, Size: in.Size,
		StartedAt: utc(in.Start), FaultAt: utc(in.FaultAt), RestoreAt: utc(in.RestoreAt), EndedAt: utc(in.End),
		Canaries: len(in.Canaries),
		LostN:    []int{}, DuplicatedN: []int{},
		Events: []Event{}, Notes: append([]string{}, in.Notes...),
	}
	if !in.Start.IsZero() && !in.End.IsZero() {
		r.DurationS = round3(in.End.Sub(in.Start).Seconds())
	}

	phases := map[string][]time.Duration{}
	var all []time.Duration
	var firsts []time.Time
	negative, minLat := 0, time.Duration(0)
	for i := range in.Canaries {
		c := &in.Canaries[i]
		if len(c.Arrivals) > 1 {
			r.Duplicated++
			r.ExtraCopies += len(c.Arrivals) - 1
			r.DuplicatedN = append(r.DuplicatedN, c.N)
		}
		if len(c.Arrivals) > 0 {
			firsts = append(firsts, c.firstArrival())
		}
		switch {
		case c.AckedAt.IsZero():
			r.Unacked++
			if len(c.Arrivals) > 0 {
				r.UnackedArrived++
			}
			continue
		case len(c.Arrivals) == 0:
			r.Sent++
			r.Lost++
			r.LostN = append(r.LostN, c.N)
			continue
		}
		r.Sent++
		r.Delivered++
		lat := c.latency()
		if lat < 0 {
			negative++
			minLat = min(minLat, lat)
		}
		ph := in.phase(c.SentAt)
		phases[ph] = append(phases[ph], lat)
		all = append(all, lat)
	}
	slices.Sort(r.LostN)
	slices.Sort(r.DuplicatedN)
	r.Planned = int(in.Rate * in.Duration.Seconds())
	r.RateHeld = float64(r.Canaries) >= minRateShare*float64(r.Planned)
	r.Passed = r.Lost == 0 && r.Duplicated == 0 && r.RateHeld
	r.Latency = Phases{
		Before: latencyStats(phases["before"]),
		During: latencyStats(phases["during"]),
		After:  latencyStats(phases["after"]),
		All:    latencyStats(all),
	}
	r.MaxLatencyMs = r.Latency.All.MaxMs

	slices.SortFunc(firsts, func(a, b time.Time) int { return a.Compare(b) })
	var longest, duringFault time.Duration
	for i := 1; i < len(firsts); i++ {
		gap := firsts[i].Sub(firsts[i-1])
		if gap > longest || r.LongestGapStart.IsZero() {
			longest = gap
			r.LongestGapStart, r.LongestGapEnd = utc(firsts[i-1]), utc(firsts[i])
		}
		if gap > duringFault && in.inFaultGapWindow(firsts[i-1]) {
			duringFault = gap
		}
	}
	r.LongestGapMs = round3(latency.Millis(longest))
	r.LongestGapDuringFaultMs = round3(latency.Millis(duringFault))
	if len(firsts) > 0 {
		r.LastArrivalAt = utc(firsts[len(firsts)-1])
	}

	events := slices.Clone(in.Events)
	slices.SortStableFunc(events, func(a, b event) int { return a.At.Compare(b.At) })
	for _, e := range events {
		r.Events = append(r.Events, Event{At: utc(e.At), OffsetMs: round3(latency.Millis(e.At.Sub(in.Start))), What: e.What})
	}

	if !r.RateHeld {
		r.Notes = append(r.Notes, r.RateFailure()+".")
	}
	if r.Unacked > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d canaries were never acknowledged by the origin and are not counted as lost; %d of them arrived anyway.", r.Unacked, r.UnackedArrived))
	}
	if negative > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d canaries arrived before they were sent by the client clock: the client and destination clocks disagree by at least %.0f ms, so latency figures are not trustworthy (gaps are).", negative, -latency.Millis(minLat)))
	}
	return r
}

// latencyStats summarises lat (any order; it is sorted in place).
func latencyStats(lat []time.Duration) Latency {
	s := latency.Of(lat)
	ms := func(d time.Duration) float64 { return round3(latency.Millis(d)) }
	return Latency{Count: s.Count, P50Ms: ms(s.P50), P90Ms: ms(s.P90), P99Ms: ms(s.P99), MaxMs: ms(s.Max)}
}

// utc is t in UTC, keeping the zero time zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

// round3 rounds to three decimals (microseconds when in milliseconds).
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// minRateShare is the share of the planned canaries a drill must
// submit to pass.
const minRateShare = 0.95
