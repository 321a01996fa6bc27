package ctl

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
)

func newAuditCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Read, verify and export the site's audit log",
		Long: `audit reads the site's audit log: an append-only Merkle tree of every
message event (submitted, received, delivered, read, refused, expired) and every
operator action, with checkpoints of its size and root signed by the site
and exchanged with the other sites. Any caller of the socket may read it.`,
	}
	groupCommand(cmd)
	cmd.AddCommand(newAuditShowCmd(e), newAuditVerifyCmd(e), newAuditCheckpointCmd(e))
	return cmd
}

func newAuditShowCmd(e *env) *cobra.Command {
	var from, limit int64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show [--from N] [--limit N] [--json]",
		Short: "Print audit log entries",
		Long: `show prints the audit log's entries from index --from (default 0), at most
--limit of them (default 100), one a line: index, time, kind, then the
message (id, channel, sequence) or the operator action (what, by whom, on
which node, the request and its outcome). --json prints the daemon's page
as it came, with each record's canonical bytes and stored leaf hash.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if from < 0 {
				return usagef("audit show: --from %d is negative", from)
			}
			if limit < 1 || limit > 10000 {
				return usagef("audit show: --limit %d is not 1 to 10000", limit)
			}
			return e.auditShow(c.Context(), from, int(limit), asJSON)
		},
	}
	cmd.Flags().Int64Var(&from, "from", 0, "first entry's index `N`")
	cmd.Flags().Int64Var(&limit, "limit", 100, "print at most `N` entries")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the entries as JSON")
	return cmd
}

func (e *env) auditShow(ctx context.Context, from int64, limit int, asJSON bool) error {
	page, err := e.client().AuditEntries(ctx, from, limit)
	if err != nil {
		return fmt.Errorf("audit show: %w", err)
	}
	if asJSON {
		err = writeJSON(e.stdout, page)
	} else {
		for _, en := range page.Entries {
			if _, err = fmt.Fprintln(e.stdout, auditLine(&en)); err != nil {
				break
			}
		}
		if err == nil && len(page.Entries) == 0 {
			_, err = fmt.Fprintf(e.stderr, "no entries from %d (the log of %s has %d)\n", from, safe(page.Site), page.Size)
		}
	}
	if err != nil {
		return fmt.Errorf("audit show: write output: %w", err)
	}
	return nil
}

// auditLine is one entry for humans; every field from the daemon is
// escaped (safe).
func auditLine(en *client.AuditEntry) string {
	if en.Error != "" {
		return fmt.Sprintf("%d  %s", en.Index, safe("undecodable record: "+en.Error))
	}
	head := fmt.Sprintf("%d  %s  %-9s", en.Index, fmtTime(en.Time), safe(en.Kind))
	var who []string
	if en.UID != nil {
		w := fmt.Sprintf("uid=%d", *en.UID)
		if en.User != "" {
			w += "(" + safe(en.User) + ")"
		}
		who = append(who, w)
	}
	if en.PID != nil {
		who = append(who, fmt.Sprintf("pid=%d", *en.PID))
	}
	if en.Peer != "" {
		who = append(who, "site node "+safe(en.Peer))
	}
	if en.Kind != "operator" {
		line := fmt.Sprintf("%s %s %s->%s/%s seq %d", head, safe(en.ID), safe(en.Origin), safe(en.Dest), safe(en.Precedence), en.Seq)
		if len(who) > 0 { // who asked: a held message's submitter and releaser, a reader
			line += " by " + strings.Join(who, " ")
			if en.Node != "" {
				line += " on " + safe(en.Node)
			}
		}
		return line
	}
	if len(who) == 0 {
		who = append(who, "the node")
	}
	return fmt.Sprintf("%s %s by %s on %s: %s", head, safe(en.Action), strings.Join(who, " "), safe(en.Node), safe(en.Detail))
}

func newAuditCheckpointCmd(e *env) *cobra.Command {
	var site string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "checkpoint [--site SITE] [--json]",
		Short: "Print the latest signed checkpoint of the audit log",
		Long: `checkpoint prints the latest signed checkpoint of this site's audit log, or
with --site the latest this site holds of another site's: a C2SP signed
note whose text is "hotline/SITE/audit", the log's size and its root
(base64), signed with the site's key. It is what an auditor keeps to check
later that the site did not rewrite its history.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkNodeFlag("audit checkpoint", "--site", site); err != nil {
				return err
			}
			return e.auditCheckpoint(c.Context(), site, asJSON)
		},
	}
	cmd.Flags().StringVar(&site, "site", "", "another `SITE` whose held checkpoint to print (default: this site's own)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checkpoint with its size, root and proof as JSON")
	return cmd
}

func (e *env) auditCheckpoint(ctx context.Context, site string, asJSON bool) error {
	cp, err := e.client().AuditCheckpoint(ctx, site)
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if asJSON {
		err = writeJSON(e.stdout, cp)
	} else {
		_, err = e.stdout.Write(escapeText([]byte(cp.Note)))
	}
	if err != nil {
		return fmt.Errorf("audit checkpoint: write output: %w", err)
	}
	return nil
}

// writeProgress writes a progress line to w (stderr).
func writeProgress(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}
