package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// Meter is an optional ability of a [Daemon]: its metrics in the
// Prometheus text exposition format (GET /metrics on the socket).
// *client.Client has it. A bench reads process_cpu_seconds_total (the
// Prometheus process collector's utime+stime of the daemon's process) of
// both daemons just before the first submit and just after the last read
// of the inbox.
type Meter interface {
	Metrics(ctx context.Context) ([]byte, error)
}

var _ Meter = (*client.Client)(nil)

// cpuMetric is the process collector's counter of CPU seconds.
const cpuMetric = "process_cpu_seconds_total"

// meterTimeout bounds one read of a daemon's metrics.
const meterTimeout = 10 * time.Second

// NodeCPU is the CPU time one daemon's process spent during a bench, or
// why it could not be read. Socket is the daemon's socket when the Daemon
// names it (a *client.Client does).
type NodeCPU struct {
	Side   string   `json:"side"` // "send" (the submitting daemon) or "recv" (the receiving one)
	Socket string   `json:"socket,omitempty"`
	Node   string   `json:"node"`
	PID    int      `json:"pid,omitempty"`
	CPUS   *float64 `json:"cpu_s,omitempty"` // absent when not read
	Error  string   `json:"error,omitempty"` // why CPUS is absent
	// started is the process's process_start_time_seconds (0: unknown):
	// with PID it tells one process from another in another PID
	// namespace that has the same PID.
	started float64
}

// cpuProbe is one daemon being measured.
type cpuProbe struct {
	d      Daemon
	node   NodeCPU
	before float64
}

// newCPUProbe starts measuring d (side "send" or "recv", whose status
// named node and pid) by reading its CPU counter now.
func newCPUProbe(ctx context.Context, d Daemon, side, node string, pid int) *cpuProbe {
	p := &cpuProbe{d: d, node: NodeCPU{Side: side, Node: node, PID: pid}}
	if s, ok := d.(interface{ Socket() string }); ok {
		p.node.Socket = s.Socket()
	}
	v, started, err := readCPU(ctx, d)
	if err != nil {
		p.node.Error = err.Error()
		return p
	}
	p.before, p.node.started = v, started
	return p
}

// finish reads the counter again and returns the CPU seconds spent since
// newCPUProbe, or the reason they are not known.
func (p *cpuProbe) finish(ctx context.Context) NodeCPU {
	if p.node.Error != "" {
		return p.node
	}
	v, started, err := readCPU(ctx, p.d)
	switch {
	case err != nil:
		p.node.Error = err.Error()
	case v < p.before:
		p.node.Error = fmt.Sprintf("%s went back from %g to %g: the process restarted during the run", cpuMetric, p.before, v)
	case started != p.node.started:
		p.node.Error = fmt.Sprintf("process_start_time_seconds changed from %g to %g: the process restarted during the run", p.node.started, started)
	default:
		d := v - p.before
		p.node.CPUS = &d
	}
	return p.node
}

// readCPU reads d's process_cpu_seconds_total and its
// process_start_time_seconds (0 when absent), for up to meterTimeout even
// when ctx has ended (the bench was interrupted but its figures are still
// printed).
func readCPU(ctx context.Context, d Daemon) (cpu, started float64, err error) {
	m, ok := d.(Meter)
	if !ok {
		return 0, 0, errors.New("its metrics cannot be read through this client")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), meterTimeout)
	defer cancel()
	text, err := m.Metrics(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("read metrics: %w", err)
	}
	cpu, err = parseCPU(text)
	return cpu, parseStart(text), err
}

// parseStart returns the value of process_start_time_seconds in text, or
// 0 when it is absent or malformed.
func parseStart(text []byte) float64 {
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "process_start_time_seconds" {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil && v > 0 {
				return v
			}
			return 0
		}
	}
	return 0
}

// parseCPU returns the value of the unlabelled process_cpu_seconds_total
// sample in text, the Prometheus text exposition format.
func parseCPU(text []byte) (float64, error) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != cpuMetric {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil || v < 0 {
			return 0, fmt.Errorf("%s: bad value %q", cpuMetric, f[1])
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read metrics: %w", err)
	}
	return 0, fmt.Errorf("no %s in its metrics (a daemon without the process collector, or not on Linux)", cpuMetric)
}

// cpuPerMessage is the CPU seconds per delivered message of the
// processes in nodes, each process (by pid and start time) counted once:
// in the one-process dev lab both daemons are one process. ok is false
// when a node was not measured or nothing was delivered.
func cpuPerMessage(nodes []NodeCPU, delivered int) (perMsg float64, ok bool) {
	if delivered <= 0 || len(nodes) == 0 {
		return 0, false
	}
	var sum float64
	type process struct {
		pid     int
		started float64
	}
	counted := make(map[process]bool)
	for _, n := range nodes {
		if n.CPUS == nil {
			return 0, false
		}
		p := process{n.PID, n.started}
		if n.PID != 0 && counted[p] {
			continue
		}
		counted[p] = true
		sum += *n.CPUS
	}
	return sum / float64(delivered), true
}
