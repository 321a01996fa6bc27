package bench

import (
	"errors"
	"fmt"
	"time"

	"github.com/hotline-link/hotline/transport/pki"
)

// Timing of a running bench.
const (
	preflightTimeout = 30 * time.Second // both daemons' status
	pollMax          = 1000             // inbox messages per read
	pollWait         = time.Second      // inbox long-poll while messages are due
	ackQueue         = 4                // inbox reads whose acks may wait to be sent
	progressEvery    = time.Second      // a progress line
	maxFailureLines  = 5                // distinct submit errors reported
)

// Limits on a bench, so that its memory is bounded: the tally keeps a few
// dozen bytes per message from the start, and each submitter holds a
// connection of the socket (which serves 1024 at once).
const (
	MaxN           = 1_000_000 // messages
	MaxConcurrency = 1024      // submitters
)

// Options say what bench to run. They are `hotlinectl bench`'s flags, and
// Validate's errors name them as such (--concurrency).
type Options struct {
	To          string        // destination site
	Precedence  string        // of the messages: flash, immediate, priority or routine
	N           int           // messages to submit
	Size        int           // payload bytes, at least HeaderSize
	Concurrency int           // submitters
	Rate        float64       // at most this many submits begin per second; 0 = unlimited
	Timeout     time.Duration // per submit (with its retries), and for arrivals after the last submit
}

// Validate checks o. The precedence is left to the caller (hotlinectl
// checks it against its list; the daemon refuses an unknown one).
func (o *Options) Validate() error {
	switch {
	case o.To == "":
		return errors.New("--to SITE is required")
	case o.N < 1 || o.N > MaxN:
		return fmt.Errorf("--n %d is out of range (at least 1, at most %d)", o.N, MaxN)
	case o.Size < HeaderSize:
		return fmt.Errorf("--size %d is too small (at least %d bytes, for the bench header)", o.Size, HeaderSize)
	case o.Concurrency < 1 || o.Concurrency > MaxConcurrency:
		return fmt.Errorf("--concurrency %d is out of range (at least 1, at most %d)", o.Concurrency, MaxConcurrency)
	case o.Rate < 0:
		return fmt.Errorf("--rate %g is negative", o.Rate)
	case o.Timeout <= 0:
		return fmt.Errorf("--timeout %s must be positive", o.Timeout)
	}
	if err := pki.ValidName(o.To); err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	return nil
}
