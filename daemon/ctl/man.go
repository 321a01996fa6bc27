package ctl

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/hotline-link/hotline/daemon/buildinfo"
)

// newManCmd is the hidden `hotlinectl man --dir DIR`: it writes a man page
// (section 1) for hotlinectl and each of its commands, generated from the
// command tree, to DIR. scripts/build-deb runs it. The date in the pages
// is $SOURCE_DATE_EPOCH when set (reproducible builds), else today.
func newManCmd(e *env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "man --dir DIR",
		Short:  "Write hotlinectl's man pages to DIR",
		Hidden: true,
		Args:   noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if dir == "" {
				return usagef("--dir DIR is required")
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("man: %w", err)
			}
			return writeManPages(c.Root(), "1", dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "`DIR` to write the pages to (created if missing)")
	return cmd
}

// writeManPages writes root's man pages in section to dir.
func writeManPages(root *cobra.Command, section, dir string) error {
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{
		Section: section,
		Source:  "hotline " + buildinfo.Read().Version,
		Manual:  "hotline manual",
	}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("man: %w", err)
	}
	return nil
}
