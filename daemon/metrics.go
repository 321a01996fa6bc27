package daemon

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"hotline/transport"
)

// metrics are one node's Prometheus metrics. Each node has its own
// registry so that the dev lab can run six nodes in one process.
type metrics struct {
	reg          *prometheus.Registry
	submitted    prometheus.Counter
	delivered    prometheus.Counter
	received     prometheus.Counter
	sendFailures *prometheus.CounterVec

	linkTestFailures *prometheus.CounterVec
	linkTestRTT      *prometheus.GaugeVec
}

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		submitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "hotline_submitted_total",
			Help: "Messages committed by submissions through this node."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "hotline_delivered_total",
			Help: "Outbound messages acknowledged by their destination site, recorded while this node led."}),
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "hotline_received_total",
			Help: "Inbound messages newly applied from batches this node accepted."}),
		sendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotline_send_failures_total",
			Help: "Failed batch rounds to a destination site (each is retried)."}, []string{"dest"}),
	}
	m.linkTestFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "hotline_link_test_failures_total",
		Help: "Periodic link tests that failed, by destination site and path (an alarm)."}, []string{"site", "path"})
	m.linkTestRTT = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "hotline_link_test_rtt_seconds",
		Help: "Round trip of the last passing link test (to a commit at the destination), by site and path."}, []string{"site", "path"})
	m.reg.MustRegister(m.linkTestFailures, m.linkTestRTT, &pathCollector{n: n}, &rejectCollector{n: n})
	m.reg.MustRegister(m.submitted, m.delivered, m.received, m.sendFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_is_leader",
		Help: "1 while this node leads its site."}, func() float64 {
		if n.raft != nil && n.raft.IsLeader() {
			return 1
		}
		return 0
	}))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hotline_raft_handshake_rejections_total",
		Help: "Raft connections refused or closed before Raft saw them: failed or timed-out TLS handshakes, and connections over the pending-handshake limits."}, func() float64 {
		if n.raft == nil {
			return 0
		}
		return float64(n.raft.HandshakeRejections())
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_storage_full",
		Help: "1 while this node's disk is full: it stands by (no Raft) and refuses submits with storage_full."}, func() float64 {
		if n.storageFull() != nil {
			return 1
		}
		return 0
	}))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "hotline_store_corruption_total",
		Help: "Damaged records or log entries this node's store found (checksum or structure) since it started; an alarm: rebuild the node."}, func() float64 {
		if n.store == nil {
			return 0
		}
		c, _ := n.store.Corruption()
		return float64(c)
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_inbox_unread",
		Help: "Unread messages in this site's inbox."}, func() float64 {
		if n.store == nil {
			return 0
		}
		return float64(n.store.InboxUnread())
	}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_outbound_queued",
		Help: "Outbound messages not yet acknowledged by their destination, all channels."}, func() float64 {
		if n.store == nil {
			return 0
		}
		var q uint64
		for _, c := range n.store.Outbound() {
			q += c.Last - c.Acked
		}
		return float64(q)
	}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// pathCollector reports the link's (peer node, path) health at scrape time.
type pathCollector struct{ n *Node }

var (
	pathUpDesc = prometheus.NewDesc("hotline_path_up",
		"1 while the (peer node, path) connection is up and answering probes.", []string{"site", "node", "path"}, nil)
	pathRTTDesc = prometheus.NewDesc("hotline_path_rtt_seconds",
		"Smoothed probe round trip of the (peer node, path).", []string{"site", "node", "path"}, nil)
	pathLossDesc = prometheus.NewDesc("hotline_path_loss_ratio",
		"Share of packets lost on the (peer node, path) over the recent probe window.", []string{"site", "node", "path"}, nil)
	pathBytesDesc = prometheus.NewDesc("hotline_path_sent_bytes_total",
		"Bytes sent on the (peer node, path) over all its connections.", []string{"site", "node", "path"}, nil)
)

func (c *pathCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pathUpDesc
	ch <- pathRTTDesc
	ch <- pathLossDesc
	ch <- pathBytesDesc
}

func (c *pathCollector) Collect(ch chan<- prometheus.Metric) {
	if c.n.link == nil {
		return
	}
	for _, p := range c.n.link.Paths() {
		up := 0.0
		if p.State == transport.PathUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(pathUpDesc, prometheus.GaugeValue, up, p.Site, p.Node, p.Path)
		ch <- prometheus.MustNewConstMetric(pathRTTDesc, prometheus.GaugeValue, p.RTT.Seconds(), p.Site, p.Node, p.Path)
		ch <- prometheus.MustNewConstMetric(pathLossDesc, prometheus.GaugeValue, p.LossPct/100, p.Site, p.Node, p.Path)
		ch <- prometheus.MustNewConstMetric(pathBytesDesc, prometheus.CounterValue, float64(p.BytesSent), p.Site, p.Node, p.Path)
	}
}

// rejectCollector reports the link's refused handshakes at scrape time,
// every reason present from the start.
type rejectCollector struct{ n *Node }

var rejectDesc = prometheus.NewDesc("hotline_link_handshake_rejections_total",
	"Link (QUIC) handshakes this node refused, by reason: no_certificate, unknown_ca, expired, bad_certificate, no_identity, unknown_peer.",
	[]string{"reason"}, nil)

func (c *rejectCollector) Describe(ch chan<- *prometheus.Desc) { ch <- rejectDesc }

func (c *rejectCollector) Collect(ch chan<- prometheus.Metric) {
	if c.n.link == nil {
		return
	}
	for reason, v := range c.n.link.HandshakeRejections() {
		ch <- prometheus.MustNewConstMetric(rejectDesc, prometheus.CounterValue, float64(v), reason)
	}
}
