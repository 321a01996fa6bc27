package ctl

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hotline-link/hotline/daemon/client"
	"github.com/hotline-link/hotline/daemon/drill"
)

// shells are the shells `completion` writes scripts for.
var shells = []string{"bash", "zsh", "fish"}

// newCompletionCmd is `hotlinectl completion bash|zsh|fish`. The scripts
// call the hidden `hotlinectl __complete`, which cobra answers from the
// command tree and the flag completions set by completeFlags; it never
// contacts the daemon.
func newCompletionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script for bash, zsh or fish",
		Long: `completion prints a script that completes hotlinectl's commands, flags and
flag values in bash, zsh or fish. The .deb installs them; by hand:

  hotlinectl completion bash > /usr/share/bash-completion/completions/hotlinectl
  hotlinectl completion zsh  > /usr/share/zsh/vendor-completions/_hotlinectl
  hotlinectl completion fish > /usr/share/fish/vendor_completions.d/hotlinectl.fish

or, for the current bash only: source <(hotlinectl completion bash)`,
		ValidArgs: shells,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("%s needs one shell: %s", c.CommandPath(), strings.Join(shells, ", "))
			}
			for _, s := range shells {
				if args[0] == s {
					return nil
				}
			}
			return usagef("shell %q is not one of %s", args[0], strings.Join(shells, ", "))
		},
		RunE: func(c *cobra.Command, args []string) error {
			root := c.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(e.stdout, true)
			case "zsh":
				return root.GenZshCompletion(e.stdout)
			default:
				return root.GenFishCompletion(e.stdout, true)
			}
		},
	}
}

// placeholderValues are the values a flag with this placeholder takes;
// FILE and DIR complete file and directory names, the rest nothing.
var placeholderValues = map[string][]string{
	"LEVEL":    precedences,
	"STATE":    {"queued", "delivered", "read"},
	"MODE":     {client.ModeClose, client.ModeDrop},
	"SCENARIO": drill.Scenarios,
	"SHELL":    shells,
}

// isCompletionRequest reports whether args are a shell's completion
// request (the scripts always put cobra's hidden command first).
func isCompletionRequest(args []string) bool {
	return len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd)
}

// completeFlags gives every flag of the tree a value completion derived
// from its placeholder (the backquoted word of its usage, see
// flagPlaceholders): file names for FILE, directories for DIR, the fixed
// values for LEVEL, STATE, MODE and SCENARIO, and nothing (rather than
// file names) for the others. cobra keeps flag completions in a
// package-level map that is never emptied, so Run calls this only for a
// completion request.
func completeFlags(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
			if f.Value.Type() == "bool" {
				return
			}
			name, _ := pflag.UnquoteUsage(f)
			var fn cobra.CompletionFunc
			switch name {
			case "FILE":
				fn = cobra.FixedCompletions(nil, cobra.ShellCompDirectiveDefault)
			case "DIR":
				fn = cobra.FixedCompletions(nil, cobra.ShellCompDirectiveFilterDirs)
			default:
				fn = cobra.FixedCompletions(placeholderValues[name], cobra.ShellCompDirectiveNoFileComp)
			}
			// Only fails for a flag registered twice, which the walk
			// (each flag at the command defining it) never does.
			_ = c.RegisterFlagCompletionFunc(f.Name, fn)
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
