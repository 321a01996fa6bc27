package ctl

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// The console's screen, list mode (80x24, two sites):
//
//	12:00:03Z  watch  alpha/alpha-1 leader, leader alpha-1  mailbox watch
//	LINKS   bravo  via bravo-1/fiber  paths 6/6 up
//	QUEUES          flash        immediate    priority     routine
//	  to bravo      0            0            2 (12s)      0
//	  from bravo    last 3       last 0       last 7       last 0
//	ALARMS  none
//	UNREAD 2  overdue 1
//	>! flash      bravo/ops       4m10s  late 3m10s  path to relay 2 down…
//	   routine    bravo           1m02s  due 4h58m   daily report
//	HELD 1  (R releases)
//	   priority   to bravo/cert   by alice  30s
//	…
//	ok 12:00:03Z  acknowledged 0199…
//	up/down select  enter/r read  a ack  R release  q quit
//
// Every line is cut to the terminal's width and the screen to its
// height; "!" marks an overdue message and ">" the selection, so both
// show without colour (NO_COLOR: lipgloss renders no escapes at all).

// Section limits of the list screen, so the messages keep most of it.
const (
	watchMaxLinkLines  = 3
	watchMaxQueueSites = 2
	watchMaxAlarmLines = 3
	watchPreviewBytes  = 256 // of a payload, for its row
	watchMaxErrorLines = 3
)

// watchStyles are the console's styles, from a renderer that knows the
// terminal's colour profile (Ascii when NO_COLOR is set: plain text).
type watchStyles struct {
	plain, title, section, selected, overdue, flash, err, dim lipgloss.Style
}

func newWatchStyles(r *lipgloss.Renderer) watchStyles {
	return watchStyles{
		plain:    r.NewStyle(),
		title:    r.NewStyle().Bold(true).Reverse(true),
		section:  r.NewStyle().Bold(true),
		selected: r.NewStyle().Reverse(true),
		overdue:  r.NewStyle().Bold(true).Foreground(lipgloss.Color("1")),
		flash:    r.NewStyle().Bold(true),
		err:      r.NewStyle().Foreground(lipgloss.Color("1")),
		dim:      r.NewStyle().Faint(true),
	}
}

// View draws the screen: the read view when a message is open, else the
// list.
func (m *watchModel) View() string {
	var lines []string
	if m.reading != nil {
		lines = m.readView()
	} else {
		lines = m.listView()
	}
	return strings.Join(lines, "\n")
}

// fit cuts plain text to the width and renders it with style s.
func (m *watchModel) fit(s lipgloss.Style, text string) string {
	text = ansi.Truncate(text, max(m.width, 1), "…")
	return s.Render(text)
}

// fitPad is fit with the text padded to the full width (for reversed
// bars).
func (m *watchModel) fitPad(s lipgloss.Style, text string) string {
	text = ansi.Truncate(text, max(m.width, 1), "…")
	if w := ansi.StringWidth(text); w < m.width {
		text += strings.Repeat(" ", m.width-w)
	}
	return s.Render(text)
}

func (m *watchModel) listView() []string {
	now := m.now()
	top := []string{m.fitPad(m.st.title, m.titleText(now))}
	if st := m.data.status; st != nil {
		top = append(top, m.linkLines(st)...)
		top = append(top, m.queueLines(st)...)
		top = append(top, m.alarmLines(st)...)
	} else if !m.fetched {
		top = append(top, m.fit(m.st.plain, "connecting to "+safe(m.c.Socket())+"…"))
	}
	bottom := m.footer("up/down select  enter/r read  a ack  R release  q quit")

	// The sections above the messages give way on a short terminal:
	// the messages keep at least half of it.
	avail := m.height - len(bottom)
	if len(top) > avail/2 && avail/2 >= 1 {
		top = top[:avail/2]
	}
	listH := max(avail-len(top), 0)
	lines := append(top, m.messageLines(now, listH)...)
	lines = append(lines, bottom...)
	if len(lines) > m.height {
		lines = lines[:max(m.height, 0)]
	}
	return lines
}

func (m *watchModel) titleText(now time.Time) string {
	t := now.UTC().Format("15:04:05Z") + "  watch"
	if st := m.data.status; st != nil {
		leader := st.Leader
		if leader == "" {
			leader = "unknown"
		}
		t += fmt.Sprintf("  %s/%s %s, leader %s", safe(st.Site), safe(st.Node), safe(st.Role), safe(leader))
	}
	return t + "  mailbox " + safe(m.mailbox)
}

func (m *watchModel) linkLines(st *client.Status) []string {
	label := "LINKS   "
	if len(st.Links) == 0 {
		return []string{m.fit(m.st.section, label+"none")}
	}
	var out []string
	for i, l := range st.Links {
		if i == watchMaxLinkLines-1 && len(st.Links) > watchMaxLinkLines {
			out = append(out, m.fit(m.st.plain, fmt.Sprintf("        … %d more sites (status shows all)", len(st.Links)-i)))
			break
		}
		via := "no active path"
		if l.ActiveNode != "" || l.ActivePath != "" {
			via = "via " + safe(dash(l.ActiveNode)) + "/" + safe(dash(l.ActivePath))
		}
		mark := " "
		if l.PathsUp == 0 {
			mark = "!"
		}
		text := fmt.Sprintf("%s %s %-8s %s  paths %d/%d up", label, mark, safe(l.Site), via, l.PathsUp, l.PathsTotal)
		s := m.st.plain
		if l.PathsUp == 0 {
			s = m.st.overdue
		}
		out = append(out, m.fit(s, text))
		label = "        "
	}
	return out
}

// queueLines is a table of the channels: a column per precedence; per
// other site a row of messages queued to it (with the oldest one's
// age) and a row of the last sequence received from it.
func (m *watchModel) queueLines(st *client.Status) []string {
	type cells map[string]string
	to, from := map[string]cells{}, map[string]cells{}
	var sites []string
	site := func(s string) {
		if _, ok := to[s]; !ok {
			to[s], from[s] = cells{}, cells{}
			sites = append(sites, s)
		}
	}
	for _, l := range st.Links {
		site(l.Site)
	}
	for _, q := range st.Outbound {
		site(q.To)
		c := strconv.FormatUint(q.Queued, 10)
		if q.Queued > 0 && q.OldestAgeMillis > 0 {
			c += " (" + fmtShortDur(time.Duration(q.OldestAgeMillis)*time.Millisecond) + ")"
		}
		to[q.To][q.Precedence] = c
	}
	for _, q := range st.Inbound {
		site(q.From)
		from[q.From][q.Precedence] = "last " + strconv.FormatUint(q.Last, 10)
	}
	if len(sites) == 0 {
		return nil
	}
	row := func(label string, c cells) string {
		s := fmt.Sprintf("  %-12s", label)
		for _, p := range precedences {
			s += fmt.Sprintf(" %-12s", dash(c[p]))
		}
		return s
	}
	head := fmt.Sprintf("%-14s", "QUEUES")
	for _, p := range precedences {
		head += fmt.Sprintf(" %-12s", p)
	}
	out := []string{m.fit(m.st.section, head)}
	for i, s := range sites {
		if i == watchMaxQueueSites {
			out = append(out, m.fit(m.st.plain, fmt.Sprintf("  … %d more sites (status shows all)", len(sites)-i)))
			break
		}
		out = append(out, m.fit(m.st.plain, row("to "+safe(s), to[s])), m.fit(m.st.plain, row("from "+safe(s), from[s])))
	}
	return out
}

func (m *watchModel) alarmLines(st *client.Status) []string {
	alarms := make([]string, 0, len(st.Alarms)+1)
	for _, a := range st.Alarms {
		alarms = append(alarms, oneLine(a))
	}
	if n := m.data.overdueOutbound(); n > 0 {
		alarms = append(alarms, fmt.Sprintf("%d sent messages past their read objective at the destination", n))
	}
	if len(alarms) == 0 {
		return []string{m.fit(m.st.section, "ALARMS  none")}
	}
	out := []string{m.fit(m.st.overdue, fmt.Sprintf("ALARMS  %d", len(alarms)))}
	for i, a := range alarms {
		if i == watchMaxAlarmLines-1 && len(alarms) > watchMaxAlarmLines {
			out = append(out, m.fit(m.st.overdue, fmt.Sprintf("  ! … %d more (status shows all)", len(alarms)-i)))
			break
		}
		out = append(out, m.fit(m.st.overdue, "  ! "+a))
	}
	return out
}

// messageLines is the UNREAD section (and HELD, when the daemon has a
// held list) in h lines, scrolled so that the selection shows.
func (m *watchModel) messageLines(now time.Time, h int) []string {
	if h <= 0 {
		return nil
	}
	rows := m.rows()
	type line struct {
		text string
		row  int // index in rows, -1 for a heading
	}
	nOverdue := 0
	for _, r := range rows {
		if r.overdue {
			nOverdue++
		}
	}
	if st := m.data.status; st != nil {
		// The daemon's count covers messages past the ones listed.
		for _, mb := range st.Mailboxes {
			if mb.Name == m.mailbox {
				n := 0
				for _, c := range mb.Overdue {
					n += c
				}
				nOverdue = max(nOverdue, n)
			}
		}
	}
	unread := len(m.data.unread)
	head := fmt.Sprintf("UNREAD %d", unread)
	if m.data.more {
		head = fmt.Sprintf("UNREAD %d+ (the first %d shown)", unread, unread)
	}
	if nOverdue > 0 {
		head += fmt.Sprintf("  ! %d overdue", nOverdue)
	}
	list := []line{{head, -1}}
	if unread == 0 {
		list = append(list, line{"   (none)", -2})
	}
	for i, r := range rows {
		if r.held != nil && (i == 0 || rows[i-1].held == nil) {
			list = append(list, line{fmt.Sprintf("HELD %d  (R releases the selected one)", len(m.data.held)), -1})
		}
		list = append(list, line{m.rowText(now, i, &r), i})
	}
	// Scroll: the window of h lines that holds the selected row, with
	// the heading above it when there is room.
	selLine := 0
	for i, l := range list {
		if l.row == m.sel {
			selLine = i
		}
	}
	start := 0
	if selLine >= h {
		start = selLine - h + 1
	}
	end := min(start+h, len(list))
	out := make([]string, 0, h)
	for _, l := range list[start:end] {
		switch {
		case l.row == -1:
			st := m.st.section
			if nOverdue > 0 && strings.HasPrefix(l.text, "UNREAD") {
				st = m.st.overdue
			}
			out = append(out, m.fit(st, l.text))
		case l.row < 0:
			out = append(out, m.fit(m.st.dim, l.text))
		default:
			r := rows[l.row]
			st := m.st.plain
			switch {
			case r.overdue:
				st = m.st.overdue
			case r.msg != nil && r.msg.Precedence == "flash":
				st = m.st.flash
			}
			if l.row == m.sel {
				st = st.Inherit(m.st.selected).Reverse(true)
				out = append(out, m.fitPad(st, l.text))
			} else {
				out = append(out, m.fit(st, l.text))
			}
		}
	}
	for len(out) < h {
		out = append(out, "")
	}
	return out
}

// rowText is one message row: selection and overdue markers, precedence,
// sender, age, objective, and the payload's first line.
func (m *watchModel) rowText(now time.Time, i int, r *watchRow) string {
	sel, od := " ", " "
	if i == m.sel {
		sel = ">"
	}
	if r.overdue {
		od = "!"
	}
	if r.held != nil {
		h := r.held
		by := ""
		if h.SubmittedBy != "" {
			by = "by " + safe(h.SubmittedBy)
		}
		return fmt.Sprintf("%s%s %-10s to %-13s %-10s %6s  %s", sel, od, safe(h.Precedence), safe(addr(h.To, h.Mailbox)), by, fmtShortDur(now.Sub(h.SubmittedAt)), safe(h.ID))
	}
	msg := r.msg
	due := ""
	switch {
	case r.overdue && !r.due.IsZero():
		due = "late " + fmtShortDur(now.Sub(r.due))
	case r.overdue:
		due = "OVERDUE"
	case !r.due.IsZero():
		due = "due " + fmtShortDur(r.due.Sub(now))
	}
	preview := "(" + oneLine(msg.Error) + ")"
	if msg.Error == "" {
		preview = oneLine(string(msg.Payload[:min(len(msg.Payload), watchPreviewBytes)]))
	}
	return fmt.Sprintf("%s%s %-10s %-15s %6s  %-11s %s", sel, od, safe(msg.Precedence), safe(addr(msg.From, msg.FromMailbox)), fmtShortDur(now.Sub(msg.SubmittedAt)), due, preview)
}

// readView shows the open message: its header fields and its payload,
// escaped as recv escapes it on a terminal, scrolled.
func (m *watchModel) readView() []string {
	head := m.readHead(m.now())
	bottom := m.footer("up/down/pgup/pgdown scroll  esc back  a ack  R release  q quit")
	ph := max(m.height-len(head)-len(bottom), 0)
	body := make([]string, 0, ph)
	for i := m.readTop; i < len(m.lines) && len(body) < ph; i++ {
		body = append(body, m.fit(m.st.plain, m.lines[i]))
	}
	for len(body) < ph {
		body = append(body, "")
	}
	lines := append(head, body...)
	lines = append(lines, bottom...)
	if len(lines) > m.height {
		lines = lines[:max(m.height, 0)]
	}
	return lines
}

// readHead is the read view's lines above the payload.
func (m *watchModel) readHead(now time.Time) []string {
	r := m.reading
	var head []string
	if r.held != nil {
		h := r.held
		head = []string{
			m.fitPad(m.st.title, "held message "+safe(h.ID)),
			m.fit(m.st.plain, fmt.Sprintf("to %s  precedence %s  submitted %s (%s ago)", safe(addr(h.To, h.Mailbox)), safe(h.Precedence), fmtTime(h.SubmittedAt), fmtShortDur(now.Sub(h.SubmittedAt)))),
			m.fit(m.st.plain, fmt.Sprintf("from mailbox %s  type %s  size %d  submitted by %s", safe(dash(h.FromMailbox)), safe(dash(h.Type)), h.Size, safe(dash(h.SubmittedBy)))),
			m.fit(m.st.plain, "held for two-person release (R releases it); the console does not show held payloads"),
		}
	} else {
		msg := r.msg
		st := m.st.title
		head = []string{m.fitPad(st, "message "+safe(msg.ID))}
		line := fmt.Sprintf("from %s  precedence %s  submitted %s (%s ago)", safe(addr(msg.From, msg.FromMailbox)), safe(msg.Precedence), fmtTime(msg.SubmittedAt), fmtShortDur(now.Sub(msg.SubmittedAt)))
		head = append(head, m.fit(m.st.plain, line))
		line = fmt.Sprintf("mailbox %s  type %s  seq %d  size %d", safe(dash(msg.Mailbox)), safe(dash(msg.Type)), msg.Seq, msg.size)
		if msg.Key != "" {
			line += "  key " + safe(msg.Key)
		}
		head = append(head, m.fit(m.st.plain, line))
		switch {
		case r.overdue && !r.due.IsZero():
			head = append(head, m.fit(m.st.overdue, fmt.Sprintf("! OVERDUE: read objective passed %s ago (due %s)", fmtShortDur(now.Sub(r.due)), fmtTime(r.due))))
		case r.overdue:
			head = append(head, m.fit(m.st.overdue, "! OVERDUE: past its read objective"))
		case !r.due.IsZero():
			head = append(head, m.fit(m.st.plain, fmt.Sprintf("read objective: due in %s (%s)", fmtShortDur(r.due.Sub(now)), fmtTime(r.due))))
		}
	}
	return append(head, m.fit(m.st.dim, strings.Repeat("-", max(m.width, 1))))
}

// payloadHeight is how many payload lines the read view shows.
func (m *watchModel) payloadHeight() int {
	if m.reading == nil {
		return 1
	}
	return max(m.height-len(m.readHead(m.now()))-2, 1)
}

// wrapPayload prepares the open message's payload for the read view:
// escaped (escapeText), tabs expanded, cut into lines of the width.
func (m *watchModel) wrapPayload() {
	r := m.reading
	m.lines = nil
	if r == nil || r.msg == nil {
		return
	}
	msg := r.msg
	if msg.Error != "" {
		m.lines = []string{"(payload not shown: " + oneLine(msg.Error) + ")"}
		return
	}
	text := strings.ReplaceAll(string(escapeText(msg.Payload)), "\t", "    ")
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		m.lines = append(m.lines, strings.Split(ansi.Hardwrap(l, max(m.width, 1), true), "\n")...)
	}
	if msg.size > len(msg.Payload) {
		m.lines = append(m.lines, fmt.Sprintf("… (%d of %d bytes shown; recv --mailbox %s prints it whole)", len(msg.Payload), msg.size, safe(m.mailbox)))
	}
	m.scroll(0)
}

// footer is the status line (the last action or error, or when the
// data was read) and the keys.
func (m *watchModel) footer(keys string) []string {
	status := "connecting…"
	st := m.st.dim
	switch {
	case m.note != "":
		status = m.noteAt.UTC().Format("15:04:05Z") + "  " + m.note
		if m.noteErr {
			status = "error " + status
			st = m.st.err
		}
	case m.fetched:
		status = "ok " + m.data.at.UTC().Format("15:04:05Z")
	}
	// An error may take up to watchMaxErrorLines lines, wrapped.
	lines := []string{status}
	if m.noteErr && m.width > 0 {
		lines = strings.Split(ansi.Wrap(status, m.width, ""), "\n")
		if len(lines) > watchMaxErrorLines {
			lines = lines[:watchMaxErrorLines]
			lines[len(lines)-1] += "…"
		}
	}
	out := make([]string, 0, len(lines)+1)
	for _, l := range lines {
		out = append(out, m.fit(st, l))
	}
	return append(out, m.fit(m.st.dim, keys))
}

// addr is "SITE" or "SITE/MAILBOX" (the default mailbox left out).
func addr(site, mailbox string) string {
	if mailbox == "" || mailbox == queue.DefaultMailbox {
		return site
	}
	return site + "/" + mailbox
}

// oneLine is s escaped for one line of the console: what escapeText
// escapes, and newlines and tabs as spaces.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\t", " ").Replace(string(escapeText([]byte(s))))
}

// fmtShortDur is d for a narrow column: "12s", "4m10s", "3h05m", "2d04h";
// a negative d (clock skew) is 0s.
func fmtShortDur(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	}
}
