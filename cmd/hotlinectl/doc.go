// Command hotlinectl is the client and operator tool of hotline. All of it
// is package github.com/hotline-link/hotline/daemon/ctl; this main only
// connects it to the process.
//
// Contract:
//
//   - main calls ctl.Run with the arguments, stdin, stdout and stderr,
//     under a context that SIGINT and SIGTERM cancel, so an interrupted
//     command stops its requests and returns. Nothing else happens here.
//   - An error is printed on stderr as "hotlinectl: ..." and the exit
//     status is ctl.ExitCode(err): 0 success, 1 error, 2 usage error,
//     3 stored but the awaited state not reached, 4 outcome unknown (retry
//     with the same --id), 5 alarms raised (status).
package main
