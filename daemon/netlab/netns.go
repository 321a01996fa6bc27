package netlab

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// netnsDir is where `ip netns add` mounts named namespaces.
const netnsDir = "/var/run/netns/"

var (
	availableOnce sync.Once
	availableErr  error
)

// Available reports why the harness cannot run here, or nil when it can:
// not root, `ip` or `bridge` missing, or namespaces, bridges or veths not
// creatable. The first call probes with a throwaway namespace; later calls
// return the same answer. Tests call t.Skip with the error.
func Available() error {
	availableOnce.Do(func() { availableErr = probe() })
	return availableErr
}

func probe() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab: needs root (network namespaces)")
	}
	for _, tool := range []string{"ip", "bridge"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab: needs the iproute2 tool %q: %w", tool, err)
		}
	}
	ns := fmt.Sprintf("netlabprobe%d-wan", os.Getpid())
	if err := ipBatch("", []string{"netns add " + ns}, false); err != nil {
		return fmt.Errorf("netlab: ip netns unusable: %w", err)
	}
	defer ipBatch("", []string{"netns del " + ns}, true)
	if err := ipBatch(ns, []string{
		"link add b0 type bridge stp_state 0 forward_delay 0",
		"link add v0 type veth peer name v1",
		"link set v0 master b0",
	}, false); err != nil {
		return fmt.Errorf("netlab: bridges or veths unusable: %w", err)
	}
	if err := disableIPv6(ns); err != nil {
		return err
	}
	return nil
}

// ipBatch runs lines through one `ip [-n ns] -batch -`. With force, ip
// carries on past failing lines (used for teardown).
func ipBatch(ns string, lines []string, force bool) error {
	if len(lines) == 0 {
		return nil
	}
	var args []string
	if ns != "" {
		args = append(args, "-n", ns)
	}
	if force {
		args = append(args, "-force")
	}
	return run("ip", append(args, "-batch", "-"), lines)
}

// failedLine matches iproute2's batch error "Command failed -:N".
var failedLine = regexp.MustCompile(`Command failed -:(\d+)`)

// run runs tool args with lines on stdin. Its error carries the tool's
// stderr and the batch line that failed.
func run(tool string, args, lines []string) error {
	cmd := exec.Command(tool, args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if m := failedLine.FindStringSubmatch(msg); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= 1 && n <= len(lines) {
				msg += fmt.Sprintf(" (line %d: %q)", n, lines[n-1])
			}
		}
		return fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, msg)
	}
	return nil
}

// listNamespaces returns the names of all named network namespaces.
func listNamespaces() (map[string]bool, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netlab: list namespaces: %w", err)
	}
	have := make(map[string]bool, len(entries))
	for _, e := range entries {
		have[e.Name()] = true
	}
	return have, nil
}

// disableIPv6 makes interfaces created later in ns start with IPv6
// disabled. A kernel without IPv6 needs nothing.
func disableIPv6(ns string) error {
	return inNamespace(ns, func() error {
		err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1\n"), 0o644)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("netlab: disable IPv6 in %s: %w", ns, err)
		}
		return nil
	})
}

// Do runs fn on a dedicated OS thread switched into node's namespace and
// returns fn's error. Sockets fn opens belong to that namespace for their
// whole life, so fn typically opens listeners or dials and hands the
// sockets out; reading, writing and closing them afterwards works from any
// goroutine. Goroutines fn starts run on other threads, outside the
// namespace: open sockets in fn itself. The thread is discarded when fn
// returns. A socket opened in Do keeps the namespace alive until it is
// closed, even after Close.
func (l *Lab) Do(node string, fn func() error) error {
	return inNamespace(l.Namespace(node), fn)
}

// inNamespace runs fn on a fresh locked thread that joined network
// namespace ns. The goroutine exits still locked, so the runtime ends the
// thread instead of reusing it in a foreign namespace.
func inNamespace(ns string, fn func() error) error {
	f, err := os.Open(netnsDir + ns)
	if err != nil {
		return fmt.Errorf("netlab: open namespace %s: %w", ns, err)
	}
	defer f.Close()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("netlab: setns %s: %w", ns, err)
			return
		}
		done <- fn()
	}()
	return <-done
}
