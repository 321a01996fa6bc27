package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hotline/daemon/ctl"
)

// hotlinectl drill against the in-process lab: a silent cut of the active
// path and a destination leader transfer, each with its report.
func TestDrillCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	lab := startLab(t)
	for _, scenario := range []string{"cut-active-path", "transfer-destination-leader"} {
		t.Run(scenario, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			dir := filepath.Join(t.TempDir(), "report")
			var out, errb bytes.Buffer
			err := ctl.Run(ctx, []string{"--socket", lab.cfgs["alpha-2"].Socket, "drill", "--to", "bravo",
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
			for _, n := range LabNodes("bravo") {
				st, err := lab.client(n).Status(ctx)
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
