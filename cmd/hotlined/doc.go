// Command hotlined runs a hotline node: one appliance of a site, or with
// --dev a whole lab in one process. All of it is package
// github.com/hotline-link/hotline/daemon; this main only connects it to
// the process.
//
// Contract:
//
//   - main calls daemon.Main with the arguments, stdout and stderr, under
//     a context that SIGINT and SIGTERM cancel; the node then stops
//     cleanly (daemon.Main returns once it has). Nothing else happens
//     here: no flags, no logging, no global state.
//   - Exit status: 0 after a clean stop or a successful subcommand; 2 for
//     a usage error (daemon.IsUsageError: unknown flag, --config and --dev
//     together, ...); 1 for any other error, which is printed on stderr as
//     "hotlined: ..." (for check-config, a config with problems).
//   - Subcommands and flags (--config, --dev, restore, check-config,
//     --version) are documented in the README and by `hotlined --help`.
package main
