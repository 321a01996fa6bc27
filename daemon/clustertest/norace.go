//go:build !race

package clustertest

// Race reports whether the test binary was built with -race.
const Race = false
