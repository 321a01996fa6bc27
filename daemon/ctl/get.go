package ctl

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
)

func newGetCmd(e *env) *cobra.Command {
	var asJSON bool
	var proof string
	cmd := &cobra.Command{
		Use:   "get ID [--json] [--proof FILE]",
		Short: "Show a message's state and timestamps, or write its evidence bundle",
		Long: `get shows a message's state and timestamps.

With --proof FILE it writes instead the message's evidence bundle (JSON):
its metadata and payload hash, the signed statements that cover it (sent,
received, delivered, read) with their inclusion paths, and its audit
records under signed checkpoints, as this site holds them. "-" writes it
to stdout. "hotlinectl verify FILE --keys sites.pub" checks it offline.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("get takes exactly one message ID (got %d arguments)", len(args))
			}
			if args[0] == "" {
				return usagef("get: message ID is empty")
			}
			if proof != "" && asJSON {
				return usagef("get: --proof writes the evidence bundle, which is JSON already; drop --json")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if proof != "" {
				return e.getProof(c.Context(), args[0], proof)
			}
			return e.get(c.Context(), args[0], asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the message status as JSON")
	cmd.Flags().StringVar(&proof, "proof", "", "write the message's evidence bundle to `FILE` (- for stdout)")
	return cmd
}

func (e *env) get(ctx context.Context, id string, asJSON bool) error {
	m, err := e.client().Get(ctx, id)
	if err != nil {
		return fmt.Errorf("get %s: %w", id, err)
	}
	if asJSON {
		err = writeJSON(e.stdout, m)
	} else {
		err = printMessage(e.stdout, m)
	}
	if err != nil {
		return fmt.Errorf("get: write output: %w", err)
	}
	return nil
}

// printMessage writes m as aligned "key: value" lines; absent timestamps
// are left out.
func printMessage(w io.Writer, m *client.Message) error {
	var kv [][2]string
	add := func(k, v string) { kv = append(kv, [2]string{k, v}) }
	addTime := func(k string, t *time.Time) {
		if t != nil {
			add(k, fmtTime(*t))
		}
	}
	// Strings may come from another site: escape them (safe).
	add("id", safe(m.ID))
	if m.Key != "" {
		add("key", safe(m.Key))
	}
	add("state", safe(m.State))
	add("direction", safe(m.Direction))
	from, to := m.From, m.To
	if m.FromMailbox != "" {
		from += "/" + m.FromMailbox
	}
	if m.Mailbox != "" {
		to += "/" + m.Mailbox
	}
	add("from", safe(from))
	add("to", safe(to))
	if m.Type != "" {
		add("type", safe(m.Type))
	}
	add("precedence", safe(m.Precedence))
	add("seq", strconv.FormatUint(m.Seq, 10))
	add("size", strconv.Itoa(m.Size))
	if m.PayloadSHA256 != "" {
		add("sha256", safe(m.PayloadSHA256))
	}
	add("submitted", fmtTime(m.SubmittedAt))
	addTime("delivered", m.DeliveredAt)
	addTime("read", m.ReadAt)
	addTime("expires", m.ExpiresAt)
	addTime("expired", m.ExpiredAt)
	addTime("refused", m.RefusedAt)
	if m.RefusedReason != "" {
		add("refused reason", safe(m.RefusedReason))
	}
	if m.ReadObjective != "" {
		add("objective", "read within "+safe(m.ReadObjective))
		addTime("due", m.ReadDue)
	}
	if m.ObjectiveMet != nil {
		met := "yes"
		if !*m.ObjectiveMet {
			met = "no (read after it was due)"
		}
		add("met", met)
	}
	return writeKV(w, kv)
}

// writeKV writes "key:" padded to the longest key, then the value.
func writeKV(w io.Writer, kv [][2]string) error {
	width := 0
	for _, p := range kv {
		width = max(width, len(p[0])+1)
	}
	for _, p := range kv {
		if _, err := fmt.Fprintf(w, "%-*s %s\n", width, p[0]+":", p[1]); err != nil {
			return err
		}
	}
	return nil
}
