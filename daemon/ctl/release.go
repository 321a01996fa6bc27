package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
)

func newHeldCmd(e *env) *cobra.Command {
	var asJSON bool
	var mailbox string
	cmd := &cobra.Command{
		Use:   "held [--mailbox MAILBOX] [--json]",
		Short: "List the messages held for two-person release",
		Long: `held lists the messages waiting for two-person release at this site
(sent from a mailbox with release = true): id, sending mailbox,
destination, precedence, size, when and by whom it was submitted. Only
the mailboxes this user may release or send from are shown; --mailbox
MAILBOX shows one. Another of the mailbox's releasers than the submitter
releases one with "hotlinectl release ID". At most 1000 are listed.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return e.held(c.Context(), mailbox, asJSON)
		},
	}
	cmd.Flags().StringVar(&mailbox, "mailbox", "", "list only the messages sent from `MAILBOX`")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the reply as JSON")
	return cmd
}

func (e *env) held(ctx context.Context, mailbox string, asJSON bool) error {
	r, err := e.client().Held(ctx, mailbox)
	if err != nil {
		return fmt.Errorf("held: %w", err)
	}
	if asJSON {
		err = writeJSON(e.stdout, r)
	} else {
		err = printHeld(e.stdout, r)
	}
	if err != nil {
		return fmt.Errorf("held: write output: %w", err)
	}
	return nil
}

// printHeld writes one line per held message, or a line saying there is
// none.
func printHeld(w io.Writer, r *client.HeldReply) error {
	if len(r.Messages) == 0 {
		_, err := fmt.Fprintln(w, "no held messages")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tFROM\tTO\tPRECEDENCE\tSIZE\tSUBMITTED\tBY")
	for _, m := range r.Messages {
		fmt.Fprintf(tw, "%s\t%s\t%s/%s\t%s\t%d\t%s\t%s\n", safe(m.ID), safe(m.FromMailbox), safe(m.To), safe(m.Mailbox),
			safe(m.Precedence), m.Size, fmtTime(m.SubmittedAt), byText(m.SubmittedBy))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.More {
		_, err := fmt.Fprintln(w, "(more are held: list one mailbox with --mailbox)")
		return err
	}
	return nil
}

// byText is who submitted, "user alice (uid 1001)", as the last column:
// spaces kept, anything a terminal would act on escaped.
func byText(s string) string {
	return strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(string(escapeText([]byte(s))))
}

func newReleaseCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "release ID [--json]",
		Short: "Release a held message: it is queued for sending",
		Long: `release releases the held message ID (see "hotlinectl held"): it
enters its channel, gets its sequence number and is sent. The caller must
be one of the releasers of the mailbox it was sent from, and not the
user who submitted it (another uid): the daemon refuses the submitter
(403) and a message released already (409, naming who released it). The
audit log records the submitter and the releaser. Prints the message's
id and sequence number.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("release takes exactly one message ID (got %d arguments)", len(args))
			}
			if args[0] == "" {
				return usagef("release: message ID is empty")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			m, err := e.client().Release(c.Context(), args[0])
			if err != nil {
				return fmt.Errorf("release %s: %w", safe(args[0]), err)
			}
			if asJSON {
				err = writeJSON(e.stdout, m)
			} else {
				_, err = fmt.Fprintf(e.stdout, "released %s: %s -> %s/%s %s seq %d, %s\n", safe(m.ID), safe(m.From), safe(m.To), safe(m.Mailbox), safe(m.Precedence), m.Seq, safe(m.State))
			}
			if err != nil {
				return fmt.Errorf("release: write output: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the released message as JSON")
	return cmd
}
