// Package mailboxtest holds the end-to-end tests of mailboxes (issue 12):
// access by peer credentials with real users and groups, read objectives,
// two-person release, spool directories and the watch console, run
// against real in-process labs (package clustertest) and the built
// binaries. They live apart from package daemon's tests so that each
// package stays well within the suite's per-package timeout.
package mailboxtest
