package clustertest

import (
	"testing"
	"time"

	"github.com/hotline-link/hotline/internal/testutil"
)

// Eventually polls cond every 10ms until it holds, and fails t once within
// has passed without it holding, naming what it waited for. It is
// internal/testutil's, which tests of packages below daemon use directly.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, within, what, cond)
}
