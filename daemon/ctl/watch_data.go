package ctl

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
)

// What one refresh of the watch console reads, and its bounds: at most
// watchMaxUnread unread messages, of which each keeps at most
// watchMaxPayload bytes of payload for the read view (recv prints all).
const (
	watchMaxUnread  = 1000
	watchMaxPayload = 64 << 10
	watchMaxBytes   = 16 << 20 // inbox bytes read per refresh
)

// defaultReadObjectives are ACP 121's read objectives, used for a
// message whose mailbox's objectives the status does not give (an older
// daemon).
var defaultReadObjectives = map[string]time.Duration{
	"flash":     10 * time.Minute,
	"immediate": 30 * time.Minute,
	"priority":  3 * time.Hour,
	"routine":   6 * time.Hour,
}

// watchData is what one refresh read.
type watchData struct {
	at        time.Time
	status    *client.Status
	statusErr error
	unread    []watchMsg
	more      bool // more unread messages than watchMaxUnread (or watchMaxBytes)
	inboxErr  error
	held      []client.HeldMessage
	heldShown bool // the daemon answered the held list (it has one and lets this caller see it)
	heldErr   error
}

// watchMsg is an unread message, its payload cut to watchMaxPayload.
type watchMsg struct {
	client.InboxMessage
	size int // the payload's whole length
}

// fetchWatchData reads the status, the mailbox's unread messages and
// its held messages. The held list is left out, without an error, when
// the daemon has no such endpoint (404) or refuses it to this caller
// (403).
func fetchWatchData(ctx context.Context, c *client.Client, mailbox string) watchData {
	ctx, cancel := context.WithTimeout(ctx, watchRequestTimeout)
	defer cancel()
	d := watchData{}
	d.status, d.statusErr = c.Status(ctx)
	d.unread, d.more, d.inboxErr = readUnread(ctx, c, mailbox)
	h, err := c.Held(ctx, mailbox)
	var ae *client.APIError
	switch {
	case err == nil:
		d.held, d.heldShown = h.Messages, true
	case errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusForbidden):
	default:
		d.heldErr = err
	}
	d.at = time.Now()
	return d
}

// readUnread pages through the mailbox's unread messages, up to the
// console's bounds.
func readUnread(ctx context.Context, c *client.Client, mailbox string) ([]watchMsg, bool, error) {
	var out []watchMsg
	var after uint64
	read := 0
	for {
		if len(out) >= watchMaxUnread || read >= watchMaxBytes {
			return out, true, nil
		}
		in, err := c.ReadInbox(ctx, client.InboxRequest{After: after, Max: min(maxInboxBatch, watchMaxUnread-len(out)), Mailbox: mailbox})
		if err != nil {
			return nil, false, err
		}
		if len(in.Messages) == 0 || in.Next <= after {
			return out, false, nil
		}
		for _, m := range in.Messages {
			read += len(m.Payload)
			w := watchMsg{InboxMessage: m, size: len(m.Payload)}
			if len(m.Payload) > watchMaxPayload {
				w.Payload = append([]byte(nil), m.Payload[:watchMaxPayload]...)
			}
			out = append(out, w)
		}
		after = in.Next
	}
}

// err is the refresh's error for the status line, nil when every part
// answered.
func (d *watchData) err() error {
	if errors.Is(d.statusErr, client.ErrUnreachable) {
		return fmt.Errorf("refresh: %w", d.statusErr) // and so was everything else
	}
	var errs []error
	for _, e := range []struct {
		what string
		err  error
	}{{"status", d.statusErr}, {"inbox", d.inboxErr}, {"held", d.heldErr}} {
		if e.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.what, e.err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return fmt.Errorf("refresh: %w", errs[0])
	}
	return fmt.Errorf("refresh: %w; %w", errs[0], errors.Join(errs[1:]...))
}

// dropUnread removes an acknowledged message until the next refresh
// confirms it.
func (d *watchData) dropUnread(id string) {
	d.unread = slices.DeleteFunc(slices.Clone(d.unread), func(m watchMsg) bool { return m.ID == id })
}

// watchRow is one selectable row: an unread message or a held one.
type watchRow struct {
	msg     *watchMsg
	held    *client.HeldMessage
	due     time.Time // when its read objective passes (zero: unknown)
	overdue bool
}

func (r *watchRow) id() string {
	if r.held != nil {
		return r.held.ID
	}
	return r.msg.ID
}

// rows lists the unread messages by precedence (flash first), oldest
// first within one, each marked overdue when the daemon says so
// (Status.Overdue) or when now is past its submission plus its
// mailbox's read objective; then the held messages, oldest first.
func (d *watchData) rows(now time.Time) []watchRow {
	serverOverdue := map[string]bool{}
	objectives := map[string]map[string]string{}
	if d.status != nil {
		for _, o := range d.status.Overdue {
			if o.Direction == "inbound" {
				serverOverdue[o.ID] = true
			}
		}
		for _, mb := range d.status.Mailboxes {
			objectives[mb.Name] = mb.Objectives
		}
	}
	rows := make([]watchRow, 0, len(d.unread)+len(d.held))
	for i := range d.unread {
		m := &d.unread[i]
		r := watchRow{msg: m, overdue: serverOverdue[m.ID]}
		if obj, ok := readObjective(objectives, m.Mailbox, m.Precedence); ok && !m.SubmittedAt.IsZero() {
			r.due = m.SubmittedAt.Add(obj)
			r.overdue = r.overdue || now.After(r.due)
		}
		rows = append(rows, r)
	}
	slices.SortStableFunc(rows, func(a, b watchRow) int {
		if pa, pb := precedenceRank(a.msg.Precedence), precedenceRank(b.msg.Precedence); pa != pb {
			return pa - pb
		}
		if a.msg.Pos < b.msg.Pos {
			return -1
		}
		if a.msg.Pos > b.msg.Pos {
			return 1
		}
		return 0
	})
	for i := range d.held {
		rows = append(rows, watchRow{held: &d.held[i]})
	}
	return rows
}

// readObjective is the read objective of a message of precedence prec
// in mailbox: the status's (the daemon's config), else ACP 121's.
func readObjective(objectives map[string]map[string]string, mailbox, prec string) (time.Duration, bool) {
	if mailbox == "" {
		mailbox = queue.DefaultMailbox
	}
	if s, ok := objectives[mailbox][prec]; ok {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			return d, true
		}
	}
	d, ok := defaultReadObjectives[prec]
	return d, ok
}

// precedenceRank orders precedences highest first; unknown ones last.
func precedenceRank(p string) int {
	if i := slices.Index(precedences, p); i >= 0 {
		return i
	}
	return len(precedences)
}

// overdueOutbound counts this site's sent messages past their read
// objective at their destination (no read receipt yet).
func (d *watchData) overdueOutbound() int {
	n := 0
	if d.status != nil {
		for _, o := range d.status.Overdue {
			if o.Direction == "outbound" {
				n++
			}
		}
	}
	return n
}
