package daemon_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/clustertest"
	"github.com/hotline-link/hotline/transport/pki"
)

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSIGHUPReload runs hotlined --config as a process and reloads it with
// SIGHUP: the log level, then a renewed certificate (seen on the metrics
// listener), then a broken certificate, which is refused while the node
// keeps running; SIGTERM still stops it cleanly.
func TestSIGHUPReload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs hotlined")
	}
	bin := clustertest.Binaries(t)
	dir := t.TempDir()
	if err := daemon.EnsureLabPKI(dir); err != nil {
		t.Fatal(err)
	}
	cfgs := daemon.LabConfigs(dir, []string{"fiber"}, func(s, i int) (string, map[string]string) {
		ip := fmt.Sprintf("127.0.%d.%d", 21+s, 11+i)
		return clustertest.FreeAddr(t, ip), map[string]string{"fiber": clustertest.FreeAddr(t, ip)}
	})
	c := cfgs[0] // alpha-1; its site's other nodes are not started
	c.MetricsListen = clustertest.FreeAddr(t, "127.0.21.11")
	file := filepath.Join(dir, "alpha-1.toml")
	write := func(level string) {
		t.Helper()
		cc := *c
		cc.LogLevel = level
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(&cc); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("info")

	var out lockedBuffer
	cmd := exec.Command(filepath.Join(bin, "hotlined"), "--config", file)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once Wait returned waitErr
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(out.String(), what) {
			select {
			case <-exited:
				t.Fatalf("hotlined exited (%v) before logging %q:\n%s", waitErr, what, out.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no log line %q within 30s:\n%s", what, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	hup := func() {
		t.Helper()
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	// A SIGHUP while the node starts (Raft is up, the socket not yet)
	// does not end it: it is taken from the start and served once the
	// node runs.
	waitLog("consensus: node started")
	hup()
	waitLog(`msg="node started"`)
	waitLog("reloaded: nothing changed")

	write("debug")
	hup()
	waitLog("reloaded: log_level info→debug")

	// A renewed certificate that expires in 10 days.
	pkiDir := filepath.Join(dir, "pki")
	renew := t.TempDir()
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		copyFile(t, filepath.Join(pkiDir, f), filepath.Join(renew, f))
	}
	crt, key, err := pki.IssueValid(renew, "alpha", "alpha-1", 10*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, key, c.TLS.Key)
	copyFile(t, crt, c.TLS.Cert)
	hup()
	waitLog("reloaded: node certificate (expires ")
	_, body := httpGet(t, "GET", "http://"+c.MetricsListen+"/metrics")
	if v, _ := value(parseExposition(t, body)["hotline_cert_expiry_warning"], map[string]string{"cert": "node"}); v != 1 {
		t.Errorf("hotline_cert_expiry_warning{cert=node} = %v after installing a 10-day certificate, want 1", v)
	}

	// A broken file is refused; the node goes on.
	if err := os.WriteFile(c.TLS.Cert, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	hup()
	waitLog("certificates refused, the old ones stay in use")
	if code, _ := httpGet(t, "GET", "http://"+c.MetricsListen+"/healthz"); code != 200 {
		t.Errorf("healthz %d after a refused reload, want 200", code)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("hotlined exited with %v after SIGTERM:\n%s", waitErr, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("hotlined did not stop within 30s of SIGTERM")
	}
}
