package clustertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The binaries are built once per test binary run, into a directory named
// after this process; directories of earlier runs whose process is gone
// are removed then (there is no package-wide teardown to do it).
var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

const binPrefix = "hotline-test-bin-"

// Binaries builds hotlined and hotlinectl (plain go build: no -race, no
// -cover, whatever flags the test binary has) the first time a test of
// this test binary asks, and returns the directory that holds them. It is
// safe for concurrent use; a failed build fails every test that asks.
//
// Under the race detector it skips the test instead: CI runs the suite a
// second time with -race, and a test of processes would only run the same
// plain-built nodes again, checking nothing but its own harness while it
// slows the in-process tests that run beside it.
func Binaries(t testing.TB) string {
	t.Helper()
	if Race {
		t.Skip("starts hotlined processes, which are plain builds: runs without -race only")
	}
	binOnce.Do(func() {
		old, _ := filepath.Glob(filepath.Join(os.TempDir(), binPrefix+"*"))
		for _, d := range old {
			pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), binPrefix))
			if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH {
				os.RemoveAll(d)
			}
		}
		binDir = filepath.Join(os.TempDir(), fmt.Sprintf("%s%d", binPrefix, os.Getpid()))
		cmd := exec.Command("go", "build", "-o", binDir+"/",
			"github.com/hotline-link/hotline/cmd/hotlined", "github.com/hotline-link/hotline/cmd/hotlinectl")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}
