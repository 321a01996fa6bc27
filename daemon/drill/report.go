package drill

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Report is the schema of report.json, the result of one
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
type Report struct {
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

	Latency      Phases  `json:"latency"`        // of delivered canaries, by send time
	MaxLatencyMs float64 `json:"max_latency_ms"` // = latency.all.max_ms

	LongestGapMs            float64   `json:"longest_gap_ms"`              // longest time between consecutive arrivals; 0 with fewer than two
	LongestGapStart         time.Time `json:"longest_gap_start,omitzero"`  // arrival that opened it (destination clock)
	LongestGapEnd           time.Time `json:"longest_gap_end,omitzero"`    // arrival that closed it
	LongestGapDuringFaultMs float64   `json:"longest_gap_during_fault_ms"` // the same, over gaps starting in [fault_at-1s, restore_at+10s]
	LastArrivalAt           time.Time `json:"last_arrival_at,omitzero"`    // latest first arrival (destination clock)

	Events []Event  `json:"events"` // in time order
	Notes  []string `json:"notes"`  // from the drill, then derived warnings
}

// Phases holds latency statistics per drill phase, by canary send
// time: before the fault, during it (fault_at <= sent < restore_at), after
// the restore, and over all of them.
type Phases struct {
	Before Latency `json:"before"`
	During Latency `json:"during"`
	After  Latency `json:"after"`
	All    Latency `json:"all"`
}

// Latency is the latency distribution of one phase in milliseconds,
// nearest-rank percentiles; all zero when Count is 0.
type Latency struct {
	Count int     `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// Event is one thing the drill did or saw.
type Event struct {
	At       time.Time `json:"at"`
	OffsetMs float64   `json:"offset_ms"` // since started_at
	What     string    `json:"what"`
}

// WriteFiles writes the drill's report into dir, creating it: report.md,
// report.json (the Report) and timeline.svg. Each file is replaced
// atomically.
func (res *Result) WriteFiles(dir string) error { return writeReport(dir, res.Report, res.rec) }

// writeReport writes report.md, report.json and timeline.svg into dir,
// creating it. Each file is replaced atomically (temporary file, then
// rename), so a reader never sees half a report file.
func writeReport(dir string, r *Report, in *record) error {
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
		{"report.md", []byte(markdown(r))},
		{"timeline.svg", []byte(timeline(r, in))},
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

// RateFailure says why the rate was not held.
func (r *Report) RateFailure() string {
	return fmt.Sprintf("rate not held: %d of %d planned canaries submitted (%.0f%%, at least %.0f%% needed): the client or the daemon could not keep up with %s per second",
		r.Canaries, r.Planned, 100*float64(r.Canaries)/float64(max(r.Planned, 1)), 100*minRateShare, strconv.FormatFloat(r.Rate, 'f', -1, 64))
}

// passFail is "PASS" or "FAIL".
func (r *Report) passFail() string {
	if r.Passed {
		return "PASS"
	}
	return "FAIL"
}
