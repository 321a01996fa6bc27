package ctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// watch: a live console for the watch officer (bubbletea). The model
// (watchModel) holds the last data read from the socket and what the
// officer is looking at; commands (fetch, ack, release) run off the
// event loop and come back as messages; the view (watch_view.go) is a
// pure function of the model and the clock.

// Limits of the watch console's refresh.
const (
	watchMinInterval = 200 * time.Millisecond
	watchMaxInterval = time.Hour
	// watchRequestTimeout bounds one refresh or one action.
	watchRequestTimeout = 10 * time.Second
)

type watchOpts struct {
	mailbox  string
	interval time.Duration
}

func newWatchCmd(e *env) *cobra.Command {
	var o watchOpts
	cmd := &cobra.Command{
		Use:   "watch [--mailbox MAILBOX] [--interval DUR]",
		Short: "A live console of the site, its links and queues, and a mailbox's unread messages",
		Long: `watch is a live terminal console for the watch officer, refreshed every
--interval (default 1s) over the socket: the site, node, role and
leader; every other site's link (active node and path, paths up of
total); the queues per channel (to SITE: messages queued and the age of
the oldest; from SITE: the last sequence received); the alarms; the
mailbox's unread messages, flash first, those past their read objective
marked "!" (and shown in red); and the messages held for two-person
release, when the daemon has that list.

Keys: up/down (or k/j) select a message; enter or r reads it (the payload
escaped as recv escapes it on a terminal; esc goes back); a acknowledges
the selected message; R releases the selected held message; q or ctrl+c
quits. Errors are shown on the status line, and watch keeps refreshing.

It needs a terminal (80x24 is enough; no mouse), works over SSH, and
uses no colour when NO_COLOR is set.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			return e.watch(c.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.mailbox, "mailbox", queue.DefaultMailbox, "show the unread messages of `MAILBOX`")
	f.DurationVar(&o.interval, "interval", time.Second, "refresh every `DUR` (200ms-1h)")
	return cmd
}

func (o *watchOpts) validate() error {
	if err := queue.ValidMailbox(o.mailbox); err != nil {
		return usagef("watch: --mailbox %q: %v", o.mailbox, err)
	}
	if o.interval < watchMinInterval || o.interval > watchMaxInterval {
		return usagef("watch: --interval %s is out of range (%s-%s)", o.interval, watchMinInterval, watchMaxInterval)
	}
	return nil
}

func (e *env) watch(ctx context.Context, o watchOpts) error {
	in, inOK := e.stdin.(*os.File)
	out, outOK := e.stdout.(*os.File)
	if !inOK || !outOK || !isTerminal(in) || !isTerminal(out) {
		return errors.New("watch: stdin and stdout must be a terminal (for scripts, status and recv print the same)")
	}
	m := newWatchModel(ctx, e.client(), o, lipgloss.NewRenderer(out), time.Now)
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen())
	if _, err := p.Run(); err != nil {
		if errors.Is(err, tea.ErrInterrupted) || ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("watch: %w", err)
	}
	return nil
}

// watchModel is the console's state. It is only used by bubbletea's
// event loop (Update and View); the commands it returns touch none of it.
type watchModel struct {
	ctx      context.Context
	c        *client.Client
	mailbox  string
	interval time.Duration
	now      func() time.Time
	st       watchStyles

	width, height int

	data    watchData // the last refresh (each part kept from the last one that answered)
	fetched bool      // a refresh has come back
	gen     int       // refresh chain: results and ticks of older chains are dropped

	sel     int    // selected row (unread messages, then held ones)
	selID   string // its message id, to keep the selection across refreshes
	reading *watchRow
	readTop int      // first payload line shown
	lines   []string // the read message's payload, wrapped to width

	note    string // the status line: the last action's outcome or error
	noteErr bool
	noteAt  time.Time
}

func newWatchModel(ctx context.Context, c *client.Client, o watchOpts, r *lipgloss.Renderer, now func() time.Time) *watchModel {
	return &watchModel{
		ctx: ctx, c: c, mailbox: o.mailbox, interval: o.interval, now: now,
		st:    newWatchStyles(r),
		width: 80, height: 24,
	}
}

// Messages of the console's event loop.
type (
	watchFetched struct {
		gen  int
		data watchData
	}
	watchTick  struct{ gen int }
	watchActed struct {
		verb, id string
		err      error
	}
)

func (m *watchModel) Init() tea.Cmd { return m.fetch() }

// fetch starts a refresh of the current chain.
func (m *watchModel) fetch() tea.Cmd {
	ctx, c, mailbox, gen := m.ctx, m.c, m.mailbox, m.gen
	return func() tea.Msg {
		return watchFetched{gen: gen, data: fetchWatchData(ctx, c, mailbox)}
	}
}

// refresh starts a new refresh chain at once (after an action), so the
// older chain's results, which may predate the action, are dropped.
func (m *watchModel) refresh() tea.Cmd {
	m.gen++
	return m.fetch()
}

func (m *watchModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		if m.reading != nil {
			m.wrapPayload()
		}
		return m, nil
	case watchFetched:
		if msg.gen != m.gen {
			return m, nil
		}
		m.apply(msg.data)
		gen := m.gen
		return m, tea.Tick(m.interval, func(time.Time) tea.Msg { return watchTick{gen} })
	case watchTick:
		if msg.gen != m.gen {
			return m, nil
		}
		return m, m.fetch()
	case watchActed:
		if msg.err != nil {
			m.setNote(true, "%s %s: %v", msg.verb, msg.id, msg.err)
			return m, nil
		}
		m.setNote(false, "%s %s", pastTense(msg.verb), msg.id)
		if msg.verb == "acknowledge" {
			m.data.dropUnread(msg.id)
			if m.reading != nil && m.reading.id() == msg.id {
				m.reading = nil
			}
			m.selectRow(m.sel)
		}
		return m, m.refresh()
	case tea.KeyMsg:
		return m.key(msg.String())
	}
	return m, nil
}

func (m *watchModel) key(k string) (tea.Model, tea.Cmd) {
	if k == "ctrl+c" || k == "q" {
		return m, tea.Quit
	}
	if m.reading != nil {
		page := max(m.payloadHeight()-1, 1)
		switch k {
		case "esc", "backspace", "left", "h":
			m.reading = nil
		case "up", "k":
			m.scroll(-1)
		case "down", "j":
			m.scroll(1)
		case "pgup", "b":
			m.scroll(-page)
		case "pgdown", " ", "f":
			m.scroll(page)
		case "home", "g":
			m.readTop = 0
		case "end", "G":
			m.scroll(len(m.lines))
		case "a":
			return m, m.act("acknowledge", m.reading)
		case "R":
			return m, m.act("release", m.reading)
		}
		return m, nil
	}
	rows := m.rows()
	switch k {
	case "up", "k":
		m.selectRow(m.sel - 1)
	case "down", "j":
		m.selectRow(m.sel + 1)
	case "pgup":
		m.selectRow(m.sel - 10)
	case "pgdown":
		m.selectRow(m.sel + 10)
	case "home", "g":
		m.selectRow(0)
	case "end", "G":
		m.selectRow(len(rows) - 1)
	case "enter", "r":
		if r := m.selected(rows); r != nil {
			m.reading, m.readTop = r, 0
			m.wrapPayload()
		} else {
			m.setNote(true, "no message selected")
		}
	case "a":
		return m, m.act("acknowledge", m.selected(rows))
	case "R":
		return m, m.act("release", m.selected(rows))
	}
	return m, nil
}

// act starts verb ("acknowledge" or "release") on r, or says on the
// status line why it cannot.
func (m *watchModel) act(verb string, r *watchRow) tea.Cmd {
	switch {
	case r == nil:
		m.setNote(true, "%s: no message selected", verb)
		return nil
	case verb == "acknowledge" && r.held != nil:
		m.setNote(true, "acknowledge: %s is held here for release, not an unread message (R releases it)", safe(r.id()))
		return nil
	case verb == "acknowledge" && r.msg.Error != "":
		m.setNote(true, "acknowledge: the payload of %s did not open (%s); not acknowledged", safe(r.id()), oneLine(r.msg.Error))
		return nil
	case verb == "release" && r.held == nil:
		m.setNote(true, "release: %s is not a held message (only the HELD list can be released)", safe(r.id()))
		return nil
	}
	ctx, c, id := m.ctx, m.c, r.id()
	m.setNote(false, "%s %s…", verb, safe(id))
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, watchRequestTimeout)
		defer cancel()
		var err error
		if verb == "acknowledge" {
			_, err = c.Ack(ctx, []string{id})
		} else {
			_, err = c.Release(ctx, id)
		}
		return watchActed{verb: verb, id: id, err: err}
	}
}

func pastTense(verb string) string {
	if verb == "acknowledge" {
		return "acknowledged"
	}
	return "released"
}

func (m *watchModel) setNote(isErr bool, format string, args ...any) {
	m.note, m.noteErr, m.noteAt = oneLine(fmt.Sprintf(format, args...)), isErr, m.now()
}

// apply takes a refresh's data: each part replaces the last only when
// it answered; errors go to the status line.
func (m *watchModel) apply(d watchData) {
	m.fetched = true
	old := m.data
	if d.statusErr != nil {
		d.status = old.status
	}
	if d.inboxErr != nil {
		d.unread, d.more = old.unread, old.more
	}
	if d.heldErr != nil {
		d.held, d.heldShown = old.held, old.heldShown
	}
	m.data = d
	if err := d.err(); err != nil {
		m.setNote(true, "%v", err)
	} else if m.noteErr && strings.HasPrefix(m.note, "refresh:") {
		m.note, m.noteErr = "", false
	}
	m.selectRow(m.sel)
}

// rows are the selectable rows: unread messages by precedence (flash
// first), oldest first, then the held messages.
func (m *watchModel) rows() []watchRow { return m.data.rows(m.now()) }

// selectRow selects row i (clamped); when the selected message is still
// listed after a refresh, it stays selected.
func (m *watchModel) selectRow(i int) {
	rows := m.rows()
	if m.selID != "" {
		for j := range rows {
			if rows[j].id() == m.selID && i == m.sel {
				i = j
				break
			}
		}
	}
	m.sel = min(max(i, 0), max(len(rows)-1, 0))
	m.selID = ""
	if m.sel < len(rows) {
		m.selID = rows[m.sel].id()
	}
}

func (m *watchModel) selected(rows []watchRow) *watchRow {
	if m.sel < 0 || m.sel >= len(rows) {
		return nil
	}
	r := rows[m.sel]
	return &r
}

func (m *watchModel) scroll(n int) {
	m.readTop = min(max(m.readTop+n, 0), max(len(m.lines)-m.payloadHeight(), 0))
}
