package daemon_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// TestProcessLabKill9 runs configs/lab as six processes and kills each
// site's leader with SIGKILL during traffic, then restarts it. Nothing
// acknowledged may be lost or duplicated.
func TestProcessLabKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts six processes")
	}
	l := clustertest.StartProcLab(t)
	for _, s := range daemon.LabSites {
		t.Logf("site %s leader: %s", s, l.Leader(s))
	}
	g := clustertest.NewLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const perNode = 150
	tr := clustertest.StartTraffic(ctx, "kill9", perNode, l.Client, g)
	waitProgress := func(n int64) {
		for tr.Progress.Load() < n && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i, site := range daemon.LabSites {
		waitProgress(int64(6 * perNode * (i + 1) / 3))
		victim := l.Leader(site)
		t.Logf("kill -9 %s (leader of %s) after %d submissions", victim, site, tr.Progress.Load())
		l.Kill9(victim)
		t.Logf("site %s: new leader %s", site, l.Leader(site))
		time.Sleep(time.Second)
		l.StartNode(victim)
	}
	tr.Wait(t)
	for _, site := range daemon.LabSites {
		msgs := clustertest.DrainInbox(t, l.Client(daemon.LabNodes(site)[1]), 3*perNode, 2*time.Minute)
		g.CheckArrivals(t, site, msgs)
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

	l := clustertest.StartProcLab(t)
	for _, s := range daemon.LabSites {
		t.Logf("site %s leader: %s", s, l.Leader(s))
	}
	const victim, peer = "alpha-1", "alpha-2"
	g := clustertest.NewLedger()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(restarts)*10*time.Second+3*time.Minute)
	defer cancel()

	// Traffic from every node until the loop ends; the victim's share goes
	// through its peer so that every submission is acknowledged by a node
	// that stays up.
	subs := clustertest.NewSubmitters(ctx, "restart", g)
	for _, site := range daemon.LabSites {
		to := "bravo"
		if site == "bravo" {
			to = "alpha"
		}
		for _, node := range daemon.LabNodes(site) {
			c := l.Client(node)
			if node == victim {
				c = l.Client(peer)
			}
			subs.Go(site, node, to, c, 0)
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	// Admin requests relayed to the victim over the site's LAN.
	if root {
		wg.Go(func() {
			c := l.Client(peer)
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
			if _, err := l.Client(peer).TransferLeader(mctx, "", victim); err == nil {
				moves++
			} else if i < 5 {
				t.Logf("restart %d: moving the leadership to %s: %v", i, victim, err)
			}
			mcancel()
		}
		time.Sleep(time.Duration(100+rng.IntN(1400)) * time.Millisecond)
		p := l.Take(victim)
		l.CheckAlive() // the others
		select {
		case <-p.Exited():
			crashes++
			t.Errorf("restart %d: %s exited by itself: %v", i, victim, p.Cmd.ProcessState)
			l.StartNode(victim)
			continue
		default:
		}
		if rng.IntN(2) == 0 {
			kills++
			p.Cmd.Process.Kill()
			<-p.Exited()
		} else {
			terms++
			p.Cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.Exited():
				if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
					t.Errorf("restart %d: %s exited with status %d after SIGTERM", i, victim, code)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("restart %d: %s did not stop within 15s of SIGTERM", i, victim)
				p.Cmd.Process.Kill()
				<-p.Exited()
			}
		}
		l.StartNode(victim)
	}
	stop.Store(true)
	wg.Wait()
	subs.Stop(t)
	t.Logf("%d restarts of %s (made leader before %d): %d kill -9, %d SIGTERM, %d exited by themselves; %d submissions acknowledged meanwhile",
		restarts, victim, moves, kills, terms, crashes, subs.Acked.Load())
	l.CheckAlive()
	for _, site := range daemon.LabSites {
		msgs := clustertest.DrainInbox(t, l.Client(daemon.LabNodes(site)[1]), g.AckedTo(site), 2*time.Minute)
		g.CheckArrivals(t, site, msgs)
	}
	for _, s := range daemon.LabSites {
		for _, n := range daemon.LabNodes(s) {
			b, err := os.ReadFile(filepath.Join(l.Dir, n+".log"))
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
