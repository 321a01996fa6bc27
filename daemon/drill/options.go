package drill

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hotline-link/hotline/transport/pki"
)

// Drill scenarios: the fault a drill injects in the middle third of its
// canary stream.
const (
	CutActivePath             = "cut-active-path"             // silently cut the active path on every origin node
	CutAllButOne              = "cut-all-but-one"             // silently cut every WAN path but the least preferred
	TransferOriginLeader      = "transfer-origin-leader"      // move the origin site's leadership
	TransferDestinationLeader = "transfer-destination-leader" // move the destination site's leadership
)

// Scenarios are the valid Options.Scenario values, in the order help
// lists them.
var Scenarios = []string{CutActivePath, CutAllButOne, TransferOriginLeader, TransferDestinationLeader}

// Limits of a drill, checked by Options.Validate.
const (
	MinDuration = 6 * time.Second // three phases of at least 2s
	MaxRate     = 10000           // canaries per second
	MaxCanaries = 1_000_000       // rate × duration
)

// Timing of a running drill.
const (
	maxInFlight    = 1024             // concurrent submits; the sender waits beyond
	retryGrace     = 30 * time.Second // canaries are retried until the end of sending plus this
	submitTimeout  = 10 * time.Second // the daemon's timeout of one submit
	attemptTimeout = 20 * time.Second // the client's bound on one submit attempt
	adminTimeout   = 30 * time.Second // preflight, fault, restore and arrivals calls
	pollRun        = 2 * time.Second  // arrivals polling while sending
	pollDrain      = time.Second      // arrivals polling while draining
	pageMax        = 1000             // arrivals per page
)

// Options say what drill to run. They are `hotlinectl drill`'s flags, and
// Validate's errors name them as such (--rate).
type Options struct {
	To         string        // destination site
	Scenario   string        // one of Scenarios
	Precedence string        // of the canaries: flash, immediate, priority or routine
	Rate       float64       // canaries per second
	Duration   time.Duration // of sending; the fault is in the middle third
	Drain      time.Duration // after the last canary, wait at most this for the rest
	Size       int           // canary payload bytes
}

// Validate checks o against the drill's limits. The precedence is left to
// the daemon, which refuses an unknown one before any canary is sent.
func (o *Options) Validate() error {
	switch {
	case o.To == "":
		return errors.New("--to SITE is required")
	case o.Scenario == "":
		return fmt.Errorf("--scenario is required (one of %s)", strings.Join(Scenarios, ", "))
	case !slices.Contains(Scenarios, o.Scenario):
		return fmt.Errorf("--scenario %q is not one of %s", o.Scenario, strings.Join(Scenarios, ", "))
	case !(o.Rate > 0) || o.Rate > MaxRate:
		return fmt.Errorf("--rate %g is out of range (above 0, at most %d per second)", o.Rate, MaxRate)
	case o.Duration < MinDuration:
		return fmt.Errorf("--duration %s is too short (at least %s, three phases of 2s)", o.Duration, MinDuration)
	case o.Rate*o.Duration.Seconds() < 3:
		return fmt.Errorf("--rate %g for %s is fewer than one canary per phase", o.Rate, o.Duration)
	case o.Rate*o.Duration.Seconds() > MaxCanaries:
		return fmt.Errorf("--rate %g for %s is more than %d canaries", o.Rate, o.Duration, MaxCanaries)
	case o.Size < 1:
		return fmt.Errorf("--size %d must be at least 1", o.Size)
	case o.Drain <= 0:
		return fmt.Errorf("--drain %s must be positive", o.Drain)
	}
	if err := pki.ValidName(o.To); err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	return nil
}
