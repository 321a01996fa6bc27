package daemon

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/daemon/buildinfo"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/pki"
)

// metrics are one node's Prometheus metrics. Each node has its own
// registry so that the dev lab can run six nodes in one process (Raft's
// own go-metrics, hotline_raft_* summaries and counters from raftSink,
// are process-wide).
//
// Every labelled failure counter is created with all its label values at
// start (sites, paths, reasons from the config), so that a rate() over it
// has a zero to start from.
type metrics struct {
	reg          *prometheus.Registry
	submitted    prometheus.Counter
	delivered    prometheus.Counter
	received     prometheus.Counter
	sendFailures *prometheus.CounterVec

	linkTestFailures *prometheus.CounterVec
	linkTestRTT      *prometheus.GaugeVec
	refusals         *trustRefusals // signatures on the link that did not hold (linktrust.go)

	submitLatency *prometheus.HistogramVec // by dest
	e2eLatency    *prometheus.HistogramVec // by origin, precedence
	stateCommit   prometheus.Histogram
	logWrite      prometheus.Histogram
}

// latencyBuckets span a local commit (a millisecond) to a message held up
// by an outage (minutes).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// diskBuckets span one fsync'd bbolt commit: tens of microseconds on a
// fast disk to a second on a struggling one.
var diskBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// newMetrics makes cfg's node's instruments and registry; watch adds the
// collectors that read the node's parts.
func newMetrics(cfg *Config) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "hotline_submitted_total",
			Help: "New messages committed by submissions through this node (refused items and repeats of a used id are not counted)."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "hotline_delivered_total",
			Help: "Outbound messages acknowledged by their destination site, recorded while this node led."}),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "hotline_received_total",
			Help: "Inbound messages newly applied from batches this node accepted."}),
		sendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotline_send_failures_total",
			Help: "Failed batch rounds to a destination site (each is retried)."}, []string{"dest"}),
		submitLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hotline_submit_duration_seconds",
			Help:    "Time from a submit's arrival on the socket to its commit by a majority of this site (new messages only), by destination site.",
			Buckets: latencyBuckets}, []string{"dest"}),
		e2eLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "hotline_end_to_end_seconds",
			Help:    "Time from a message's commit at its origin to its commit at this site (origin's submitted_at to this site's received_at; includes the two sites' clock difference), observed once per message by the node that accepted its batch.",
			Buckets: latencyBuckets}, []string{"origin", "precedence"}),
		stateCommit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hotline_state_commit_seconds",
			Help:    "Time to apply one batch of Raft entries to the state file and commit it (one bbolt transaction with its fsync).",
			Buckets: diskBuckets}),
		logWrite: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "hotline_raft_log_write_seconds",
			Help:    "Time of one Raft log write (one bbolt transaction with its fsync).",
			Buckets: diskBuckets}),
	}
	m.linkTestFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotline_link_test_failures_total",
		Help: "Periodic link tests that failed, by destination site and path (an alarm)."}, []string{"site", "path"})
	m.linkTestRTT = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hotline_link_test_rtt_seconds",
		Help: "Round trip of the last passing link test (to a commit at the destination), by site and path."}, []string{"site", "path"})
	for _, site := range cfg.remoteSites() {
		m.sendFailures.WithLabelValues(site)
		m.submitLatency.WithLabelValues(site)
		for _, p := range cfg.Paths {
			m.linkTestFailures.WithLabelValues(site, p)
		}
		for _, p := range queue.Precedences {
			m.e2eLatency.WithLabelValues(site, p.String())
		}
	}
	m.reg.MustRegister(m.linkTestFailures, m.linkTestRTT)
	m.refusals = newTrustRefusals(cfg, m.reg)
	m.reg.MustRegister(m.submitted, m.delivered, m.received, m.sendFailures,
		m.submitLatency, m.e2eLatency, m.stateCommit, m.logWrite, buildInfo(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s := raftMetricsSink(); s != nil {
		m.reg.MustRegister(s)
	}
	return m
}

// watched are the parts of a node that metrics read at scrape time.
type watched struct {
	cfg    *Config
	store  *queue.Store
	raft   *consensus.Node
	link   *transport.Link
	keys   *pki.Keyring
	health *health // alarms, storage full
}

// watch registers the collectors that read w's parts at scrape time. Open
// calls it once the parts exist (the instruments newMetrics made are
// needed before: Raft's state machine records its commits).
func (m *metrics) watch(w watched) {
	m.reg.MustRegister(&pathCollector{link: w.link}, &rejectCollector{link: w.link},
		&queueCollector{store: w.store, remote: w.cfg.remoteSites()}, &raftCollector{raft: w.raft},
		&alarmCollector{h: w.health}, &certCollector{keys: w.keys, warn: w.cfg.CertExpiryWarning.Duration})
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_is_leader",
		Help: "1 while this node leads its site."}, func() float64 {
		if w.raft.IsLeader() {
			return 1
		}
		return 0
	}))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hotline_raft_handshake_rejections_total",
		Help: "Raft connections refused or closed before Raft saw them: failed or timed-out TLS handshakes, and connections over the pending-handshake limits."}, func() float64 {
		return float64(w.raft.HandshakeRejections())
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_storage_full",
		Help: "1 while this node's disk is full: it stands by (no Raft) and refuses submits with storage_full."}, func() float64 {
		if w.health.storageFull() != nil {
			return 1
		}
		return 0
	}))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hotline_store_corruption_total",
		Help: "Damaged records or log entries this node's store found (checksum or structure) since it started; an alarm: rebuild the node."}, func() float64 {
		c, _ := w.store.Corruption()
		return float64(c)
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_inbox_unread",
		Help: "Unread messages in this site's inbox."}, func() float64 {
		return float64(w.store.InboxUnread())
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_outbound_queued",
		Help: "Outbound messages not yet acknowledged by their destination, all channels."}, func() float64 {
		var q uint64
		for _, c := range w.store.Outbound() {
			q += c.Last - c.Acked
		}
		return float64(q)
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_receipts_pending",
		Help: "Read receipts queued for their origin sites and not yet acknowledged by them."}, func() float64 {
		var q uint64
		for _, r := range w.store.ReceiptQueues() {
			q += r.Last - r.Acked
		}
		return float64(q)
	}))
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observeLogWrite records one Raft log write (consensus.Config.ObserveLogWrite).
func (m *metrics) observeLogWrite(d time.Duration) { m.logWrite.Observe(d.Seconds()) }

// observeReceived records the end-to-end latency of the messages of b
// that the site newly applied (sequences last-applied+1..last), at
// receivedAt (the receive command's time, which is their received_at).
func (m *metrics) observeReceived(b *transport.Batch, last uint64, applied int, receivedAt int64) {
	if applied <= 0 {
		return
	}
	first := last - uint64(applied) + 1
	h := m.e2eLatency.WithLabelValues(b.From, b.Precedence.String())
	for _, msg := range b.Messages {
		if msg.Seq >= first && msg.Seq <= last && msg.SubmittedAt > 0 {
			h.Observe(max(0, float64(receivedAt-msg.SubmittedAt)/1e9))
		}
	}
}

// buildInfo is hotline_build_info: 1, with the version, commit and Go
// version of the running binary (package buildinfo, as `hotlined
// version` prints them) as labels.
func buildInfo() prometheus.Collector {
	bi := buildinfo.Read()
	commit := bi.Commit
	if commit == "" {
		commit = "unknown"
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_build_info",
		Help:        "Always 1; the labels say which build of hotlined runs.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "commit": commit, "go_version": bi.GoVersion}},
		func() float64 { return 1 })
}

// pathCollector reports the link's (peer node, path) health at scrape time.
type pathCollector struct{ link *transport.Link }

var (
	pathUpDesc = prometheus.NewDesc("hotline_path_up",
		"1 while the (peer node, path) connection is up and answering probes.", []string{"site", "node", "path"}, nil)
	pathRTTDesc = prometheus.NewDesc("hotline_path_rtt_seconds",
		"Smoothed probe round trip of the (peer node, path).", []string{"site", "node", "path"}, nil)
	pathLossDesc = prometheus.NewDesc("hotline_path_loss_ratio",
		"Share of packets lost on the (peer node, path) over the recent probe window.", []string{"site", "node", "path"}, nil)
	pathBytesDesc = prometheus.NewDesc("hotline_path_sent_bytes_total",
		"Bytes sent on the (peer node, path) over all its connections.", []string{"site", "node", "path"}, nil)
	pathRecvDesc = prometheus.NewDesc("hotline_path_received_bytes_total",
		"Bytes received on the (peer node, path) over the connections this node dialled.", []string{"site", "node", "path"}, nil)
)

func (c *pathCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pathUpDesc
	ch <- pathRTTDesc
	ch <- pathLossDesc
	ch <- pathBytesDesc
	ch <- pathRecvDesc
}

func (c *pathCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.link.Paths() {
		up := 0.0
		if p.State == transport.PathUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(pathUpDesc, prometheus.GaugeValue, up, p.Site, p.Node, p.Path)
		ch <- prometheus.MustNewConstMetric(pathRTTDesc, prometheus.GaugeValue, p.RTT.Seconds(), p.Site, p.Node, p.Path)
		ch <- prometheus.MustNewConstMetric(pathLossDesc, prometheus.GaugeValue, p.LossPct/100, p.Site, p.Node, p.Path)
		ch <- prometheus.MustNewConstMetric(pathBytesDesc, prometheus.CounterValue, float64(p.BytesSent), p.Site, p.Node, p.Path)
		ch <- prometheus.MustNewConstMetric(pathRecvDesc, prometheus.CounterValue, float64(p.BytesRecv), p.Site, p.Node, p.Path)
	}
}

// rejectCollector reports the link's refused handshakes at scrape time,
// every reason present from the start.
type rejectCollector struct{ link *transport.Link }

var rejectDesc = prometheus.NewDesc("hotline_link_handshake_rejections_total",
	"Link (QUIC) handshakes this node refused, by reason: no_certificate, unknown_ca, expired, bad_certificate, no_identity, unknown_peer, protocol_version.",
	[]string{"reason"}, nil)

func (c *rejectCollector) Describe(ch chan<- *prometheus.Desc) { ch <- rejectDesc }

func (c *rejectCollector) Collect(ch chan<- prometheus.Metric) {
	for reason, v := range c.link.HandshakeRejections() {
		ch <- prometheus.MustNewConstMetric(rejectDesc, prometheus.CounterValue, float64(v), reason)
	}
}

// queueCollector reports each outbound channel's depth and the age of its
// oldest message, every (destination, precedence) of the config present
// from the start.
type queueCollector struct {
	store  *queue.Store
	remote []string // the other sites (cfg.remoteSites)
}

var (
	queueDepthDesc = prometheus.NewDesc("hotline_queue_depth",
		"Outbound messages of the channel (this site → dest, precedence) not yet acknowledged by the destination.", []string{"dest", "precedence"}, nil)
	queueAgeDesc = prometheus.NewDesc("hotline_queue_oldest_age_seconds",
		"Age of the channel's oldest unacknowledged message (since its submit); 0 when the channel is empty.", []string{"dest", "precedence"}, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDepthDesc
	ch <- queueAgeDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		dest string
		prec queue.Precedence
	}
	chans := map[key]queue.OutChannel{}
	for _, oc := range c.store.Outbound() {
		chans[key{oc.Dest, oc.Precedence}] = oc
	}
	now := time.Now()
	for _, dest := range c.remote {
		for _, p := range queue.Precedences {
			oc := chans[key{dest, p}]
			depth, age := float64(oc.Last-oc.Acked), 0.0
			if depth > 0 && oc.OldestQueuedAt > 0 {
				age = max(0, now.Sub(time.Unix(0, oc.OldestQueuedAt)).Seconds())
			}
			ch <- prometheus.MustNewConstMetric(queueDepthDesc, prometheus.GaugeValue, depth, dest, p.String())
			ch <- prometheus.MustNewConstMetric(queueAgeDesc, prometheus.GaugeValue, age, dest, p.String())
		}
	}
}

// raftCollector reports this node's Raft progress at scrape time (the
// go-metrics sink gives Raft's timings, not these).
type raftCollector struct{ raft *consensus.Node }

var (
	raftTermDesc    = prometheus.NewDesc("hotline_raft_term", "Current Raft term.", nil, nil)
	raftCommitDesc  = prometheus.NewDesc("hotline_raft_commit_index", "Highest Raft log index known committed.", nil, nil)
	raftAppliedDesc = prometheus.NewDesc("hotline_raft_applied_index", "Highest Raft log index applied to this node's state.", nil, nil)
	raftLastDesc    = prometheus.NewDesc("hotline_raft_last_index", "Last index in this node's Raft log (or its last snapshot).", nil, nil)
	raftContactDesc = prometheus.NewDesc("hotline_raft_last_contact_seconds",
		"On a follower, time since the leader was last heard from; 0 on the leader; -1 when never.", nil, nil)
	raftStateDesc = prometheus.NewDesc("hotline_raft_state",
		"1 for this node's current Raft state (leader, follower, candidate, standby, shutdown), 0 for the others.", []string{"state"}, nil)
)

var raftStates = []string{"leader", "follower", "candidate", "standby", "shutdown"}

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{raftTermDesc, raftCommitDesc, raftAppliedDesc, raftLastDesc, raftContactDesc, raftStateDesc} {
		ch <- d
	}
}

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.raft.Stats()
	contact := -1.0
	if st.LastContact >= 0 {
		contact = st.LastContact.Seconds()
	}
	ch <- prometheus.MustNewConstMetric(raftTermDesc, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(raftCommitDesc, prometheus.GaugeValue, float64(st.CommitIndex))
	ch <- prometheus.MustNewConstMetric(raftAppliedDesc, prometheus.GaugeValue, float64(st.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(raftLastDesc, prometheus.GaugeValue, float64(st.LastIndex))
	ch <- prometheus.MustNewConstMetric(raftContactDesc, prometheus.GaugeValue, contact)
	cur := c.raft.State()
	for _, s := range raftStates {
		v := 0.0
		if s == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(raftStateDesc, prometheus.GaugeValue, v, s)
	}
}
