package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/queue"
	"github.com/hotline-link/hotline/transport/pki"
)

// sendGrace is how much longer than --timeout send waits for the daemon's
// answer before giving up on it.
const sendGrace = 30 * time.Second

// waitStates are the valid --wait values, in the order a message reaches
// them.
var waitStates = []string{"queued", "delivered", "read"}

type sendOpts struct {
	to, precedence, key, wait string
	from, mtype               string
	ttl, timeout              time.Duration
	json                      bool
}

func newSendCmd(e *env) *cobra.Command {
	var o sendOpts
	cmd := &cobra.Command{
		Use:   "send --to SITE[/MAILBOX] [flags] [FILE|-]",
		Short: "Submit a message read from FILE or stdin",
		Long: `send submits one message, read from FILE or from stdin (no FILE or -),
and prints its id (the whole message status with --json).

It returns once the origin site has committed the message (--wait queued),
or once the message is delivered or read at the destination (--wait
delivered|read). With --id KEY, resubmitting the same KEY is safe: the
message is stored at most once.

Exit status: 0 the message is stored and reached --wait; 3 it is stored
(the id is printed) but did not reach --wait within --timeout, or expired
first: do not send it again; 4 the site could not commit in time and the
message may or may not be stored: the error names its id (check with
"hotlinectl get ID"), and resending with the same --id is safe; 2 usage
errors; 1 any other error (nothing was stored).`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("send takes at most one FILE (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			file := "-"
			if len(args) == 1 {
				file = args[0]
			}
			return e.send(c.Context(), o, file)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "destination `SITE` or SITE/MAILBOX (required; SITE alone: its default mailbox)")
	f.StringVar(&o.from, "from", "", "send from `MAILBOX` of this site (default: the default mailbox)")
	f.StringVar(&o.mtype, "type", "", "the payload's media `TYPE` (default application/octet-stream; application/stix+json;version=2.1 is validated)")
	f.StringVar(&o.precedence, "precedence", "routine", "`LEVEL`: flash, immediate, priority or routine")
	f.StringVar(&o.key, "id", "", "idempotency `KEY`: resubmitting it never stores a second message")
	f.DurationVar(&o.ttl, "ttl", 0, "expire the message if not delivered within `DUR` (0 = never)")
	f.StringVar(&o.wait, "wait", "queued", "wait until the message is in `STATE`: queued, delivered or read")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up waiting for --wait after `DUR`")
	f.BoolVar(&o.json, "json", false, "print the message status as JSON")
	return cmd
}

func (o *sendOpts) validate() error {
	if o.to == "" {
		return usagef("send: --to SITE is required")
	}
	site, box, hasBox := strings.Cut(o.to, "/")
	if err := pki.ValidName(site); err != nil {
		return usagef("send: --to: %v", err)
	}
	if hasBox {
		if err := queue.ValidMailbox(box); err != nil || box == "" {
			return usagef("send: --to %q: the mailbox must be 1 to 64 lowercase letters, digits, '-' or '_'", o.to)
		}
	}
	if o.from != "" {
		if err := queue.ValidMailbox(o.from); err != nil {
			return usagef("send: --from %q: a mailbox is 1 to 64 lowercase letters, digits, '-' or '_'", o.from)
		}
	}
	if err := checkPrecedence(o.precedence); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if _, ok := waitState(o.wait); !ok {
		return usagef("send: --wait %q is not one of %s", o.wait, strings.Join(waitStates, ", "))
	}
	if o.ttl < 0 {
		return usagef("send: --ttl %s is negative", o.ttl)
	}
	if o.timeout <= 0 {
		return usagef("send: --timeout %s must be positive", o.timeout)
	}
	return nil
}

// waitState is the state a --wait value names, if it is one of
// waitStates.
func waitState(s string) (queue.State, bool) {
	if !slices.Contains(waitStates, s) {
		return 0, false
	}
	st, err := queue.ParseState(s)
	return st, err == nil
}

func (e *env) send(ctx context.Context, o sendOpts, file string) error {
	payload, err := e.readPayload(file)
	if err != nil {
		return err
	}
	if len(payload) == 0 {
		if file == "-" {
			return fmt.Errorf("send: nothing to send: stdin was empty")
		}
		return fmt.Errorf("send: nothing to send: %s is empty", file)
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout+sendGrace)
	defer cancel()
	m, err := e.client().Submit(ctx, client.SubmitRequest{
		To:         o.to,
		From:       o.from,
		Type:       o.mtype,
		Precedence: o.precedence,
		Key:        o.key,
		TTL:        o.ttl,
		Wait:       o.wait,
		Timeout:    o.timeout,
		Payload:    payload,
	})
	if err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && ae.ID != "" {
			return fmt.Errorf("send: %w: %w; it may have been stored as %s: check with \"hotlinectl get %s\" before sending it again without --id", ErrOutcomeUnknown, err, safe(ae.ID), safe(ae.ID))
		}
		return fmt.Errorf("send: %w", err)
	}
	if o.json {
		err = writeJSON(e.stdout, m)
	} else {
		_, err = fmt.Fprintln(e.stdout, safe(m.ID))
	}
	if err != nil {
		return fmt.Errorf("send: write output: %w", err)
	}
	if m.Existing && !o.json {
		fmt.Fprintf(e.stderr, "hotlinectl: note: --id %s was already submitted; this is the stored message\n", o.key)
	}
	if m.State == queue.Held.String() && !o.json {
		fmt.Fprintf(e.stderr, "hotlinectl: note: %s is held for two-person release: another releaser of mailbox %s runs \"hotlinectl release %s\"\n", safe(m.ID), safe(m.FromMailbox), safe(m.ID))
	}
	return checkReached(m, o.wait, o.timeout)
}

// checkReached returns an error matching ErrNotReached when m did not
// reach the state send waited for.
func checkReached(m *client.Message, wait string, timeout time.Duration) error {
	if m.State == "expired" && wait != "queued" {
		return &notReached{fmt.Sprintf("message %s expired before it was %s", safe(m.ID), wait)}
	}
	if m.State == "refused" && wait != "queued" {
		return &notReached{fmt.Sprintf("message %s was refused by %s: %s", safe(m.ID), safe(m.To), safe(m.RefusedReason))}
	}
	have, err := queue.ParseState(m.State)
	want, ok := waitState(wait)
	if have == queue.Held && want == queue.Queued {
		return nil // stored, waiting for its release (the note above)
	}
	if m.WaitTimedOut || (err == nil && ok && !have.AtLeast(want)) {
		return &notReached{fmt.Sprintf("message %s is still %s after %s (it is stored: do not send it again)", safe(m.ID), safe(m.State), timeout)}
	}
	return nil
}

// notReached is an error matching ErrNotReached.
type notReached struct{ msg string }

func (e *notReached) Error() string        { return e.msg }
func (e *notReached) Is(target error) bool { return target == ErrNotReached }

// readPayload reads the whole of file, or stdin for "-".
func (e *env) readPayload(file string) ([]byte, error) {
	if file == "-" {
		if e.stdin == nil {
			return nil, nil
		}
		b, err := io.ReadAll(e.stdin)
		if err != nil {
			return nil, fmt.Errorf("send: read stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	return b, nil
}
