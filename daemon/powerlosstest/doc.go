// Package powerlosstest checks, with real hotlined processes, what a
// power loss of a whole site may do to the files a node does not sync on
// each commit (queue/unsynced.go: state.db once Raft can rebuild it): the
// site's three nodes are killed at once, each such file is put back to
// its state at its last sync or replaced by garbage, its marker names
// another boot, and the restarted site must serve exactly what it
// acknowledged. It has tests only; they start six processes and are
// skipped with -short.
package powerlosstest
