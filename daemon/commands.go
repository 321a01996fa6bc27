package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/hotline-link/hotline/daemon/buildinfo"
)

// hotlined's subcommands besides running a node (main.go): check-config,
// and the hidden man that scripts/build-deb runs.

func newCheckConfigCmd(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "check-config FILE",
		Short: "Check a node config and its TLS files without starting the node",
		Long: `check-config loads and validates the node config FILE as hotlined --config
would, checks that socket_group exists and that the TLS files load, chain to
the CA and carry this node's identity, and changes nothing. It prints OK and a
summary (with the IPAddressAllow= line for the systemd unit), or every
problem as FILE:LINE: KEY: what is wrong. Exit status 0 if the config is
good, 1 if not, 2 for a usage error.`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("%s takes one config FILE (got %d arguments)", c.CommandPath(), len(args))}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			return CheckConfig(args[0], time.Now(), stdout, stderr)
		},
	}
}

func newManCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "man --dir DIR",
		Short:  "Write hotlined's man pages (section 8) to DIR",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if dir == "" {
				return usageError{errors.New("--dir DIR is required")}
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("man: %w", err)
			}
			root := c.Root()
			root.DisableAutoGenTag = true
			// The date is $SOURCE_DATE_EPOCH when set (cobra/doc reads it).
			header := &doc.GenManHeader{Section: "8", Source: "hotline " + buildinfo.Read().Version, Manual: "hotline manual"}
			if err := doc.GenManTree(root, header, dir); err != nil {
				return fmt.Errorf("man: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "`DIR` to write the pages to (created if missing)")
	return cmd
}

// unknownCommand rejects arguments to hotlined itself: they can only be a
// mistyped subcommand; the error suggests the nearest ones.
func unknownCommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	c.SuggestionsMinimumDistance = 2
	hint := ""
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		for i := range s {
			s[i] = strconv.Quote(s[i])
		}
		hint = "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{fmt.Errorf("unknown command %q for %q%s (see %s --help)", args[0], c.CommandPath(), hint, c.CommandPath())}
}
