package daemon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hotline/daemon/client"
)

// TestReadmeCommands runs the README's commands as written, the way
// coredns boots every example config: in a copy of the module (a fresh
// clone: go.mod, go.sum and the Go packages, nothing built), it starts the
// dev lab with the "Run it" command, then runs with bash (set -euo
// pipefail) every shell block of "First look", the commands the dev
// lab's banner prints, and the socket API's curl examples, and fails if
// any command fails.
//
// What the test changes, and why: the "Run it" command gets
// "--base-port PORT" appended (a free port), so that it does not collide
// with a dev lab someone runs on this machine; nothing else. It also
// measures how long a read receipt takes to turn "delivered" into "read"
// at the origin after an ack (the delay First look explains).
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and starts the dev lab")
	}
	for _, tool := range []string{"bash", "go", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's commands need %s, which is not installed: %v", tool, err)
		}
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(readme)
	runIt := shellBlocks(section(t, doc, "**Run it**", "**Test it:**"))
	if len(runIt) != 1 || !strings.HasPrefix(runIt[0], "go run ./cmd/hotlined --dev") || strings.Count(runIt[0], "\n") != 1 {
		t.Fatalf("README's Run it block is not the one dev lab command this test knows how to start: %q", runIt)
	}
	firstLook := shellBlocks(section(t, doc, "## First look", "\n## "))
	examples := shellBlocks(section(t, doc, "Examples (with the dev lab of [First look]", "\n## "))
	if len(firstLook) == 0 || len(examples) != 1 {
		t.Fatalf("README: %d First look blocks, %d socket API example blocks", len(firstLook), len(examples))
	}

	root := copyModule(t)
	port, err := PickDevBasePort(2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	banner := startReadmeLab(t, root, strings.TrimSpace(runIt[0])+" --base-port "+strconv.Itoa(port))
	t.Logf("dev lab up (go run, leaders elected) in %v", time.Since(start).Round(time.Millisecond))

	for i, b := range firstLook {
		runShell(t, ctx, root, fmt.Sprintf("First look block %d", i+1), b)
	}
	// The banner's commands (indented lines) must run as printed, from
	// the repository root.
	var bannerCmds []string
	for _, l := range strings.Split(banner, "\n") {
		if strings.HasPrefix(l, "  ") {
			bannerCmds = append(bannerCmds, strings.TrimSpace(l))
		}
	}
	if len(bannerCmds) < 3 || !strings.Contains(banner, "bin/hotlinectl") || regexp.MustCompile(`(^|[^/])hotlinectl `).MatchString(strings.Join(bannerCmds, "\n")) {
		t.Fatalf("the banner's commands do not run bin/hotlinectl, as First look builds it:\n%s", banner)
	}
	runShell(t, ctx, root, "the dev lab's banner", strings.Join(bannerCmds, "\n")+"\n")
	runShell(t, ctx, root, "socket API examples", examples[0])

	// The receipt delay First look explains: from an ack's return at
	// bravo to "read" at alpha.
	alpha := client.New(filepath.Join(root, "hotline-dev", "alpha-1.sock"))
	bravo := client.New(filepath.Join(root, "hotline-dev", "bravo-2.sock"))
	var delays []time.Duration
	for i := range 10 {
		m, err := alpha.Submit(ctx, client.SubmitRequest{To: "bravo", Precedence: "flash", Key: fmt.Sprintf("receipt-delay-%d", i), Payload: []byte("x"), Wait: "delivered"})
		if err != nil || m.State != "delivered" {
			t.Fatalf("submit: %+v %v", m, err)
		}
		if _, err := bravo.Ack(ctx, []string{m.ID}); err != nil {
			t.Fatalf("ack: %v", err)
		}
		acked := time.Now()
		for {
			got, err := alpha.Get(ctx, m.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State == "read" {
				break
			}
			if time.Since(acked) > 30*time.Second {
				t.Fatalf("%s still %s at alpha 30s after its ack", m.ID, got.State)
			}
			time.Sleep(5 * time.Millisecond)
		}
		delays = append(delays, time.Since(acked))
	}
	slices.Sort(delays)
	t.Logf("read receipt delay, ack at bravo to read at alpha, 10 messages: min %v, median %v, max %v",
		delays[0].Round(time.Millisecond), delays[5].Round(time.Millisecond), delays[9].Round(time.Millisecond))
}

// section returns the part of doc from the first from to the next to after it.
func section(t *testing.T, doc, from, to string) string {
	t.Helper()
	i := strings.Index(doc, from)
	if i < 0 {
		t.Fatalf("README has no %q", from)
	}
	rest := doc[i+len(from):]
	if j := strings.Index(rest, to); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// shellBlocks returns the contents of the ```sh blocks in s.
func shellBlocks(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "```sh\n")
		if i < 0 {
			return out
		}
		s = s[i+len("```sh\n"):]
		j := strings.Index(s, "```")
		if j < 0 {
			return out
		}
		out = append(out, s[:j])
		s = s[j+3:]
	}
}

// copyModule copies what a fresh clone holds of the module (go.mod,
// go.sum, the packages) into a temporary directory and returns it.
func copyModule(t *testing.T) string {
	t.Helper()
	src, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum", "README.md"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"cmd", "consensus", "daemon", "queue", "transport"} {
		err := filepath.WalkDir(filepath.Join(src, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o755)
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// startReadmeLab runs command (the README's dev lab command) with bash in
// dir, in its own process group, waits for its banner and returns it. The
// group is stopped with SIGTERM at cleanup, and must exit cleanly.
func startReadmeLab(t *testing.T, dir, command string) string {
	t.Helper()
	logf, err := os.Create(filepath.Join(t.TempDir(), "hotlined.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", command)
	cmd.Dir = dir
	cmd.Env = readmeEnv()
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("started %q in %s (pid %d)", command, dir, cmd.Process.Pid)
	exited := make(chan error, 1)
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	// At the end: SIGTERM to the group (go run and hotlined); hotlined
	// must say it stops the lab and exit (go run itself dies of the
	// signal, which is how go run ends).
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		timeout := time.After(30 * time.Second)
		stopped := false
	drain:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break drain
				}
				stopped = stopped || l == "stopping the lab"
			case <-timeout:
				t.Errorf("the dev lab did not stop within 30s of SIGTERM")
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				for range lines {
				}
				break drain
			}
		}
		<-exited
		if !stopped && !t.Failed() {
			t.Errorf("the dev lab did not say %q after SIGTERM", "stopping the lab")
		}
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- dev lab log (tail) ---\n%s", b)
		}
	})
	var banner strings.Builder
	timeout := time.After(3 * time.Minute) // go run compiles first
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the dev lab exited before its banner ended:\n%s", banner.String())
			}
			banner.WriteString(l + "\n")
			if strings.HasPrefix(l, "Stop with") {
				return banner.String()
			}
		case <-timeout:
			t.Fatalf("no dev lab banner within 3 minutes:\n%s", banner.String())
		}
	}
}

// runShell runs script with bash -euo pipefail in dir and fails t if it
// fails.
func runShell(t *testing.T, ctx context.Context, dir, what, script string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = readmeEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	t.Logf("%s (%v):\n%s\n--- output ---\n%s", what, time.Since(start).Round(time.Millisecond), script, out.String())
	if err != nil {
		t.Fatalf("%s failed: %v", what, err)
	}
}

// readmeEnv is this process's environment without HOTLINE_SOCKET (a user's
// shell starts without it).
func readmeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOTLINE_SOCKET=") {
			env = append(env, kv)
		}
	}
	return env
}
