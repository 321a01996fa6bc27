package clustertest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// handedOut remembers the ports FreeAddr returned, so that two calls in
// one test process never return the same one (a port closed after the
// check can be picked again by the kernel).
var handedOut sync.Map

// FreeAddr returns ip:port with a port free for both TCP and UDP now and
// not returned before by this process. It is safe for concurrent use.
func FreeAddr(t testing.TB, ip string) string {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", ip+":0")
		if err != nil {
			t.Fatalf("listen on %s: %v", ip, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("%s:%d", ip, port))
		l.Close()
		if err == nil {
			u.Close()
			if _, dup := handedOut.LoadOrStore(port, true); dup {
				continue
			}
			return fmt.Sprintf("%s:%d", ip, port)
		}
	}
	t.Fatalf("no free port on %s", ip)
	return ""
}

// ModuleRoot returns the directory of the module's go.mod, found upwards
// from the working directory (a test runs in its package's directory).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}
