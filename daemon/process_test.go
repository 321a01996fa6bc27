package daemon

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// buildBinaries builds hotlined and hotlinectl into a temp dir.
func buildBinaries(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", bin+"/", "github.com/hotline-link/hotline/cmd/hotlined", "github.com/hotline-link/hotline/cmd/hotlinectl")
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
	return l.leaderAmong(60*time.Second, LabNodes(site)...)
}

// leaderAmong asks nodes until one reports itself leader, failing the
// test after d or as soon as a process of the lab exits unexpectedly.
func (l *procLab) leaderAmong(d time.Duration, nodes ...string) string {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		l.checkAlive()
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := l.client(n).Status(ctx)
			cancel()
			if err == nil && st.Role == "leader" {
				return n
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.t.Fatalf("none of %v leads after %v", nodes, d)
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

// TestProcessLabRestartLoop restarts one node of the six-process lab many
// times (kill -9 and SIGTERM mixed, at random short intervals) while the
// other nodes submit traffic and relay admin requests to it, so that work
// keeps arriving while it starts and stops; before half of the restarts
// the node is made leader, so that its peers and the other site still
// send to it when it comes back. No process may panic or exit by itself,
// a SIGTERM must stop it cleanly, and afterwards every acknowledged
// submission must have arrived exactly once.
// HOTLINE_RESTARTS sets the number of restarts (default 30).
func TestProcessLabRestartLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts six processes")
	}
	restarts := 30
	if s := os.Getenv("HOTLINE_RESTARTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("HOTLINE_RESTARTS=%q is not a positive number", s)
		}
		restarts = v
	}
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d, %d restarts", seed, restarts)
	root := os.Geteuid() == 0
	if !root {
		t.Log("not root: no admin relays to the victim and no leader moves (the admin API needs root)")
	}

	l := startProcLab(t)
	for _, s := range LabSites {
		t.Logf("site %s leader: %s", s, l.leader(s))
	}
	const victim, peer = "alpha-1", "alpha-2"
	g := newLedger()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(restarts)*10*time.Second+3*time.Minute)
	defer cancel()

	// Traffic from every node until the loop ends; the victim's share goes
	// through its peer so that every submission is acknowledged by a node
	// that stays up.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var acked atomic.Int64
	errs := make(chan error, 6)
	want := map[string]*atomic.Int64{}
	for _, site := range LabSites {
		to := "bravo"
		if site == "bravo" {
			to = "alpha"
		}
		want[to] = &atomic.Int64{}
		for _, node := range LabNodes(site) {
			c := l.client(node)
			if node == victim {
				c = l.client(peer)
			}
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					p := queue.Precedences[i%len(queue.Precedences)]
					key := fmt.Sprintf("restart-%s-%d", node, i)
					m, err := submitRetrying(ctx, c, client.SubmitRequest{To: to, Precedence: p.String(), Key: key, Payload: []byte(key)})
					if err != nil {
						errs <- err
						return
					}
					g.add(sent{key: key, id: m.ID, from: site, to: to, precedence: p.String()})
					acked.Add(1)
					want[to].Add(1)
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
	// Admin requests relayed to the victim over the site's LAN.
	if root {
		wg.Go(func() {
			c := l.client(peer)
			for !stop.Load() {
				rctx, rcancel := context.WithTimeout(ctx, time.Second)
				c.Paths(rctx, victim)
				rcancel()
				time.Sleep(10 * time.Millisecond)
			}
		})
	}

	kills, terms, crashes, moves := 0, 0, 0, 0
	for i := range restarts {
		if root && rng.IntN(2) == 0 {
			mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
			if _, err := l.client(peer).TransferLeader(mctx, "", victim); err == nil {
				moves++
			} else if i < 5 {
				t.Logf("restart %d: moving the leadership to %s: %v", i, victim, err)
			}
			mcancel()
		}
		time.Sleep(time.Duration(100+rng.IntN(1400)) * time.Millisecond)
		l.mu.Lock()
		p := l.procs[victim]
		delete(l.procs, victim)
		l.mu.Unlock()
		l.checkAlive() // the others
		select {
		case <-p.exited:
			crashes++
			t.Errorf("restart %d: %s exited by itself: %v", i, victim, p.cmd.ProcessState)
			l.start(victim)
			continue
		default:
		}
		if rng.IntN(2) == 0 {
			kills++
			p.cmd.Process.Kill()
			<-p.exited
		} else {
			terms++
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.exited:
				if code := p.cmd.ProcessState.ExitCode(); code != 0 {
					t.Errorf("restart %d: %s exited with status %d after SIGTERM", i, victim, code)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("restart %d: %s did not stop within 15s of SIGTERM", i, victim)
				p.cmd.Process.Kill()
				<-p.exited
			}
		}
		l.start(victim)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d restarts of %s (made leader before %d): %d kill -9, %d SIGTERM, %d exited by themselves; %d submissions acknowledged meanwhile",
		restarts, victim, moves, kills, terms, crashes, acked.Load())
	l.checkAlive()
	for _, site := range LabSites {
		msgs := drainInbox(t, l.client(LabNodes(site)[1]), int(want[site].Load()), 2*time.Minute)
		g.checkArrivals(t, site, msgs)
	}
	for _, s := range LabSites {
		for _, n := range LabNodes(s) {
			b, err := os.ReadFile(filepath.Join(l.dir, n+".log"))
			if err != nil {
				t.Fatal(err)
			}
			panics := bytes.Count(b, []byte("panic: "))
			t.Logf("%s: %d panics in its output", n, panics)
			if i := bytes.Index(b, []byte("panic")); i >= 0 || bytes.Contains(b, []byte("nil pointer")) {
				if i < 0 {
					i = bytes.Index(b, []byte("nil pointer"))
				}
				i = bytes.LastIndexByte(b[:i], '\n') + 1
				t.Errorf("%s's output mentions a panic (%d times \"panic: \"); first:\n%s", n, panics, b[i:min(len(b), i+1500)])
			}
		}
	}
}
