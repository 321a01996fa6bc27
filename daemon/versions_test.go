package daemon

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/buildinfo"
	"github.com/hotline-link/hotline/internal/alpn"
)

func TestVersionMismatchAlarmExpires(t *testing.T) {
	var logs bytes.Buffer
	v := newVersionMismatches(slog.New(slog.NewTextHandler(&logs, nil)))
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	v.record("127.0.0.1:7102", []string{"hotline/9"}, []string{"hotline/1"}, t0)
	// The same remote dials again from another port: the same alarm.
	v.record("127.0.0.1:7103", []string{"hotline/9"}, []string{"hotline/1"}, t0.Add(time.Minute))
	v.record("bravo/bravo-1 at 127.0.0.1:7202", []string{"hotline/1"}, nil, t0)
	got := v.alarms(t0.Add(time.Minute))
	want := []string{
		"protocol_version: 127.0.0.1:7103 offered hotline/9; this node speaks hotline/1 (2 times since 2026-01-02T03:04:05Z, last at 2026-01-02T03:05:05Z)",
		"protocol_version: bravo/bravo-1 at 127.0.0.1:7202 refused every version this node offers (hotline/1); its log names the versions it speaks (1 times since 2026-01-02T03:04:05Z, last at 2026-01-02T03:04:05Z)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("alarms:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// One ALARM line a minute at most: the second remote's is counted in
	// the next.
	if n := strings.Count(logs.String(), "ALARM: protocol_version"); n != 1 {
		t.Fatalf("%d ALARM lines, want 1:\n%s", n, logs.String())
	}
	v.record("127.0.0.2:7102", []string{"hotline/9"}, []string{"hotline/1"}, t0.Add(time.Minute))
	if n := strings.Count(logs.String(), "ALARM: protocol_version"); n != 2 || !strings.Contains(logs.String(), "(and 1 more remotes since the last such line") {
		t.Fatalf("%d ALARM lines, want 2, the second counting the one not logged:\n%s", n, logs.String())
	}
	delete(v.recent.seen, "127.0.0.2 hotline/1")
	// Cleared 10 minutes after the last mismatch of each remote.
	if got := v.alarms(t0.Add(10*time.Minute + time.Second)); len(got) != 1 || !strings.Contains(got[0], "7103") {
		t.Fatalf("alarms 10m after the dialler's last mismatch: %q", got)
	}
	if got := v.alarms(t0.Add(11*time.Minute + time.Second)); len(got) != 0 {
		t.Fatalf("alarms 10m after every last mismatch: %q", got)
	}
	// A new mismatch after that raises the alarm anew.
	v.record("127.0.0.1:7102", []string{"hotline/9"}, []string{"hotline/1"}, t0.Add(time.Hour))
	if got := v.alarms(t0.Add(time.Hour)); len(got) != 1 || !strings.Contains(got[0], "(1 times since") {
		t.Fatalf("alarms after a new mismatch: %q", got)
	}
}

func TestVersionMismatchesAreBounded(t *testing.T) {
	var logs bytes.Buffer
	v := newVersionMismatches(slog.New(slog.NewTextHandler(&logs, nil)))
	t0 := time.Now()
	for i := range 10 * maxMismatches {
		v.record(fmt.Sprintf("10.0.%d.%d:1", i>>8, i&0xff), []string{"x"}, []string{"hotline/1"}, t0.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(v.recent.seen); n > maxMismatches {
		t.Fatalf("%d remotes remembered, limit %d", n, maxMismatches)
	}
	if n := strings.Count(logs.String(), "ALARM"); n != 1 {
		t.Fatalf("%d ALARM lines for %d remotes within seconds, want 1", n, 10*maxMismatches)
	}
	if n := len(v.alarms(t0.Add(time.Second))); n != maxMismatches {
		t.Fatalf("%d alarms, want the latest %d remotes", n, maxMismatches)
	}
}

// TestReleaseTableMatchesBuild holds the README's table of releases
// (Upgrading a site) against what this build speaks and reads, which
// `hotlined --version` prints: the row of this release must say the same.
func TestReleaseTableMatchesBuild(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var row []string
	for line := range strings.Lines(string(readme)) {
		if strings.HasPrefix(line, "| "+buildinfo.Release+" |") {
			row = strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		}
	}
	if len(row) != 6 {
		t.Fatalf("README.md: no row of 6 cells for release %s in the table of releases: %q", buildinfo.Release, row)
	}
	for i := range row {
		row[i] = strings.TrimSpace(row[i])
	}
	versions := func(protos []string, prefix string) string {
		var ns []string
		for _, p := range protos {
			n, ok := alpn.Version(p, prefix)
			if !ok {
				t.Fatalf("protocol %q is not %sN", p, prefix)
			}
			ns = append(ns, strconv.Itoa(n))
		}
		return strings.Join(ns, ", ")
	}
	sp := BuildInfo().Speaks
	f := sp.Formats
	// The ranges read begin their cells ("1–6 / 5, and 6 ..."); the
	// highest site version ends its cell ("1, then 2").
	for _, c := range []struct {
		column, cell, want string
		ok                 func(cell, want string) bool
	}{
		{"link", row[1], versions(sp.Link, "hotline/"), func(c, w string) bool { return c == w }},
		{"site", row[2], versions(sp.Raft, "hotline-raft/"), func(c, w string) bool { return c == w }},
		{"log entries read", row[3], fmt.Sprintf("%d–%d /", f.LogEntry[0], f.LogEntry[1]), strings.HasPrefix},
		{"state file read", row[4], fmt.Sprintf("%d–%d /", f.StateFile[0], f.StateFile[1]), strings.HasPrefix},
		{"site version", row[5], fmt.Sprintf(" %d", f.SiteVersion), strings.HasSuffix},
	} {
		if !c.ok(c.cell, c.want) {
			t.Errorf("README.md, release %s, column %q says %q; this build: %q", buildinfo.Release, c.column, c.cell, strings.TrimSpace(c.want))
		}
	}

	var out, errb strings.Builder
	if err := Main(t.Context(), []string{"--version"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"link:    " + strings.Join(sp.Link, ", ") + " (between sites)\n",
		"raft:    " + strings.Join(sp.Raft, ", ") + " (within a site)\n",
		fmt.Sprintf("reads:   state file formats %d-%d, log entry formats %d-%d, backup format %d, site versions up to %d\n",
			f.StateFile[0], f.StateFile[1], f.LogEntry[0], f.LogEntry[1], f.Backup, f.SiteVersion),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("hotlined --version printed %q, want %q in it", out.String(), want)
		}
	}
}
