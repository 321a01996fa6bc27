package ctl

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
)

func newMemberCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "List and change the site's Raft members (admin)",
		Long: `member lists the voters of this node's site and adds, removes or replaces
one online. The leader makes every change (any node relays to it). A node
to add must be listed under the site's [[sites.nodes]] in every node's
config, with join = true in its entry, and be running (see the README's
"Replacing or adding a node").

Needs root or the daemon's admin group.`,
	}
	groupCommand(cmd)
	cmd.AddCommand(newMemberListCmd(e), newMemberAddCmd(e), newMemberRemoveCmd(e), newMemberReplaceCmd(e))
	return cmd
}

func newMemberListCmd(e *env) *cobra.Command {
	var node string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [--node NODE] [--json]",
		Short: "Show each member: address, suffrage, leader, live, applied index, last contact",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkNodeFlag("member list", "--node", node); err != nil {
				return err
			}
			r, err := e.client().Members(c.Context(), node)
			if err != nil {
				return client.AdminError("member list", err)
			}
			if asJSON {
				err = writeJSON(e.stdout, r)
			} else {
				err = printMembers(e.stdout, r.Site, r.Leader, r.Members)
			}
			if err != nil {
				return fmt.Errorf("member list: write output: %w", err)
			}
			if r.Stale && !asJSON {
				fmt.Fprintf(e.stderr, "member list: %s could not catch up with a leader first; this is its own view and may lag a recent change\n", r.Node)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&node, "node", "", "`NODE` of this site whose view to show (default: the socket's node)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the members as JSON")
	return cmd
}

func newMemberAddCmd(e *env) *cobra.Command {
	var addr string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "add NODE [--raft ADDR] [--json]",
		Short: "Add NODE as a voter once it has caught up",
		Long: `add makes NODE a member of the site: first a non-voter, which receives
the leader's snapshot and log, then — once it has applied what the leader
had committed — a voter. NODE must be running with join = true in its
config entry. If it has not caught up within twice submit_timeout, it stays
a non-voter (it never holds up commits) and add fails: run it again.`,
		Args: exactArgs(1, "NODE"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkNodeFlag("member add", "NODE", args[0]); err != nil {
				return err
			}
			r, err := e.client().MemberAdd(c.Context(), args[0], addr)
			return e.memberResult("member add", r, err, asJSON)
		},
	}
	cmd.Flags().StringVar(&addr, "raft", "", "Raft `ADDR` (host:port) of NODE; must match the config (default: the config's)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newMemberRemoveCmd(e *env) *cobra.Command {
	var force, asJSON bool
	cmd := &cobra.Command{
		Use:   "remove NODE [--force] [--json]",
		Short: "Remove NODE from the site",
		Long: `remove takes NODE out of the site's Raft configuration. It is refused when
the voters left would not have a live majority, or when NODE is the leader
(move the leadership first with "leader transfer"); --force skips both
checks (never removing the last voter).`,
		Args: exactArgs(1, "NODE"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkNodeFlag("member remove", "NODE", args[0]); err != nil {
				return err
			}
			r, err := e.client().MemberRemove(c.Context(), args[0], force)
			return e.memberResult("member remove", r, err, asJSON)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove even if no live majority would be left, or NODE leads")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func newMemberReplaceCmd(e *env) *cobra.Command {
	var addr string
	var force, asJSON bool
	cmd := &cobra.Command{
		Use:   "replace OLD NEW [--raft ADDR] [--force] [--json]",
		Short: "Add NEW (as add), then remove OLD (as remove)",
		Long: `replace adds NEW as "member add" does, then removes OLD as "member remove"
does. The removal is checked before anything changes (counting NEW as
live), so a replace that would be refused changes nothing.`,
		Args: exactArgs(2, "OLD NEW"),
		RunE: func(c *cobra.Command, args []string) error {
			for i, name := range []string{"OLD", "NEW"} {
				if err := checkNodeFlag("member replace", name, args[i]); err != nil {
					return err
				}
			}
			r, err := e.client().MemberReplace(c.Context(), args[0], args[1], addr, force)
			return e.memberResult("member replace", r, err, asJSON)
		},
	}
	cmd.Flags().StringVar(&addr, "raft", "", "Raft `ADDR` (host:port) of NEW; must match the config (default: the config's)")
	cmd.Flags().BoolVar(&force, "force", false, "remove OLD even if no live majority would be left, or OLD leads")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// exactArgs requires n positional arguments, named in the usage error.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s needs %s (got %d arguments)", c.CommandPath(), names, len(args))
		}
		return nil
	}
}

func (e *env) memberResult(op string, r *client.MemberChange, err error, asJSON bool) error {
	if err != nil {
		return client.AdminError(op, err)
	}
	if asJSON {
		err = writeJSON(e.stdout, r)
	} else {
		if r.Added != "" {
			fmt.Fprintf(e.stdout, "%s is a voter of site %s\n", r.Added, r.Site)
		}
		if r.Removed != "" {
			fmt.Fprintf(e.stdout, "%s is no longer a member of site %s\n", r.Removed, r.Site)
		}
		if len(r.Members) > 0 {
			err = printMembers(e.stdout, r.Site, r.Leader, r.Members)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: write output: %w", op, err)
	}
	return nil
}

// printMembers writes one line per member.
func printMembers(w io.Writer, site, leader string, ms []client.Member) error {
	if _, err := fmt.Fprintf(w, "site %s, leader %s\n", site, dash(leader)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDRESS\tSUFFRAGE\tLEADER\tLIVE\tSTATE\tAPPLIED\tLAST CONTACT")
	for _, m := range ms {
		state, applied, contact := "-", "-", "-"
		if m.Raft != nil {
			state = m.Raft.State
			applied = strconv.FormatUint(m.Raft.AppliedIndex, 10)
			if m.Raft.LastContactMillis != nil {
				contact = strconv.FormatFloat(*m.Raft.LastContactMillis, 'f', 0, 64) + "ms"
			}
		} else if m.Error != "" {
			state = "unreachable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", safe(m.ID), safe(m.Addr), m.Suffrage, yesNo(m.Leader), yesNo(m.Live), state, applied, contact)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, m := range ms {
		if m.Error != "" {
			if _, err := fmt.Fprintf(w, "%s: %s\n", safe(m.ID), safe(m.Error)); err != nil {
				return err
			}
		}
	}
	return nil
}
