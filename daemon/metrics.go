package daemon

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are one node's Prometheus metrics. Each node has its own
// registry so that the dev lab can run six nodes in one process.
type metrics struct {
	reg          *prometheus.Registry
	submitted    prometheus.Counter
	delivered    prometheus.Counter
	received     prometheus.Counter
	sendFailures *prometheus.CounterVec
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
	m.reg.MustRegister(m.submitted, m.delivered, m.received, m.sendFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotline_is_leader",
		Help: "1 while this node leads its site."}, func() float64 {
		if n.raft != nil && n.raft.IsLeader() {
			return 1
		}
		return 0
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
