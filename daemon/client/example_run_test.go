package client_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
)

// TestExamplesAgainstDevLab runs this package's examples, in order,
// against a dev lab started in this process in a temporary directory (the
// examples' working directory, so hotline-dev/ is the lab's), and checks
// what they print: the examples' calls (submit, submit with wait, inbox,
// ack, get until read, an error code) work against a real daemon.
func TestExamplesAgainstDevLab(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the dev lab")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	port, err := daemon.PickDevBasePort(2)
	if err != nil {
		t.Fatal(err)
	}
	opts := daemon.DefaultDevOptions()
	opts.BasePort = port
	logf, err := os.Create(filepath.Join(dir, "lab.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	banner, bannerW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- daemon.RunDev(ctx, opts, bannerW, logf)
		bannerW.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dev lab: %v", err)
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("--- dev lab log ---\n%s", b)
		}
	})
	// RunDev prints its banner once both sites have a leader.
	b := make([]byte, 4096)
	if n, err := banner.Read(b); err != nil || !strings.Contains(string(b[:n]), "dev lab is running") {
		t.Fatalf("dev lab banner: %q %v", b[:n], err)
	}
	go io.Copy(io.Discard, banner)

	for _, ex := range []struct {
		name string
		run  func()
		want []string
	}{
		{"Submit", ExampleClient_Submit, []string{"stored as ", "existing: false"}},
		{"Submit again", ExampleClient_Submit, []string{"existing: true"}},
		{"Submit_wait", ExampleClient_Submit_wait, []string{" is delivered"}},
		{"Inbox", ExampleClient_Inbox, []string{"from alpha (immediate): Report 42: all quiet.", "from alpha (routine): hello bravo"}},
		{"Ack", ExampleClient_Ack, []string{"acked 2"}},
		{"Get", ExampleClient_Get, []string{" was read at "}},
		{"APIError", ExampleAPIError, []string{"no such site: "}},
	} {
		out := captureStdout(t, ex.run)
		t.Logf("Example %s:\n%s", ex.name, out)
		for _, w := range ex.want {
			if !strings.Contains(out, w) {
				t.Errorf("Example %s printed %q, want %q in it", ex.name, out, w)
			}
		}
	}
	// Acknowledged means gone from the inbox.
	in, err := client.New("hotline-dev/bravo-1.sock").Inbox(context.Background(), 0, 10, 0)
	if err != nil || len(in.Messages) != 0 {
		t.Errorf("bravo's inbox after the Ack example: %+v %v", in, err)
	}
}

// captureStdout returns what f writes to os.Stdout.
func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	got := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		got <- string(b)
	}()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	return <-got
}
