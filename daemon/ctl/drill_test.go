package ctl

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/drill"
)

func TestAdminUsageErrors(t *testing.T) {
	drill := func(extra ...string) []string {
		return append([]string{"drill", "--to", "bravo", "--scenario", "cut-active-path"}, extra...)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"paths args", []string{"paths", "x"}, "takes no arguments"},
		{"paths bad node", []string{"paths", "--node", "Alpha_1"}, "paths: --node: pki: name"},

		{"path alone", []string{"path"}, "path needs a command"},
		{"path unknown", []string{"path", "sideways", "fiber"}, `unknown command "sideways"`},
		{"path down no name", []string{"path", "down"}, "exactly one path NAME (got 0"},
		{"path down two names", []string{"path", "down", "fiber", "sat"}, "exactly one path NAME (got 2"},
		{"path down empty name", []string{"path", "down", ""}, `"" is not a path name`},
		{"path down slash", []string{"path", "down", "a/b"}, `"a/b" is not a path name`},
		{"path down bad mode", []string{"path", "down", "fiber", "--mode", "cut"}, `--mode "cut" is not one of close, drop`},
		{"path down bad node", []string{"path", "down", "fiber", "--node", "-x"}, "path down: --node"},
		{"path up mode", []string{"path", "up", "fiber", "--mode", "drop"}, "unknown flag: --mode"},
		{"path up no name", []string{"path", "up"}, "exactly one path NAME"},

		{"leader alone", []string{"leader"}, "leader needs a command"},
		{"leader args", []string{"leader", "transfer", "alpha-2"}, "takes no arguments"},
		{"leader bad to", []string{"leader", "transfer", "--to", "Alpha"}, "leader transfer: --to"},
		{"leader bad site", []string{"leader", "transfer", "--site", "b c"}, "leader transfer: --site"},

		{"drill no to", []string{"drill", "--scenario", "cut-active-path"}, "--to SITE is required"},
		{"drill no scenario", []string{"drill", "--to", "bravo"}, "--scenario is required (one of cut-active-path, cut-all-but-one, transfer-origin-leader, transfer-destination-leader)"},
		{"drill bad scenario", []string{"drill", "--to", "bravo", "--scenario", "pull-plug"}, `--scenario "pull-plug" is not one of cut-active-path, cut-all-but-one`},
		{"drill bad to", drill("--to", "BRAVO"), "drill: --to: pki: name"},
		{"drill zero rate", drill("--rate", "0"), "--rate 0 is out of range"},
		{"drill negative rate", drill("--rate", "-1"), "--rate -1 is out of range"},
		{"drill huge rate", drill("--rate", "20000"), "--rate 20000 is out of range"},
		{"drill short", drill("--duration", "5s"), "--duration 5s is too short (at least 6s"},
		{"drill too few canaries", drill("--rate", "0.2", "--duration", "10s"), "fewer than one canary per phase"},
		{"drill too many canaries", drill("--rate", "10000", "--duration", "2h"), "more than 1000000 canaries"},
		{"drill zero size", drill("--size", "0"), "--size 0 must be at least 1"},
		{"drill zero drain", drill("--drain", "0s"), "--drain 0s must be positive"},
		{"drill bad duration", drill("--duration", "soon"), `invalid argument "soon" for "--duration"`},
		{"drill bad precedence", drill("--precedence", "urgent"), `--precedence "urgent" is not one of`},
		{"drill args", drill("now"), "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantUsageError(t, "", tt.args, tt.want)
		})
	}
}

// TestAdminValidArgsReachForDaemon: valid admin command lines get past
// validation and fail only at the (absent) socket.
func TestAdminValidArgsReachForDaemon(t *testing.T) {
	report := filepath.Join(t.TempDir(), "report")
	tests := [][]string{
		{"paths"},
		{"paths", "--node", "alpha-2", "--json"},
		{"path", "down", "fiber"},
		{"path", "down", "fiber", "--mode", "drop", "--node", "alpha-3", "--json"},
		{"path", "up", "sat", "--node", "alpha-1"},
		{"leader", "transfer"},
		{"leader", "transfer", "--to", "alpha-2", "--site", "bravo", "--json"},
		{"drill", "--to", "bravo", "--scenario", "cut-all-but-one", "--report", report},
		{"drill", "--to", "bravo", "--scenario", "transfer-destination-leader", "--rate", "0.5", "--duration", "6s",
			"--size", "1", "--drain", "1s", "--precedence", "flash", "--json", "--report", report},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, _, sock, err := run(t, "", args...)
			if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), sock) {
				t.Fatalf("Run(%q) error = %v, want an unreachable-daemon error naming %s", args, err, sock)
			}
			if ExitCode(err) != 1 {
				t.Errorf("ExitCode = %d, want 1", ExitCode(err))
			}
		})
	}
	if _, err := os.Stat(report); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a drill that never started created %s (stat: %v)", report, err)
	}
}

func TestDrillHelpListsScenarios(t *testing.T) {
	want := []string{"cut-active-path", "cut-all-but-one", "transfer-origin-leader", "transfer-destination-leader"}
	if !slices.Equal(drill.Scenarios, want) {
		t.Fatalf("drill.Scenarios = %q, want %q", drill.Scenarios, want)
	}
	out, _, _, err := run(t, "", "drill", "--help")
	if err != nil {
		t.Fatalf("drill --help: %v", err)
	}
	for _, s := range want {
		if !strings.Contains(out, s) {
			t.Errorf("drill --help does not mention scenario %s:\n%s", s, out)
		}
	}
	for _, cmd := range []string{"paths", "path", "leader", "drill"} {
		root, _, _, err := run(t, "", "--help")
		if err != nil || !strings.Contains(root, "\n  "+cmd+" ") {
			t.Errorf("hotlinectl --help does not list %s (err %v)", cmd, err)
		}
	}
}

func TestDrillReportDir(t *testing.T) {
	at := time.Date(2026, 11, 24, 9, 5, 7, 0, time.FixedZone("CET", 3600))
	if got, want := defaultDrillDir("cut-active-path", at), "drill-cut-active-path-20261124T080507"; got != want {
		t.Errorf("defaultDrillDir = %q, want %q", got, want)
	}
	dir := t.TempDir()
	if err := checkReportDir(filepath.Join(dir, "new")); err != nil {
		t.Errorf("new directory: %v", err)
	}
	if err := checkReportDir(dir); err != nil {
		t.Errorf("empty existing directory: %v", err)
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if err := checkReportDir(file); err == nil || !strings.Contains(err.Error(), "is not a directory") {
		t.Errorf("a file: error = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "report.json"), []byte("{}"), 0o600)
	if err := checkReportDir(dir); err == nil || !strings.Contains(err.Error(), "already holds a report") {
		t.Errorf("earlier report: error = %v", err)
	}
}

func TestAdminErrorForbidden(t *testing.T) {
	ae := &client.APIError{Status: 403, Code: client.CodeForbidden, Message: "uid 1000 is neither root nor in group hotline-admin"}
	err := client.AdminError("path down fiber", fmt.Errorf("wrapped: %w", ae))
	for _, want := range []string{"path down fiber", "permission denied", "uid 1000 is neither root nor in group hotline-admin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if !client.IsCode(err, client.CodeForbidden) || ExitCode(err) != 1 {
		t.Errorf("error %q lost its code or exits %d", err, ExitCode(err))
	}
	other := client.AdminError("paths", &client.APIError{Status: 409, Code: client.CodeConflict, Message: "no leader"})
	if got := other.Error(); got != "paths: hotlined: no leader (conflict)" {
		t.Errorf("conflict error = %q", got)
	}
}

func TestPrintPaths(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 10, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	r := &client.PathsReply{Site: "alpha", Node: "alpha-2",
		Admin: []client.PathAdmin{
			{Node: "alpha-2", Path: "fiber", State: "up"},
			{Node: "alpha-2", Path: "sat", State: "down", Mode: client.ModeDrop},
		},
		Paths: []client.PathInfo{
			{Site: "bravo", Node: "bravo-1", Path: "fiber", State: client.PathUp, Active: true, RTTMillis: 1.25, LossPct: 0,
				LastOK: ago(1500 * time.Millisecond), BytesSent: 3 << 20, BytesRecv: 1536,
				LinkTest: &client.LinkTest{At: *ago(4 * time.Second), OK: true}},
			{Site: "bravo", Node: "bravo-1", Path: "sat", State: client.PathAdminDown, LossPct: 12.5,
				LastError: "path disabled by operator", LastErrorAt: ago(90 * time.Second),
				LinkTest: &client.LinkTest{At: *ago(2 * time.Minute), Error: "timeout"}},
		},
	}
	var b bytes.Buffer
	if err := printPaths(&b, r, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"node alpha-2 (site alpha)",
		"SITE", "BYTES-OUT/IN", "LINK-TEST",
		"up *", "1.2ms", "1.5s ago", "3.0MiB/1.5KiB", "ok 4s ago",
		"admin-down", "12.5%", "path disabled by operator (1m30s ago)", "FAILED 2m0s ago: timeout",
		"* active: carried the last batch alpha-2 sent",
		"admin (alpha-2, in preference order)", "sat    down   drop",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if got := fmtPathAdmin(&client.PathAdmin{Node: "alpha-1", Path: "fiber", State: "down", Mode: "drop"}); got != "alpha-1: path fiber is down (drop)" {
		t.Errorf("fmtPathAdmin = %q", got)
	}
}

func TestPrintStatusLinksAlarms(t *testing.T) {
	s := &client.Status{Site: "alpha", Node: "alpha-1",
		Links:    []client.SiteLink{{Site: "bravo", ActiveNode: "bravo-2", ActivePath: "fiber", PathsUp: 5, PathsTotal: 6}},
		Alarms:   []string{"path sat to bravo-3 down for 2m"},
		Outbound: []client.OutQueue{{To: "bravo", Precedence: "routine", Last: 9, Acked: 7, Queued: 2, OldestAgeMillis: 83456}},
	}
	var b bytes.Buffer
	if err := printStatus(&b, s); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"links:", "bravo-2", "fiber", "5/6", "alarms:", "path sat to bravo-3 down for 2m", "OLDEST", "1m23s"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
}

func TestDrillSummary(t *testing.T) {
	// One of six canaries lost (the statistics: TestReportOneLost in
	// daemon/drill).
	r := &drill.Report{Scenario: drill.CutActivePath, From: "alpha", To: "bravo", Precedence: "routine", Rate: 1, Size: 256,
		RateHeld: true, Canaries: 6, Sent: 6, Delivered: 5, Lost: 1, LostN: []int{3},
		Latency: drill.Phases{During: drill.Latency{Count: 1, P50Ms: 20, P90Ms: 20, P99Ms: 20, MaxMs: 20}}}
	s := drillSummary{Report: r, Run: "0a1b2c3d", ReportDir: "drill-x"}
	kv := drillSummaryKV(&s)
	got := map[string]string{}
	for _, p := range kv {
		got[p[0]] = p[1]
	}
	for k, want := range map[string]string{"result": "FAIL", "lost": "1", "duplicated": "0", "delivered": "5", "report": "drill-x", "run": "0a1b2c3d"} {
		if got[k] != want {
			t.Errorf("summary %s = %q, want %q (all: %q)", k, got[k], want, kv)
		}
	}
	if !strings.Contains(got["latency during"], "p50 20.0 ms") {
		t.Errorf("latency during = %q", got["latency during"])
	}
}

// A drill that could not submit 95% of rate × duration canaries fails and
// says why, even when nothing was lost (issue 11: it printed PASS with
// 1,190 of 1,500). The report's side is TestReportRateNotHeld in
// daemon/drill.
func TestDrillRateNotHeld(t *testing.T) {
	for _, tc := range []struct {
		n    int
		pass bool
	}{{1500, true}, {1425, true}, {1424, false}, {1190, false}, {0, false}} {
		r := &drill.Report{Scenario: drill.CutActivePath, From: "alpha", To: "bravo", Precedence: "routine", Rate: 50, Size: 256,
			Planned: 1500, RateHeld: tc.pass, Passed: tc.pass, Canaries: tc.n, Sent: tc.n, Delivered: tc.n}
		s := drillSummary{Report: r, Run: "0a1b2c3d", ReportDir: "drill-x"}
		kv := drillSummaryKV(&s)
		var result, errs string
		for _, p := range kv {
			switch p[0] {
			case "result":
				result = p[1]
			case "error":
				errs += p[1]
			}
		}
		why := fmt.Sprintf("rate not held: %d of 1500 planned canaries submitted", tc.n)
		if tc.pass {
			if result != "PASS" || errs != "" {
				t.Errorf("%d sent: result %s, errors %q", tc.n, result, errs)
			}
			continue
		}
		if result != "FAIL" || !strings.Contains(errs, why) || !strings.Contains(errs, "at least 95% needed") {
			t.Errorf("%d sent: result %s, errors %q; want FAIL and %q", tc.n, result, errs, why)
		}
	}
}
