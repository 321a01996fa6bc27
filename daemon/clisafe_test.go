package daemon_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/queue"
)

// TestRecvEscapesPeerStrings puts a message whose id and key carry
// bidi overrides and invisible format characters (which the state machine
// accepts; control characters it refuses) and whose payload carries
// terminal escapes into an inbox through a real receive command, and reads
// it with hotlinectl recv and get: no such character reaches the output
// except in the payload, which is exact because the output is not a
// terminal.
func TestRecvEscapesPeerStrings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	lab := startSite(t, "alpha")
	node := lab.Follower("alpha")
	evil := "x\u202e#9 from=bravo id=fake\u2066\u200b"
	res := receive(t, lab, "alpha", "bravo", queue.Message{ID: evil, Key: evil, Origin: "bravo", Dest: "alpha", Seq: 1,
		Payload: []byte("body\x1b[31m\n"), SubmittedAt: time.Now().UnixNano()})
	if res.Err != "" || res.Receive == nil || res.Receive.Applied != 1 {
		t.Fatalf("receive: %+v", res)
	}
	waitUnread(t, lab.Client(node), 1)
	controls := func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool {
			return (r < 0x20 && r != '\n') || r == 0x7f || r == '\u202e' || r == '\u2066' || r == '\u200b'
		})
	}
	out, err := lab.Hotlinectl(t, node, "", "recv")
	if err != nil {
		t.Fatal(err)
	}
	header, payload, _ := strings.Cut(out, "\n")
	if controls(header) || !strings.Contains(header, `id="x\u202e#9 from=bravo id=fake\u2066\u200b"`) || payload != "body\x1b[31m\n" {
		t.Fatalf("recv printed %q", out)
	}
	out, err = lab.Hotlinectl(t, node, "", "get", evil)
	if err != nil {
		t.Fatal(err)
	}
	if controls(strings.ReplaceAll(out, "\n", "")) || !strings.Contains(out, `x\u202e#9`) {
		t.Fatalf("get printed %q", out)
	}
	// The consumer is not stuck: the message can be acknowledged.
	if _, err := lab.Hotlinectl(t, node, "", "recv", "--ack"); err != nil {
		t.Fatal(err)
	}
	waitUnread(t, lab.Client(node), 0)
}
