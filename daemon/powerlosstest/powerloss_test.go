package powerlosstest

import (
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// basePort is this package's lab: Raft and the site's LAN on 7950, paths
// on 8050 (lab init's layout: a lab on 7800 has its paths on 7900).
const basePort = 7950

// What a node writes in its data_dir, and whether each commit is synced
// (a power loss keeps what was synced, nothing more):
//
//   - raft/raft.db: the Raft log and term/vote (raft-boltdb, bbolt with
//     its fdatasyncs on every commit): synced.
//   - raft/snapshots/<id>/{state.bin,meta.json}: written once per
//     snapshot; raft's file store syncs both files, renames the directory
//     into place and syncs its parent before the snapshot counts.
//   - state.db: the state machine (queue.Store). Not synced on each
//     commit once Raft can rebuild it: Raft holds a snapshot, or the file
//     was new when the node started (Raft's whole log rebuilds it); synced
//     on each commit otherwise (an existing file and no snapshot yet, as
//     after a clean stop or a restore from a backup). This test.
//   - state.db.unsynced: the marker naming the boot that writes state.db
//     unsynced (and "new" when it was new); written and synced (file and
//     directory) before the first unsynced commit, removed after a clean
//     Close has synced state.db.
//   - state.db.restore-*: a snapshot being restored, synced before it is
//     renamed over state.db (and the directory synced); removed on error.
//
// Nothing else is written there (the key files, sockets, spool
// directories and logs live elsewhere); checkDataDir fails the test on
// any other file, so that a new one gets classified here.

// TestPowerLossSite runs the six-process lab with traffic both ways and
// cuts the power of site alpha twice: its three nodes are killed at once
// (kill -9; a power loss stops them all), then each node's state.db,
// written without sync, is given what a power loss may leave of it, and
// its marker is rewritten with another boot ID, as a reboot shows it.
//
// "Last sync" is the last moment the test knows the file to be on disk
// as it was: a clean stop (Close syncs it and removes the marker). The
// test copies state.db then and restarts the node; what the node writes
// after that is unsynced, and a power loss may leave the file anywhere
// between that copy and its last write, pages mixed (bbolt reuses the
// pages its last synced meta page freed; its file growths and Raft's
// restore of a snapshot at start sync it again, at moments the test does
// not see, so the copy is an older durable state, which loses more). The
// extremes are tried: exactly the copy ("last sync"), garbage, and the
// file gone (as Open itself discards it). A file synced on each commit
// (no marker) would lose nothing, but by the time of each power loss
// every alpha node writes unsynced, which the test checks. In every case
// the node must log that it
// discarded the file and rebuild it from Raft: alpha-1 and alpha-2 take
// Raft snapshots (snapshot_threshold 64, checked every second), alpha-3
// takes none (the default threshold is checked first after 2 minutes):
// its file was new when it started, so it replays its whole log. Between
// the two power losses alpha-3 is killed alone and restarted (a crash in
// this boot: its file is kept, and stays unsynced).
//
// After each power loss the site takes new submissions, and every
// message alpha acknowledged must be known at every alpha node (get by
// id, a consistent read of that node's rebuilt state); at the end every
// acknowledged message
// must be in the receiving site's inbox exactly once and in order, read
// through every alpha node for alpha's inbox, and alpha's messages must
// be delivered as every alpha node tells it.
func TestPowerLossSite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts six processes")
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		t.Helper()
		t.Logf("%5.1fs "+format, append([]any{time.Since(start).Seconds()}, args...)...)
	}
	alpha := daemon.LabNodes("alpha")
	snapshots := map[string]bool{"alpha-1": true, "alpha-2": true} // alpha-3: none
	l := clustertest.StartProcLabAt(t, basePort, func(node, cfg string) string {
		if !snapshots[node] {
			return cfg
		}
		return strings.Replace(cfg, "[raft]\n", "[raft]\nsnapshot_threshold = 64\nsnapshot_interval = \"1s\"\n", 1)
	})
	for _, s := range daemon.LabSites {
		logf("site %s leader: %s", s, l.Leader(s))
	}
	data := func(node string, elem ...string) string {
		return filepath.Join(append([]string{l.Dir, "data", node}, elem...)...)
	}

	g := clustertest.NewLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// Traffic: every alpha node submits to bravo, and one bravo node to
	// alpha. It pauses while the nodes are checked (reads under load are
	// slow).
	var subs *clustertest.Submitters
	startTraffic := func(phase string) {
		subs = clustertest.NewSubmitters(ctx, "power"+phase, g)
		for _, node := range alpha {
			subs.Go("alpha", node, "bravo", l.Client(node), 0)
		}
		subs.Go("bravo", "bravo-1", "alpha", l.Client("bravo-1"), 0)
	}
	stopTraffic := func() {
		t.Helper()
		s := subs
		subs = nil
		s.Stop(t)
		logf("traffic paused: %d submissions acknowledged in all", len(g.Sent()))
	}
	defer func() {
		if subs != nil { // the test failed: the submitters may wait for a dead site
			cancel()
			subs.Stop(t)
		}
	}()
	startTraffic("1")
	waitAcked := func(more int64) {
		t.Helper()
		want := subs.Acked.Load() + more
		clustertest.Eventually(t, 60*time.Second, "acknowledged submissions", func() bool {
			return subs.Acked.Load() >= want
		})
	}

	// lastSync[node] is state.db as a clean stop left it.
	lastSync := map[string][]byte{}
	cleanRestart := func(node string) {
		t.Helper()
		p := l.Take(node)
		p.Cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.Exited():
			if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("%s exited with status %d after SIGTERM", node, code)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s did not stop within 20s of SIGTERM", node)
		}
		if _, err := os.Stat(data(node, "state.db.unsynced")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: the marker is still there after a clean stop (%v)", node, err)
		}
		b, err := os.ReadFile(data(node, "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		lastSync[node] = b
		logf("%s: clean stop, state.db (%d bytes) copied as its last sync", node, len(b))
		l.StartNode(node)
		l.SettledAmong(60*time.Second, alpha...)
	}

	type action int
	const (
		restoreLastSync action = iota
		garbage
		remove
	)
	names := map[action]string{restoreLastSync: "restored to its last sync", garbage: "overwritten with garbage", remove: "removed"}
	powerLoss := func(round int, acts map[string]action) {
		t.Helper()
		for _, n := range alpha {
			l.Kill9(n)
		}
		boot := "power-loss-" + string(rune('0'+round))
		for _, n := range alpha {
			_, serr := os.Stat(data(n, "raft", "snapshots"))
			snaps, _ := filepath.Glob(data(n, "raft", "snapshots", "*", "meta.json"))
			if got := len(snaps) > 0; got != snapshots[n] {
				t.Fatalf("%s: Raft snapshots %v (%v), want %v: the test no longer covers what it says", n, snaps, serr, snapshots[n])
			}
			// Every node writes state.db unsynced by now: Raft holds a
			// snapshot, or the file was new (alpha-3).
			marker, err := os.ReadFile(data(n, "state.db.unsynced"))
			if err != nil {
				t.Fatalf("%s: no marker, so state.db was synced on each commit: %v", n, err)
			}
			db := data(n, "state.db")
			switch acts[n] {
			case restoreLastSync:
				if lastSync[n] == nil {
					t.Fatalf("%s: no copy of a last sync", n)
				}
				writeFile(t, db, lastSync[n])
			case garbage:
				st, err := os.Stat(db)
				if err != nil {
					t.Fatal(err)
				}
				junk := make([]byte, st.Size())
				rand.Read(junk)
				writeFile(t, db, junk)
			case remove:
				if err := os.Remove(db); err != nil {
					t.Fatal(err)
				}
			}
			// The marker was synced before the first unsynced commit: it
			// survives as written, but names a boot that is over now.
			_, rest, _ := strings.Cut(string(marker), "\n")
			writeFile(t, data(n, "state.db.unsynced"), []byte(boot+"\n"+rest))
			logf("power loss %d: %s (Raft snapshot: %v): state.db %s", round, n, snapshots[n], names[acts[n]])
		}
		for _, n := range alpha {
			l.StartNode(n)
		}
		logf("power loss %d: site alpha settled, leader %s", round, l.SettledAmong(90*time.Second, alpha...))
		// The warning (queue.Store.Discarded) names the other boot.
		warning := regexp.MustCompile(`state: \S*state\.db was written without sync by boot \\?"` + boot + `\\?".*discarded`)
		for _, n := range alpha {
			l.WaitLog(n, warning, 10*time.Second)
		}
	}

	// checkKnown: every message alpha acknowledged is known at every
	// alpha node, which rebuilt its state.
	checkKnown := func() {
		t.Helper()
		for _, n := range alpha {
			c := l.Client(n)
			known := 0
			for _, s := range g.Sent() {
				if s.From != "alpha" {
					continue
				}
				var last error
				clustertest.Eventually(t, 30*time.Second, n+" knows "+s.Key, func() bool {
					gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
					defer gcancel()
					m, err := c.Get(gctx, s.ID)
					last = err
					return err == nil && m.ID == s.ID
				})
				if last != nil {
					t.Fatalf("%s: get %s: %v", n, s.ID, last)
				}
				known++
			}
			logf("%s knows all %d messages alpha acknowledged", n, known)
		}
	}

	// Traffic until the snapshots exist; then alpha-1 stops cleanly (its
	// last sync) and runs unsynced again; alpha-3 never stopped cleanly:
	// its file was new, so unsynced from the start.
	clustertest.Eventually(t, 90*time.Second, "Raft snapshots at alpha-1 and alpha-2", func() bool {
		for n := range snapshots {
			if s, _ := filepath.Glob(data(n, "raft", "snapshots", "*", "meta.json")); len(s) == 0 {
				return false
			}
		}
		return true
	})
	cleanRestart("alpha-1")
	waitAcked(50)
	powerLoss(1, map[string]action{"alpha-1": restoreLastSync, "alpha-2": remove, "alpha-3": garbage})
	waitAcked(50)
	stopTraffic()
	checkKnown()
	startTraffic("2")

	// A crash of alpha-3 in this boot keeps its file, unsynced; alpha-2
	// stops cleanly for its last sync.
	l.Kill9("alpha-3")
	l.StartNode("alpha-3")
	l.SettledAmong(60*time.Second, alpha...)
	cleanRestart("alpha-2")
	waitAcked(50)
	powerLoss(2, map[string]action{"alpha-1": garbage, "alpha-2": restoreLastSync, "alpha-3": remove})
	waitAcked(50)
	stopTraffic()

	for _, n := range alpha {
		msgs := clustertest.DrainInbox(t, l.Client(n), g.AckedTo("alpha"), 90*time.Second)
		logf("alpha's inbox read at %s:", n)
		g.CheckArrivals(t, "alpha", msgs)
	}
	msgs := clustertest.DrainInbox(t, l.Client("bravo-2"), g.AckedTo("bravo"), 90*time.Second)
	g.CheckArrivals(t, "bravo", msgs)
	for _, n := range alpha {
		c := l.Client(n)
		for _, s := range g.Sent() {
			if s.From != "alpha" {
				continue
			}
			clustertest.Eventually(t, 60*time.Second, s.Key+" delivered as "+n+" tells", func() bool {
				gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
				defer gcancel()
				m, err := c.Get(gctx, s.ID)
				return err == nil && (m.State == "delivered" || m.State == "read")
			})
		}
		checkDataDir(t, data(n))
		logf("%s: every message alpha acknowledged is there, delivered", n)
	}
}

// writeFile replaces path's contents, as the power loss left them.
func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// dataFiles are the files a data_dir may hold (see the list above), as
// patterns relative to it.
var dataFiles = []string{
	"state.db", "state.db.unsynced", "state.db.restore-*",
	"raft/raft.db", "raft/snapshots/*/state.bin", "raft/snapshots/*/meta.json",
}

// checkDataDir fails t for any file in dir that the list above does not
// classify.
func checkDataDir(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, pat := range dataFiles {
			if ok, _ := filepath.Match(pat, rel); ok {
				return nil
			}
		}
		t.Errorf("%s: %s is not in this test's list of data_dir files: is it synced on each commit?", dir, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
