package ctl

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

func TestSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0193a1b2-c3d4", "0193a1b2-c3d4"},
		{"bravo", "bravo"},
		{"ünïcode-ok", "ünïcode-ok"},
		{"", `""`},
		{"a b", `"a b"`},
		{"evil\x1b[31m", `"evil\x1b[31m"`},
		{"line\r\nFAKE", `"line\r\nFAKE"`},
		{"rlo\u202eexe.txt", `"rlo\u202eexe.txt"`},
		{"bad\xffutf8", `"bad\xffutf8"`},
		{`quote"d`, `"quote\"d"`},
		{`back\slash`, `"back\\slash"`},
		{"del\x7f", `"del\x7f"`},
		{"c1\u009b", `"c1\u009b"`},
	}
	for _, tt := range tests {
		if got := safe(tt.in); got != tt.want {
			t.Errorf("safe(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestEscapeText(t *testing.T) {
	in := "line 1\n\ttab\x1b[2J\rCR\x07bell \u202eRLO \xff\xfe bad \\ é\x7f"
	want := "line 1\n\ttab\\x1b[2J\\x0dCR\\x07bell \\u202eRLO \\xff\\xfe bad \\\\ é\\x7f"
	if got := string(escapeText([]byte(in))); got != want {
		t.Errorf("escapeText = %q, want %q", got, want)
	}
}

// TestPrintHostileFields checks that recv and get never write a control
// character that came from another site, except in a raw payload.
func TestPrintHostileFields(t *testing.T) {
	evil := "x\x1b]0;pwned\x07\r\n#2 from=bravo\u202e"
	m := &client.InboxMessage{ID: evil, Key: evil, From: evil, Precedence: "flash", Seq: 1, Pos: 1,
		Payload: []byte("payload\x1b[31m red\n"), SubmittedAt: time.Unix(0, 0)}
	controls := func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool { return (r < 0x20 && r != '\n') || r == 0x7f || r == '\u202e' })
	}

	var term bytes.Buffer
	if err := printInboxMessage(&term, m, false, false); err != nil {
		t.Fatal(err)
	}
	if controls(term.String()) || strings.Count(term.String(), "\n") != 2 {
		t.Errorf("terminal output has control characters or extra lines:\n%q", term.String())
	}
	if !strings.Contains(term.String(), `id="x\x1b]0;pwned\a\r\n#2 from=bravo\u202e"`) || !strings.Contains(term.String(), `payload\x1b[31m red`) {
		t.Errorf("terminal output does not show the escapes:\n%s", term.String())
	}

	// Not a terminal: the header is still escaped, the payload is exact.
	var pipe bytes.Buffer
	if err := printInboxMessage(&pipe, m, false, true); err != nil {
		t.Fatal(err)
	}
	header, payload, _ := strings.Cut(pipe.String(), "\n")
	if controls(header) || payload != string(m.Payload) {
		t.Errorf("piped output: header %q, payload %q", header, payload)
	}

	var get bytes.Buffer
	if err := printMessage(&get, &client.Message{ID: evil, Key: evil, From: evil, To: "alpha", State: "delivered", Direction: "inbound", Precedence: "flash"}); err != nil {
		t.Fatal(err)
	}
	if controls(strings.ReplaceAll(get.String(), "\n", "")) || strings.Count(get.String(), "\n") != 10 {
		t.Errorf("get output has control characters or extra lines:\n%q", get.String())
	}
}
