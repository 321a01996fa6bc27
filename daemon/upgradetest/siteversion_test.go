package upgradetest

// The site version of issue 13, kept apart so that it can be adjusted to
// the implementation. The spec: GET /v1/status (hotlinectl status --json)
// has a top-level "site_version" number. A site's leader raises it from 1
// to 2 once every server of the site's Raft configuration runs a build
// that speaks the new intra-site protocol: while any node of the site
// runs the previous release it stays 1 (the previous release has no such
// field: absent counts as 1), and after the last node is upgraded it is 2
// within about 30s. A node rolled back to the previous release before the
// raise copes; after the raise the previous release refuses: its hotlined
// exits with an error containing "unsupported format version" (state.db
// is format 8), or stays up and reports, in its log or status, "log
// entry format 6 is newer than this build reads".

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// What the previous release says when it refuses data of the raised
// site version.
var refusals = []string{
	"unsupported format version",                        // state.db of format 8, at start
	"log entry format 6 is newer than this build reads", // a Raft entry of the new format, applied
}

// siteVersionView is one node's site version as its status gave it.
type siteVersionView struct {
	Node    string
	Version *int // nil: absent (the previous release)
	Err     error
}

func (v siteVersionView) String() string {
	switch {
	case v.Err != nil:
		return fmt.Sprintf("%s: %v", v.Node, v.Err)
	case v.Version == nil:
		return v.Node + ": site_version absent"
	}
	return fmt.Sprintf("%s: site_version %d", v.Node, *v.Version)
}

// siteVersions asks each of nodes for its site version.
func siteVersions(l *clustertest.ProcLab, nodes []string) []siteVersionView {
	var out []siteVersionView
	for _, n := range nodes {
		st, err := statusOf(l, n)
		v := siteVersionView{Node: n, Err: err}
		if err == nil {
			v.Version = st.SiteVersion
		}
		out = append(out, v)
	}
	return out
}

// checkMixed: while a site runs both builds its site version is 1 (or
// absent, or 0, on the previous release).
func checkMixed(t *testing.T, views []siteVersionView) {
	t.Helper()
	if len(views) == 0 {
		t.Fatal("no site version was asked while the site ran both builds")
	}
	answered := 0
	for _, v := range views {
		if v.Err == nil && v.Version != nil {
			answered++ // a node of the current build
			if *v.Version > 1 {
				t.Errorf("%v while the site ran both builds, want 1", v)
			}
		}
	}
	if answered == 0 {
		t.Errorf("no node of the current build reported its site version while the site ran both builds: %v", views)
	}
}

// waitSiteVersion waits until every node of site reports site version
// want.
func waitSiteVersion(t *testing.T, l *clustertest.ProcLab, site string, want int, within time.Duration) {
	t.Helper()
	start := time.Now()
	var views []siteVersionView
	for time.Since(start) < within {
		views = siteVersions(l, daemon.LabNodes(site))
		ok := true
		for _, v := range views {
			ok = ok && v.Err == nil && v.Version != nil && *v.Version == want
		}
		if ok {
			t.Logf("site %s: site_version %d on every node %.1fs after its last upgrade", site, want, time.Since(start).Seconds())
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("site %s: not site_version %d on every node %v after its last upgrade: %v", site, want, within, views)
}

// rollbackOutcome is what the previous release did on a node's data of
// the raised site version.
type rollbackOutcome struct {
	Exited  string // how it exited, "" when it was still running
	Refusal string // the refusal of refusals it gave (log or status), if any
	Coped   bool   // it ran, caught up, and gave no refusal
	Log     string // its output
}

func (o rollbackOutcome) String() string {
	var parts []string
	if o.Exited != "" {
		parts = append(parts, "exited: "+o.Exited)
	}
	if o.Refusal != "" {
		parts = append(parts, fmt.Sprintf("refused (%q)", o.Refusal))
	}
	if o.Coped {
		parts = append(parts, "ran and caught up without a refusal")
	}
	if len(parts) == 0 {
		parts = append(parts, "neither refused nor caught up within 30s")
	}
	return strings.Join(parts, "; ")
}

// rollBack stops node and starts it on the previous release (directory
// prev), watches for up to 30s what it does, and leaves it stopped.
func rollBack(t *testing.T, l *clustertest.ProcLab, node, prev string) rollbackOutcome {
	t.Helper()
	stopNode(t, l, node)
	off := logSize(l, node)
	l.StartNodeFrom(node, prev)
	p := l.Take(node) // it may exit: the lab must not count that a failure
	var o rollbackOutcome
	refused := func(text string) string {
		for _, r := range refusals {
			if strings.Contains(text, r) {
				return r
			}
		}
		return ""
	}
	var target uint64
	var caughtUp time.Time
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		select {
		case <-p.Exited():
			o.Exited = p.Cmd.ProcessState.String()
		default:
		}
		if o.Refusal = refused(logSince(l, node, off)); o.Refusal != "" || o.Exited != "" {
			break
		}
		st, err := statusOf(l, node)
		if err != nil || st.Leader == "" {
			continue
		}
		if o.Refusal = refused(strings.Join(st.Alarms, "\n")); o.Refusal != "" {
			break
		}
		if target == 0 {
			if lst, err := statusOf(l, st.Leader); err == nil {
				target = lst.AppliedIndex
			}
			continue
		}
		if st.AppliedIndex >= target && caughtUp.IsZero() {
			caughtUp = time.Now()
		}
		if !caughtUp.IsZero() && time.Since(caughtUp) > 3*time.Second {
			o.Coped = true
			break
		}
	}
	select {
	case <-p.Exited():
	default:
		p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Exited():
		case <-time.After(20 * time.Second):
			p.Cmd.Process.Kill()
			<-p.Exited()
			t.Errorf("%s on the previous release did not stop within 20s of SIGTERM", node)
		}
	}
	if o.Refusal == "" {
		o.Refusal = refused(logSince(l, node, off))
	}
	o.Log = logSince(l, node, off)
	return o
}

// checkRefused: after the raise the previous release refuses the node's
// data.
func checkRefused(t *testing.T, node string, o rollbackOutcome) {
	t.Helper()
	if o.Refusal == "" {
		t.Errorf("%s on the previous release after the site version was raised: %v; want it to refuse with one of %q. Its output:\n%s",
			node, o, refusals, tail(o.Log, 3000))
	}
}

// tail is the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
