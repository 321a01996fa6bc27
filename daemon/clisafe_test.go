package daemon

import (
	"strings"
	"testing"
	"time"

	"hotline/queue"
)

// TestRecvEscapesPeerStrings puts a message whose id and key carry
// terminal escapes and CR/LF (as a hostile peer site could send) into an
// inbox through a real receive command, and reads it with hotlinectl
// recv and get: no control character reaches the output except in the
// payload, which is exact because the output is not a terminal.
func TestRecvEscapesPeerStrings(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three nodes")
	}
	lab := startSite(t, "alpha")
	node := lab.follower("alpha")
	evil := "x\x1b]0;pwned\x07\r\n#9 from=bravo id=fake\u202e"
	res := lab.receive(t, "alpha", "bravo", queue.Message{ID: evil, Key: evil, Origin: "bravo", Dest: "alpha", Seq: 1,
		Payload: []byte("body\x1b[31m\n"), SubmittedAt: time.Now().UnixNano()})
	if res.Err != "" || res.Receive == nil || res.Receive.Applied != 1 {
		// The state machine may refuse such ids on receipt; then no
		// client can ever be shown one.
		t.Logf("the receive was refused: %+v", res)
		return
	}
	waitUnread(t, lab.client(node), 1)
	controls := func(s string) bool {
		return strings.ContainsFunc(s, func(r rune) bool { return (r < 0x20 && r != '\n') || r == 0x7f || r == '\u202e' })
	}
	out, err := lab.hotlinectl(t, node, "", "recv")
	if err != nil {
		t.Fatal(err)
	}
	header, payload, _ := strings.Cut(out, "\n")
	if controls(header) || !strings.Contains(header, `id="x\x1b]0;pwned\a\r\n#9 from=bravo id=fake\u202e"`) || payload != "body\x1b[31m\n" {
		t.Fatalf("recv printed %q", out)
	}
	out, err = lab.hotlinectl(t, node, "", "get", evil)
	if err != nil {
		t.Fatal(err)
	}
	if controls(strings.ReplaceAll(out, "\n", "")) || !strings.Contains(out, `\x1b]0;pwned`) {
		t.Fatalf("get printed %q", out)
	}
	// The consumer is not stuck: the message can be acknowledged.
	if _, err := lab.hotlinectl(t, node, "", "recv", "--ack"); err != nil {
		t.Fatal(err)
	}
	waitUnread(t, lab.client(node), 0)
}
