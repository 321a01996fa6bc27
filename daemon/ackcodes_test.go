package daemon

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hotline-link/hotline/consensus"
	"github.com/hotline-link/hotline/transport"
)

// A batch's refusal is judged by its code (callCodes, as calls are): a
// node that was starting or stopping is retryable whatever its text says,
// any other kind is not; only the uncoded refusal of a node of an earlier
// version is judged by its text.
func TestRefusalRetryableByCode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ack   *transport.Ack
		is    error
		retry bool
	}{
		{"starting", callCodes.Refusal(fmt.Errorf("bravo-1: %w", ErrStarting), ""), ErrStarting, true},
		{"stopping", callCodes.Refusal(fmt.Errorf("bravo-1: %w", ErrStopping), ""), ErrStopping, true},
		{"not leader", callCodes.Refusal(fmt.Errorf("propose: %w", consensus.ErrNotLeader), "bravo-2"), consensus.ErrNotLeader, false},
		{"no quorum naming starting", callCodes.Refusal(fmt.Errorf("%w (bravo-2: %v)", ErrNoQuorum, ErrStarting), ""), ErrNoQuorum, false},
		{"old peer starting", &transport.Ack{Error: "bravo-1: " + ErrStarting.Error()}, nil, true},
		{"old peer stopping", &transport.Ack{Error: "bravo-1: " + ErrStopping.Error()}, nil, true},
		{"old peer other", &transport.Ack{Error: "no quorum"}, nil, false},
	} {
		err := tc.ack.Err(callCodes)
		if err == nil || err.Error() != tc.ack.Error {
			t.Fatalf("%s: Err = %v, want the refusal's text %q", tc.name, err, tc.ack.Error)
		}
		if tc.is != nil && (tc.ack.Code == "" || !errors.Is(err, tc.is)) {
			t.Errorf("%s: ack %+v, error %v; want a code and errors.Is %v", tc.name, tc.ack, err, tc.is)
		}
		if got := retryable(err); got != tc.retry {
			t.Errorf("%s: retryable(%v) = %v, want %v", tc.name, err, got, tc.retry)
		}
	}
}
