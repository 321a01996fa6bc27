package ctl

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/transport/pki"
)

// pathModes are the valid `path down --mode` values; the first is the
// default.
var pathModes = []string{client.ModeClose, client.ModeDrop}

// maxErrorCell bounds error texts in tables; --json has them whole.
const maxErrorCell = 60

func newPathsCmd(e *env) *cobra.Command {
	var node string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "paths [--node NODE] [--json]",
		Short: "Show every peer node × path as a node sees it, and its path admin states (admin)",
		Long: `paths shows, for every node of the other sites and every path to it, the
path's state as NODE (default: the node serving the socket) sees it: up,
down, connecting or admin-down, with "*" on the one that carried the last
batch to that site; the probe round trip and loss; when it last worked and
its last error; bytes out and in; and the last periodic link test (only
the leader runs them). Then NODE's own paths in preference order with
their administrative state (see "path down").

Needs root or the daemon's admin group.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkNodeFlag("paths", "--node", node); err != nil {
				return err
			}
			return e.paths(c.Context(), node, asJSON)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "`NODE` of this site to ask (default: the node serving the socket)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the reply as JSON")
	return cmd
}

func newPathCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "path",
		Short: "Take one of a node's paths down or bring it back up (admin)",
		Long: `"path down NAME" administratively disables path NAME on one node of this
site (default: the node serving the socket): --mode close closes the
path's connections with a reason, so the peers notice at once; --mode drop
silently drops its packets both ways, as a cut fibre would, so the peers
notice only by their probes. "path up NAME" enables it again. Both print
the path's resulting admin state.

Needs root or the daemon's admin group.`,
	}
	groupCommand(cmd)
	cmd.AddCommand(newPathDownCmd(e), newPathUpCmd(e))
	return cmd
}

func newPathDownCmd(e *env) *cobra.Command {
	var node, mode string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "down NAME [--mode close|drop] [--node NODE] [--json]",
		Short: "Disable path NAME on a node",
		Args:  pathNameArg("path down"),
		RunE: func(c *cobra.Command, args []string) error {
			if !slices.Contains(pathModes, mode) {
				return usagef("path down: --mode %q is not one of %s", mode, strings.Join(pathModes, ", "))
			}
			if err := checkNodeFlag("path down", "--node", node); err != nil {
				return err
			}
			return e.pathAdmin(c.Context(), "down", node, args[0], mode, asJSON)
		},
	}
	cmd.Flags().StringVar(&mode, "mode", client.ModeClose, "`MODE`: close (peers see it at once) or drop (a silent cut)")
	cmd.Flags().StringVar(&node, "node", "", "`NODE` of this site (default: the node serving the socket)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newPathUpCmd(e *env) *cobra.Command {
	var node string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "up NAME [--node NODE] [--json]",
		Short: "Enable path NAME on a node again",
		Args:  pathNameArg("path up"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkNodeFlag("path up", "--node", node); err != nil {
				return err
			}
			return e.pathAdmin(c.Context(), "up", node, args[0], "", asJSON)
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "`NODE` of this site (default: the node serving the socket)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// pathNameArg accepts exactly one non-empty path name.
func pathNameArg(cmd string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usagef("%s takes exactly one path NAME (got %d arguments)", cmd, len(args))
		}
		if strings.TrimSpace(args[0]) == "" || strings.Contains(args[0], "/") {
			return usagef("%s: %q is not a path name", cmd, args[0])
		}
		return nil
	}
}

// checkNodeFlag validates an optional node or site name flag.
func checkNodeFlag(cmd, flag, v string) error {
	if v == "" {
		return nil
	}
	if err := pki.ValidName(v); err != nil {
		return usagef("%s: %s: %v", cmd, flag, err)
	}
	return nil
}

func (e *env) paths(ctx context.Context, node string, asJSON bool) error {
	r, err := e.client().Paths(ctx, node)
	if err != nil {
		return client.AdminError("paths", err)
	}
	if asJSON {
		err = writeJSON(e.stdout, r)
	} else {
		err = printPaths(e.stdout, r, time.Now())
	}
	if err != nil {
		return fmt.Errorf("paths: write output: %w", err)
	}
	return nil
}

// pathAdmin runs "path down" (dir "down") or "path up" and prints the
// resulting admin state.
func (e *env) pathAdmin(ctx context.Context, dir, node, name, mode string, asJSON bool) error {
	var (
		r   *client.PathAdmin
		err error
	)
	if dir == "down" {
		r, err = e.client().PathDown(ctx, node, name, mode)
	} else {
		r, err = e.client().PathUp(ctx, node, name)
	}
	if err != nil {
		return client.AdminError("path "+dir+" "+name, err)
	}
	if asJSON {
		err = writeJSON(e.stdout, r)
	} else {
		_, err = fmt.Fprintln(e.stdout, fmtPathAdmin(r))
	}
	if err != nil {
		return fmt.Errorf("path %s: write output: %w", dir, err)
	}
	return nil
}

// fmtPathAdmin is "alpha-1: path fiber is down (drop)".
func fmtPathAdmin(a *client.PathAdmin) string {
	s := fmt.Sprintf("%s: path %s is %s", a.Node, a.Path, a.State)
	if a.Mode != "" && a.State != client.PathUp {
		s += " (" + a.Mode + ")"
	}
	return s
}

// printPaths writes r for humans: the peer paths table, then the node's
// own admin states. Ages are relative to now.
func printPaths(w io.Writer, r *client.PathsReply, now time.Time) error {
	if _, err := fmt.Fprintf(w, "node %s (site %s)\n", r.Node, r.Site); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\npaths:\n")
	active := false
	if len(r.Paths) == 0 {
		fmt.Fprintf(tw, "  (none)\n")
	} else {
		fmt.Fprintf(tw, "  SITE\tNODE\tPATH\tSTATE\tRTT\tLOSS\tLAST-OK\tLAST-ERROR\tBYTES-OUT/IN\tLINK-TEST\n")
		for _, p := range r.Paths {
			state := p.State
			if p.Active {
				state += " *"
				active = true
			}
			rtt := "-"
			if p.RTTMillis > 0 {
				rtt = strconv.FormatFloat(p.RTTMillis, 'f', 1, 64) + "ms"
			}
			lastErr := "-"
			if p.LastError != "" {
				lastErr = truncText(p.LastError, maxErrorCell)
				if p.LastErrorAt != nil {
					lastErr += " (" + fmtAge(now, p.LastErrorAt) + ")"
				}
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%s\n",
				p.Site, p.Node, p.Path, state, rtt,
				strconv.FormatFloat(p.LossPct, 'f', -1, 64)+"%",
				fmtAge(now, p.LastOK), lastErr,
				fmtBytes(p.BytesSent), fmtBytes(p.BytesRecv), fmtLinkTest(now, p.LinkTest))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if active {
		fmt.Fprintf(w, "  * active: carried the last batch %s sent to that site\n", r.Node)
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nadmin (%s, in preference order):\n", r.Node)
	if len(r.Admin) == 0 {
		fmt.Fprintf(tw, "  (none)\n")
	} else {
		fmt.Fprintf(tw, "  PATH\tSTATE\tMODE\n")
		for _, a := range r.Admin {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", a.Path, a.State, dash(a.Mode))
		}
	}
	return tw.Flush()
}

// fmtLinkTest is "ok 4s ago", "FAILED 4s ago: why" or "-".
func fmtLinkTest(now time.Time, lt *client.LinkTest) string {
	if lt == nil {
		return "-"
	}
	if lt.OK {
		return "ok " + fmtAge(now, &lt.At)
	}
	s := "FAILED " + fmtAge(now, &lt.At)
	if lt.Error != "" {
		s += ": " + truncText(lt.Error, maxErrorCell)
	}
	return s
}

// fmtAge is how long before now t was, as "3.2s ago"; "-" when t is nil
// or zero. Clock skew never shows as a negative age.
func fmtAge(now time.Time, t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	d := max(now.Sub(*t), 0)
	switch {
	case d < 10*time.Second:
		d = d.Round(100 * time.Millisecond)
	case d < time.Hour:
		d = d.Round(time.Second)
	default:
		d = d.Round(time.Minute)
	}
	return d.String() + " ago"
}

// fmtBytes is n in binary units: "512B", "1.5KiB", "3.0GiB".
func fmtBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + "B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64) + string("KMGTPE"[exp]) + "iB"
}

// truncText shortens s to at most n runes, ending in "…" when cut.
func truncText(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
