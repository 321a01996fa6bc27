package forward

import (
	"testing"

	"github.com/hotline-link/hotline/transport"
	"github.com/hotline-link/hotline/transport/linktest"
)

// TestRedirect: a refusal naming a leader makes it preferred; one from a
// node that was starting or stopping, naming none, drops the preference;
// any other refusal leaves it.
func TestRedirect(t *testing.T) {
	net := linktest.NewNet[transport.Batch, transport.Ack](1, func(b *transport.Batch) string { return b.To })
	l := net.Link("alpha")
	c := &Config{Link: l, Retryable: func(s string) bool { return s == "bravo-1: starting" }}
	l.SetPreferred("bravo", "bravo-1")
	for _, tc := range []struct {
		ack  transport.Ack
		want string
	}{
		{transport.Ack{Error: "no quorum"}, "bravo-1"},
		{transport.Ack{Error: "bravo-1: starting"}, ""},
		{transport.Ack{Error: "not the leader", Leader: "bravo-2"}, "bravo-2"},
		{transport.Ack{Error: "no quorum"}, "bravo-2"},
	} {
		c.redirect("bravo", &tc.ack)
		if got := l.Preferred("bravo"); got != tc.want {
			t.Fatalf("after refusal %+v: prefers %q, want %q", tc.ack, got, tc.want)
		}
	}
}
