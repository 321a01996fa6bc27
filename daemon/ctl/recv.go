package ctl

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/internal/ctxsleep"
	"github.com/hotline-link/hotline/queue"
)

// Inbox limits of the local API.
const (
	maxInboxBatch = 1000
	maxInboxWait  = 5 * time.Minute
	maxInboxBytes = 16 << 20
)

// followWait is the long-poll duration of recv --follow without --wait.
const followWait = 30 * time.Second

type recvOpts struct {
	ack, follow, json bool
	max               int
	maxBytes          int64
	wait              time.Duration
	waitSet           bool
	after             uint64
	mailbox           string
}

func newRecvCmd(e *env) *cobra.Command {
	var o recvOpts
	cmd := &cobra.Command{
		Use:   "recv [--ack] [--follow] [--max N] [--max-bytes BYTES] [--wait DUR] [--after N] [--json]",
		Short: "Print unread messages of this site's inbox",
		Long: `recv prints the unread messages of this site's inbox, oldest first: a
header line per message (#pos from=SITE[/MAILBOX] precedence=... seq=...
id=... submitted=... [mailbox=...] [type=...]; mailbox and type only when
not the default ones) followed by its payload, or with --json one JSON object per
line (payload in base64).

Header fields that are not plainly printable (they come from the sending
site) are shown quoted with Go escapes. The payload is written as is when
stdout is not a terminal; on a terminal, control characters (except
newline and tab), invalid UTF-8 and the backslash are shown as escapes
(\x1b, \u202e, \\). --json output is always exact (payload in base64).

A message whose payload the daemon cannot open (its envelope does not
decrypt with the site's keys) is named on stderr instead, is not
acknowledged, and makes recv exit non-zero; with --json its object has
an "error" field and no payload.

--ack marks the printed messages read, which sends their read receipts.
--follow keeps waiting for new messages until interrupted. --wait waits that
long for a message when none is unread (default 0, or 30s with --follow).`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			o.waitSet = c.Flags().Changed("wait")
			if err := o.validate(); err != nil {
				return err
			}
			return e.recv(c.Context(), o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.ack, "ack", false, "acknowledge (mark read) the printed messages")
	f.BoolVar(&o.follow, "follow", false, "keep printing new messages until interrupted")
	f.IntVar(&o.max, "max", 100, "print at most `N` messages per request (1-1000)")
	f.Int64Var(&o.maxBytes, "max-bytes", 0, "at most `BYTES` of messages per request (0 = the daemon's default, 4 MiB; at most 16 MiB); the first message always")
	f.DurationVar(&o.wait, "wait", 0, "wait up to `DUR` for a message when none is unread (at most 5m)")
	f.Uint64Var(&o.after, "after", 0, "print only messages after inbox position `N`")
	f.StringVar(&o.mailbox, "mailbox", "", "read only `MAILBOX` (default: every mailbox this user may read)")
	f.BoolVar(&o.json, "json", false, "print one JSON object per message")
	return cmd
}

func (o *recvOpts) validate() error {
	if o.max < 1 || o.max > maxInboxBatch {
		return usagef("recv: --max %d is out of range (1-%d)", o.max, maxInboxBatch)
	}
	if o.maxBytes < 0 || o.maxBytes > maxInboxBytes {
		return usagef("recv: --max-bytes %d is out of range (0-%d)", o.maxBytes, maxInboxBytes)
	}
	if o.wait < 0 || o.wait > maxInboxWait {
		return usagef("recv: --wait %s is out of range (0-%s)", o.wait, maxInboxWait)
	}
	if o.follow {
		if !o.waitSet {
			o.wait = followWait
		} else if o.wait == 0 {
			return usagef("recv: --wait must be positive with --follow")
		}
	}
	return nil
}

func (e *env) recv(ctx context.Context, o recvOpts) error {
	c := e.client()
	after := o.after
	raw := !isTerminal(e.stdout)
	var retry backoff
	unopened := 0 // messages whose payload the daemon could not open
	for {
		in, err := c.ReadInbox(ctx, client.InboxRequest{After: after, Max: o.max, MaxBytes: o.maxBytes, Wait: o.wait, Mailbox: o.mailbox})
		if err != nil {
			if o.follow && ctx.Err() != nil {
				return nil
			}
			if o.follow && client.Retryable(err) {
				d := retry.next()
				fmt.Fprintf(e.stderr, "hotlinectl: recv: %v; retrying in %s\n", err, d)
				if ctxsleep.Sleep(ctx, d) != nil {
					return nil
				}
				continue
			}
			return fmt.Errorf("recv: %w", err)
		}
		retry.reset()
		ids := make([]string, 0, len(in.Messages))
		for i := range in.Messages {
			m := &in.Messages[i]
			after = max(after, m.Pos)
			if m.Error != "" {
				unopened++
				if !o.json {
					fmt.Fprintf(e.stderr, "hotlinectl: recv: #%d from=%s id=%s: %s (not printed, not acknowledged)\n", m.Pos, safe(m.From), safe(m.ID), safe(m.Error))
					continue
				}
			}
			if err := printInboxMessage(e.stdout, m, o.json, raw); err != nil {
				return fmt.Errorf("recv: write output: %w", err)
			}
			if m.Error == "" {
				ids = append(ids, m.ID)
			}
		}
		after = max(after, in.Next)
		if o.ack && len(ids) > 0 {
			if _, err := c.Ack(ctx, ids); err != nil {
				if o.follow && ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("recv: ack %d printed messages: %w", len(ids), err)
			}
		}
		if !o.follow {
			if unopened > 0 {
				return fmt.Errorf("recv: %d messages could not be opened (see above; the site raises an alarm)", unopened)
			}
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// printInboxMessage writes m as a header line and its payload, or as one
// JSON line. The header's fields are escaped (safe); the payload is
// written as is when raw, else escaped (escapeText).
func printInboxMessage(w io.Writer, m *client.InboxMessage, asJSON, raw bool) error {
	if asJSON {
		return writeJSON(w, m)
	}
	key := ""
	if m.Key != "" {
		key = " key=" + safe(m.Key)
	}
	from := m.From
	if m.FromMailbox != "" && m.FromMailbox != queue.DefaultMailbox {
		from += "/" + m.FromMailbox
	}
	extra := ""
	if m.Mailbox != "" && m.Mailbox != queue.DefaultMailbox {
		extra += " mailbox=" + safe(m.Mailbox)
	}
	if m.Type != "" && m.Type != "application/octet-stream" {
		extra += " type=" + safe(m.Type)
	}
	if _, err := fmt.Fprintf(w, "#%d from=%s precedence=%s seq=%d id=%s%s submitted=%s%s\n",
		m.Pos, safe(from), safe(m.Precedence), m.Seq, safe(m.ID), key, fmtTime(m.SubmittedAt), extra); err != nil {
		return err
	}
	payload := m.Payload
	if !raw {
		payload = escapeText(payload)
	}
	if _, err := w.Write(payload); err != nil {
		return err
	}
	if n := len(payload); n == 0 || payload[n-1] != '\n' {
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	return nil
}

// backoff doubles a retry delay from 250ms up to 5s.
type backoff struct{ d time.Duration }

func (b *backoff) next() time.Duration {
	switch {
	case b.d == 0:
		b.d = 250 * time.Millisecond
	case b.d < 5*time.Second:
		b.d = min(2*b.d, 5*time.Second)
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }
