package alpn

import (
	"strings"
	"testing"
)

func TestCommonUsesOurOrder(t *testing.T) {
	for _, c := range []struct {
		ours, offered []string
		want          string
		ok            bool
	}{
		{[]string{"p/2", "p/1"}, []string{"p/1", "p/2"}, "p/2", true},
		{[]string{"p/2", "p/1"}, []string{"p/1"}, "p/1", true},
		{[]string{"p/2", "p/1"}, []string{"p/9", "p/1"}, "p/1", true},
		{[]string{"p/2", "p/1"}, []string{"p/9"}, "", false},
		{[]string{"p/2", "p/1"}, nil, "", false},
	} {
		got, ok := Common(c.ours, c.offered)
		if got != c.want || ok != c.ok {
			t.Errorf("Common(%v, %v) = %q, %v; want %q, %v", c.ours, c.offered, got, ok, c.want, c.ok)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, c := range []struct {
		proto string
		n     int
		ok    bool
	}{
		{"hotline-raft/1", 1, true},
		{"hotline-raft/2", 2, true},
		{"hotline-raft/12", 12, true},
		{"hotline-raft/0", 0, false},
		{"hotline-raft/02", 0, false},
		{"hotline-raft/", 0, false},
		{"hotline-raft/x", 0, false},
		{"hotline-raft/-1", 0, false},
		{"hotline-raft/99999999999", 0, false},
		{"hotline/1", 0, false},
		{"", 0, false},
	} {
		n, ok := Version(c.proto, "hotline-raft/")
		if n != c.n || ok != c.ok {
			t.Errorf("Version(%q) = %d, %v; want %d, %v", c.proto, n, ok, c.n, c.ok)
		}
	}
}

func TestListIsBounded(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, "none"},
		{[]string{"hotline/9", "hotline/1"}, "hotline/9, hotline/1"},
		{[]string{"a b", "x\x00", "", "é"}, `"a b", "x\x00", "", é`},
		{[]string{strings.Repeat("x", 50)}, strings.Repeat("x", 40) + "..."},
		{strings.Split("1,2,3,4,5,6,7,8,9,10", ","), "1, 2, 3, 4, 5, 6, 7, 8, ... (2 more)"},
	} {
		if got := List(c.in); got != c.want {
			t.Errorf("List(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	// An offer at the size a ClientHello allows stays short: 8 names of
	// 40 bytes, each at most 4 times that quoted.
	huge := make([]string, 250)
	for i := range huge {
		huge[i] = strings.Repeat("\xff", 255)
	}
	if n := len(List(huge)); n > 1500 {
		t.Fatalf("List of a 64 KB offer is %d bytes", n)
	}
}
