package drill

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// offsetS formats the offset of t from the start as "+12.3 s".
func (r *Report) offsetS(t time.Time) string {
	return fmt.Sprintf("+%.1f s", t.Sub(r.StartedAt).Seconds())
}

// faultSummary lists the events inside the fault window, or all of them.
func (r *Report) faultSummary() string {
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
func (r *Report) summary() string {
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
		b.WriteString("; " + r.RateFailure())
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

// markdown renders report.md.
func markdown(r *Report) string {
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
		l    Latency
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

// fmtTime formats t as hotlinectl shows instants (RFC 3339 with
// milliseconds); "-" for the zero time.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("2006-01-02T15:04:05.000Z07:00")
}
