package testutil

import (
	"slices"
	"sync"
)

// Mismatches records the calls of a protocol version mismatch hook
// (transport.Config.OnProtocolMismatch, consensus.Config.OnProtocolMismatch);
// the zero value is ready. Safe for concurrent use.
type Mismatches struct {
	mu  sync.Mutex
	got []Mismatch
}

// Mismatch is one call of the hook.
type Mismatch struct {
	Remote        string
	Offered, Ours []string
}

// Hook is the hook to install.
func (m *Mismatches) Hook(remote string, offered, ours []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.got = append(m.got, Mismatch{remote, offered, ours})
}

// List returns the calls so far, in order.
func (m *Mismatches) List() []Mismatch {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.got)
}
