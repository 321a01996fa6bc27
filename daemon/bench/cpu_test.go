package bench

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/hotline-link/hotline/daemon/client"
)

func TestParseCPU(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       float64
		err        string
	}{
		{"process collector", "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.34\nprocess_max_fds 1024\n", 12.34, ""},
		{"scientific", "process_cpu_seconds_total 1.5e+03\n", 1500, ""},
		{"with timestamp", "process_cpu_seconds_total 2 1700000000000\n", 2, ""},
		{"prefix is another metric", "process_cpu_seconds_total_x 9\nprocess_cpu_seconds_total 3\n", 3, ""},
		{"absent", "go_goroutines 12\n", 0, "no process_cpu_seconds_total in its metrics"},
		{"bad value", "process_cpu_seconds_total abc\n", 0, `bad value "abc"`},
		{"negative", "process_cpu_seconds_total -1\n", 0, `bad value "-1"`},
		{"empty", "", 0, "no process_cpu_seconds_total"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCPU([]byte(tc.text))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseCPU = %g, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseCPU = %g, %v; want %g", got, err, tc.want)
			}
		})
	}
}

func TestCPUPerMessage(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name      string
		nodes     []NodeCPU
		delivered int
		want      float64
		ok        bool
	}{
		{"two processes", []NodeCPU{{PID: 1, CPUS: f(3)}, {PID: 2, CPUS: f(1)}}, 100, 0.04, true},
		{"one process counted once", []NodeCPU{{PID: 7, CPUS: f(3)}, {PID: 7, CPUS: f(3)}}, 100, 0.03, true},
		{"pids unknown", []NodeCPU{{CPUS: f(3)}, {CPUS: f(1)}}, 100, 0.04, true},
		{"same pid, two processes (PID namespaces)", []NodeCPU{{PID: 1, CPUS: f(3), started: 100}, {PID: 1, CPUS: f(1), started: 200}}, 100, 0.04, true},
		{"same pid and start: one process", []NodeCPU{{PID: 1, CPUS: f(3), started: 100}, {PID: 1, CPUS: f(3), started: 100}}, 100, 0.03, true},
		{"one not read", []NodeCPU{{PID: 1, CPUS: f(3)}, {PID: 2, Error: "x"}}, 100, 0, false},
		{"nothing delivered", []NodeCPU{{PID: 1, CPUS: f(3)}}, 0, 0, false},
		{"no nodes", nil, 10, 0, false},
	} {
		got, ok := cpuPerMessage(tc.nodes, tc.delivered)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: cpuPerMessage = %g, %v; want %g, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// meteredNode is a node of the in-memory link whose process has a pid
// and a CPU counter, read through Metrics.
type meteredNode struct {
	*node
	pid int

	mu    sync.Mutex
	reads []string // what the successive Metrics calls answer; the last repeats
	err   error    // every Metrics call fails with this
}

func (m *meteredNode) Status(ctx context.Context) (*client.Status, error) {
	st, err := m.node.Status(ctx)
	if st != nil {
		st.PID = m.pid
	}
	return st, err
}

func (m *meteredNode) Metrics(context.Context) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return nil, m.err
	}
	r := m.reads[0]
	if len(m.reads) > 1 {
		m.reads = m.reads[1:]
	}
	return []byte(r), nil
}

func (m *meteredNode) Socket() string { return "/run/" + m.name + ".sock" }

// TestRunMeasuresCPU: the CPU of each daemon is the rise of its counter
// over the run, summed (each process once) per delivered message; a
// daemon that cannot be read has its reason and no figure, and then there
// is no per-message figure.
func TestRunMeasuresCPU(t *testing.T) {
	cpu := func(v string) string {
		return "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total " + v + "\n"
	}
	for _, tc := range []struct {
		name       string
		send, recv func(*link) Daemon
		want       []NodeCPU // CPUS as cpu below, Error as a substring
		cpu        []float64 // -1: absent
		perMsg     float64   // -1: absent
	}{
		{"two processes",
			func(l *link) Daemon {
				return &meteredNode{node: &node{l, "alpha-1"}, pid: 11, reads: []string{cpu("10"), cpu("12.5")}}
			},
			func(l *link) Daemon {
				return &meteredNode{node: &node{l, "bravo-2"}, pid: 22, reads: []string{cpu("3"), cpu("4.5")}}
			},
			[]NodeCPU{{Side: "send", Node: "alpha-1", PID: 11, Socket: "/run/alpha-1.sock"}, {Side: "recv", Node: "bravo-2", PID: 22, Socket: "/run/bravo-2.sock"}},
			[]float64{2.5, 1.5}, 4.0 / 40},
		{"one process",
			func(l *link) Daemon {
				return &meteredNode{node: &node{l, "alpha-1"}, pid: 5, reads: []string{cpu("1"), cpu("3")}}
			},
			func(l *link) Daemon {
				return &meteredNode{node: &node{l, "bravo-2"}, pid: 5, reads: []string{cpu("1"), cpu("3")}}
			},
			[]NodeCPU{{Side: "send", Node: "alpha-1", PID: 5}, {Side: "recv", Node: "bravo-2", PID: 5}},
			[]float64{2, 2}, 2.0 / 40},
		{"a daemon without metrics",
			func(l *link) Daemon {
				return &meteredNode{node: &node{l, "alpha-1"}, pid: 11, reads: []string{cpu("10"), cpu("12")}}
			},
			func(l *link) Daemon { return &node{l, "bravo-2"} },
			[]NodeCPU{{Side: "send", Node: "alpha-1", PID: 11}, {Side: "recv", Node: "bravo-2", Error: "cannot be read"}},
			[]float64{2, -1}, -1},
		{"metrics without the counter, or failing",
			func(l *link) Daemon {
				return &meteredNode{node: &node{l, "alpha-1"}, pid: 11, reads: []string{"go_goroutines 3\n"}}
			},
			func(l *link) Daemon {
				return &meteredNode{node: &node{l, "bravo-2"}, pid: 22, err: &client.APIError{Status: 404, Code: client.CodeNotFound, Message: "no endpoint"}}
			},
			[]NodeCPU{{Side: "send", Node: "alpha-1", PID: 11, Error: "no process_cpu_seconds_total"}, {Side: "recv", Node: "bravo-2", PID: 22, Error: "read metrics: hotlined: no endpoint"}},
			[]float64{-1, -1}, -1},
		{"a restart during the run",
			func(l *link) Daemon {
				return &meteredNode{node: &node{l, "alpha-1"}, pid: 11, reads: []string{cpu("10"), cpu("0.2")}}
			},
			func(l *link) Daemon {
				return &meteredNode{node: &node{l, "bravo-2"}, pid: 22, reads: []string{cpu("1"), cpu("2")}}
			},
			[]NodeCPU{{Side: "send", Node: "alpha-1", PID: 11, Error: "the process restarted"}, {Side: "recv", Node: "bravo-2", PID: 22}},
			[]float64{-1, 1}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLink()
			var log syncBuffer
			res, err := Run(t.Context(), tc.send(l), tc.recv(l), testOptions(40), &log)
			if err != nil || res.Check() != nil {
				t.Fatalf("Run: %v, %+v (log: %s)", err, res, log.String())
			}
			if len(res.Nodes) != 2 {
				t.Fatalf("nodes %+v, want the sending and the receiving daemon", res.Nodes)
			}
			for k, n := range res.Nodes {
				w := tc.want[k]
				if n.Side != w.Side || n.Node != w.Node || n.PID != w.PID || (w.Socket != "" && n.Socket != w.Socket) {
					t.Errorf("node %d is %+v, want %+v", k, n, w)
				}
				switch {
				case tc.cpu[k] < 0 && (n.CPUS != nil || w.Error == "" || !strings.Contains(n.Error, w.Error)):
					t.Errorf("node %s: cpu_s %v, error %q; want no figure and an error containing %q", n.Node, n.CPUS, n.Error, w.Error)
				case tc.cpu[k] >= 0 && (n.CPUS == nil || math.Abs(*n.CPUS-tc.cpu[k]) > 1e-9 || n.Error != ""):
					t.Errorf("node %s: cpu_s %v, error %q; want %g", n.Node, n.CPUS, n.Error, tc.cpu[k])
				}
			}
			switch {
			case tc.perMsg < 0 && res.CPUSPerMsg != nil:
				t.Errorf("cpu_s_per_msg %g, want absent", *res.CPUSPerMsg)
			case tc.perMsg >= 0 && (res.CPUSPerMsg == nil || math.Abs(*res.CPUSPerMsg-tc.perMsg) > 1e-12):
				t.Errorf("cpu_s_per_msg %v, want %g", res.CPUSPerMsg, tc.perMsg)
			}
		})
	}
}

// TestRunReadsCPUWhenInterrupted: an interrupted bench still reads the
// counters (its figures are printed), within their own timeout.
func TestRunReadsCPUWhenInterrupted(t *testing.T) {
	l := newLink()
	ctx, cancel := context.WithCancel(t.Context())
	l.onSubmit = func(i int) {
		if i == 5 {
			cancel()
		}
	}
	cpu := "process_cpu_seconds_total 1\n"
	send := &meteredNode{node: &node{l, "alpha-1"}, pid: 1, reads: []string{cpu}}
	recv := &meteredNode{node: &node{l, "bravo-2"}, pid: 2, reads: []string{cpu}}
	o := testOptions(1000)
	o.Concurrency = 1
	res, err := Run(ctx, send, recv, o, io.Discard)
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Run: %v, want ErrInterrupted", err)
	}
	for _, n := range res.Nodes {
		if n.CPUS == nil || *n.CPUS != 0 {
			t.Errorf("node %+v, want cpu_s 0 (the counter did not move)", n)
		}
	}
}
