package drill

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var drillT0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func drillAt(d time.Duration) time.Time { return drillT0.Add(d) }

// syntheticDrill is a clean run: n canaries at rate per second, each
// acknowledged 2 ms after sending and arriving once 5–7 ms after it, with
// the fault in the middle third.
func syntheticDrill(n int, rate float64) *record {
	interval := time.Duration(float64(time.Second) / rate)
	total := time.Duration(n) * interval
	in := &record{
		Scenario: "cut-fiber", From: "alpha", To: "bravo", Precedence: "routine",
		Rate: rate, Size: 256, Start: drillT0,
		FaultAt: drillAt(total / 3), RestoreAt: drillAt(2 * total / 3), End: drillAt(time.Duration(n-1) * interval),
		Notes: []string{"active path fiber"},
	}
	// Out of order on purpose: the report sorts events.
	in.Events = []event{{in.RestoreAt, "restored path fiber"}, {in.FaultAt, "cut path fiber"}}
	for i := range n {
		sent := drillAt(time.Duration(i) * interval)
		lat := 5*time.Millisecond + time.Duration(i%3)*time.Millisecond
		in.Canaries = append(in.Canaries, canary{
			N: i, Key: fmt.Sprintf("drill-r1-%d", i), ID: fmt.Sprintf("m%d", i),
			SentAt: sent, AckedAt: sent.Add(2 * time.Millisecond), Arrivals: []time.Time{sent.Add(lat)},
		})
	}
	return in
}

// holdArrivals simulates an outage of d that begins right after canary k
// arrived: every canary that would have arrived within d arrives in a burst
// d after canary k, 0.1 ms apart. It returns the arrival of canary k.
func holdArrivals(in *record, k int, d time.Duration) time.Time {
	t0 := in.Canaries[k].Arrivals[0]
	for j := k + 1; j < len(in.Canaries); j++ {
		c := &in.Canaries[j]
		if !c.Arrivals[0].Before(t0.Add(d)) {
			break
		}
		c.Arrivals[0] = t0.Add(d + time.Duration(j-k-1)*100*time.Microsecond)
	}
	return t0
}

// drillFiles is what writeReport wrote, parsed.
type drillFiles struct {
	md, svg  string
	js       map[string]any
	circles  int // class "canary…"
	lost     int // class "lost"
	faultBox bool
}

// writeDrill builds and writes the report of in into a fresh nested
// directory and checks what every report must satisfy.
func writeDrill(t *testing.T, in *record) (*Report, drillFiles) {
	t.Helper()
	r := newReport(in)
	dir := filepath.Join(t.TempDir(), "drills", "run1")
	if err := writeReport(dir, r, in); err != nil {
		t.Fatalf("writeReport: %v", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"report.json", "report.md", "timeline.svg"}; !slices.Equal(names, want) {
		t.Fatalf("files in report dir = %v, want %v (no temporary files left)", names, want)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var f drillFiles
	f.md, f.svg = string(read("report.md")), string(read("timeline.svg"))

	js := read("report.json")
	if err := json.Unmarshal(js, &f.js); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	for _, k := range []string{"scenario", "from", "to", "precedence", "rate", "size", "started_at", "fault_at",
		"restore_at", "ended_at", "duration_s", "passed", "canaries", "sent", "delivered", "lost", "duplicated",
		"extra_copies", "unacked", "unacked_arrived", "lost_n", "duplicated_n", "latency", "max_latency_ms",
		"longest_gap_ms", "longest_gap_during_fault_ms", "events", "notes"} {
		if _, ok := f.js[k]; !ok {
			t.Errorf("report.json lacks %q", k)
		}
	}
	lat, _ := f.js["latency"].(map[string]any)
	for _, ph := range []string{"before", "during", "after", "all"} {
		m, ok := lat[ph].(map[string]any)
		if !ok {
			t.Errorf("report.json latency.%s missing or not an object", ph)
			continue
		}
		for _, k := range []string{"count", "p50_ms", "p90_ms", "p99_ms", "max_ms"} {
			if _, ok := m[k].(float64); !ok {
				t.Errorf("report.json latency.%s.%s missing or not a number", ph, k)
			}
		}
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil || !reflect.DeepEqual(&back, r) {
		t.Errorf("report.json does not round-trip (err %v):\n got %+v\nwant %+v", err, back, *r)
	}

	dec := xml.NewDecoder(strings.NewReader(f.svg))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("timeline.svg is not XML: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		class := ""
		for _, a := range se.Attr {
			if a.Name.Local == "class" {
				class = a.Value
			}
		}
		switch {
		case se.Name.Local == "circle" && strings.HasPrefix(class, "canary"):
			f.circles++
		case class == "lost":
			f.lost++
		case se.Name.Local == "rect" && class == "fault":
			f.faultBox = true
		}
	}
	if f.circles != r.Delivered {
		t.Errorf("timeline.svg has %d canary circles, want one per delivered canary (%d)", f.circles, r.Delivered)
	}
	if f.lost != r.Lost {
		t.Errorf("timeline.svg has %d lost marks, want %d", f.lost, r.Lost)
	}
	if f.faultBox != !in.FaultAt.IsZero() {
		t.Errorf("timeline.svg fault rect present = %v, want %v", f.faultBox, !in.FaultAt.IsZero())
	}
	for _, s := range []string{r.passFail(), "![timeline](timeline.svg)", "| lost | " + fmt.Sprint(r.Lost) + " |",
		"| duplicated | " + fmt.Sprint(r.Duplicated) + " |", "| delivered | " + fmt.Sprint(r.Delivered) + " |"} {
		if !strings.Contains(f.md, s) {
			t.Errorf("report.md lacks %q:\n%s", s, f.md)
		}
	}
	return r, f
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestDrillReportClean(t *testing.T) {
	in := syntheticDrill(1500, 50)
	r, f := writeDrill(t, in)
	if !r.Passed || r.Canaries != 1500 || r.Sent != 1500 || r.Delivered != 1500 || r.Lost != 0 || r.Duplicated != 0 || r.Unacked != 0 {
		t.Errorf("counts: passed %v canaries %d sent %d delivered %d lost %d dup %d unacked %d",
			r.Passed, r.Canaries, r.Sent, r.Delivered, r.Lost, r.Duplicated, r.Unacked)
	}
	// Arrivals are 20 ms apart, ±2 ms of latency jitter.
	if !near(r.LongestGapMs, 20, 2) {
		t.Errorf("longest gap %v ms, want about 20", r.LongestGapMs)
	}
	want := Latency{Count: 500, P50Ms: 6, P90Ms: 7, P99Ms: 7, MaxMs: 7}
	for name, got := range map[string]Latency{"before": r.Latency.Before, "during": r.Latency.During, "after": r.Latency.After} {
		if got != want {
			t.Errorf("latency %s = %+v, want %+v", name, got, want)
		}
	}
	if r.Latency.All.Count != 1500 || r.MaxLatencyMs != 7 {
		t.Errorf("latency all = %+v, max %v", r.Latency.All, r.MaxLatencyMs)
	}
	if r.DurationS != 29.98 || !r.StartedAt.Equal(drillT0) {
		t.Errorf("duration %v s, started %v", r.DurationS, r.StartedAt)
	}
	if len(r.Events) != 2 || r.Events[0].What != "cut path fiber" || r.Events[0].OffsetMs != 10000 || r.Events[1].OffsetMs != 20000 {
		t.Errorf("events = %+v, want cut at 10000 ms then restore at 20000 ms", r.Events)
	}
	if !slices.Equal(r.Notes, []string{"active path fiber"}) {
		t.Errorf("notes = %q", r.Notes)
	}
	for _, s := range []string{"# Drill cut-fiber: PASS", "1500 canaries at 50/s from alpha to bravo, routine",
		"cut path fiber at +10.0 s", "nothing lost or duplicated", "active path fiber"} {
		if !strings.Contains(f.md, s) {
			t.Errorf("report.md lacks %q:\n%s", s, f.md)
		}
	}
}

func TestDrillReportOutageDuringFault(t *testing.T) {
	in := syntheticDrill(1500, 50)
	k := 600 // sent at +12 s, inside the fault window [10 s, 20 s)
	gapStart := holdArrivals(in, k, 700*time.Millisecond)
	r, f := writeDrill(t, in)

	if !near(r.LongestGapMs, 700, 3) || !r.LongestGapStart.Equal(gapStart) || !near(r.LongestGapDuringFaultMs, r.LongestGapMs, 0) {
		t.Errorf("longest gap %v ms from %v (during fault %v ms), want 700 ms from %v",
			r.LongestGapMs, r.LongestGapStart, r.LongestGapDuringFaultMs, gapStart)
	}
	if r.Latency.During.P99Ms < 500 || r.Latency.Before.P99Ms > 10 || r.Latency.After.P99Ms > 10 {
		t.Errorf("p99 before/during/after = %v/%v/%v ms, want the outage only in during",
			r.Latency.Before.P99Ms, r.Latency.During.P99Ms, r.Latency.After.P99Ms)
	}
	if r.MaxLatencyMs < 680 { // canary k+1, sent 20 ms after k, waits out the rest
		t.Errorf("max latency %v ms, want about 685", r.MaxLatencyMs)
	}
	if !r.Passed || r.Lost != 0 || r.Duplicated != 0 {
		t.Errorf("passed %v lost %d dup %d, want a pass", r.Passed, r.Lost, r.Duplicated)
	}
	if !strings.Contains(f.md, "longest gap 700 ms during the fault") {
		t.Errorf("report.md summary does not place the gap in the fault:\n%s", f.md)
	}
	if !strings.Contains(f.svg, "longest gap 700 ms") {
		t.Errorf("timeline.svg does not label the longest gap")
	}
}

func TestDrillReportOutageOutsideFault(t *testing.T) {
	in := syntheticDrill(1500, 50)
	holdArrivals(in, 100, 900*time.Millisecond) // +2 s, long before the fault
	r, f := writeDrill(t, in)
	if !near(r.LongestGapMs, 900, 3) || r.LongestGapDuringFaultMs > 25 {
		t.Errorf("longest gap %v ms, during fault %v ms; want 900 and about 20", r.LongestGapMs, r.LongestGapDuringFaultMs)
	}
	if !strings.Contains(f.md, "outside the fault") {
		t.Errorf("report.md does not say the gap was outside the fault:\n%s", f.md)
	}
}

func TestDrillReportLostAndDuplicated(t *testing.T) {
	in := syntheticDrill(100, 10)
	in.Scenario = `leader <transfer> & "more"`
	in.Events = append(in.Events, event{in.FaultAt.Add(time.Second), "leader is b2 & <not> b1"})
	for _, n := range []int{40, 3} { // lost: acknowledged, never arrived
		in.Canaries[n].Arrivals = nil
	}
	c := &in.Canaries[7] // arrived twice, second copy listed first
	c.Arrivals = []time.Time{c.Arrivals[0].Add(time.Second), c.Arrivals[0]}
	c = &in.Canaries[60] // arrived three times
	c.Arrivals = append(c.Arrivals, c.Arrivals[0].Add(time.Second), c.Arrivals[0].Add(2*time.Second))
	r, f := writeDrill(t, in)

	if r.Passed || r.Sent != 100 || r.Delivered != 98 || r.Lost != 2 || r.Duplicated != 2 || r.ExtraCopies != 3 {
		t.Errorf("passed %v sent %d delivered %d lost %d dup %d extra %d; want fail, 100, 98, 2, 2, 3",
			r.Passed, r.Sent, r.Delivered, r.Lost, r.Duplicated, r.ExtraCopies)
	}
	if !slices.Equal(r.LostN, []int{3, 40}) || !slices.Equal(r.DuplicatedN, []int{7, 60}) {
		t.Errorf("lost_n %v duplicated_n %v", r.LostN, r.DuplicatedN)
	}
	if got := r.Latency.All.MaxMs; got != 7 {
		t.Errorf("max latency %v ms: latency must use the first arrival", got)
	}
	for _, s := range []string{"FAIL", "2 lost, 2 duplicated (3 extra copies)", "Lost canaries (N): 3, 40", "| extra copies | 3 |"} {
		if !strings.Contains(f.md, s) {
			t.Errorf("report.md lacks %q:\n%s", s, f.md)
		}
	}
	if !strings.Contains(f.svg, "leader &lt;transfer&gt; &amp;") {
		t.Errorf("timeline.svg title not escaped")
	}
}

func TestDrillReportUnacked(t *testing.T) {
	in := syntheticDrill(100, 10)
	in.Canaries[90].ID, in.Canaries[90].AckedAt, in.Canaries[90].Arrivals = "", time.Time{}, nil
	in.Canaries[91].ID, in.Canaries[91].AckedAt = "", time.Time{} // arrived anyway
	r, f := writeDrill(t, in)
	if !r.Passed || r.Canaries != 100 || r.Sent != 98 || r.Delivered != 98 || r.Lost != 0 || r.Unacked != 2 || r.UnackedArrived != 1 {
		t.Errorf("passed %v canaries %d sent %d delivered %d lost %d unacked %d arrived %d",
			r.Passed, r.Canaries, r.Sent, r.Delivered, r.Lost, r.Unacked, r.UnackedArrived)
	}
	if r.Latency.All.Count != 98 {
		t.Errorf("latency samples %d, want only the 98 delivered", r.Latency.All.Count)
	}
	if !strings.Contains(f.md, "(2 never acknowledged)") || !strings.Contains(f.md, "| never acknowledged, arrived anyway | 1 |") {
		t.Errorf("report.md does not report the unacked canaries:\n%s", f.md)
	}
}

func TestDrillReportEmptyPhases(t *testing.T) {
	t.Run("fault after the last canary", func(t *testing.T) {
		in := syntheticDrill(30, 10)
		in.FaultAt, in.RestoreAt = drillAt(10*time.Second), drillAt(12*time.Second)
		in.Events = nil
		r, f := writeDrill(t, in)
		if r.Latency.Before.Count != 30 || r.Latency.During != (Latency{}) || r.Latency.After != (Latency{}) {
			t.Errorf("latency = %+v, want everything before", r.Latency)
		}
		if strings.Count(f.md, "no samples") != 2 {
			t.Errorf("report.md should say \"no samples\" for during and after:\n%s", f.md)
		}
	})
	t.Run("no fault", func(t *testing.T) {
		in := syntheticDrill(30, 10)
		in.FaultAt, in.RestoreAt, in.Events = time.Time{}, time.Time{}, nil
		r, f := writeDrill(t, in)
		if r.Latency.Before.Count != 30 || r.LongestGapDuringFaultMs != 0 || !strings.Contains(f.md, "fault: none") {
			t.Errorf("no-fault run: latency %+v, gap during fault %v", r.Latency, r.LongestGapDuringFaultMs)
		}
	})
	t.Run("no canaries", func(t *testing.T) {
		in := syntheticDrill(30, 10)
		in.Canaries = nil
		r, f := writeDrill(t, in)
		if !r.Passed || r.Latency.All != (Latency{}) || r.LongestGapMs != 0 || !r.LongestGapStart.IsZero() {
			t.Errorf("empty run: %+v", r)
		}
		if _, ok := f.js["longest_gap_start"]; ok {
			t.Errorf("report.json has longest_gap_start without a gap")
		}
		if strings.Count(f.md, "no samples") != 4 || !strings.Contains(f.md, "no gap measured") {
			t.Errorf("report.md of an empty run:\n%s", f.md)
		}
	})
	t.Run("clock skew and clamped points", func(t *testing.T) {
		in := syntheticDrill(300, 10)
		in.Canaries[5].Arrivals[0] = in.Canaries[5].SentAt.Add(-40 * time.Millisecond)
		in.Canaries[200].Arrivals[0] = in.Canaries[200].SentAt.Add(5 * time.Second)
		r, f := writeDrill(t, in)
		if !strings.Contains(strings.Join(r.Notes, "\n"), "clocks disagree by at least 40 ms") {
			t.Errorf("notes do not warn about the clocks: %q", r.Notes)
		}
		if !strings.Contains(f.svg, "1 above 100 ms drawn at the top edge") {
			t.Errorf("timeline.svg legend does not mention the clamped point")
		}
	})
}
