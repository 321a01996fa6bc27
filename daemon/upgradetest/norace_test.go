//go:build !race

package upgradetest

// raceEnabled: the test binary was built with -race.
const raceEnabled = false
