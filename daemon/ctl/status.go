package ctl

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
)

func newStatusCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the node's role, peers, links, alarms and queues",
		Long: `status shows the node's role, peers, links, alarms and queues.

Exit status: 0 no alarms; 5 the node reported alarms (listed under
"alarms:", or in "alarms" with --json); 1 the node could not be reached or
answered an error; 2 usage error.`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return e.status(c.Context(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func (e *env) status(ctx context.Context, asJSON bool) error {
	s, err := e.client().Status(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if asJSON {
		err = writeJSON(e.stdout, s)
	} else {
		err = printStatus(e.stdout, s)
	}
	if err != nil {
		return fmt.Errorf("status: write output: %w", err)
	}
	if len(s.Alarms) > 0 {
		return fmt.Errorf("status: %d %w on %s", len(s.Alarms), ErrAlarms, s.Node)
	}
	return nil
}

// printStatus writes s for humans: the node, then tables of peers and
// queues, then the counters.
func printStatus(w io.Writer, s *client.Status) error {
	leader := s.Leader
	if leader == "" {
		leader = "(unknown)"
	}
	kv := [][2]string{
		{"site", s.Site},
		{"node", s.Node},
		{"pid", strconv.Itoa(s.PID)},
		{"version", s.Version},
		{"site version", siteVersion(s)},
		{"role", s.Role},
		{"leader", leader},
		{"term", strconv.FormatUint(s.Term, 10)},
		{"applied", strconv.FormatUint(s.AppliedIndex, 10)},
		{"uptime", s.Uptime},
		{"inbox unread", strconv.Itoa(s.InboxUnread)},
		{"receipts pending", strconv.Itoa(s.ReceiptsPending)},
	}
	if err := writeKV(w, kv); err != nil {
		return err
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\npeers:\n")
	if len(s.Peers) == 0 {
		fmt.Fprintf(tw, "  (none)\n")
	} else {
		fmt.Fprintf(tw, "  SITE\tNODE\tROLE\tCONNECTED\tRTT\tLAST OK\tPROTOCOL\tLAST ERROR\n")
		for _, p := range s.Peers {
			rtt := "-"
			if p.RTTMillis > 0 {
				rtt = strconv.FormatFloat(p.RTTMillis, 'f', 1, 64) + "ms"
			}
			lastOK := "-"
			if p.LastOK != nil {
				lastOK = fmtTime(*p.LastOK)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Site, p.Node, dash(p.Role), yesNo(p.Connected), rtt, lastOK, dash(peerProtocols(p)), dash(p.LastError))
		}
	}
	fmt.Fprintf(tw, "\nlinks:\n")
	if len(s.Links) == 0 {
		fmt.Fprintf(tw, "  (none)\n")
	} else {
		fmt.Fprintf(tw, "  SITE\tACTIVE NODE\tACTIVE PATH\tPATHS UP\n")
		for _, l := range s.Links {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d/%d\n", l.Site, dash(l.ActiveNode), dash(l.ActivePath), l.PathsUp, l.PathsTotal)
		}
	}
	fmt.Fprintf(tw, "\nalarms:\n")
	if len(s.Alarms) == 0 {
		fmt.Fprintf(tw, "  (none)\n")
	}
	for _, a := range s.Alarms {
		fmt.Fprintf(tw, "  %s\n", a)
	}
	fmt.Fprintf(tw, "\noutbound:\n")
	if len(s.Outbound) == 0 {
		fmt.Fprintf(tw, "  (none)\n")
	} else {
		fmt.Fprintf(tw, "  TO\tPRECEDENCE\tLAST\tACKED\tQUEUED\tOLDEST\n")
		for _, q := range s.Outbound {
			oldest := "-"
			if q.OldestAgeMillis > 0 {
				oldest = fmtOldest(q.OldestAgeMillis)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%d\t%d\t%s\n", q.To, q.Precedence, q.Last, q.Acked, q.Queued, oldest)
		}
	}
	fmt.Fprintf(tw, "\ninbound:\n")
	if len(s.Inbound) == 0 {
		fmt.Fprintf(tw, "  (none)\n")
	} else {
		fmt.Fprintf(tw, "  FROM\tPRECEDENCE\tLAST\n")
		for _, q := range s.Inbound {
			fmt.Fprintf(tw, "  %s\t%s\t%d\n", q.From, q.Precedence, q.Last)
		}
	}
	return tw.Flush()
}

// fmtOldest formats the age of a queue's oldest message, to the
// millisecond below 10s and to the second above.
func fmtOldest(ms int64) string {
	d := time.Duration(ms) * time.Millisecond
	if d >= 10*time.Second {
		d = d.Round(time.Second)
	}
	return d.String()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// siteVersion words the site version: "2", or "1 (raised once every node
// speaks it; waiting for alpha-3 (hotline-raft/1))" on a leader that
// waits. A node of a release before site versions reports none: "-".
func siteVersion(s *client.Status) string {
	if s.SiteVersion == 0 {
		return "-"
	}
	v := strconv.FormatUint(s.SiteVersion, 10)
	if s.SiteVersionWait != "" {
		v += " (raised once every node speaks it; waiting for " + s.SiteVersionWait + ")"
	}
	return v
}

// peerProtocols is what a peer's connections negotiated: the link's
// protocol, then (own site) Raft's, "hotline/1 hotline-raft/2".
func peerProtocols(p client.Peer) string {
	switch {
	case p.Protocol == "":
		return p.RaftProtocol
	case p.RaftProtocol == "":
		return p.Protocol
	}
	return p.Protocol + " " + p.RaftProtocol
}
