package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hotline-link/hotline/daemon/client"
)

// DefaultSocket is the daemon's socket when neither --socket nor
// $HOTLINE_SOCKET is set.
const DefaultSocket = "/run/hotline/hotline.sock"

// EnvSocket names the environment variable that sets the socket.
const EnvSocket = "HOTLINE_SOCKET"

// ErrUsage is matched (errors.Is) by errors about the command line itself:
// unknown commands or flags, missing or malformed values. No request has
// been made when one is returned.
var ErrUsage = errors.New("usage error")

// ErrNotReached is matched by send's error when the message is stored (its
// id was printed) but did not reach the --wait state in time, or expired
// first: exit status 3. Sending again would store a second message.
var ErrNotReached = errors.New("stored, but the wanted state was not reached")

// ErrOutcomeUnknown is matched by send's error when the daemon could not
// say whether the message was committed (no quorum in time): exit status
// 4. The error names the id it may have been stored under.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// ErrAlarms is matched by status's error when the node reported alarms
// (status was printed in full): exit status 5.
var ErrAlarms = errors.New("alarms raised")

// usageError marks an error as a command-line mistake.
type usageError struct{ err error }

func (u *usageError) Error() string        { return u.err.Error() }
func (u *usageError) Unwrap() error        { return u.err }
func (u *usageError) Is(target error) bool { return target == ErrUsage }

// usagef returns a usage error with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// ExitCode is the process exit status for an error returned by Run: 0 for
// nil, 2 for usage errors, 3 for ErrNotReached, 4 for ErrOutcomeUnknown, 5
// for ErrAlarms, 1 otherwise (including a node that cannot be reached).
func ExitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	case errors.Is(err, ErrNotReached):
		return 3
	case errors.Is(err, ErrOutcomeUnknown):
		return 4
	case errors.Is(err, ErrAlarms):
		return 5
	default:
		return 1
	}
}

// env is what every subcommand shares during one Run.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	socket string // --socket, "" when not given
}

// socketPath resolves the daemon socket: --socket, $HOTLINE_SOCKET, default.
func (e *env) socketPath() string {
	if e.socket != "" {
		return e.socket
	}
	if s := os.Getenv(EnvSocket); s != "" {
		return s
	}
	return DefaultSocket
}

// client returns a client of the resolved socket.
func (e *env) client() *client.Client { return client.New(e.socketPath()) }

// Run runs hotlinectl with args (without the program name), reading stdin
// and writing to stdout and stderr only. ctx cancels whatever is in
// progress (recv --follow returns nil when ctx ends). Usage errors match
// ErrUsage; an unreachable daemon's error (client.ErrUnreachable) says
// which flag and variable choose the socket.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRoot(e)
	if isCompletionRequest(args) {
		completeFlags(root)
	}
	// A nil slice would make cobra read os.Args.
	root.SetArgs(append([]string{}, args...))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return withAdvice(root.ExecuteContext(ctx))
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "hotlinectl",
		Short: "Client and operator tool of the hotline store-and-forward link",
		Long: `hotlinectl submits and receives hotline messages and inspects a node,
through the local hotlined's Unix socket (--socket, else $HOTLINE_SOCKET,
else ` + DefaultSocket + `).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// cobra's own completion command answers a missing or unknown
		// shell with help and exit status 0; ours (completion.go) follows
		// this CLI's usage errors. cobra's hidden __complete stays.
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	groupCommand(root)
	setVersion(root)
	root.PersistentFlags().StringVar(&e.socket, "socket", "", "hotlined's Unix socket `FILE` (default $"+EnvSocket+" or "+DefaultSocket+")")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(
		newSendCmd(e),
		newRecvCmd(e),
		newGetCmd(e),
		newHeldCmd(e),    // release.go
		newReleaseCmd(e), // release.go
		newVerifyCmd(e),
		newStatusCmd(e),
		newPKICmd(e),
		newBenchCmd(e),
		newPathsCmd(e),
		newPathCmd(e),
		newLeaderCmd(e),
		newDrillCmd(e),
		newMemberCmd(e),
		newVersionCmd(e),
		newCompletionCmd(e),
		newManCmd(e),
		newLabCmd(e),
		newBackupCmd(e),
		newAuditCmd(e),
		newWatchCmd(e),
	)
	return root
}

// groupCommand makes cmd, which only holds subcommands, print its help when
// called alone and reject unknown subcommands as usage errors.
func groupCommand(cmd *cobra.Command) {
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q%s (see %s --help)", args[0], c.CommandPath(), didYouMean(c, args[0]), c.CommandPath())
		}
		return nil
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		c.SetOut(c.ErrOrStderr())
		c.Help()
		return usagef("%s needs a command (see above)", c.CommandPath())
	}
}

// didYouMean is `; did you mean "status"?` when typed is close to a
// subcommand of c (cobra's suggestions: a prefix, or at most
// SuggestionsMinimumDistance edits), else "".
func didYouMean(c *cobra.Command, typed string) string {
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
	}
	s := c.SuggestionsFor(typed)
	if len(s) == 0 {
		return ""
	}
	for i := range s {
		s[i] = strconv.Quote(s[i])
	}
	return "; did you mean " + strings.Join(s, " or ") + "?"
}

// noArgs rejects positional arguments.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments (got %q)", c.CommandPath(), strings.Join(args, " "))
	}
	return nil
}

// precedences are the valid --precedence values, highest first.
var precedences = []string{"flash", "immediate", "priority", "routine"}

// checkPrecedence validates a --precedence value.
func checkPrecedence(p string) error {
	for _, v := range precedences {
		if p == v {
			return nil
		}
	}
	return usagef("--precedence %q is not one of %s", p, strings.Join(precedences, ", "))
}
