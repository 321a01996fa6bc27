package mailboxtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hotline-link/hotline/daemon"
	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/clustertest"
)

// tmuxPane is one 80x24 tmux pane on a tmux server of its own (its
// socket in the test's temporary directory), so the test neither sees
// nor touches the user's sessions. The server is killed when the test
// ends.
type tmuxPane struct {
	t      *testing.T
	socket string
}

func startTmux(t *testing.T, command string, env ...string) *tmuxPane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: the watch console's terminal test needs it")
	}
	p := &tmuxPane{t: t, socket: filepath.Join(t.TempDir(), "tmux.sock")}
	args := []string{"new-session", "-d", "-x", "80", "-y", "24", "-s", "watch"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	// The shell keeps the pane open after hotlinectl exits, with its
	// exit status on screen.
	p.run(append(args, command+`; echo "hotlinectl exited: $?"; sleep 600`)...)
	t.Cleanup(func() { exec.Command("tmux", "-S", p.socket, "kill-server").Run() })
	return p
}

func (p *tmuxPane) run(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", p.socket, "-f", "/dev/null"}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (p *tmuxPane) capture() string { return p.run("capture-pane", "-p", "-t", "watch") }

func (p *tmuxPane) keys(keys ...string) {
	p.run(append([]string{"send-keys", "-t", "watch"}, keys...)...)
}

// waitFor polls the screen until it shows every one of want, and
// returns that screen.
func (p *tmuxPane) waitFor(what string, want ...string) string {
	p.t.Helper()
	return p.waitUntil(fmt.Sprintf("%s (%q)", what, want), func(screen string) bool {
		for _, w := range want {
			if !strings.Contains(screen, w) {
				return false
			}
		}
		return true
	})
}

// waitUntil polls the screen until ok holds, and returns that screen.
func (p *tmuxPane) waitUntil(what string, ok func(screen string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		screen := p.capture()
		if ok(screen) {
			return screen
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the console did not show %s within 30s; screen:\n%s", what, screen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMailboxWatchConsole drives `hotlinectl watch` in a real 80x24
// terminal (tmux) against an in-process lab: a flash message sent from
// alpha to bravo/watch appears on bravo's console, turns overdue (the
// mailbox's flash objective is 1s), is read with enter (payload escaped)
// and acknowledged with a, and its state reaches read at alpha. Set
// HOTLINE_WATCH_CAPTURE=FILE to keep a capture of the overdue flash.
func TestMailboxWatchConsole(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: the watch console's terminal test needs it")
	}
	lab := clustertest.Start(t, func(c *daemon.Config) {
		c.Mailboxes = append(c.Mailboxes, daemon.MailboxConfig{
			Name: "watch", Send: []string{"*"}, Read: []string{"*"}, Ack: []string{"*"},
			Objectives: map[string]daemon.Duration{"flash": {Duration: time.Second}},
		})
	})
	bin := clustertest.Binaries(t)
	bravo := lab.Configs["bravo-2"].Socket
	pane := startTmux(t, fmt.Sprintf("%s watch --socket %s --mailbox watch --interval 250ms",
		filepath.Join(bin, "hotlinectl"), bravo), "NO_COLOR=1")
	pane.waitFor("the site and an empty mailbox", "bravo/bravo-2", "UNREAD 0")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alpha := lab.Client(lab.Leader("alpha"))
	sent, err := alpha.Submit(ctx, client.SubmitRequest{
		To: "bravo/watch", From: "default", Precedence: "flash", Type: "text/plain",
		Payload: []byte("FLASH: relay 2 \x1b[31mdown\x1b[0m, call the duty officer\n"),
		Wait:    "delivered",
	})
	if err != nil {
		t.Fatal(err)
	}
	screen := pane.waitFor("the overdue flash", "UNREAD 1  ! 1 overdue", ">! flash", "late ", "FLASH: relay 2")
	// (a few seconds late, for the capture)
	screen = pane.waitUntil("the flash 2s late", func(s string) bool {
		return strings.Contains(s, "late ") && !strings.Contains(s, "late 0s") && !strings.Contains(s, "late 1s")
	})
	t.Logf("console:\n%s", screen)
	// NO_COLOR: no cell of the pane has a colour or an attribute
	// (capture-pane -e would show them as escapes).
	if attrs := pane.run("capture-pane", "-p", "-e", "-t", "watch"); strings.Contains(attrs, "\x1b[") {
		t.Errorf("with NO_COLOR the pane has attributes:\n%q", attrs)
	}
	for i, l := range strings.Split(strings.TrimRight(screen, "\n"), "\n") {
		if n := len([]rune(l)); n > 80 {
			t.Errorf("line %d is %d wide: %q", i, n, l)
		}
	}

	// enter opens it, with the payload escaped; esc goes back.
	pane.keys("Enter")
	read := pane.waitFor("the read view", "message "+sent.ID, "! OVERDUE", `FLASH: relay 2 \x1b[31mdown\x1b[0m, call the duty officer`)
	t.Logf("read view:\n%s", read)
	if f := os.Getenv("HOTLINE_WATCH_CAPTURE"); f != "" {
		if err := os.WriteFile(f, []byte(screen+"\n"+read), 0o644); err != nil {
			t.Error(err)
		}
	}
	pane.keys("Escape")
	pane.waitFor("the list again", "UNREAD 1")

	// a acknowledges it: gone from the console, read at the origin.
	pane.keys("a")
	pane.waitFor("the acknowledgement", "acknowledged "+sent.ID, "UNREAD 0")
	clustertest.Eventually(t, 20*time.Second, "the flash read at alpha", func() bool {
		m, err := alpha.Get(ctx, sent.ID)
		return err == nil && m.State == "read"
	})

	pane.keys("q")
	pane.waitFor("hotlinectl to quit", "hotlinectl exited: 0")
}
