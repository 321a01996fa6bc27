package daemon

import (
	"os"
	"testing"
)

// A node's soft memory limit: 128 MiB and four of the largest payloads,
// unless GOMEMLIMIT is set (then the runtime's own reading of it stands).
func TestMemoryLimit(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT")
	cfg := &Config{MaxMessageSize: 1 << 20}
	if got, want := memoryLimit(cfg), int64(132<<20); got != want {
		t.Errorf("default max_message_size: limit %d, want %d", got, want)
	}
	cfg.MaxMessageSize = 64 << 20
	if got, want := memoryLimit(cfg), int64(384<<20); got != want {
		t.Errorf("max_message_size 64 MiB: limit %d, want %d", got, want)
	}
	t.Setenv("GOMEMLIMIT", "300MiB")
	if got := memoryLimit(cfg); got != 0 {
		t.Errorf("with GOMEMLIMIT set: limit %d, want 0 (the runtime's)", got)
	}
}
