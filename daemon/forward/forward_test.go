package forward

import (
	"errors"
	"strings"
	"testing"

	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/linktest"
	"github.com/hotline-link/hotline/transport/trust"
)

// The far sites' errors in these tests, with their codes: what the
// daemon's table (callCodes) is to a real site.
var (
	errTestStarting  = errors.New("starting")
	errTestNotLeader = errors.New("not the leader")
	errTestNoQuorum  = errors.New("no quorum")

	testCodes = func() *transport.Codes {
		c := transport.NewCodes()
		c.Add("starting", errTestStarting)
		c.Add("not_leader", errTestNotLeader)
		c.Add("no_quorum", errTestNoQuorum)
		c.Add("no_proof", ErrNoProof)
		c.Add("proof_mismatch", ErrMismatch)
		c.Add("unknown_key", trust.ErrUnknownKey)
		c.Add("bad_signature", trust.ErrBadSignature)
		c.Add("trust_malformed", trust.ErrMalformed)
		return c
	}()
)

// testRetryable is what the daemon's retryable is to a real site: a
// refusal is retryable by its code, and only an uncoded one (from a
// receiver of an earlier version) by its text.
func testRetryable(err error) bool {
	var ce *transport.CallError
	return errors.Is(err, errTestStarting) ||
		errors.As(err, &ce) && ce.Code == "" && strings.HasSuffix(ce.Msg, ": starting")
}

// TestRedirect: a refusal naming a leader makes it preferred; one from a
// node that was starting or stopping, naming none, drops the preference;
// any other refusal leaves it. The refusal reaches Retryable and the
// caller typed by its code; a refusal without a code (an older receiver)
// is judged by its text alone.
func TestRedirect(t *testing.T) {
	net := linktest.NewNet[transport.Batch, transport.Ack](1, func(b *transport.Batch) string { return b.To })
	l := net.Link("alpha")
	c := &Config{Link: l, Codes: testCodes, Retryable: testRetryable}
	l.SetPreferred("bravo", "bravo-1")
	for _, tc := range []struct {
		ack  transport.Ack
		is   error // the sentinel the refusal wraps, nil if none
		want string
	}{
		{transport.Ack{Error: "no quorum", Code: "no_quorum"}, errTestNoQuorum, "bravo-1"},
		{transport.Ack{Error: "bravo-1: starting", Code: "starting"}, errTestStarting, ""},
		{transport.Ack{Error: "not the leader", Code: "not_leader", Leader: "bravo-2"}, errTestNotLeader, "bravo-2"},
		{transport.Ack{Error: "no quorum", Code: "no_quorum"}, errTestNoQuorum, "bravo-2"},
		// The code decides, not the text.
		{transport.Ack{Error: "bravo-2: starting", Code: "no_quorum"}, errTestNoQuorum, "bravo-2"},
		// A code this side does not know: no sentinel, and no text read.
		{transport.Ack{Error: "bravo-2: starting", Code: "future_kind"}, nil, "bravo-2"},
		// An older receiver: no code, its text says it was starting.
		{transport.Ack{Error: "bravo-2: starting"}, nil, ""},
	} {
		err := c.refused("bravo", &tc.ack)
		if err == nil || err.Error() != tc.ack.Error {
			t.Fatalf("refusal %+v: error %v, want its text", tc.ack, err)
		}
		if tc.is != nil && !errors.Is(err, tc.is) || tc.is == nil && errors.Unwrap(err) != nil {
			t.Fatalf("refusal %+v: error %v wraps %v, want %v", tc.ack, err, errors.Unwrap(err), tc.is)
		}
		if got := l.Preferred("bravo"); got != tc.want {
			t.Fatalf("after refusal %+v: prefers %q, want %q", tc.ack, got, tc.want)
		}
	}
	if err := c.refused("bravo", &transport.Ack{Last: 3, Leader: "bravo-3"}); err != nil || l.Preferred("bravo") != "" {
		t.Fatalf("an accepting ack: %v, prefers %q; want no error and no redirect", err, l.Preferred("bravo"))
	}
}
