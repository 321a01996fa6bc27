package consensus

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hotline-link/hotline/internal/boltcheck"
	"github.com/hotline-link/hotline/internal/testutil"
)

// stableLeader waits for a leader among the nodes in among and checks that
// it keeps leading, in the same term, for hold while entries are applied.
func (c *testCluster) stableLeader(among []int, hold time.Duration) int {
	c.t.Helper()
	l := -1
	testutil.Eventually(c.t, 15*time.Second, "a leader among the nodes with space", func() bool {
		for _, i := range among {
			if c.nodes[i].node.IsLeader() {
				l = i
				return true
			}
		}
		return false
	})
	term := c.nodes[l].node.Stats().Term
	end := time.Now().Add(hold)
	for k := 0; time.Now().Before(end); k++ {
		c.applyN(l, "stable", 10)
		if !c.nodes[l].node.IsLeader() || c.nodes[l].node.Stats().Term != term {
			c.t.Fatalf("%s lost leadership (term %d -> %d) while another node's disk was full",
				c.nodes[l].name, term, c.nodes[l].node.Stats().Term)
		}
	}
	return l
}

// smallDiskReserve is n1's StorageReserve in smallDiskCluster.
const smallDiskReserve = 2 << 20

// smallDiskCluster starts three nodes, n1 keeping its data in n1 under
// small, an 8 MiB tmpfs, with a reserve of smallDiskReserve bytes.
func smallDiskCluster(t *testing.T) (c *testCluster, small string) {
	t.Helper()
	small = testutil.MountTmpfs(t, "8m")
	c = MakeCluster(t, 3, withConfig(func(i int, cfg *Config) {
		if i == 0 {
			cfg.Dir = filepath.Join(small, "n1")
			cfg.StorageReserve = smallDiskReserve
		}
	}))
	return c, small
}

func TestStorageFullStandsByAndResumes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		leader bool // the node whose disk fills up leads
	}{{"follower", false}, {"leader", true}} {
		t.Run(tc.name, func(t *testing.T) {
			c, small := smallDiskCluster(t)
			l := c.leader()
			if tc.leader && l != 0 {
				transfer(t, c.nodes[l].node, "n1")
				l = c.leader()
			}
			if !tc.leader && l == 0 {
				transfer(t, c.nodes[0].node, "n2")
				l = c.leader()
			}
			if (l == 0) != tc.leader {
				t.Fatalf("leader is %s", c.nodes[l].name)
			}
			c.applyN(l, "a", 100)
			c.converged(100)

			full := c.nodes[0].node
			filler := testutil.FillTo(t, small, smallDiskReserve/2)
			start := time.Now()
			testutil.Eventually(t, 10*time.Second, "n1 stands by", func() bool { return full.State() == "standby" })
			t.Logf("n1 stood by %v after its disk filled", time.Since(start))
			var se *StorageError
			if err := full.StorageFull(); !errors.As(err, &se) || !errors.Is(err, ErrStorageFull) ||
				se.Dir != filepath.Join(small, "n1") || se.Free >= smallDiskReserve || !strings.Contains(err.Error(), "bytes free in "+se.Dir) {
				t.Fatalf("StorageFull() = %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := full.Apply(ctx, []byte("x")); !errors.Is(err, ErrStorageFull) {
				t.Fatalf("Apply on the full node: %v, want ErrStorageFull", err)
			}
			if err := full.Barrier(ctx); !errors.Is(err, ErrStorageFull) {
				t.Fatalf("Barrier on the full node: %v, want ErrStorageFull", err)
			}
			if id, _ := full.Leader(); id != "" || full.IsLeader() {
				t.Fatalf("the full node reports leader %q", id)
			}

			// The other two keep one leader, in one term, and commit.
			l = c.stableLeader([]int{1, 2}, 3*time.Second)
			if full.State() != "standby" {
				t.Fatalf("n1 is %s while its disk is full", full.State())
			}
			c.applyN(l, "b", 100)

			// Space back: n1 takes part again and catches up.
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 15*time.Second, "n1 takes part again", func() bool { return full.StorageFull() == nil && full.State() != "standby" })
			got := c.converged(len(c.nodes[l].fsm.data()))
			t.Logf("n1 caught up on %d entries", len(got))
			c.applyN(c.leader(), "c", 20)
			c.converged(len(got) + 20)
		})
	}
}

// TestCorruptLogStoreIsAnError flips bytes in a stopped node's raft.db:
// opening it gives an error naming the file, never a panic.
func TestCorruptLogStoreIsAnError(t *testing.T) {
	c := MakeCluster(t, 3)
	l := c.leader()
	c.applyN(l, "a", 300)
	c.converged(300)
	f := c.follower(l)
	c.stop(f)
	path := filepath.Join(c.nodes[f].cfg.Dir, "raft.db")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	// The file runs on beyond the pages bbolt uses (zeros: see prefiller).
	inUse, err := boltcheck.InUse(path)
	if err != nil {
		t.Fatal(err)
	}
	detected := 0
	for _, tc := range []struct {
		name string
		at   int  // first of 8 bytes to flip; -1: both meta pages
		must bool // bbolt must notice (else the node may open: unused bytes, a spare meta page)
	}{
		{"one meta page", 16, false},
		{"both meta pages", -1, true},
		// Whether these pages are in use varies with the run.
		{"page 2 header", 2*page + 8, false},
		{"page 3 header", 3 * page, false},
		{"middle of the data", int(inUse/2) / page * page, false},
		{"page 4 id", 4*page + 2, false},
		{"page 5 id", 5*page + 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := append([]byte(nil), orig...)
			flip := func(at int) {
				for i := at; i < at+8 && i < len(b); i++ {
					b[i] ^= 0xa5
				}
			}
			if tc.at < 0 {
				flip(16)
				flip(page + 16)
			} else {
				flip(tc.at)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := c.nodes[f].cfg
			cfg.Addr = c.nodes[f].addr
			cfg.FSM = &testFSM{}
			var n *Node
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Open panicked on a corrupt raft.db: %v", r)
					}
				}()
				n, err = Open(cfg)
			}()
			if err == nil {
				defer n.Close()
				if tc.must {
					t.Fatalf("Open accepted a raft.db with a flipped %s", tc.name)
				}
				t.Logf("flip at %d went unnoticed by bbolt (unused bytes); the node opened", tc.at)
				return
			}
			if !strings.Contains(err.Error(), "consensus: open "+path+": file is corrupt") {
				t.Fatalf("Open: %v, want an error naming %s as corrupt", err, path)
			}
			detected++
			t.Logf("Open: %v", err)
		})
	}
	if detected < 3 {
		t.Fatalf("only %d of the flips were detected", detected)
	}
	// The intact file opens again and the node catches up.
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	c.start(f)
	c.converged(300)
}

// TestDataFileModes walks a node's Dir after a snapshot: files 0600,
// directories 0700, even where an older version left them wider.
func TestDataFileModes(t *testing.T) {
	c := MakeCluster(t, 3, snapshotOften())
	l := c.leader()
	c.applyN(l, "a", 200)
	c.converged(200)
	dir := c.nodes[l].cfg.Dir
	testutil.Eventually(t, 15*time.Second, "a snapshot", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "snapshots", "*", "state.bin"))
		return len(m) > 0
	})
	checkModes(t, dir)

	// Wider modes left by an older version are fixed at the next Open.
	f := c.follower(l)
	c.stop(f)
	fdir := c.nodes[f].cfg.Dir
	os.Chmod(filepath.Join(fdir, "raft.db"), 0o644)
	os.Chmod(filepath.Join(fdir, "snapshots"), 0o755)
	c.start(f)
	checkModes(t, fdir)
}

func checkModes(t *testing.T, dir string) {
	t.Helper()
	checkModesOf(t, dir, 3)
}

// checkModesOf checks that the files under dir are 0600 and the
// directories, dir included, 0700, and that there are at least minFiles.
func checkModesOf(t *testing.T, dir string, minFiles int) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < minFiles {
		t.Fatalf("only %d files under %s", files, dir)
	}
}

// TestRaftDBOpenErrorIsNotCorruption: a raft.db that cannot be read for
// another reason than damage (here a directory in its place; as root a
// permission error cannot be staged) is reported as that error, never as
// "file is corrupt", whose remedy is to move the file aside.
func TestRaftDBOpenErrorIsNotCorruption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raft.db")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	err := checkBolt(path)
	if err == nil {
		t.Fatal("checkBolt accepted a directory as raft.db")
	}
	if strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "consensus: open "+path) {
		t.Fatalf("checkBolt: %v; want an error naming %s that does not call it corrupt", err, path)
	}
}

// TestStandbyStateIsNeverStale fills a follower's disk again and again
// while the leader streams entries to it: from the moment it stands by it
// reports standby, no leader, not leading. Its log write fails inside an
// AppendEntries, and hashicorp/raft's main loop can handle one more
// AppendEntries after Shutdown set the state to Shutdown, set it back to
// Follower and exit leaving it there: State must not believe a stopped
// instance. The race is rare: before the fix, 1 stand-by in 150 reported
// "follower" (leader n2) here, so this test catches a regression in about
// one run in eight; it also runs twenty stand-bys and resumptions.
//
// Each stand-by also makes the follower answer the leader's pipelined
// appends with failures: with hashicorp/raft's own pipeline that could
// deadlock the leader's replication to it (issue 612) and hang this test's
// cleanup in the leader's Shutdown; see raftTransport in pipeline.go.
func TestStandbyStateIsNeverStale(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and starts Raft twenty times")
	}
	c, small := smallDiskCluster(t)
	if l := c.leader(); l == 0 {
		transfer(t, c.nodes[0].node, "n2")
	}
	n := c.nodes[0].node
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	for w := range 4 {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				for _, o := range c.nodes[1:] {
					if o.node.IsLeader() {
						actx, acancel := context.WithTimeout(ctx, 5*time.Second)
						_, _ = o.node.Apply(actx, fmt.Appendf(nil, "stream-%d-%d", w, k)) // the states are what is checked
						acancel()
					}
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
	const cycles = 20
	stale := 0
	for cycle := range cycles {
		filler := testutil.FillTo(t, small, smallDiskReserve/2)
		testutil.Eventually(t, 10*time.Second, "n1 stands by", func() bool { return n.StorageFull() != nil })
		// The node decided to stand by: whatever its stopped instance
		// says, it reports standby from now until space is back.
		for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
			state, leading := n.State(), n.IsLeader()
			id, _ := n.Leader()
			if state != "standby" || leading || id != "" {
				stale++
				t.Errorf("cycle %d: standing by, n1 reports state %q, leading %v, leader %q", cycle, state, leading, id)
				break
			}
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 15*time.Second, "n1 takes part again", func() bool { return n.StorageFull() == nil && n.State() != "standby" })
	}
	t.Logf("%d of %d stand-bys reported a stale state", stale, cycles)
}
