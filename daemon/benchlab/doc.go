// Package benchlab holds the end-to-end tests of `hotlinectl bench`
// against real nodes (an in-process lab of package clustertest): the
// bench's own figures and the CPU seconds it reads from the nodes'
// GET /metrics on their sockets. They live apart from package daemon's
// tests so that each package stays well within the suite's per-package
// timeout.
package benchlab
