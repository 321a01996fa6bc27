package ctl

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/hotline-link/hotline/daemon/client"
)

// TestPrintMembers checks the member list's text form: one line per
// member, "-" for what a member that did not answer could not say, its
// error below the table, and names from the wire escaped.
func TestPrintMembers(t *testing.T) {
	ms := 12.5
	zero := 0.0
	r := []client.Member{
		{ID: "alpha-1", Addr: "127.0.1.1:7000", Suffrage: client.SuffrageVoter, Leader: true, Live: true,
			Raft: &client.RaftInfo{Node: "alpha-1", State: "leader", AppliedIndex: 812, LastContactMillis: &zero}},
		{ID: "alpha-2", Addr: "127.0.1.2:7000", Suffrage: client.SuffrageVoter, Live: true,
			Raft: &client.RaftInfo{Node: "alpha-2", State: "follower", AppliedIndex: 811, LastContactMillis: &ms}},
		{ID: "alpha-3", Addr: "127.0.1.3:7000", Suffrage: client.SuffrageVoter, Error: "not reachable: timeout\x1b[2J"},
		{ID: "alpha-4", Addr: "127.0.1.4:7000", Suffrage: client.SuffrageNonvoter,
			Raft: &client.RaftInfo{Node: "alpha-4", State: "follower", AppliedIndex: 10}},
	}
	var b bytes.Buffer
	if err := printMembers(&b, "alpha", "alpha-1", r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"site alpha, leader alpha-1\n",
		"alpha-1  127.0.1.1:7000  voter     yes     yes   leader       812      0ms\n",
		"alpha-2  127.0.1.2:7000  voter     no      yes   follower     811      12ms\n",
		"alpha-3  127.0.1.3:7000  voter     no      no    unreachable  -        -\n",
		"alpha-4  127.0.1.4:7000  nonvoter  no      no    follower     10       -\n",
		`alpha-3: "not reachable: timeout\x1b[2J"` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestMemberUsage checks the member commands' argument errors: usage
// errors (exit 2) that name what is missing or wrong, before any request.
func TestMemberUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"member", "add"}, "needs NODE"},
		{[]string{"member", "remove", "a", "b"}, "needs NODE (got 2 arguments)"},
		{[]string{"member", "replace", "alpha-3"}, "needs OLD NEW"},
		{[]string{"member", "add", "Alpha 4"}, "member add: NODE"},
		{[]string{"member", "replace", "alpha-3", "bad/name"}, "member replace: NEW"},
		{[]string{"member", "frob"}, `unknown command "frob"`},
	} {
		var out, errb bytes.Buffer
		err := Run(context.Background(), append([]string{"--socket", "/nonexistent.sock"}, tc.args...), nil, &out, &errb)
		if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}
