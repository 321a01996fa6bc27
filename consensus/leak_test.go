package consensus

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestCloseLeavesNoGoroutines runs a cluster through elections, applies, a
// restart and Close, then checks that every goroutine it started is gone:
// Raft's, the transport's and this package's.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("cluster", func(t *testing.T) {
		c := MakeCluster(t, 3)
		l := c.leader()
		c.applyN(l, "a", 100)
		f := c.follower(l)
		c.stop(f)
		c.start(f)
		c.converged(100)
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			var ours []string
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if strings.Contains(g, "hashicorp/raft") || strings.Contains(g, "github.com/hotline-link/hotline/consensus") {
					ours = append(ours, g)
				}
			}
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), strings.Join(ours, "\n\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
