package daemon

import (
	"strings"
	"sync"
	"time"
	"unicode"

	gometrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// Raft's own metrics. hashicorp/raft v1.8.0 reports through the global
// github.com/hashicorp/go-metrics (v0.6.1 here, by the replace in go.mod;
// raft-boltdb reports through go-metrics' compat package, which by default
// forwards to armon/go-metrics and is not wired: hotline_raft_log_write_seconds
// times the log writes itself). The global is process-wide, so in the dev
// lab, where six nodes share a process, these metrics are the sum of all
// six; on an appliance there is one node per process.
//
// go-metrics names (raft.commitTime, counters without _total, timers in
// milliseconds) do not follow Prometheus conventions; raftSink renames
// them before they reach go-metrics' Prometheus sink: snake_case,
// counters end in _total, timers are in seconds and end in _seconds
// (raft.commitTime → hotline_raft_commit_time_seconds, raft.apply →
// hotline_raft_apply_total).

var (
	raftSinkOnce sync.Once
	raftSinkProm *gmprom.PrometheusSink
)

// raftMetricsSink installs the process-wide go-metrics sink the first time
// it is called and returns it as a Prometheus collector; nil if it could
// not be made (then Raft's own metrics are missing, nothing else).
func raftMetricsSink() prometheus.Collector {
	raftSinkOnce.Do(func() {
		sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
			Expiration: 0, // Raft sets some gauges only on change: keep them
			Name:       "hotline_raft_go_metrics_sink",
			Registerer: prometheus.NewRegistry(), // each node's registry adds it
			// Present from the start, at 0: elections, lost leases and the
			// main timings. The rest appear when Raft first reports them.
			CounterDefinitions: []gmprom.CounterDefinition{
				{Name: []string{"hotline_raft_apply_total"}, Help: "Commands submitted to Raft on a leader (raft.apply)."},
				{Name: []string{"hotline_raft_state_candidate_total"}, Help: "Times a node of this process became candidate: elections started (raft.state.candidate)."},
				{Name: []string{"hotline_raft_state_leader_total"}, Help: "Times a node of this process became leader (raft.state.leader)."},
				{Name: []string{"hotline_raft_transition_heartbeat_timeout_total"}, Help: "Followers that stopped hearing from their leader (raft.transition.heartbeat_timeout)."},
				{Name: []string{"hotline_raft_transition_leader_lease_timeout_total"}, Help: "Leaders that stepped down for lack of contact with a majority (raft.transition.leader_lease_timeout)."},
			},
			SummaryDefinitions: []gmprom.SummaryDefinition{
				{Name: []string{"hotline_raft_commit_time_seconds"}, Help: "On a leader, time from appending an entry to its commit (raft.commitTime)."},
				{Name: []string{"hotline_raft_rpc_append_entries_store_logs_seconds"}, Help: "On a follower, time to store the entries of an AppendEntries in its log (raft.rpc.appendEntries.storeLogs)."},
			},
		})
		if err != nil {
			return
		}
		conf := gometrics.DefaultConfig("hotline")
		conf.EnableHostname = false
		conf.EnableRuntimeMetrics = false // the Go collector has them
		conf.EnableTypePrefix = true      // raftSink tells timers from samples by it
		conf.TimerGranularity = time.Second
		if _, err := gometrics.NewGlobal(conf, &raftSink{sink}); err != nil {
			return
		}
		raftSinkProm = sink
	})
	if raftSinkProm == nil {
		return nil
	}
	return raftSinkProm
}

// raftSink renames go-metrics keys (service, type, name...) to Prometheus
// conventions and passes them on.
type raftSink struct{ next *gmprom.PrometheusSink }

// msValues are raft metrics that report milliseconds themselves rather
// than through a timer.
var msValues = map[string]bool{
	"raft.leader.lastContact":      true,
	"raft.leader.oldestLogAge":     true,
	"raft.fsm.lastRestoreDuration": true,
}

// renamed caches rename's answers: Raft reports a few dozen keys, each
// many times per committed entry, and building the name each time cost
// about 1% of a node's CPU under load. Keys are joined with a 0 byte.
var renamed sync.Map // string -> renamedKey

type renamedKey struct {
	key   []string
	scale float32
}

// rename turns [service, type, raft, ...] into a Prometheus name (as a
// one-element key, so that the sink keeps it) and the factor for the value.
func (s *raftSink) rename(key []string) ([]string, float32) {
	if len(key) < 3 {
		return key, 1
	}
	cacheKey := strings.Join(key, "\x00")
	if v, ok := renamed.Load(cacheKey); ok {
		r := v.(renamedKey)
		return r.key, r.scale
	}
	name, scale := renameKey(key)
	renamed.Store(cacheKey, renamedKey{name, scale})
	return name, scale
}

// renameKey is rename without the cache.
func renameKey(key []string) ([]string, float32) {
	service, typ, rest := key[0], key[1], key[2:]
	parts := []string{service}
	for _, k := range rest {
		parts = append(parts, snake(k))
	}
	name := strings.Join(parts, "_")
	scale := float32(1)
	switch {
	case typ == "timer":
		name += "_seconds"
	case msValues[strings.Join(rest, ".")]:
		name += "_seconds"
		scale = 1e-3
	case typ == "counter":
		name += "_total"
	}
	return []string{name}, scale
}

// snake converts camelCase to snake_case (getRPCType → get_rpc_type) and
// any character Prometheus does not allow in a name to '_'.
func snake(s string) string {
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		switch {
		case unicode.IsUpper(r):
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			acronymEnd := i > 0 && unicode.IsUpper(rs[i-1]) && i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if prevLower || acronymEnd {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
		case r < 128 && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_'):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

func (s *raftSink) SetGauge(key []string, val float32) { s.SetGaugeWithLabels(key, val, nil) }
func (s *raftSink) SetGaugeWithLabels(key []string, val float32, labels []gometrics.Label) {
	k, f := s.rename(key)
	s.next.SetGaugeWithLabels(k, val*f, snakeLabels(labels))
}
func (s *raftSink) EmitKey(key []string, val float32)     {}
func (s *raftSink) IncrCounter(key []string, val float32) { s.IncrCounterWithLabels(key, val, nil) }
func (s *raftSink) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	k, f := s.rename(key)
	s.next.IncrCounterWithLabels(k, val*f, snakeLabels(labels))
}
func (s *raftSink) AddSample(key []string, val float32) { s.AddSampleWithLabels(key, val, nil) }
func (s *raftSink) AddSampleWithLabels(key []string, val float32, labels []gometrics.Label) {
	k, f := s.rename(key)
	s.next.AddSampleWithLabels(k, val*f, snakeLabels(labels))
}

// snakeLabels renames label names to snake_case (raft's rpcType).
func snakeLabels(ls []gometrics.Label) []gometrics.Label {
	if len(ls) == 0 {
		return ls
	}
	out := make([]gometrics.Label, len(ls))
	for i, l := range ls {
		out[i] = gometrics.Label{Name: snake(l.Name), Value: l.Value}
	}
	return out
}

var _ gometrics.MetricSink = (*raftSink)(nil)
