package ctl

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"

	"github.com/hotline-link/hotline/daemon/client"
)

// watchFixture is a model with the data of one refresh: a two-site
// status, a routine message, an overdue flash and a fresh immediate one
// (payloads that would drive a terminal), and one held message.
func watchFixture(t *testing.T, r *lipgloss.Renderer) *watchModel {
	t.Helper()
	now := time.Date(2026, 11, 29, 8, 0, 0, 0, time.UTC)
	sock := filepath.Join(t.TempDir(), "none.sock") // nothing listens: actions fail
	m := newWatchModel(context.Background(), client.New(sock), watchOpts{mailbox: "watch", interval: time.Second}, r, func() time.Time { return now })
	msg := func(pos uint64, prec, payload string, age time.Duration) watchMsg {
		return watchMsg{InboxMessage: client.InboxMessage{
			ID: fmt.Sprintf("01a2-%d", pos), From: "alpha", FromMailbox: "ops", Mailbox: "watch", Precedence: prec,
			Seq: pos, Pos: pos, Payload: []byte(payload), SubmittedAt: now.Add(-age),
		}, size: len(payload)}
	}
	m.Update(watchFetched{data: watchData{
		at: now,
		status: &client.Status{
			Site: "bravo", Node: "bravo-2", Role: "follower", Leader: "bravo-1",
			Links:    []client.SiteLink{{Site: "alpha", ActiveNode: "alpha-1", ActivePath: "fiber", PathsUp: 5, PathsTotal: 6}},
			Outbound: []client.OutQueue{{To: "alpha", Precedence: "routine", Last: 9, Acked: 7, Queued: 2, OldestAgeMillis: 12_000}},
			Inbound:  []client.InQueue{{From: "alpha", Precedence: "flash", Last: 3}},
			Alarms:   []string{"path sat to alpha-2 down\x1b[2J"},
			Mailboxes: []client.MailboxStatus{{Name: "watch", Configured: true, Unread: 3,
				Objectives: map[string]string{"flash": "1m0s", "immediate": "30m0s", "priority": "3h0m0s", "routine": "6h0m0s"}}},
		},
		unread: []watchMsg{
			msg(1, "routine", "daily report\n", time.Hour),
			msg(2, "flash", "relay 2 \x1b[31mdown\x1b[0m\tsee\nline 2 "+strings.Repeat("x", 200)+"\n", 4*time.Minute),
			msg(3, "immediate", "\u202eevil", time.Second),
		},
		held:      []client.HeldMessage{{Message: client.Message{ID: "01a2-h1", To: "alpha", Mailbox: "cert", Precedence: "priority", SubmittedAt: now.Add(-30 * time.Second)}, SubmittedBy: "alice"}},
		heldShown: true,
	}})
	return m
}

// colourRenderer renders for a colour terminal unless NO_COLOR says
// otherwise (the environment is read as watch reads it).
func colourRenderer(t *testing.T) *lipgloss.Renderer {
	t.Setenv("TERM", "xterm-256color")
	t.Setenv("COLORTERM", "truecolor")
	return lipgloss.NewRenderer(io.Discard, termenv.WithTTY(true))
}

// checkScreen fails t unless view fits w×h.
func checkScreen(t *testing.T, view string, w, h int) []string {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) > h {
		t.Errorf("%d lines on a %dx%d screen:\n%s", len(lines), w, h, view)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("line %d is %d wide on a %dx%d screen: %q", i, n, w, h, l)
		}
	}
	return lines
}

func TestWatchViewNoColor80x24(t *testing.T) {
	r := colourRenderer(t)
	if coloured := watchFixture(t, r).View(); !strings.Contains(coloured, "\x1b[") {
		t.Fatalf("without NO_COLOR the view has no escapes, so this test would prove nothing:\n%s", coloured)
	}
	t.Setenv("NO_COLOR", "1")
	m := watchFixture(t, colourRenderer(t))
	view := m.View()
	if strings.ContainsAny(view, "\x1b\u202e") {
		t.Fatalf("NO_COLOR view has an escape or a bidi override:\n%q", view)
	}
	lines := checkScreen(t, view, 80, 24)
	t.Logf("80x24, NO_COLOR:\n%s", view)

	find := func(sub string) int {
		for i, l := range lines {
			if strings.Contains(l, sub) {
				return i
			}
		}
		t.Fatalf("no line has %q:\n%s", sub, view)
		return -1
	}
	for _, want := range []string{"bravo/bravo-2 follower, leader bravo-1", "mailbox watch",
		"alpha    via alpha-1/fiber  paths 5/6 up", "2 (12s)", "last 3", `! path sat to alpha-2 down\x1b[2J`,
		"UNREAD 3  ! 1 overdue", "HELD 1", "by alice", "ok 08:00:00Z", "a ack"} {
		find(want)
	}
	flash, imm, routine := find("relay 2"), find(`\u202eevil`), find("daily report")
	if !(flash < imm && imm < routine) {
		t.Errorf("rows not flash, immediate, routine (lines %d, %d, %d):\n%s", flash, imm, routine, view)
	}
	if l := lines[flash]; !strings.HasPrefix(l, ">! flash") || !strings.Contains(l, "late 3m00s") || !strings.Contains(l, `relay 2 \x1b[31mdown`) {
		t.Errorf("the overdue flash's row (selected, marked !, late, escaped) is %q", l)
	}
	if l := lines[routine]; strings.HasPrefix(l, " !") || !strings.Contains(l, "due 5h00m") {
		t.Errorf("the routine row (within its objective) is %q", l)
	}

	// enter reads the selected flash: escaped as recv escapes it.
	m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	view = m.View()
	checkScreen(t, view, 80, 24)
	for _, want := range []string{"message 01a2-2", "from alpha/ops  precedence flash", "! OVERDUE: read objective passed 3m00s ago",
		`relay 2 \x1b[31mdown\x1b[0m    see`, "line 2 xxx"} {
		if !strings.Contains(view, want) {
			t.Errorf("read view lacks %q:\n%s", want, view)
		}
	}
	if strings.Contains(view, "\x1b") {
		t.Errorf("read view has an escape:\n%q", view)
	}
	m.Update(tea.KeyMsg{Type: tea.KeyEsc})
	if m.reading != nil {
		t.Fatal("esc did not leave the read view")
	}
}

func TestWatchKeysAndErrors(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	m := watchFixture(t, lipgloss.NewRenderer(io.Discard))
	key := func(k string) tea.Cmd {
		t.Helper()
		var msg tea.KeyMsg
		switch k {
		case "down":
			msg = tea.KeyMsg{Type: tea.KeyDown}
		case "up":
			msg = tea.KeyMsg{Type: tea.KeyUp}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(k)}
		}
		_, cmd := m.Update(msg)
		return cmd
	}
	// R on an unread message, a on a held one: refused on the status line.
	if cmd := key("R"); cmd != nil || !m.noteErr || !strings.Contains(m.note, "not a held message") {
		t.Errorf("R on an unread message: cmd %v, note %q", cmd != nil, m.note)
	}
	for range 5 {
		key("down")
	}
	if r := m.selected(m.rows()); r == nil || r.held == nil {
		t.Fatalf("down past the end does not select the held message: %+v", r)
	}
	if cmd := key("a"); cmd != nil || !strings.Contains(m.note, "held here for release") {
		t.Errorf("a on a held message: note %q", m.note)
	}
	if cmd := key("R"); cmd == nil {
		t.Errorf("R on a held message started nothing (note %q)", m.note)
	} else if m.Update(cmd()); !m.noteErr || !strings.Contains(m.note, "release 01a2-h1") || !strings.Contains(m.note, "cannot reach hotlined") {
		t.Errorf("failed release: note %q", m.note)
	}
	// An action the daemon does not answer: the error is shown, nothing
	// crashes, and the message stays listed.
	key("up")
	cmd := key("a")
	if cmd == nil {
		t.Fatalf("a on an unread message started nothing (note %q)", m.note)
	}
	m.Update(cmd())
	if !m.noteErr || !strings.Contains(m.note, "acknowledge 01a2-1") || !strings.Contains(m.note, "cannot reach hotlined") {
		t.Errorf("failed ack: note %q", m.note)
	}
	if len(m.data.unread) != 3 {
		t.Errorf("a failed ack dropped a message")
	}
	// A refresh that fails keeps the last data and says why.
	m.Update(watchFetched{gen: m.gen, data: fetchWatchData(context.Background(), m.c, m.mailbox)})
	if m.data.status == nil || len(m.data.unread) != 3 || !strings.HasPrefix(m.note, "refresh: cannot reach hotlined") {
		t.Errorf("failed refresh: status kept %v, unread %d, note %q", m.data.status != nil, len(m.data.unread), m.note)
	}
	if q := key("q"); q == nil || fmt.Sprint(q()) != fmt.Sprint(tea.Quit()) {
		t.Errorf("q does not quit")
	}
}

// TestWatchSmallScreens: any size, even a silly one, fits and does not
// panic.
func TestWatchSmallScreens(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	for _, sz := range [][2]int{{80, 24}, {40, 10}, {20, 5}, {1, 1}, {0, 0}, {200, 3}} {
		m := watchFixture(t, lipgloss.NewRenderer(io.Discard))
		m.Update(tea.WindowSizeMsg{Width: sz[0], Height: sz[1]})
		checkScreen(t, m.View(), max(sz[0], 1), max(sz[1], 1))
		m.Update(tea.KeyMsg{Type: tea.KeyEnter})
		checkScreen(t, m.View(), max(sz[0], 1), max(sz[1], 1))
	}
}

func TestWatchFlags(t *testing.T) {
	wantUsageError(t, "", []string{"watch", "--interval", "10ms"}, "--interval 10ms is out of range")
	wantUsageError(t, "", []string{"watch", "--mailbox", "bad name!"}, `--mailbox "bad name!"`)
	wantUsageError(t, "", []string{"watch", "extra"}, "takes no arguments")
	_, _, _, err := run(t, "", "watch")
	if err == nil || !strings.Contains(err.Error(), "must be a terminal") {
		t.Errorf("watch without a terminal: %v", err)
	}
}
