package benchlab

import (
	"encoding/json"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hotline-link/hotline/daemon/bench"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// TestBenchReportsNodeCPU: `hotlinectl bench` reads each node's
// process_cpu_seconds_total through its socket's GET /metrics and
// reports the CPU seconds of the run per node and per message. The lab
// runs in this process, so both nodes are this process: it is counted
// once.
func TestBenchReportsNodeCPU(t *testing.T) {
	lab := clustertest.Start(t)
	sendSock, recvSock := lab.Configs["alpha-1"].Socket, lab.Configs["bravo-1"].Socket
	args := []string{"bench", "--recv-socket", recvSock, "--to", "bravo", "--n", "30", "--size", "64", "--concurrency", "4"}

	out, err := lab.Hotlinectl(t, "alpha-1", "", append(args, "--json")...)
	if err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	var res bench.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench --json printed %q: %v", out, err)
	}
	if res.Delivered != 30 || res.Lost != 0 || res.Duplicated != 0 {
		t.Fatalf("bench delivered %d, lost %d, duplicated %d; want 30, 0, 0", res.Delivered, res.Lost, res.Duplicated)
	}
	if len(res.Nodes) != 2 {
		t.Fatalf("nodes %+v, want alpha-1 and bravo-1", res.Nodes)
	}
	for k, want := range []struct{ side, node, socket string }{{"send", "alpha-1", sendSock}, {"recv", "bravo-1", recvSock}} {
		n := res.Nodes[k]
		if n.Side != want.side || n.Node != want.node || n.Socket != want.socket || n.PID != os.Getpid() {
			t.Errorf("node %d is %+v, want side %s, node %s, socket %s, pid %d", k, n, want.side, want.node, want.socket, os.Getpid())
		}
		if n.CPUS == nil || *n.CPUS < 0 || n.Error != "" {
			t.Errorf("node %s: cpu_s %v, error %q; want a figure", n.Node, n.CPUS, n.Error)
		}
	}
	if res.CPUSPerMsg == nil || res.Nodes[0].CPUS == nil {
		t.Fatalf("cpu_s_per_msg absent: %s", out)
	}
	if got, want := *res.CPUSPerMsg*float64(res.Delivered), *res.Nodes[0].CPUS; math.Abs(got-want) > 1e-9 {
		t.Errorf("cpu_s_per_msg × delivered = %g, want %g: the one process counted once", got, want)
	}
	if !strings.Contains(out, `"cpu_s_per_msg":`) || !strings.Contains(out, `"nodes":[{"side":"send"`) {
		t.Errorf("JSON fields not as documented: %s", out)
	}

	text, err := lab.Hotlinectl(t, "alpha-1", "", args...)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, text)
	}
	pid := " pid=" + strconv.Itoa(os.Getpid()) + " cpu_s="
	for _, want := range []string{"cpu_s_per_msg:", "cpu_send:", "alpha-1" + pid, "socket=" + sendSock, "cpu_recv:", "bravo-1" + pid} {
		if !strings.Contains(text, want) {
			t.Errorf("text summary lacks %q:\n%s", want, text)
		}
	}
}
