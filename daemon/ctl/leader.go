package ctl

import (
	"context"
	"fmt"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/spf13/cobra"
)

func newLeaderCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "leader",
		Short: "Move a site's Raft leadership (admin)",
	}
	groupCommand(cmd)
	cmd.AddCommand(newLeaderTransferCmd(e))
	return cmd
}

func newLeaderTransferCmd(e *env) *cobra.Command {
	var to, site string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "transfer [--to NODE] [--site SITE] [--json]",
		Short: "Move the leadership of this site (or --site) to another node",
		Long: `transfer moves the Raft leadership of this site, or of another site with
--site (which that site must allow with allow_remote_drills), to node --to,
or by default to the node Raft finds most up to date. It returns once the
new leader is in place and prints "leadership of SITE moved from A to B".

Needs root or the daemon's admin group.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if err := checkNodeFlag("leader transfer", "--to", to); err != nil {
				return err
			}
			if err := checkNodeFlag("leader transfer", "--site", site); err != nil {
				return err
			}
			return e.leaderTransfer(c.Context(), site, to, asJSON)
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "`NODE` to hand the leadership to (default: the most up-to-date other node)")
	cmd.Flags().StringVar(&site, "site", "", "`SITE` whose leadership to move (default: this node's site)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func (e *env) leaderTransfer(ctx context.Context, site, to string, asJSON bool) error {
	r, err := e.client().TransferLeader(ctx, site, to)
	if err != nil {
		return client.AdminError("leader transfer", err)
	}
	if asJSON {
		err = writeJSON(e.stdout, r)
	} else {
		_, err = fmt.Fprintf(e.stdout, "leadership of %s moved from %s to %s\n", r.Site, dash(r.From), r.To)
	}
	if err != nil {
		return fmt.Errorf("leader transfer: write output: %w", err)
	}
	return nil
}
