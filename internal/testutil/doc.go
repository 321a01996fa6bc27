// Package testutil holds the few test helpers every package's tests share
// and that must not depend on any hotline package (so that queue, transport
// and consensus tests can use them without an import cycle): Eventually,
// Mismatches (a recorder of the protocol version mismatch hook), and, on Linux, MountTmpfs and FillTo for tests of a full disk and
// MappedKiB for tests of what a process keeps mapped. Whole-node
// labs are in daemon/clustertest, test certificates in transport/linktest.
package testutil
