package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"hotline/daemon/client"
)

// buildBinaries builds hotlined and hotlinectl into a temp dir.
func buildBinaries(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", bin+"/", "hotline/cmd/hotlined", "hotline/cmd/hotlinectl")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// procLab is the six-process lab from configs/lab, run from a copy.
type procLab struct {
	t     *testing.T
	bin   string
	dir   string
	mu    sync.Mutex
	procs map[string]*proc
}

// proc is one running hotlined.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited and was reaped
}

func startProcLab(t *testing.T) *procLab {
	t.Helper()
	l := &procLab{t: t, bin: buildBinaries(t), dir: t.TempDir(), procs: map[string]*proc{}}
	var nodes []string
	for _, s := range LabSites {
		nodes = append(nodes, LabNodes(s)...)
	}
	for _, n := range nodes {
		b, err := os.ReadFile(filepath.Join("..", "configs", "lab", n+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(l.dir, n+".toml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The commands configs/lab/README.md gives.
	l.ctl("pki", "init", "--dir", "pki")
	for _, s := range LabSites {
		for _, n := range LabNodes(s) {
			l.ctl("pki", "issue", "--dir", "pki", "--site", s, "--node", n)
		}
	}
	for _, n := range nodes {
		l.start(n)
	}
	t.Cleanup(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, p := range l.procs {
			p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for n, p := range l.procs {
			select {
			case <-p.exited:
				if code := p.cmd.ProcessState.ExitCode(); code != 0 && !t.Failed() {
					t.Errorf("%s exited with status %d after SIGTERM", n, code)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not stop within 10s of SIGTERM", n)
				p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if t.Failed() {
			for _, n := range nodes {
				b, _ := os.ReadFile(filepath.Join(l.dir, n+".log"))
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("--- %s log (tail) ---\n%s", n, b)
			}
		}
	})
	return l
}

func (l *procLab) ctl(args ...string) {
	l.t.Helper()
	cmd := exec.Command(filepath.Join(l.bin, "hotlinectl"), args...)
	cmd.Dir = l.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("hotlinectl %v: %v\n%s", args, err, out)
	}
}

func (l *procLab) start(node string) {
	l.t.Helper()
	logf, err := os.OpenFile(filepath.Join(l.dir, node+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(l.bin, "hotlined"), "--config", node+".toml")
	cmd.Dir = l.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	logf.Close()
	p := &proc{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	l.mu.Lock()
	l.procs[node] = p
	l.mu.Unlock()
}

// checkAlive fails the test at once if a node process has exited.
func (l *procLab) checkAlive() {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for n, p := range l.procs {
		select {
		case <-p.exited:
			l.t.Fatalf("%s exited unexpectedly: %v", n, p.cmd.ProcessState)
		default:
		}
	}
}

// kill9 kills a node's process with SIGKILL and reaps it.
func (l *procLab) kill9(node string) {
	l.mu.Lock()
	p := l.procs[node]
	delete(l.procs, node)
	l.mu.Unlock()
	p.cmd.Process.Kill()
	<-p.exited
}

func (l *procLab) client(node string) *client.Client {
	return client.New(filepath.Join(l.dir, "run", node+".sock"))
}

// leader asks the site's nodes until one reports itself leader.
func (l *procLab) leader(site string) string {
	l.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		l.checkAlive()
		for _, n := range LabNodes(site) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := l.client(n).Status(ctx)
			cancel()
			if err == nil && st.Role == "leader" {
				return n
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("site %s has no leader after 60s", site)
	return ""
}

// TestProcessLabKill9 runs configs/lab as six processes and kills each
// site's leader with SIGKILL during traffic, then restarts it. Nothing
// acknowledged may be lost or duplicated.
func TestProcessLabKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts six processes")
	}
	l := startProcLab(t)
	for _, s := range LabSites {
		t.Logf("site %s leader: %s", s, l.leader(s))
	}
	g := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const perNode = 150
	tr := startTraffic(ctx, "kill9", perNode, l.client, g)
	waitProgress := func(n int64) {
		for tr.progress.Load() < n && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i, site := range LabSites {
		waitProgress(int64(6 * perNode * (i + 1) / 3))
		victim := l.leader(site)
		t.Logf("kill -9 %s (leader of %s) after %d submissions", victim, site, tr.progress.Load())
		l.kill9(victim)
		t.Logf("site %s: new leader %s", site, l.leader(site))
		time.Sleep(time.Second)
		l.start(victim)
	}
	tr.wait(t)
	for _, site := range LabSites {
		msgs := drainInbox(t, l.client(LabNodes(site)[1]), 3*perNode, 2*time.Minute)
		g.checkArrivals(t, site, msgs)
	}
}
