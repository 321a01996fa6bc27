package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
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

// health answers for one node's health, readiness and alarms: it reads
// the node's parts (never changes them) at each question. Open builds it
// once the parts exist; the socket API, the metrics listener, the
// watchdog, status and the metrics ask it.
type health struct {
	cfg   *Config
	life  *lifecycle // the node's state (process check)
	store *queue.Store
	raft  *consensus.Node
	link  *transport.Link
	keys  *pki.Keyring // certificates, for expiry alarms
	tests *linkTests   // the leader's link tests (linkHealth.tests)
	audit *auditor     // audit forks (audit.go)
	seals *sealer      // inbox payloads that do not open (seal.go)

	refusals *trustRefusals     // signatures on the link that did not hold (linktrust.go)
	overdue  *overdueWatch      // messages past their read objective (objectives.go)
	versions *versionMismatches // peers without a common protocol version (versions.go)
}

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

func (h *health) report(checks []check) *healthReport {
	r := &healthReport{Status: "ok", Node: h.cfg.Node, Checks: checks}
	for _, c := range checks {
		if !c.OK {
			r.Status = "fail"
		}
	}
	return r
}

// healthz runs the liveness checks.
func (h *health) healthz() *healthReport {
	var cs []check
	st := h.life.get()
	cs = append(cs, check{Name: "process", OK: st == stateRunning, Reason: st.String()})

	c := check{Name: "store", OK: true, Reason: "ok"}
	if h.store == nil {
		c = check{Name: "store", Reason: "not open"}
	} else if err := h.store.Err(); err != nil {
		c = check{Name: "store", Reason: "failed: " + err.Error()}
	} else if cnt, last := h.store.Corruption(); cnt > 0 {
		c = check{Name: "store", Reason: fmt.Sprintf("%d damaged records found (rebuild this node); latest: %v", cnt, last)}
	}
	cs = append(cs, c)

	c = check{Name: "raft", OK: true}
	switch s := h.raftState(); s {
	case "shutdown", "":
		c = check{Name: "raft", Reason: "shut down"}
	case "standby":
		c.Reason = "standing by for disk space (recovers by itself)"
	default:
		c.Reason = s
	}
	cs = append(cs, c)
	return h.report(cs)
}

// healthy is what the systemd watchdog reflects: healthz's verdict.
func (h *health) healthy() error { return h.healthz().err() }

func (h *health) raftState() string {
	if h.raft == nil {
		return ""
	}
	return h.raft.State()
}

// readyz runs the liveness checks and the readiness checks.
func (h *health) readyz() *healthReport {
	cs := h.healthz().Checks
	if h.raft == nil || h.store == nil || h.link == nil {
		return h.report(append(cs, check{Name: "leader", Reason: "node is not open"}))
	}
	st := h.raft.Stats()
	leader, _ := h.raft.Leader()
	c := check{Name: "leader", OK: true, Reason: "this node leads"}
	limit := 2 * h.cfg.Raft.ElectionTimeout.Duration
	switch {
	case leader == "":
		c = check{Name: "leader", Reason: "no leader known"}
	case leader != h.cfg.Node && (st.LastContact < 0 || st.LastContact > limit):
		c = check{Name: "leader", Reason: fmt.Sprintf("leader %s not heard from for %v (limit %v)", leader, st.LastContact.Round(1e6), limit)}
	case leader != h.cfg.Node:
		c.Reason = "leader " + leader
	}
	cs = append(cs, c)

	applied := h.store.AppliedIndex()
	c = check{Name: "applied", OK: true, Reason: fmt.Sprintf("applied %d of %d committed", applied, st.CommitIndex)}
	if st.CommitIndex > applied+maxApplyLag {
		c.OK = false
		c.Reason += fmt.Sprintf(": more than %d behind", maxApplyLag)
	}
	cs = append(cs, c)

	up := map[string]int{}
	for _, p := range h.link.Paths() {
		if p.State == transport.PathUp {
			up[p.Site]++
		}
	}
	var cut []string
	for _, s := range h.cfg.remoteSites() {
		if up[s] == 0 {
			cut = append(cut, s)
		}
	}
	c = check{Name: "links", OK: len(cut) == 0, Reason: "a path up to every other site"}
	if len(cut) > 0 {
		c.Reason = "no path up to " + strings.Join(cut, ", ")
	}
	cs = append(cs, c)
	return h.report(cs)
}

// healthHandler answers with report's JSON: 200 when it passed, 503 when
// not.
func healthHandler(report func() *healthReport) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rep := report()
		code := http.StatusOK
		if !rep.ok() {
			code = http.StatusServiceUnavailable
		}
		b, _ := json.Marshal(rep)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_, _ = w.Write(append(b, '\n'))
	}
}

// alarm is one thing an operator should look at now: its kind (the
// hotline_alarms label) and its words (as status lists it).
type alarm struct{ kind, text string }

// alarmList is every alarm raised now: store corruption, a full disk, a
// restored site still waiting to hear from another, paths down or
// disabled, failed link tests, certificates near expiry, unread inbox
// payloads that do not decrypt, signatures refused on the link, unread
// messages waiting for a mailbox not configured here, messages past their
// read objective (objectives.go), peers without a common protocol version
// (versions.go). Status
// words them (alarms), the metric counts them by kind (alarmCounts): one
// list, so the two never disagree.
func (h *health) alarmList() []alarm {
	var out []alarm
	add := func(kind, format string, args ...any) { out = append(out, alarm{kind, fmt.Sprintf(format, args...)}) }
	if h.store != nil {
		if c, last := h.store.Corruption(); c > 0 {
			add("store_corruption", "store corruption: %d damaged records found, not served or forwarded; rebuild this node (README: Corruption and recovery); latest: %v", c, last)
		}
	}
	if err := h.storageFull(); err != nil {
		add("storage_full", "%v", err)
	}
	if h.store != nil {
		for _, t := range h.resyncAlarms() { // backup.go
			add("resync_pending", "%s", t)
		}
	}
	if h.link != nil {
		for _, p := range h.link.Paths() {
			if p.Site == h.cfg.Site {
				if p.State == transport.PathDown {
					add("intra_site_link_down", "intra-site link to %s down: %s", p.Node, p.LastErr)
				}
				continue
			}
			switch p.State {
			case transport.PathDown:
				add("path_down", "path %s to %s/%s down since %s: %s", p.Path, p.Site, p.Node, p.Since.UTC().Format(time.RFC3339), p.LastErr)
			case transport.PathAdminDown:
				m, _ := h.link.PathAdmin(p.Path)
				add("path_admin_down", "path %s to %s/%s disabled by an operator (%s)", p.Path, p.Site, p.Node, adminModeName(m))
			}
		}
	}
	for k, lt := range h.tests.snapshot() {
		if !lt.OK {
			add("link_test_failed", "link test to %s via %s failed at %s: %s", k.site, k.path, lt.At.Format(time.RFC3339), lt.Error)
		}
	}
	for _, t := range certAlarms(h.keys, h.cfg.CertExpiryWarning.Duration) {
		add("cert_expiry", "%s", t)
	}
	for _, t := range h.audit.alarms() {
		add("audit_fork", "%s", t)
	}
	if h.seals != nil {
		for _, t := range h.seals.alarms() {
			add("payload_undecryptable", "%s", t)
		}
	}
	for _, t := range h.refusals.alarms(time.Now()) {
		add("bad_signature", "%s", t)
	}
	if h.store != nil {
		unread := h.store.MailboxUnread()
		for _, name := range unconfiguredMailboxes(unread, h.cfg.mailboxes()) { // mailbox_unconfigured.go
			add("mailbox_unconfigured", "%s", unconfiguredWords(name, unread[name]))
		}
	}
	for _, t := range h.overdue.alarms() {
		add("read_overdue", "%s", t)
	}
	for _, t := range h.versions.alarms(time.Now()) {
		add("protocol_version", "%s", t)
	}
	return out
}

// alarms words the alarms raised now, for status.
func (h *health) alarms() []string {
	var out []string
	for _, a := range h.alarmList() {
		out = append(out, a.text)
	}
	return out
}

// alarmKinds are the kinds of alarm status can raise, for hotline_alarms.
var alarmKinds = []string{"store_corruption", "storage_full", "resync_pending", "intra_site_link_down", "path_down", "path_admin_down", "link_test_failed", "cert_expiry", "audit_fork", "payload_undecryptable", "bad_signature", "mailbox_unconfigured", "read_overdue", "protocol_version"}

// alarmCounts counts the alarms raised now by kind, for hotline_alarms.
func (h *health) alarmCounts() map[string]int {
	out := map[string]int{}
	for _, a := range h.alarmList() {
		out[a.kind]++
	}
	return out
}

// alarmCollector reports hotline_alarms{kind}, every kind from the start.
type alarmCollector struct{ h *health }

var alarmDesc = prometheus.NewDesc("hotline_alarms",
	"Alarms raised now (as hotlinectl status lists them), by kind: "+strings.Join(alarmKinds, ", ")+".", []string{"kind"}, nil)

func (c *alarmCollector) Describe(ch chan<- *prometheus.Desc) { ch <- alarmDesc }

func (c *alarmCollector) Collect(ch chan<- prometheus.Metric) {
	counts := c.h.alarmCounts()
	for _, k := range alarmKinds {
		ch <- prometheus.MustNewConstMetric(alarmDesc, prometheus.GaugeValue, float64(counts[k]), k)
	}
	for k, v := range counts {
		if !slices.Contains(alarmKinds, k) {
			ch <- prometheus.MustNewConstMetric(alarmDesc, prometheus.GaugeValue, float64(v), k)
		}
	}
}
