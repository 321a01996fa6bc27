package clustertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/transport/trust"
)

// ProcLab is the six-process lab from configs/lab, run from a copy: one
// hotlined process per node, working directory Dir, sockets at
// Dir/run/<node>.sock, output to Dir/<node>.log. Its process table is
// safe for concurrent use.
type ProcLab struct {
	// Bin holds hotlined and hotlinectl (Binaries).
	Bin string
	// Dir is the lab's directory: configs, PKI, data, sockets and logs.
	Dir string

	t       testing.TB
	command func(bin, node string) *exec.Cmd // node's hotlined from bin, to be started
	// exitChecked: a node that exits with a status other than 0 after
	// SIGTERM fails the test even when it failed already (its log is
	// printed then anyway).
	exitChecked bool
	tail        int // bytes of each node's log printed after a failure

	mu    sync.Mutex
	procs map[string]*Proc // running processes by node
}

// Proc is one running hotlined.
type Proc struct {
	Cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited and was reaped
}

// Exited is closed when the process has exited and was reaped; then
// Cmd.ProcessState tells how.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// StartProcLab copies configs/lab's six configs to a fresh directory, sets
// up its PKI with the commands configs/lab/README.md gives, and starts
// every node. When the test ends it stops every node with SIGTERM
// (failing the test if one does not exit with status 0 within 10s) and,
// if the test failed, logs the tail of every node's output.
func StartProcLab(t testing.TB) *ProcLab {
	t.Helper()
	l := newProcLab(t, Binaries(t))
	l.command = func(bin, node string) *exec.Cmd {
		return exec.Command(filepath.Join(bin, "hotlined"), "--config", node+".toml")
	}
	labConfigs := filepath.Join(ModuleRoot(t), "configs", "lab")
	for _, n := range allNodes() {
		b, err := os.ReadFile(filepath.Join(labConfigs, n+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(l.Dir, n+".toml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The commands configs/lab/README.md gives.
	l.Ctl("pki", "init", "--dir", "pki")
	for _, s := range daemon.LabSites {
		for _, n := range daemon.LabNodes(s) {
			l.Ctl("pki", "issue", "--dir", "pki", "--site", s, "--node", n)
		}
	}
	pubs := []string{"keyring", "--out", filepath.Join("pki", trust.KeyringFile)}
	for _, s := range daemon.LabSites {
		l.Ctl("pki", "keys", "--dir", "pki", "--site", s)
		pubs = append(pubs, filepath.Join("pki", trust.PublicKeysFile(s)))
	}
	l.Ctl(append([]string{"pki"}, pubs...)...)
	t.Cleanup(l.stopAll)
	for _, n := range allNodes() {
		l.StartNode(n)
	}
	return l
}

func newProcLab(t testing.TB, bin string) *ProcLab {
	return &ProcLab{t: t, Bin: bin, Dir: t.TempDir(), tail: 4000, procs: map[string]*Proc{}}
}

// allNodes lists the two-site lab's nodes.
func allNodes() []string {
	var nodes []string
	for _, s := range daemon.LabSites {
		nodes = append(nodes, daemon.LabNodes(s)...)
	}
	return nodes
}

// stopAll stops every node with SIGTERM (kill after 10s) and, when the
// test failed, logs the tail of every node's log.
func (l *ProcLab) stopAll() {
	t := l.t
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.procs {
		p.Cmd.Process.Signal(syscall.SIGTERM)
	}
	for n, p := range l.procs {
		select {
		case <-p.exited:
			if code := p.Cmd.ProcessState.ExitCode(); code != 0 && (l.exitChecked || !t.Failed()) {
				t.Errorf("%s exited with status %d after SIGTERM", n, code)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop within 10s of SIGTERM", n)
			p.Cmd.Process.Kill()
			<-p.exited
		}
	}
	if t.Failed() {
		for _, n := range allNodes() {
			b, _ := os.ReadFile(filepath.Join(l.Dir, n+".log"))
			if len(b) > l.tail {
				b = b[len(b)-l.tail:]
			}
			t.Logf("--- %s log (tail) ---\n%s", n, b)
		}
	}
}

// Ctl runs hotlinectl with args in the lab's directory and fails the test
// if it fails.
func (l *ProcLab) Ctl(args ...string) {
	l.t.Helper()
	cmd := exec.Command(filepath.Join(l.Bin, "hotlinectl"), args...)
	cmd.Dir = l.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("hotlinectl %v: %v\n%s", args, err, out)
	}
}

// CtlOutput runs hotlinectl with args in the lab's directory and returns
// its combined output and error.
func (l *ProcLab) CtlOutput(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(l.Bin, "hotlinectl"), args...)
	cmd.Dir = l.Dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// WaitLog waits until node's log matches re and returns the match; it
// fails the test after within.
func (l *ProcLab) WaitLog(node string, re *regexp.Regexp, within time.Duration) string {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(filepath.Join(l.Dir, node+".log"))
		if m := re.Find(b); m != nil {
			return string(m)
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s's log has no line matching %q after %v", node, re, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Restart stops node with SIGTERM (it must exit 0 within 15s), starts it
// again and waits up to 30s until it answers with a leader known.
func (l *ProcLab) Restart(node string) {
	l.t.Helper()
	p := l.Take(node)
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
			l.t.Errorf("%s exited with status %d after SIGTERM", node, code)
		}
	case <-time.After(15 * time.Second):
		l.t.Fatalf("%s did not stop within 15s of SIGTERM", node)
	}
	l.StartNode(node)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := l.status(node)
		if err == nil && st.Leader != "" {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%s has no leader 30s after its restart: %v", node, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops node with SIGTERM, waits up to within for it to exit (else
// kills it and fails the test) and returns how it exited; the lab no
// longer checks or stops it (Take). A node not running returns nil.
func (l *ProcLab) Stop(node string, within time.Duration) *os.ProcessState {
	l.t.Helper()
	p := l.Take(node)
	if p == nil {
		return nil
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(within):
		p.Cmd.Process.Kill()
		<-p.exited
		l.t.Fatalf("%s did not stop within %v of SIGTERM", node, within)
	}
	return p.Cmd.ProcessState
}

// StartNode starts node's hotlined with its config Dir/<node>.toml,
// appending its output to Dir/<node>.log.
func (l *ProcLab) StartNode(node string) {
	l.t.Helper()
	l.StartNodeFrom(node, l.Bin)
}

// StartNodeFrom is StartNode with the hotlined of directory bin instead
// of Bin: a node of another build (a previous release, say) on the same
// config and data directory.
func (l *ProcLab) StartNodeFrom(node, bin string) {
	l.t.Helper()
	logf, err := os.OpenFile(filepath.Join(l.Dir, node+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	defer logf.Close()
	cmd := l.command(bin, node)
	cmd.Dir = l.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start %s: %v", node, err)
	}
	p := &Proc{Cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	l.mu.Lock()
	l.procs[node] = p
	l.mu.Unlock()
}

// Take removes node's process from the lab's table and returns it (nil if
// none): the caller stops it, and the lab no longer checks or stops it.
func (l *ProcLab) Take(node string) *Proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.procs[node]
	delete(l.procs, node)
	return p
}

// CheckAlive fails the test at once if a node process has exited.
func (l *ProcLab) CheckAlive() {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for n, p := range l.procs {
		select {
		case <-p.exited:
			l.t.Fatalf("%s exited unexpectedly: %v", n, p.Cmd.ProcessState)
		default:
		}
	}
}

// Kill9 kills a node's process with SIGKILL and reaps it.
func (l *ProcLab) Kill9(node string) {
	p := l.Take(node)
	p.Cmd.Process.Kill()
	<-p.exited
}

// Client returns a client of node's socket.
func (l *ProcLab) Client(node string) *client.Client {
	return client.New(filepath.Join(l.Dir, "run", node+".sock"))
}

// Leader asks the site's nodes until one reports itself leader (60s at
// most).
func (l *ProcLab) Leader(site string) string {
	l.t.Helper()
	return l.LeaderAmong(60*time.Second, daemon.LabNodes(site)...)
}

// LeaderAmong asks nodes until one reports itself leader, failing the
// test after d or as soon as a process of the lab exits unexpectedly.
func (l *ProcLab) LeaderAmong(d time.Duration, nodes ...string) string {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		l.CheckAlive()
		for _, n := range nodes {
			if st, err := l.status(n); err == nil && st.Role == "leader" {
				return n
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("none of %v leads after %v", nodes, d)
	return ""
}

// SettledAmong waits until one of nodes reports itself leader and every
// other of nodes names it as its leader, and returns it: a test that asks
// one of nodes for the leader's work (an admin call it relays) waits for
// this first. It fails the test after d, naming each node's last view, or
// as soon as a process of the lab exits unexpectedly.
func (l *ProcLab) SettledAmong(d time.Duration, nodes ...string) string {
	l.t.Helper()
	deadline := time.Now().Add(d)
	var views []string
	for time.Now().Before(deadline) {
		l.CheckAlive()
		views = views[:0]
		var named []string // the leader each node names
		leader := ""
		for _, n := range nodes {
			st, err := l.status(n)
			if err != nil {
				views = append(views, fmt.Sprintf("%s: %v", n, err))
				continue
			}
			views = append(views, fmt.Sprintf("%s: %s, leader %q", n, st.Role, st.Leader))
			named = append(named, st.Leader)
			if st.Role == "leader" {
				leader = n
			}
		}
		if leader != "" && len(named) == len(nodes) && !slices.ContainsFunc(named, func(s string) bool { return s != leader }) {
			return leader
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("%v did not agree on a leader among them within %v: %s", nodes, d, strings.Join(views, "; "))
	return ""
}

// status asks node for its status with a 1s deadline.
func (l *ProcLab) status(node string) (*client.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return l.Client(node).Status(ctx)
}
