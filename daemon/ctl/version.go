package ctl

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/buildinfo"
)

// newVersionCmd is `hotlinectl version`: the same text as --version, or
// JSON.
func newVersionCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [--json]",
		Short: "Print hotlinectl's version, commit and Go version",
		Args:  noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			info := buildinfo.Read()
			if asJSON {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			_, err := e.stdout.Write([]byte(info.Text("hotlinectl")))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the build information as JSON")
	return cmd
}

// setVersion makes --version on root print the build information.
func setVersion(root *cobra.Command) {
	info := buildinfo.Read()
	root.Version = info.Version
	root.SetVersionTemplate(info.Template(root.Name()))
}
