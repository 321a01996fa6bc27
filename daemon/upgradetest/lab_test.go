package upgradetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// The labs of this package, on ports no other package's lab uses (grep
// basePort and --base-port; powerlosstest has 7950, its paths 8050; lab
// init puts the paths on the base port + 100):
const (
	rollingBasePort = 8250 // TestRollingUpgrade: Raft 8250, paths 8350
	oldDataBasePort = 8450 // TestReadOldDataDir: Raft 8450, paths 8550
)

// other is the lab's other site.
func other(site string) string {
	if site == "alpha" {
		return "bravo"
	}
	return "alpha"
}

// clock logs with the seconds since the test started, the timeline the
// upgrade's figures refer to.
type clock struct {
	t     *testing.T
	start time.Time
}

func (c clock) at(tm time.Time) string { return fmt.Sprintf("%.1fs", tm.Sub(c.start).Seconds()) }

func (c clock) logf(format string, args ...any) {
	c.t.Helper()
	c.t.Logf("%6.1fs "+format, append([]any{time.Since(c.start).Seconds()}, args...)...)
}

// getJSON GETs path from node's socket and decodes the JSON reply into
// out: the raw API, so that a field this tree's client package does not
// know (the previous release's, or a newer one's) is still seen.
func getJSON(ctx context.Context, l *clustertest.ProcLab, node, path string, out any) error {
	sock := filepath.Join(l.Dir, "run", node+".sock")
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://hotline"+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s at %s: %w", path, node, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s at %s: %w", path, node, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s at %s: %s: %s", path, node, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

// waitHealthy waits until node answers its status as leader or follower
// with a leader known, its store has applied what its site's leader had
// applied when it first answered (caught up), and it has a path up to
// the other site; it fails the test after within, and returns when node
// first answered and when it was healthy.
func waitHealthy(t *testing.T, l *clustertest.ProcLab, node string, within time.Duration) (answered, healthy time.Time) {
	t.Helper()
	site := node[:strings.IndexByte(node, '-')]
	deadline := time.Now().Add(within)
	var target uint64 // the leader's applied index once node answered
	last := "no answer"
	for time.Now().Before(deadline) {
		l.CheckAlive()
		st, err := statusOf(l, node)
		switch {
		case err != nil:
			last = err.Error()
		case st.Role != "leader" && st.Role != "follower" || st.Leader == "":
			last = fmt.Sprintf("role %s, leader %q", st.Role, st.Leader)
		default:
			if answered.IsZero() {
				answered = time.Now()
				lst, err := statusOf(l, st.Leader)
				if err != nil {
					answered, last = time.Time{}, fmt.Sprintf("leader %s: %v", st.Leader, err)
					break
				}
				target = lst.AppliedIndex
			}
			up := 0
			for _, k := range st.Links {
				if k.Site == other(site) {
					up = k.PathsUp
				}
			}
			if st.AppliedIndex >= target && up > 0 {
				return answered, time.Now()
			}
			last = fmt.Sprintf("applied %d of %d, %d paths up to %s", st.AppliedIndex, target, up, other(site))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s is not healthy %v after it started: %s", node, within, last)
	return
}

// statusOf is node's status, asked with a 3s deadline.
func statusOf(l *clustertest.ProcLab, node string) (*daemonStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var st daemonStatus
	if err := getJSON(ctx, l, node, "/v1/status", &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// daemonStatus is what these tests read of GET /v1/status, the previous
// release's fields and the site version of issue 13 (absent before it).
type daemonStatus struct {
	Node         string `json:"node"`
	Version      string `json:"version"`
	Role         string `json:"role"`
	Leader       string `json:"leader"`
	AppliedIndex uint64 `json:"applied_index"`
	SiteVersion  *int   `json:"site_version"`
	// ReceiptsPending: read receipts not yet sent to their origin.
	ReceiptsPending int `json:"receipts_pending"`
	Links           []struct {
		Site    string `json:"site"`
		PathsUp int    `json:"paths_up"`
	} `json:"links"`
	Alarms []string `json:"alarms"`
}

// ctl runs hotlinectl of directory bin in the lab's directory and returns
// its combined output.
func ctl(l *clustertest.ProcLab, bin string, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(bin, "hotlinectl"), args...)
	cmd.Dir = l.Dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("hotlinectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// logSize is the size of node's log: what it writes next starts there.
func logSize(l *clustertest.ProcLab, node string) int64 {
	fi, err := os.Stat(filepath.Join(l.Dir, node+".log"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince is node's log from offset off.
func logSince(l *clustertest.ProcLab, node string, off int64) string {
	b, _ := os.ReadFile(filepath.Join(l.Dir, node+".log"))
	if off > int64(len(b)) {
		return ""
	}
	return string(b[off:])
}

// stopNode stops node with SIGTERM (20s at most) and fails the test
// unless it exits with status 0.
func stopNode(t *testing.T, l *clustertest.ProcLab, node string) {
	t.Helper()
	st := l.Stop(node, 20*time.Second)
	if st != nil && st.ExitCode() != 0 {
		t.Fatalf("%s exited with %v after SIGTERM", node, st)
	}
}

// leaderOf is the node of site that reports itself leader.
func leaderOf(t *testing.T, l *clustertest.ProcLab, site string) string {
	t.Helper()
	return l.SettledAmong(60*time.Second, daemon.LabNodes(site)...)
}
