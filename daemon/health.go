package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotline-link/hotline/transport"
)

// Health and readiness, as /healthz and /readyz answer them (on the socket
// and on the metrics listener) and as the systemd watchdog sees them.
//
//   - healthy (/healthz, the watchdog): the process runs, its state store
//     has not failed and has found no damaged record, and Raft has not shut
//     down (standing by for disk space is healthy: the node recovers by
//     itself and a restart would free nothing). An unhealthy node needs a
//     restart or a rebuild.
//   - ready (/readyz): healthy, and it has a leader it hears from, has
//     applied what it knows committed (within maxApplyLag entries), and has
//     at least one path up to every other site. A node that is not ready
//     works but should not be preferred (by a load balancer, an operator
//     about to take another node down).

// maxApplyLag is how many committed entries a ready node may have still to
// apply: a few group-commit batches, so a busy node stays ready.
const maxApplyLag = 1024

// check is one health or readiness check's result.
type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Reason string `json:"reason"`
}

// healthReport is the JSON body of /healthz and /readyz.
type healthReport struct {
	Status string  `json:"status"` // "ok" or "fail"
	Node   string  `json:"node"`
	Checks []check `json:"checks"`
}

func (h *healthReport) ok() bool { return h.Status == "ok" }

// err joins the reasons of the failed checks; nil when all passed.
func (h *healthReport) err() error {
	var errs []error
	for _, c := range h.Checks {
		if !c.OK {
			errs = append(errs, fmt.Errorf("%s: %s", c.Name, c.Reason))
		}
	}
	return errors.Join(errs...)
}

func (n *Node) report(checks []check) *healthReport {
	h := &healthReport{Status: "ok", Node: n.cfg.Node, Checks: checks}
	for _, c := range checks {
		if !c.OK {
			h.Status = "fail"
		}
	}
	return h
}

// healthz runs the liveness checks.
func (n *Node) healthz() *healthReport {
	var cs []check
	st := n.life.get()
	cs = append(cs, check{Name: "process", OK: st == stateRunning, Reason: st.String()})

	c := check{Name: "store", OK: true, Reason: "ok"}
	if n.store == nil {
		c = check{Name: "store", Reason: "not open"}
	} else if err := n.store.Err(); err != nil {
		c = check{Name: "store", Reason: "failed: " + err.Error()}
	} else if cnt, last := n.store.Corruption(); cnt > 0 {
		c = check{Name: "store", Reason: fmt.Sprintf("%d damaged records found (rebuild this node); latest: %v", cnt, last)}
	}
	cs = append(cs, c)

	c = check{Name: "raft", OK: true}
	switch s := n.raftState(); s {
	case "shutdown", "":
		c = check{Name: "raft", Reason: "shut down"}
	case "standby":
		c.Reason = "standing by for disk space (recovers by itself)"
	default:
		c.Reason = s
	}
	cs = append(cs, c)
	return n.report(cs)
}

// health is what the systemd watchdog reflects: healthz's verdict.
func (n *Node) health() error { return n.healthz().err() }

func (n *Node) raftState() string {
	if n.raft == nil {
		return ""
	}
	return n.raft.State()
}

// readyz runs the liveness checks and the readiness checks.
func (n *Node) readyz() *healthReport {
	cs := n.healthz().Checks
	if n.raft == nil || n.store == nil || n.link == nil {
		return n.report(append(cs, check{Name: "leader", Reason: "node is not open"}))
	}
	st := n.raft.Stats()
	leader, _ := n.raft.Leader()
	c := check{Name: "leader", OK: true, Reason: "this node leads"}
	limit := 2 * n.cfg.Raft.ElectionTimeout.Duration
	switch {
	case leader == "":
		c = check{Name: "leader", Reason: "no leader known"}
	case leader != n.cfg.Node && (st.LastContact < 0 || st.LastContact > limit):
		c = check{Name: "leader", Reason: fmt.Sprintf("leader %s not heard from for %v (limit %v)", leader, st.LastContact.Round(1e6), limit)}
	case leader != n.cfg.Node:
		c.Reason = "leader " + leader
	}
	cs = append(cs, c)

	applied := n.store.AppliedIndex()
	c = check{Name: "applied", OK: true, Reason: fmt.Sprintf("applied %d of %d committed", applied, st.CommitIndex)}
	if st.CommitIndex > applied+maxApplyLag {
		c.OK = false
		c.Reason += fmt.Sprintf(": more than %d behind", maxApplyLag)
	}
	cs = append(cs, c)

	up := map[string]int{}
	for _, p := range n.link.Paths() {
		if p.State == transport.PathUp {
			up[p.Site]++
		}
	}
	var cut []string
	for _, s := range n.cfg.remoteSites() {
		if up[s] == 0 {
			cut = append(cut, s)
		}
	}
	c = check{Name: "links", OK: len(cut) == 0, Reason: "a path up to every other site"}
	if len(cut) > 0 {
		c.Reason = "no path up to " + strings.Join(cut, ", ")
	}
	cs = append(cs, c)
	return n.report(cs)
}

// healthHandler answers with report's JSON: 200 when it passed, 503 when
// not.
func healthHandler(report func() *healthReport) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		h := report()
		code := http.StatusOK
		if !h.ok() {
			code = http.StatusServiceUnavailable
		}
		b, _ := json.Marshal(h)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_, _ = w.Write(append(b, '\n'))
	}
}

// alarmKinds are the kinds of alarm status can raise, for hotline_alarms.
var alarmKinds = []string{"store_corruption", "storage_full", "intra_site_link_down", "path_down", "path_admin_down", "link_test_failed", "cert_expiry"}

// alarmCounts counts the current alarms by kind; it follows the same
// conditions as Node.alarms, which words them.
func (n *Node) alarmCounts() map[string]int {
	out := map[string]int{}
	if n.store != nil {
		if c, _ := n.store.Corruption(); c > 0 {
			out["store_corruption"]++
		}
	}
	if n.storageFull() != nil {
		out["storage_full"]++
	}
	if n.link != nil {
		for _, p := range n.link.Paths() {
			switch {
			case p.Site == n.cfg.Site && p.State == transport.PathDown:
				out["intra_site_link_down"]++
			case p.Site == n.cfg.Site:
			case p.State == transport.PathDown:
				out["path_down"]++
			case p.State == transport.PathAdminDown:
				out["path_admin_down"]++
			}
		}
	}
	for _, lt := range n.linkTests.snapshot() {
		if !lt.OK {
			out["link_test_failed"]++
		}
	}
	out["cert_expiry"] += len(n.certAlarms())
	return out
}

// alarmCollector reports hotline_alarms{kind}, every kind from the start.
type alarmCollector struct{ n *Node }

var alarmDesc = prometheus.NewDesc("hotline_alarms",
	"Alarms raised now (as hotlinectl status lists them), by kind: "+strings.Join(alarmKinds, ", ")+".", []string{"kind"}, nil)

func (c *alarmCollector) Describe(ch chan<- *prometheus.Desc) { ch <- alarmDesc }

func (c *alarmCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.n.alarmCounts()
	for _, k := range alarmKinds {
		ch <- prometheus.MustNewConstMetric(alarmDesc, prometheus.GaugeValue, float64(counts[k]), k)
	}
	for k, v := range counts {
		if !slices.Contains(alarmKinds, k) {
			ch <- prometheus.MustNewConstMetric(alarmDesc, prometheus.GaugeValue, float64(v), k)
		}
	}
}
