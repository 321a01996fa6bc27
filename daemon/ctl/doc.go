// Package ctl is hotlinectl, the client and operator tool of hotline. It
// talks only to the local daemon's Unix socket (package
// github.com/hotline-link/hotline/daemon/client), except `pki` and `lab`, which write certificate
// and config files.
//
// Contract:
//
//   - [Run] is the whole program: it parses args, writes to the given
//     writers only, keeps no global state and never exits the process, so
//     it can be called in-process (tests run it against real daemons).
//   - Bad flags or arguments are reported before any request is made, as
//     errors matching [ErrUsage]. [ExitCode] maps an error to the exit
//     status: 2 usage, 3 [ErrNotReached], 4 [ErrOutcomeUnknown], 5
//     [ErrAlarms], 1 any other.
//   - The socket is --socket, else $HOTLINE_SOCKET, else [DefaultSocket].
//     The client's errors carry no command-line advice; Run adds it (an
//     unreachable daemon: which flag and variable choose the socket).
//   - One file per subcommand: send, recv, get, status, pki, bench (its
//     engine is package github.com/hotline-link/hotline/daemon/bench),
//     paths (paths, path), leader, drill (its engine is package
//     github.com/hotline-link/hotline/daemon/drill), lab (lab init: an
//     N-site process lab's configs), watch (a live console, built on
//     bubbletea: watch.go, its data watch_data.go, its screen
//     watch_view.go), version, completion, man (hidden: the man pages).
//   - Flags name their values with one set of placeholders (FILE, DIR,
//     NODE, SITE, DUR, N, BYTES, and LEVEL, STATE, MODE, SCENARIO for
//     fixed choices), backquoted in the usage; completion derives flag
//     value completions from them.
package ctl
