package testutil

import (
	"testing"
	"time"
)

// Eventually polls cond every 10ms until it holds, and fails t (Fatalf,
// naming what it waited for) once within has passed without it holding.
// cond runs on the caller's goroutine.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
