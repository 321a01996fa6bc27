package daemon

import (
	"bufio"
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

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/ctl"
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
	for _, dir := range []string{"cmd", "consensus", "daemon", "internal", "queue", "transport"} {
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
// fails. Its output goes to a file, not a pipe, so that processes it
// leaves running in the background do not hold it open.
func runShell(t *testing.T, ctx context.Context, dir, what, script string) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = readmeEnv()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err = cmd.Run()
	b, _ := os.ReadFile(out.Name())
	t.Logf("%s (%v):\n%s\n--- output ---\n%s", what, time.Since(start).Round(time.Millisecond), script, b)
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

// TestLab3ReadmeCommands runs configs/lab3/README.md's shell blocks as
// written: in a copy of the module, it builds the binaries, writes the
// nine-node lab with hotlinectl lab init and starts its nine hotlined
// processes, sends in all six directions, reads, and stops the processes
// by the process ids the README saves. What it changes: the lab's base
// port 7200 becomes a free one (in the lab init command; the committed
// configs, at 7200, are left out of the copy so that lab init writes
// them), so that the test never collides with a lab3 someone runs.
func TestLab3ReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and starts nine processes")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skipf("the README's commands need bash: %v", err)
	}
	readme, err := os.ReadFile("../configs/lab3/README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(string(readme))
	if len(blocks) != 3 || !strings.Contains(blocks[0], "--base-port 7200") || !strings.Contains(blocks[0], "cd configs/lab3") || !strings.Contains(blocks[2], "kill $(cat run/*.pid)") {
		t.Fatalf("configs/lab3/README.md: blocks are not start, use, stop as this test expects: %q", blocks)
	}
	port, err := PickDevBasePort(3)
	if err != nil {
		t.Fatal(err)
	}
	blocks[0] = strings.ReplaceAll(blocks[0], "--base-port 7200", "--base-port "+strconv.Itoa(port))
	root := copyModule(t)
	lab := filepath.Join(root, "configs", "lab3")
	if err := os.MkdirAll(lab, 0o755); err != nil {
		t.Fatal(err)
	}
	runLabReadme(t, root, lab, 9, blocks[0], blocks[1], blocks[2])
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// TestLabReadmeCommands runs configs/lab/README.md's blocks that start,
// use and stop the six-process lab, as written, in a copy of the module.
// What it changes: the lab's configs are the ones hotlinectl lab init
// writes for a free base port instead of 7000 (the committed ones are
// lab init's for 7000: TestLabConfigFilesMatchRepository), so that the
// test never collides with the lab itself. Not run: the drills block
// (four drills of 40 s; TestDrillCommand runs drills in process) and the
// second-lab block (TestLab3ReadmeCommands runs lab init and its lab).
func TestLabReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and starts six processes")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skipf("the README's commands need bash: %v", err)
	}
	readme, err := os.ReadFile("../configs/lab/README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlocks(string(readme))
	if len(blocks) != 5 || !strings.Contains(blocks[0], "cd configs/lab\n") || !strings.Contains(blocks[1], "send --to bravo") ||
		!strings.Contains(blocks[2], "drill") || blocks[3] != "kill $(cat run/*.pid)\n" {
		t.Fatalf("configs/lab/README.md: blocks are not start, use, drills, stop, second lab as this test expects: %q", blocks)
	}
	port, err := PickDevBasePort(2)
	if err != nil {
		t.Fatal(err)
	}
	files, err := ctl.LabConfigFiles(2, port)
	if err != nil {
		t.Fatal(err)
	}
	root := copyModule(t)
	lab := filepath.Join(root, "configs", "lab")
	if err := os.MkdirAll(lab, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(lab, f.Name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runLabReadme(t, root, lab, 6, blocks[0], blocks[1], blocks[3])
}

// runLabReadme runs a process lab README's start block from root, its use
// block and its stop block in lab, and checks that the n processes it
// started (by their pid files) stopped cleanly; any still running at the
// end are killed, by their pids.
func runLabReadme(t *testing.T, root, lab string, n int, start, use, stop string) {
	t.Helper()
	t.Cleanup(func() {
		pids, _ := filepath.Glob(filepath.Join(lab, "run", "*.pid"))
		for _, f := range pids {
			b, _ := os.ReadFile(f)
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				if syscall.Kill(pid, 0) == nil {
					t.Errorf("%s (pid %d) still runs; stopping it", filepath.Base(f), pid)
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runShell(t, ctx, root, "start (from the repository root)", start)
	runShell(t, ctx, lab, "use (in "+filepath.Base(lab)+")", use)
	runShell(t, ctx, lab, "stop (in "+filepath.Base(lab)+")", stop)
	pids, _ := filepath.Glob(filepath.Join(lab, "run", "*.pid"))
	if len(pids) != n {
		t.Fatalf("%d pid files, want %d", len(pids), n)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, f := range pids {
		b, _ := os.ReadFile(f)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(lab, "run", "*.log"))
	if len(logs) != n {
		t.Errorf("%d logs in run/, want %d", len(logs), n)
	}
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		if !strings.Contains(string(b), "node stopped") {
			t.Errorf("%s does not end with the node stopping:\n%s", filepath.Base(f), lastLines(string(b), 5))
		}
	}
}
