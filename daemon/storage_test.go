package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/internal/testutil"
)

func TestPprofOnlyOnLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:6060", "example.com:6060", "127.0.0.1", "[fe80::1%lo]:0"} {
		if stop, err := daemon.StartPprof(addr, io.Discard); err == nil {
			stop()
			t.Errorf("HOTLINE_PPROF=%s accepted", addr)
		} else if !strings.Contains(err.Error(), "HOTLINE_PPROF") {
			t.Errorf("%s: error %q does not name HOTLINE_PPROF", addr, err)
		}
	}
	// A listen failure is an error too, not a silent goroutine.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if stop, err := daemon.StartPprof(busy.Addr().String(), io.Discard); err == nil {
		stop()
		t.Fatalf("HOTLINE_PPROF on a busy port %s: no error", busy.Addr())
	} else if !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("busy port: %v", err)
	}
	for _, addr := range []string{"127.0.0.2:0", "[::1]:0", "localhost:0"} {
		stop, err := daemon.StartPprof(addr, io.Discard)
		if err != nil {
			if strings.Contains(err.Error(), "not a loopback") {
				t.Errorf("%s refused: %v", addr, err)
			}
			continue // e.g. no IPv6 here
		}
		stop()
	}
	// Through Main: a refused address is a startup error.
	t.Setenv("HOTLINE_PPROF", "0.0.0.0:6060")
	err = daemon.Main(context.Background(), []string{"--config", "/nonexistent.toml"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("Main with HOTLINE_PPROF=0.0.0.0:6060: %v", err)
	}
}

// TestDiskFull fills the data_dir of one node of alpha (a 96 MiB tmpfs,
// the reserve is 64 MiB), first while it follows, then while it leads: a
// submit to it is refused with 507 storage_full within submit_timeout, the
// other two keep one stable leader and commit, and once space is freed it
// takes part again and catches up.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-node")
	}
	small := testutil.MountTmpfs(t, "96m")
	const victim = "alpha-1"
	lab := clustertest.Start(t, func(c *daemon.Config) {
		// The defaults of a real deployment: the lab's 250ms lease makes
		// a two-node majority step down whenever this busy machine stalls.
		c.Raft.HeartbeatTimeout.Duration = time.Second
		c.Raft.ElectionTimeout.Duration = time.Second
		c.Raft.LeaderLeaseTimeout.Duration = 500 * time.Millisecond
		if c.Node == victim {
			c.DataDir = filepath.Join(small, "data")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := lab.Node(victim)
	timeout := lab.Configs[victim].SubmitTimeout.Duration
	seq := 0
	submit := func(node string) (*client.Message, error) {
		seq++
		return lab.Client(node).Submit(ctx, client.SubmitRequest{To: "bravo", Key: fmt.Sprintf("disk-%d", seq), Payload: []byte("x")})
	}

	for _, leads := range []bool{false, true} {
		t.Run(map[bool]string{false: "follower", true: "leader"}[leads], func(t *testing.T) {
			if l := lab.Leader("alpha"); leads != (l == victim) {
				to := victim
				if !leads {
					to = "alpha-2"
				}
				moveLeader(t, lab, "alpha", to)
			}
			if _, err := submit(victim); err != nil {
				t.Fatal(err)
			}

			// Fill the disk to half the reserve.
			filler := testutil.FillTo(t, small, 32<<20)
			var err error
			start := time.Now()
			for time.Since(start) < 10*time.Second {
				var ae *client.APIError
				if _, err = submit(victim); errors.As(err, &ae) && ae.Code == client.CodeStorageFull {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			took := time.Since(start)
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != http.StatusInsufficientStorage || ae.Code != client.CodeStorageFull ||
				!strings.Contains(ae.Message, lab.Configs[victim].DataDir) || !strings.Contains(ae.Message, "bytes free") {
				t.Fatalf("submit to a node with a full disk: %v", err)
			}
			t.Logf("full disk: %v after filling: %v", took, err)
			// Once standing by, each refusal is immediate.
			begin := time.Now()
			if _, err := submit(victim); !client.IsCode(err, client.CodeStorageFull) || time.Since(begin) > timeout {
				t.Fatalf("second submit: %v after %v", err, time.Since(begin))
			}
			// Raft checks the space every second: it stands by, leading or not.
			clustertest.Eventually(t, 10*time.Second, victim+" stands by", func() bool { return daemon.RaftOf(n).State() == "standby" })
			if err := daemon.Health(n); err != nil {
				t.Fatalf("standing by is healthy for the daemon.Watchdog, got %v", err)
			}

			// The other two keep one leader, in one term, and commit.
			var lead string
			clustertest.Eventually(t, 15*time.Second, "a leader among the others", func() bool {
				lead = ""
				for _, o := range []string{"alpha-2", "alpha-3"} {
					if daemon.RaftOf(lab.Node(o)).IsLeader() {
						lead = o
					}
				}
				return lead != ""
			})
			t.Logf("%s leads %v after the disk filled", lead, time.Since(start))
			term := daemon.RaftOf(lab.Node(lead)).Stats().Term
			for end := time.Now().Add(3 * time.Second); time.Now().Before(end); {
				for _, o := range []string{"alpha-2", "alpha-3"} {
					if _, err := submit(o); err != nil {
						t.Fatalf("submit through %s while %s's disk is full: %v", o, victim, err)
					}
				}
				if !daemon.RaftOf(lab.Node(lead)).IsLeader() || daemon.RaftOf(lab.Node(lead)).Stats().Term != term {
					t.Fatalf("leadership moved while %s's disk was full (term %d -> %d)", victim, term, daemon.RaftOf(lab.Node(lead)).Stats().Term)
				}
			}
			last, err := submit(lead)
			if err != nil {
				t.Fatal(err)
			}

			// Space back: it takes part again and catches up.
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			clustertest.Eventually(t, 20*time.Second, victim+" takes part again", func() bool { return daemon.StorageFull(n) == nil && daemon.RaftOf(n).State() != "standby" })
			clustertest.Eventually(t, 20*time.Second, victim+" has the last message", func() bool {
				m, err := lab.Client(victim).Get(ctx, last.ID)
				return err == nil && m.ID == last.ID
			})
			if _, err := submit(victim); err != nil {
				t.Fatalf("submit after space came back: %v", err)
			}
		})
	}
}
