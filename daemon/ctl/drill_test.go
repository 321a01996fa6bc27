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
	if !slices.Equal(drillScenarios, want) {
		t.Fatalf("drillScenarios = %q, want %q", drillScenarios, want)
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

func TestDrillKeys(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		run, err := newDrillRunID()
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
	if got := drillKey("0a1b2c3d", 42); got != "drill-0a1b2c3d-42" {
		t.Errorf("drillKey = %q", got)
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
		n, ok := drillKeyIndex("0a1b2c3d", tt.key)
		if n != tt.n || ok != tt.ok {
			t.Errorf("drillKeyIndex(%q) = %d, %v; want %d, %v", tt.key, n, ok, tt.n, tt.ok)
		}
	}
	for n := range 2000 {
		if got, ok := drillKeyIndex("0a1b2c3d", drillKey("0a1b2c3d", n)); !ok || got != n {
			t.Fatalf("round trip of %d: %d, %v", n, got, ok)
		}
	}
}

func TestDrillPayload(t *testing.T) {
	key := "drill-0a1b2c3d-7"
	p := drillPayload(key, 256)
	if len(p) != 256 || !bytes.HasPrefix(p, []byte(key)) {
		t.Errorf("payload(256) = %q", p)
	}
	if p := drillPayload(key, 5); string(p) != "drill" {
		t.Errorf("payload(5) = %q, want the key cut short", p)
	}
	if p := drillPayload(key, 1); len(p) != 1 {
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
	k := func(n int) string { return drillKey(run, n) }

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
			arr(108, drillKeyPrefix(run)+"9", 30),
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

// planStatus is node alpha-1's status in a lab of three alpha and three
// bravo nodes, with leader.
func planStatus(leader string) *client.Status {
	st := &client.Status{Site: "alpha", Node: "alpha-1", Role: "follower", Leader: leader, Version: "v1"}
	for _, n := range []string{"alpha-3", "alpha-2"} {
		st.Peers = append(st.Peers, client.Peer{Site: "alpha", Node: n, Role: "voter"})
	}
	for _, n := range []string{"bravo-1", "bravo-2", "bravo-3"} {
		st.Peers = append(st.Peers, client.Peer{Site: "bravo", Node: n, Role: "remote"})
	}
	return st
}

// planPaths is the leader's paths: fiber, sat, radio to every bravo node,
// with the given (node/path → state) overrides and one active pair.
func planPaths(admin []string, active string, down ...string) *client.PathsReply {
	r := &client.PathsReply{Site: "alpha", Node: "alpha-2"}
	for _, p := range admin {
		r.Admin = append(r.Admin, client.PathAdmin{Node: "alpha-2", Path: p, State: client.PathUp})
	}
	for _, n := range []string{"bravo-1", "bravo-2", "bravo-3"} {
		for _, p := range admin {
			if p == lanPath {
				continue
			}
			state := client.PathUp
			if slices.Contains(down, n+"/"+p) || slices.Contains(down, "*/"+p) {
				state = client.PathDown
			}
			r.Paths = append(r.Paths, client.PathInfo{Site: "bravo", Node: n, Path: p, State: state, Active: n+"/"+p == active})
		}
	}
	return r
}

// upAdmin is every alpha node with every path up.
func upAdmin(paths ...string) map[string][]client.PathAdmin {
	m := map[string][]client.PathAdmin{}
	for _, n := range []string{"alpha-1", "alpha-2", "alpha-3"} {
		for _, p := range paths {
			m[n] = append(m[n], client.PathAdmin{Node: n, Path: p, State: client.PathUp})
		}
	}
	return m
}

func TestPlanDrill(t *testing.T) {
	three := []string{"fiber", "sat", "radio"}
	withDown := func(m map[string][]client.PathAdmin, node, path string) map[string][]client.PathAdmin {
		for i := range m[node] {
			if m[node][i].Path == path {
				m[node][i].State, m[node][i].Mode = "down", client.ModeClose
			}
		}
		return m
	}
	tests := []struct {
		name       string
		scenario   string
		to         string
		st         *client.Status
		leader     *client.PathsReply
		admin      map[string][]client.PathAdmin
		wantCut    []string
		wantActive string // node/path
		wantXfer   string
		wantErr    string
	}{
		{name: "cut active", scenario: scenarioCutActive, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-2/sat"), admin: upAdmin(three...),
			wantCut: []string{"sat"}, wantActive: "bravo-2/sat"},
		{name: "cut active falls back to first up path", scenario: scenarioCutActive, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "", "*/fiber", "bravo-1/sat"), admin: upAdmin(three...),
			wantCut: []string{"sat"}, wantActive: "bravo-2/sat"},
		{name: "lan is never cut", scenario: scenarioCutAllButOne, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths([]string{"lan", "fiber", "sat", "radio"}, "bravo-1/fiber"), admin: upAdmin("lan", "fiber", "sat", "radio"),
			wantCut: []string{"fiber", "sat"}, wantActive: "bravo-1/fiber"},
		{name: "cut all but one keeps least preferred", scenario: scenarioCutAllButOne, to: "bravo", st: planStatus("alpha-1"),
			leader: planPaths([]string{"fiber", "sat"}, "bravo-3/fiber"), admin: upAdmin("fiber", "sat"),
			wantCut: []string{"fiber"}, wantActive: "bravo-3/fiber"},
		{name: "transfer origin", scenario: scenarioTransferOrigin, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), wantActive: "bravo-1/fiber", wantXfer: "alpha"},
		{name: "transfer destination", scenario: scenarioTransferDest, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), wantActive: "bravo-1/fiber", wantXfer: "bravo"},
		{name: "transfer ignores admin-down paths", scenario: scenarioTransferDest, to: "bravo", st: planStatus("alpha-2"),
			leader: func() *client.PathsReply {
				r := planPaths(three, "bravo-1/fiber")
				r.Admin[2].State = "down"
				return r
			}(), wantActive: "bravo-1/fiber", wantXfer: "bravo"},

		{name: "no leader", scenario: scenarioCutActive, to: "bravo", st: planStatus(""),
			leader: planPaths(three, "bravo-1/fiber"), admin: upAdmin(three...), wantErr: "site alpha has no known leader"},
		{name: "own site", scenario: scenarioCutActive, to: "alpha", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: upAdmin(three...), wantErr: "--to alpha is this node's own site"},
		{name: "unknown site", scenario: scenarioCutActive, to: "charlie", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: upAdmin(three...), wantErr: `site "charlie" is not configured on alpha-1 (other sites: bravo)`},
		{name: "no path up", scenario: scenarioTransferOrigin, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths([]string{"fiber"}, "", "*/fiber"), wantErr: "no path from leader alpha-2 to site bravo is up (bravo-1/fiber down"},
		{name: "no wan paths", scenario: scenarioCutActive, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths([]string{"lan"}, ""), admin: upAdmin("lan"), wantErr: "leader alpha-2 reports no WAN paths"},
		{name: "cut all but one with one path", scenario: scenarioCutAllButOne, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths([]string{"fiber"}, "bravo-1/fiber"), admin: upAdmin("fiber"), wantErr: "needs at least two WAN paths; leader alpha-2 has only fiber"},
		{name: "path to cut already down on a follower", scenario: scenarioCutActive, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: withDown(upAdmin(three...), "alpha-3", "fiber"),
			wantErr: "path fiber is already down on node alpha-3; bring it up first (hotlinectl path up fiber --node alpha-3)"},
		{name: "path to keep already down", scenario: scenarioCutAllButOne, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: withDown(upAdmin(three...), "alpha-1", "radio"),
			wantErr: "path radio is already down on node alpha-1"},
		{name: "node without the path", scenario: scenarioCutActive, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: func() map[string][]client.PathAdmin {
				m := upAdmin(three...)
				m["alpha-3"] = m["alpha-3"][1:]
				return m
			}(), wantErr: "node alpha-3 has no path fiber"},
		{name: "node not asked", scenario: scenarioCutActive, to: "bravo", st: planStatus("alpha-2"),
			leader: planPaths(three, "bravo-1/fiber"), admin: map[string][]client.PathAdmin{}, wantErr: "no path states from node alpha-1"},
		{name: "single node site", scenario: scenarioTransferOrigin, to: "bravo",
			st: &client.Status{Site: "alpha", Node: "alpha-1", Leader: "alpha-1",
				Peers: []client.Peer{{Site: "bravo", Node: "bravo-1"}, {Site: "bravo", Node: "bravo-2"}}},
			leader: planPaths(three, "bravo-1/fiber"), wantErr: "site alpha has only node alpha-1"},
		{name: "single node destination", scenario: scenarioTransferDest, to: "bravo",
			st: &client.Status{Site: "alpha", Node: "alpha-1", Leader: "alpha-1",
				Peers: []client.Peer{{Site: "alpha", Node: "alpha-2"}, {Site: "bravo", Node: "bravo-1"}}},
			leader: planPaths(three, "bravo-1/fiber"), wantErr: "site bravo has 1 configured node(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planDrill(tt.scenario, tt.to, tt.st, tt.leader, tt.admin)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("planDrill error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("planDrill: %v", err)
			}
			if !slices.Equal(p.Cut, tt.wantCut) {
				t.Errorf("Cut = %q, want %q", p.Cut, tt.wantCut)
			}
			if got := p.ActiveNode + "/" + p.ActivePath; got != tt.wantActive {
				t.Errorf("active = %s, want %s", got, tt.wantActive)
			}
			if p.Transfer != tt.wantXfer {
				t.Errorf("Transfer = %q, want %q", p.Transfer, tt.wantXfer)
			}
			if want := []string{"alpha-1", "alpha-2", "alpha-3"}; !slices.Equal(p.Nodes, want) {
				t.Errorf("Nodes = %q, want %q", p.Nodes, want)
			}
			if want := []string{"bravo-1", "bravo-2", "bravo-3"}; !slices.Equal(p.DestNodes, want) {
				t.Errorf("DestNodes = %q, want %q", p.DestNodes, want)
			}
			if slices.Contains(p.Paths, lanPath) {
				t.Errorf("Paths %q include %s", p.Paths, lanPath)
			}
			notes := strings.Join(p.notes("v1", drillOpts{duration: 30 * time.Second}), "\n")
			for _, want := range []string{"leader " + p.Leader, "hotlined v1", "active to bravo: " + p.ActivePath} {
				if !strings.Contains(notes, want) {
					t.Errorf("notes do not mention %q:\n%s", want, notes)
				}
			}
		})
	}
}

func TestDescribeTargets(t *testing.T) {
	tg := func(pairs ...string) []cutTarget {
		var ts []cutTarget
		for _, p := range pairs {
			node, path, _ := strings.Cut(p, "/")
			ts = append(ts, cutTarget{node: node, path: path})
		}
		return ts
	}
	tests := []struct {
		in   []cutTarget
		want string
	}{
		{tg("alpha-1/fiber", "alpha-2/fiber", "alpha-3/fiber"), "fiber on alpha-1, alpha-2, alpha-3"},
		{tg("alpha-1/fiber", "alpha-1/sat", "alpha-2/fiber", "alpha-2/sat"), "fiber, sat on alpha-1, alpha-2"},
		{tg("alpha-1/fiber", "alpha-1/sat", "alpha-2/fiber", "alpha-3/fiber", "alpha-3/sat"), "fiber, sat on alpha-1, alpha-3; fiber on alpha-2"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := describeTargets(tt.in); got != tt.want {
			t.Errorf("describeTargets(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAdminErrorForbidden(t *testing.T) {
	ae := &client.APIError{Status: 403, Code: client.CodeForbidden, Message: "uid 1000 is neither root nor in group hotline-admin"}
	err := adminError("path down fiber", fmt.Errorf("wrapped: %w", ae))
	for _, want := range []string{"path down fiber", "permission denied", "uid 1000 is neither root nor in group hotline-admin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if !client.IsCode(err, client.CodeForbidden) || ExitCode(err) != 1 {
		t.Errorf("error %q lost its code or exits %d", err, ExitCode(err))
	}
	other := adminError("paths", &client.APIError{Status: 409, Code: client.CodeConflict, Message: "no leader"})
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
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	in := &drillInput{Scenario: scenarioCutActive, From: "alpha", To: "bravo", Precedence: "routine", Rate: 1, Size: 256,
		Start: t0, FaultAt: t0.Add(2 * time.Second), RestoreAt: t0.Add(4 * time.Second), End: t0.Add(5 * time.Second)}
	for n := range 6 {
		c := drillCanary{N: n, Key: drillKey("0a1b2c3d", n), ID: fmt.Sprint(n), SentAt: t0.Add(time.Duration(n) * time.Second)}
		c.AckedAt = c.SentAt.Add(time.Millisecond)
		if n != 3 {
			c.Arrivals = []time.Time{c.SentAt.Add(20 * time.Millisecond)}
		}
		in.Canaries = append(in.Canaries, c)
	}
	s := drillSummary{DrillReport: buildDrillReport(in), Run: "0a1b2c3d", ReportDir: "drill-x"}
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
// 1,190 of 1,500).
func TestDrillRateNotHeld(t *testing.T) {
	t0 := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	build := func(rate float64, n int) *DrillReport {
		in := &drillInput{Scenario: scenarioCutActive, From: "alpha", To: "bravo", Precedence: "routine",
			Rate: rate, Duration: 30 * time.Second, Size: 256,
			Start: t0, FaultAt: t0.Add(10 * time.Second), RestoreAt: t0.Add(20 * time.Second), End: t0.Add(30 * time.Second)}
		for i := range n {
			c := drillCanary{N: i, Key: drillKey("0a1b2c3d", i), ID: fmt.Sprint(i), SentAt: t0.Add(time.Duration(i) * 30 * time.Second / time.Duration(n))}
			c.AckedAt = c.SentAt.Add(time.Millisecond)
			c.Arrivals = []time.Time{c.SentAt.Add(20 * time.Millisecond)}
			in.Canaries = append(in.Canaries, c)
		}
		return buildDrillReport(in)
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
		md := drillMarkdown(r)
		s := drillSummary{DrillReport: r, Run: "0a1b2c3d", ReportDir: "drill-x"}
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
			if result != "PASS" || errs != "" || strings.Contains(md, "rate not held") {
				t.Errorf("%d sent: result %s, errors %q", tc.n, result, errs)
			}
			continue
		}
		if result != "FAIL" || !strings.Contains(errs, why) || !strings.Contains(errs, "at least 95% needed") {
			t.Errorf("%d sent: result %s, errors %q; want FAIL and %q", tc.n, result, errs, why)
		}
		if !strings.Contains(md, "# Drill cut-active-path: FAIL") || !strings.Contains(md, why) {
			t.Errorf("%d sent: report.md does not say why it failed:\n%s", tc.n, md)
		}
	}
}
