package daemon_test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// Two dev labs run side by side on one machine, each with its own --dir
// and --base-port: a two-site lab and a three-site one (hotlined --dev
// --sites 3). Each carries a message, and the three-site one in all six
// directions.
func TestDevLabsCoexist(t *testing.T) {
	if testing.Short() {
		t.Skip("starts fifteen nodes")
	}
	p2, err := daemon.PickDevBasePort(3)
	if err != nil {
		t.Fatal(err)
	}
	p1 := p2
	for p1 > p2-101 && p1 < p2+101 {
		if p1, err = daemon.PickDevBasePort(2); err != nil {
			t.Fatal(err)
		}
	}
	dirA, dirB := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	labA := startDevLab(t, daemon.DevOptions{Dir: dirA, Sites: 2, BasePort: p1, Ctl: "bin/hotlinectl"})
	labB := startDevLab(t, daemon.DevOptions{Dir: dirB, Sites: 3, BasePort: p2, Ctl: "bin/hotlinectl"})
	if !strings.Contains(labB, "charlie (charlie-1..3)") || strings.Contains(labA, "charlie") {
		t.Errorf("banners:\n%s\n%s", labA, labB)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	send := func(dir, from, to string) {
		t.Helper()
		c := client.New(filepath.Join(dir, from+"-1.sock"))
		defer c.CloseIdleConnections()
		m, err := clustertest.SubmitRetrying(ctx, c, client.SubmitRequest{To: to, Key: from + "-" + to, Payload: []byte("x"), Wait: "delivered", Timeout: time.Minute})
		if err != nil || m.State != "delivered" {
			t.Fatalf("%s: %s to %s: %+v %v", dir, from, to, m, err)
		}
	}
	send(dirA, "alpha", "bravo")
	send(dirA, "bravo", "alpha")
	for _, from := range []string{"alpha", "bravo", "charlie"} {
		for _, to := range []string{"alpha", "bravo", "charlie"} {
			if from != to {
				send(dirB, from, to)
			}
		}
	}
	// Each lab's inboxes hold exactly its own messages. A follower's read
	// waits for the site's commit point and answers 503 (retry) when it
	// cannot learn it in time: fifteen nodes in one process under the race
	// detector on two cores lose leaders now and then, so read as a client
	// does, retrying.
	for dir, want := range map[string]map[string]int{
		dirA: {"alpha": 1, "bravo": 1},
		dirB: {"alpha": 2, "bravo": 2, "charlie": 2},
	} {
		for site, n := range want {
			c := client.New(filepath.Join(dir, site+"-2.sock"))
			got := clustertest.DrainInbox(t, c, n, time.Minute)
			c.CloseIdleConnections()
			if len(got) != n {
				t.Errorf("%s: %s's inbox holds %d messages, want %d", dir, site, len(got), n)
			}
		}
	}
}

// hotlined's --dev flags are checked before anything starts.
func TestDevFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--dev", "--sites", "1"},
		{"--dev", "--sites", "10"},
		{"--dev", "--base-port", "0"},
		{"--dev", "--base-port", "65500"},
		{"--config", "x.toml", "--sites", "3"},
		{"--config", "x.toml", "--base-port", "7000"},
	} {
		err := daemon.Main(context.Background(), args, io.Discard, io.Discard)
		if !daemon.IsUsageError(err) {
			t.Errorf("hotlined %v: %v, want a usage error", args, err)
		}
	}
}

// startDevLab runs RunDev(opts) until the test ends and returns its
// banner, which it prints once every site has a leader.
func startDevLab(t *testing.T, opts daemon.DevOptions) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- daemon.RunDev(ctx, opts, w, clustertest.Writer(t))
		w.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev lab in %s: %v", opts.Dir, err)
		}
	})
	b := make([]byte, 4096)
	n, err := r.Read(b)
	if err != nil || !strings.Contains(string(b[:n]), "dev lab is running") {
		t.Fatalf("dev lab in %s: banner %q, %v", opts.Dir, b[:n], err)
	}
	go io.Copy(io.Discard, r)
	return string(b[:n])
}
