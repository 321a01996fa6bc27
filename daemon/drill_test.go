package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/daemon/ctl"
)

// hotlinectl drill against the in-process lab: a silent cut of the active
// path and a destination leader transfer, each with its report.
func TestDrillCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	lab := clustertest.Start(t)
	for _, scenario := range []string{"cut-active-path", "transfer-destination-leader"} {
		t.Run(scenario, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			dir := filepath.Join(t.TempDir(), "report")
			var out, errb bytes.Buffer
			err := ctl.Run(ctx, []string{"--socket", lab.Configs["alpha-2"].Socket, "drill", "--to", "bravo",
				"--scenario", scenario, "--rate", "40", "--duration", "6s", "--report", dir}, nil, &out, &errb)
			if err != nil {
				t.Fatalf("drill: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
			}
			t.Logf("%s", out.String())
			for _, f := range []string{"report.md", "report.json", "timeline.svg"} {
				if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
					t.Fatalf("%s: %v", f, err)
				}
			}
			var rep struct {
				Scenario   string  `json:"scenario"`
				Sent       int     `json:"sent"`
				Delivered  int     `json:"delivered"`
				Lost       int     `json:"lost"`
				Duplicated int     `json:"duplicated"`
				Gap        float64 `json:"longest_gap_ms"`
			}
			b, _ := os.ReadFile(filepath.Join(dir, "report.json"))
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			if rep.Scenario != scenario || rep.Sent < 200 || rep.Delivered != rep.Sent || rep.Lost != 0 || rep.Duplicated != 0 || rep.Gap <= 0 {
				t.Fatalf("report: %+v", rep)
			}
			// The canaries never reached bravo's inbox.
			for _, n := range daemon.LabNodes("bravo") {
				st, err := lab.Client(n).Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if st.InboxUnread != 0 {
					t.Fatalf("%s has %d unread: drill traffic reached the inbox", n, st.InboxUnread)
				}
			}
		})
	}
}

// A drill asked for a rate the lab cannot take (10,000 canaries/s, in one
// test process on a shared machine) fails, and its summary and report say
// that the rate was not held.
func TestDrillRateNotHeld(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	lab := clustertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "report")
	var out, errb bytes.Buffer
	start := time.Now()
	err := ctl.Run(ctx, []string{"--socket", lab.Configs["alpha-2"].Socket, "drill", "--to", "bravo",
		"--scenario", "transfer-origin-leader", "--rate", "10000", "--duration", "6s", "--drain", "20s", "--report", dir}, nil, &out, &errb)
	t.Logf("drill took %v:\n%s", time.Since(start).Round(time.Millisecond), out.String())
	if err == nil || ctl.ExitCode(err) != 1 || !strings.Contains(err.Error(), "rate not held") {
		t.Fatalf("drill at an impossible rate: %v (exit %d), want a failure naming the rate", err, ctl.ExitCode(err))
	}
	if !strings.Contains(out.String(), "FAIL") || !strings.Contains(out.String(), "of 60000 planned canaries submitted") {
		t.Errorf("summary does not say the rate was not held:\n%s", out.String())
	}
	var rep struct {
		Passed   bool `json:"passed"`
		RateHeld bool `json:"rate_held"`
		Planned  int  `json:"planned"`
		Canaries int  `json:"canaries"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, "report.json"))
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Passed || rep.RateHeld || rep.Planned != 60000 || rep.Canaries >= 57000 {
		t.Errorf("report.json: %+v", rep)
	}
}
