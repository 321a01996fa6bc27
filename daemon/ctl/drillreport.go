package ctl

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// drillCanary is one canary message a drill submitted.
type drillCanary struct {
	N        int         // 0-based index in sending order
	Key      string      // idempotency key, "drill-<run>-<n>"
	ID       string      // message id; "" if the origin never acknowledged it
	SentAt   time.Time   // first submit attempt (client clock)
	AckedAt  time.Time   // origin acknowledged (durable at origin); zero if never
	Arrivals []time.Time // destination commit times, one per copy committed there (len > 1: duplicated)
}

// drillEvent is something the drill did or saw, for the timeline.
type drillEvent struct {
	At   time.Time
	What string
}

// drillInput is everything a drill recorded.
type drillInput struct {
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
	Events     []drillEvent
	Canaries   []drillCanary
	Notes      []string // free text for the report (topology, active path, warnings)
}

// The window in which a gap between arrivals counts as "during the fault":
// gaps that start between FaultAt-drillGapLead and RestoreAt+drillGapTrail.
const (
	drillGapLead  = time.Second
	drillGapTrail = 10 * time.Second
)

// DrillReport is the schema of report.json, the result of one
// `hotlinectl drill`. Times are RFC 3339 in UTC; durations are
// milliseconds (fields ending in _ms, fractional) or seconds (_s).
//
// Counting: a canary is "sent" once the origin acknowledged it (durable at
// the origin). Sent canaries that never arrived are "lost"; canaries never
// acknowledged are "unacked" and never count as lost (the client got no
// promise). Any canary, acknowledged or not, committed more than once at the
// destination is "duplicated". The drill passed when nothing was lost or
// duplicated and the rate was held: at least 95% of rate × duration
// canaries were submitted (a drill that sent fewer did not test what it
// was asked to).
//
// Latency of a delivered canary is its first destination commit time minus
// its client send time: two clocks, so only meaningful when they agree.
// Gaps are between consecutive first arrivals at the destination (every
// canary that arrived, acknowledged or not): one clock.
type DrillReport struct {
	Scenario   string  `json:"scenario"`
	From       string  `json:"from"`       // origin site
	To         string  `json:"to"`         // destination site
	Precedence string  `json:"precedence"` // flash, immediate, priority or routine
	Rate       float64 `json:"rate"`       // canaries per second
	Size       int     `json:"size"`       // payload bytes

	StartedAt time.Time `json:"started_at"` // first canary due (client clock)
	FaultAt   time.Time `json:"fault_at"`   // fault applied; zero when the scenario has none
	RestoreAt time.Time `json:"restore_at"` // fault restored (end of the "during" phase)
	EndedAt   time.Time `json:"ended_at"`   // last canary sent
	DurationS float64   `json:"duration_s"` // ended_at - started_at, seconds

	Passed         bool  `json:"passed"`          // lost == 0 && duplicated == 0 && rate_held
	Planned        int   `json:"planned"`         // rate × duration
	RateHeld       bool  `json:"rate_held"`       // canaries >= 95% of planned
	Canaries       int   `json:"canaries"`        // canaries submitted (sent + unacked)
	Sent           int   `json:"sent"`            // acknowledged by the origin
	Delivered      int   `json:"delivered"`       // sent and arrived at least once
	Lost           int   `json:"lost"`            // sent and never arrived
	Duplicated     int   `json:"duplicated"`      // canaries that arrived more than once
	ExtraCopies    int   `json:"extra_copies"`    // arrivals beyond the first, summed over all canaries
	Unacked        int   `json:"unacked"`         // never acknowledged by the origin
	UnackedArrived int   `json:"unacked_arrived"` // unacked but arrived anyway (fine)
	LostN          []int `json:"lost_n"`          // indexes (N) of lost canaries, ascending
	DuplicatedN    []int `json:"duplicated_n"`    // indexes (N) of duplicated canaries, ascending

	Latency      DrillPhases `json:"latency"`        // of delivered canaries, by send time
	MaxLatencyMs float64     `json:"max_latency_ms"` // = latency.all.max_ms

	LongestGapMs            float64   `json:"longest_gap_ms"`              // longest time between consecutive arrivals; 0 with fewer than two
	LongestGapStart         time.Time `json:"longest_gap_start,omitzero"`  // arrival that opened it (destination clock)
	LongestGapEnd           time.Time `json:"longest_gap_end,omitzero"`    // arrival that closed it
	LongestGapDuringFaultMs float64   `json:"longest_gap_during_fault_ms"` // the same, over gaps starting in [fault_at-1s, restore_at+10s]
	LastArrivalAt           time.Time `json:"last_arrival_at,omitzero"`    // latest first arrival (destination clock)

	Events []DrillReportEvent `json:"events"` // in time order
	Notes  []string           `json:"notes"`  // from the drill, then derived warnings
}

// DrillPhases holds latency statistics per drill phase, by canary send
// time: before the fault, during it (fault_at <= sent < restore_at), after
// the restore, and over all of them.
type DrillPhases struct {
	Before DrillLatency `json:"before"`
	During DrillLatency `json:"during"`
	After  DrillLatency `json:"after"`
	All    DrillLatency `json:"all"`
}

// DrillLatency is the latency distribution of one phase in milliseconds,
// nearest-rank percentiles; all zero when Count is 0.
type DrillLatency struct {
	Count int     `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// DrillReportEvent is one thing the drill did or saw.
type DrillReportEvent struct {
	At       time.Time `json:"at"`
	OffsetMs float64   `json:"offset_ms"` // since started_at
	What     string    `json:"what"`
}

// drillPhase names the phase a canary sent at t belongs to: before FaultAt,
// during [FaultAt, RestoreAt) (to the end when RestoreAt is zero), after.
// With no fault (zero FaultAt) everything is "before".
func (in *drillInput) drillPhase(t time.Time) string {
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
func (in *drillInput) inFaultGapWindow(t time.Time) bool {
	if in.FaultAt.IsZero() || t.Before(in.FaultAt.Add(-drillGapLead)) {
		return false
	}
	return in.RestoreAt.IsZero() || !t.After(in.RestoreAt.Add(drillGapTrail))
}

// firstArrival is the earliest of a canary's arrivals; zero if none. The
// arrivals need not be sorted.
func (c *drillCanary) firstArrival() time.Time {
	var first time.Time
	for _, a := range c.Arrivals {
		if first.IsZero() || a.Before(first) {
			first = a
		}
	}
	return first
}

// delivered reports whether c was acknowledged and arrived.
func (c *drillCanary) delivered() bool { return !c.AckedAt.IsZero() && len(c.Arrivals) > 0 }

// latency is first arrival minus send time; meaningful only if delivered.
func (c *drillCanary) latency() time.Duration { return c.firstArrival().Sub(c.SentAt) }

// buildDrillReport computes the report from what the drill recorded. It
// does not modify in; canaries, their arrivals and the events may be in any
// order.
func buildDrillReport(in *drillInput) *DrillReport {
	r := &DrillReport{
		Scenario: in.Scenario, From: in.From, To: in.To, Precedence: in.Precedence,
		Rate: in.Rate, Size: in.Size,
		StartedAt: utc(in.Start), FaultAt: utc(in.FaultAt), RestoreAt: utc(in.RestoreAt), EndedAt: utc(in.End),
		Canaries: len(in.Canaries),
		LostN:    []int{}, DuplicatedN: []int{},
		Events: []DrillReportEvent{}, Notes: append([]string{}, in.Notes...),
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
		ph := in.drillPhase(c.SentAt)
		phases[ph] = append(phases[ph], lat)
		all = append(all, lat)
	}
	slices.Sort(r.LostN)
	slices.Sort(r.DuplicatedN)
	r.Planned = int(in.Rate * in.Duration.Seconds())
	r.RateHeld = float64(r.Canaries) >= drillMinRateShare*float64(r.Planned)
	r.Passed = r.Lost == 0 && r.Duplicated == 0 && r.RateHeld
	r.Latency = DrillPhases{
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
	r.LongestGapMs = round3(millis(longest))
	r.LongestGapDuringFaultMs = round3(millis(duringFault))
	if len(firsts) > 0 {
		r.LastArrivalAt = utc(firsts[len(firsts)-1])
	}

	events := slices.Clone(in.Events)
	slices.SortStableFunc(events, func(a, b drillEvent) int { return a.At.Compare(b.At) })
	for _, e := range events {
		r.Events = append(r.Events, DrillReportEvent{At: utc(e.At), OffsetMs: round3(millis(e.At.Sub(in.Start))), What: e.What})
	}

	if !r.RateHeld {
		r.Notes = append(r.Notes, r.rateFailure()+".")
	}
	if r.Unacked > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d canaries were never acknowledged by the origin and are not counted as lost; %d of them arrived anyway.", r.Unacked, r.UnackedArrived))
	}
	if negative > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d canaries arrived before they were sent by the client clock: the client and destination clocks disagree by at least %.0f ms, so latency figures are not trustworthy (gaps are).", negative, -millis(minLat)))
	}
	return r
}

// latencyStats summarises lat (any order; it is sorted in place).
func latencyStats(lat []time.Duration) DrillLatency {
	if len(lat) == 0 {
		return DrillLatency{}
	}
	slices.Sort(lat)
	ms := func(p float64) float64 { return round3(millis(percentile(lat, p))) }
	return DrillLatency{Count: len(lat), P50Ms: ms(50), P90Ms: ms(90), P99Ms: ms(99), MaxMs: ms(100)}
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

// writeDrillReport writes report.md, report.json and timeline.svg into dir,
// creating it. Each file is replaced atomically (temporary file, then
// rename), so a reader never sees half a report file.
func writeDrillReport(dir string, r *DrillReport, in *drillInput) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("drill report: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("drill report: encode report.json: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"report.json", append(js, '\n')},
		{"report.md", []byte(drillMarkdown(r))},
		{"timeline.svg", []byte(drillSVG(r, in))},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return fmt.Errorf("drill report: %w", err)
		}
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, with mode 0644.
func writeFileAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// drillMinRateShare is the share of the planned canaries a drill must
// submit to pass.
const drillMinRateShare = 0.95

// rateFailure says why the rate was not held.
func (r *DrillReport) rateFailure() string {
	return fmt.Sprintf("rate not held: %d of %d planned canaries submitted (%.0f%%, at least %.0f%% needed): the client or the daemon could not keep up with %s per second",
		r.Canaries, r.Planned, 100*float64(r.Canaries)/float64(max(r.Planned, 1)), 100*drillMinRateShare, strconv.FormatFloat(r.Rate, 'f', -1, 64))
}

// passFail is "PASS" or "FAIL".
func (r *DrillReport) passFail() string {
	if r.Passed {
		return "PASS"
	}
	return "FAIL"
}

// offsetS formats the offset of t from the start as "+12.3 s".
func (r *DrillReport) offsetS(t time.Time) string {
	return fmt.Sprintf("+%.1f s", t.Sub(r.StartedAt).Seconds())
}

// faultSummary lists the events inside the fault window, or all of them.
func (r *DrillReport) faultSummary() string {
	var in, all []string
	for _, e := range r.Events {
		s := fmt.Sprintf("%s at %s", e.What, r.offsetS(e.At))
		all = append(all, s)
		if !r.FaultAt.IsZero() && !e.At.Before(r.FaultAt) && (r.RestoreAt.IsZero() || !e.At.After(r.RestoreAt)) {
			in = append(in, s)
		}
	}
	switch {
	case len(in) > 0:
		return strings.Join(in, ", ")
	case len(all) > 0:
		return strings.Join(all, ", ")
	case r.FaultAt.IsZero():
		return "none"
	}
	return r.Scenario
}

// summary is the one-sentence result at the top of report.md.
func (r *DrillReport) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d canaries at %s/s from %s to %s, %s", r.Canaries, strconv.FormatFloat(r.Rate, 'f', -1, 64), r.From, r.To, r.Precedence)
	if r.Unacked > 0 {
		fmt.Fprintf(&b, " (%d never acknowledged)", r.Unacked)
	}
	fmt.Fprintf(&b, "; fault: %s; ", r.faultSummary())
	switch {
	case r.Lost == 0 && r.Duplicated == 0:
		b.WriteString("nothing lost or duplicated")
	default:
		fmt.Fprintf(&b, "%d lost, %d duplicated (%s)", r.Lost, r.Duplicated, plural(r.ExtraCopies, "extra copy", "extra copies"))
	}
	if !r.RateHeld {
		b.WriteString("; " + r.rateFailure())
	}
	switch {
	case r.LongestGapStart.IsZero():
		b.WriteString("; no gap measured (fewer than two arrivals).")
	case r.LongestGapDuringFaultMs == r.LongestGapMs && !r.FaultAt.IsZero():
		fmt.Fprintf(&b, "; longest gap %.0f ms during the fault.", r.LongestGapMs)
	case r.FaultAt.IsZero():
		fmt.Fprintf(&b, "; longest gap %.0f ms at %s.", r.LongestGapMs, r.offsetS(r.LongestGapStart))
	default:
		fmt.Fprintf(&b, "; longest gap %.0f ms at %s, outside the fault (%.0f ms during it).", r.LongestGapMs, r.offsetS(r.LongestGapStart), r.LongestGapDuringFaultMs)
	}
	return b.String()
}

// drillMarkdown renders report.md.
func drillMarkdown(r *DrillReport) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Drill %s: %s\n\n", r.Scenario, r.passFail())
	p("%s\n\n", r.summary())
	p("Started %s, fault %s, restored %s, last canary sent %s (%.1f s of sending). Payload %d bytes.\n\n",
		fmtTime(r.StartedAt), fmtTime(r.FaultAt), fmtTime(r.RestoreAt), fmtTime(r.EndedAt), r.DurationS, r.Size)

	p("## Counts\n\n| | canaries |\n|---|---:|\n")
	for _, row := range []struct {
		name string
		n    int
	}{
		{"submitted", r.Canaries}, {"sent (acknowledged by the origin)", r.Sent},
		{"delivered", r.Delivered}, {"lost", r.Lost}, {"duplicated", r.Duplicated},
		{"extra copies", r.ExtraCopies}, {"never acknowledged", r.Unacked},
		{"never acknowledged, arrived anyway", r.UnackedArrived},
	} {
		p("| %s | %d |\n", row.name, row.n)
	}
	if len(r.LostN) > 0 {
		p("\nLost canaries (N): %s\n", joinInts(r.LostN, 50))
	}
	if len(r.DuplicatedN) > 0 {
		p("\nDuplicated canaries (N): %s\n", joinInts(r.DuplicatedN, 50))
	}

	p("\n## Latency\n\n| phase | count | p50 ms | p90 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|\n")
	for _, ph := range []struct {
		name string
		l    DrillLatency
	}{{"before", r.Latency.Before}, {"during", r.Latency.During}, {"after", r.Latency.After}, {"all", r.Latency.All}} {
		if ph.l.Count == 0 {
			p("| %s | 0 | no samples | | | |\n", ph.name)
			continue
		}
		p("| %s | %d | %.1f | %.1f | %.1f | %.1f |\n", ph.name, ph.l.Count, ph.l.P50Ms, ph.l.P90Ms, ph.l.P99Ms, ph.l.MaxMs)
	}
	p("\nLongest gap between arrivals: %.1f ms", r.LongestGapMs)
	if !r.LongestGapStart.IsZero() {
		p(" (%s to %s)", fmtTime(r.LongestGapStart), fmtTime(r.LongestGapEnd))
	}
	p("; during the fault: %.1f ms.\n\n", r.LongestGapDuringFaultMs)
	p("Latency is the destination's commit time minus the client's send time, comparable only if the two clocks agree; " +
		"a gap is the time between consecutive arrivals at the destination, measured on the destination clock only. " +
		"Phases go by send time: during is from the fault to the restore.\n")

	p("\n## Events\n\n")
	if len(r.Events) == 0 {
		p("None.\n")
	}
	for _, e := range r.Events {
		p("- %+.3f s (%s): %s\n", e.OffsetMs/1000, fmtTime(e.At), e.What)
	}
	p("\n## Notes\n\n")
	if len(r.Notes) == 0 {
		p("None.\n")
	}
	for _, n := range r.Notes {
		p("- %s\n", n)
	}
	p("\n## Timeline\n\n![timeline](timeline.svg)\n")
	return b.String()
}

// plural is "1 thing" or "n things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// joinInts lists at most limit values, then how many more.
func joinInts(v []int, limit int) string {
	s := make([]string, 0, min(len(v), limit))
	for _, x := range v[:min(len(v), limit)] {
		s = append(s, strconv.Itoa(x))
	}
	out := strings.Join(s, ", ")
	if len(v) > limit {
		out += fmt.Sprintf(" and %d more", len(v)-limit)
	}
	return out
}

// Geometry of timeline.svg.
const (
	svgW, svgH     = 960, 420
	svgLeft        = 70
	svgRight       = svgW - 20
	svgTop         = 70
	svgBottom      = 340
	svgLostBand    = svgTop - 10
	svgGapBracketY = 392
)

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) //nolint:errcheck // strings.Builder does not fail
	return b.String()
}

// niceStep returns a 1, 2 or 5 × 10^k step that cuts span into at most
// about n pieces.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// tickLabel formats tick value v for a step of step.
func tickLabel(v, step float64) string {
	dec := max(0, int(-math.Floor(math.Log10(step))))
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// drillSVG renders timeline.svg: latency of each delivered canary against
// its send time, lost canaries, the fault window, events and the longest
// gap.
func drillSVG(r *DrillReport, in *drillInput) string {
	off := func(t time.Time) float64 { return t.Sub(in.Start).Seconds() }
	xMax := 1.0
	for _, t := range []time.Time{in.End, in.RestoreAt, in.FaultAt, r.LastArrivalAt} {
		if !t.IsZero() {
			xMax = max(xMax, off(t))
		}
	}
	for _, e := range in.Events {
		xMax = max(xMax, off(e.At))
	}
	yMin := 0.0
	for i := range in.Canaries {
		c := &in.Canaries[i]
		xMax = max(xMax, off(c.SentAt))
		if c.delivered() {
			yMin = min(yMin, millis(c.latency()))
		}
	}
	xStep := niceStep(xMax, 12)
	xMax = math.Ceil(xMax/xStep) * xStep
	yCap := max(r.Latency.All.P99Ms*1.5, 100)
	yTop := max(min(r.MaxLatencyMs, yCap), 10)
	yStep := niceStep(yTop-yMin, 6)
	yTop = math.Ceil(yTop/yStep) * yStep
	yMin = math.Floor(yMin/yStep) * yStep
	X := func(s float64) float64 {
		return svgLeft + (svgRight-svgLeft)*min(max(s, 0), xMax)/xMax
	}
	Y := func(ms float64) float64 {
		return svgBottom - (svgBottom-svgTop)*(min(max(ms, yMin), yTop)-yMin)/(yTop-yMin)
	}

	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	p(`<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", svgLeft,
		esc(fmt.Sprintf("Drill %s: %s → %s, %s — %s", r.Scenario, r.From, r.To, r.Precedence, r.passFail())))

	// Fault window, longest gap band, axes and grid.
	if !in.FaultAt.IsZero() {
		end := xMax
		if !in.RestoreAt.IsZero() {
			end = off(in.RestoreAt)
		}
		x0, x1 := X(off(in.FaultAt)), X(end)
		p(`<rect class="fault" x="%.1f" y="%d" width="%.1f" height="%d" fill="#fdd" stroke="none"/>`+"\n", x0, svgTop, max(x1-x0, 1), svgBottom-svgTop)
		p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#c33">fault</text>`+"\n", (x0+x1)/2, svgBottom-6)
	}
	if !r.LongestGapStart.IsZero() {
		x0, x1 := X(off(r.LongestGapStart)), X(off(r.LongestGapEnd))
		p(`<rect class="gap" x="%.1f" y="%d" width="%.1f" height="%d" fill="#39f" fill-opacity="0.15"/>`+"\n", x0, svgTop, max(x1-x0, 1), svgBottom-svgTop)
		y := svgGapBracketY
		p(`<path class="gap-bracket" d="M%.1f %d V%d H%.1f V%d" fill="none" stroke="#17c" stroke-width="1.5"/>`+"\n", x0, y-6, y, x1, y-6)
		anchor, tx := "start", x1+6
		if tx > svgRight-160 {
			anchor, tx = "end", x0-6
		}
		p(`<text x="%.1f" y="%d" text-anchor="%s" fill="#17c">longest gap %.0f ms</text>`+"\n", tx, y+4, anchor, r.LongestGapMs)
	}
	for v := 0.0; v <= xMax+xStep/1e6; v += xStep {
		x := X(v)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`, x, svgTop, x, svgBottom)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`, x, svgBottom, x, svgBottom+4)
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, svgBottom+17, tickLabel(v, xStep))
	}
	for v := yMin; v <= yTop+yStep/1e6; v += yStep {
		y := Y(v)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, svgLeft, y, svgRight, y)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`, svgLeft-4, y, svgLeft, y)
		p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-7, y+4, tickLabel(v, yStep))
	}
	p(`<path d="M%d %d V%d H%d" fill="none" stroke="#333"/>`+"\n", svgLeft, svgTop, svgBottom, svgRight)
	p(`<text x="%d" y="%d" text-anchor="middle">seconds since start (canaries by client send time)</text>`+"\n", (svgLeft+svgRight)/2, svgBottom+34)
	p(`<text transform="translate(18 %d) rotate(-90)" text-anchor="middle">latency, ms</text>`+"\n", (svgTop+svgBottom)/2)

	// Events.
	events := slices.Clone(in.Events)
	slices.SortStableFunc(events, func(a, b drillEvent) int { return a.At.Compare(b.At) })
	for i, e := range events {
		x := X(off(e.At))
		label := e.What
		if rs := []rune(label); len(rs) > 28 {
			label = string(rs[:27]) + "…"
		}
		anchor, tx := "start", x+3
		if tx > svgRight-170 {
			anchor, tx = "end", x-3
		}
		p(`<line class="event" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555" stroke-dasharray="4 3"/>`, x, svgTop, x, svgBottom)
		p(`<text x="%.1f" y="%d" text-anchor="%s" font-size="11" fill="#333">%s</text>`+"\n", tx, svgTop+12+12*(i%3), anchor, esc(label))
	}

	// Canaries; duplicated ones last and larger, so they stay visible.
	clamped := 0
	var dups strings.Builder
	for i := range in.Canaries {
		c := &in.Canaries[i]
		x := X(off(c.SentAt))
		switch {
		case c.AckedAt.IsZero():
		case len(c.Arrivals) == 0:
			y := float64(svgLostBand)
			p(`<path class="lost" d="M%.1f %.1f l6 6 m0 -6 l-6 6" stroke="#d00" stroke-width="1.5"/>`+"\n", x-3, y-3)
		default:
			lat := millis(c.latency())
			if lat > yTop {
				clamped++
			}
			if len(c.Arrivals) > 1 {
				fmt.Fprintf(&dups, `<circle class="canary dup" cx="%.1f" cy="%.1f" r="4" fill="#e68a00" stroke="#333" stroke-width="0.8"/>`+"\n", x, Y(lat))
				continue
			}
			p(`<circle class="canary" cx="%.1f" cy="%.1f" r="2.5" fill="#2463a8" fill-opacity="0.75"/>`+"\n", x, Y(lat))
		}
	}
	b.WriteString(dups.String())
	if r.Lost > 0 {
		p(`<text x="%d" y="%d" text-anchor="end" fill="#d00">lost</text>`+"\n", svgLeft-7, svgLostBand+4)
	}

	// Legend.
	lx, ly := float64(svgLeft), 44.0
	item := func(symbol, text string) {
		p(symbol, lx, ly)
		p(`<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+14, ly+4, esc(text))
		lx += 14 + 6.6*float64(len([]rune(text))) + 18
	}
	item(`<circle class="legend" cx="%.1f" cy="%.1f" r="3" fill="#2463a8"/>`, "delivered")
	item(`<circle class="legend" cx="%.1f" cy="%.1f" r="4" fill="#e68a00" stroke="#333" stroke-width="0.8"/>`, "duplicated")
	item(`<path d="M%.1f %.1f m-3 -3 l6 6 m0 -6 l-6 6" stroke="#d00" stroke-width="1.5"/>`, "lost")
	item(`<rect x="%.1f" y="%.1f" transform="translate(-5 -5)" width="10" height="10" fill="#fdd"/>`, "fault")
	item(`<rect x="%.1f" y="%.1f" transform="translate(-5 -5)" width="10" height="10" fill="#39f" fill-opacity="0.3"/>`, "longest gap")
	if clamped > 0 {
		p(`<text class="clamped" x="%.1f" y="%.1f" fill="#a00">%s</text>`+"\n", lx, ly+4,
			esc(fmt.Sprintf("%d above %s ms drawn at the top edge", clamped, tickLabel(yTop, yStep))))
	}
	p("</svg>\n")
	return b.String()
}
