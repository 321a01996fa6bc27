package ctl

import (
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
)

// TestCheckReachedHeld: a held message is stored, so send's default wait
// (queued) is met; a wait for delivery that ends with the message held
// is exit status 3.
func TestCheckReachedHeld(t *testing.T) {
	if err := checkReached(&client.Message{ID: "m1", State: "held"}, "queued", 30e9); err != nil {
		t.Errorf("held, wait queued: %v", err)
	}
	err := checkReached(&client.Message{ID: "m1", State: "held", WaitTimedOut: true}, "delivered", 30e9)
	if ExitCode(err) != 3 || !strings.Contains(err.Error(), "still held") {
		t.Errorf("held, wait delivered: %v (exit code %d)", err, ExitCode(err))
	}
}

func TestPrintHeld(t *testing.T) {
	var b strings.Builder
	if err := printHeld(&b, &client.HeldReply{}); err != nil || b.String() != "no held messages\n" {
		t.Fatalf("empty: %q %v", b.String(), err)
	}
	b.Reset()
	at := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	r := &client.HeldReply{More: true, Messages: []client.HeldMessage{{
		Message:     client.Message{ID: "m\x1b1", FromMailbox: "cert", To: "bravo", Mailbox: "cert", Precedence: "flash", Size: 42, SubmittedAt: at},
		SubmittedBy: "user alice (uid 1001)",
	}, {
		Message:     client.Message{ID: "m2"},
		SubmittedBy: "user \x1b[31m\nx",
	}}}
	if err := printHeld(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"ID", `"m\x1b1"`, "cert", "bravo/cert", "flash", "42", "2026-11-29T08:00:00.000Z", "  user alice (uid 1001)\n", "more are held", `user \x1b[31m\nx`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
