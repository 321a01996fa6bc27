// Package clustertest is test support for whole-node labs: every test that
// runs hotline nodes (in this process, as processes, or as processes in
// network namespaces) builds its lab here, in the daemon package's own
// tests and in the CLI's (daemon/ctl).
//
//   - Start and StartSites run the lab's nodes in the test process (free
//     loopback ports, short Raft timeouts, logs to t.Log) and return once
//     every node of every site names the same leader (Lab.Settled).
//   - StartProcLab runs configs/lab as six hotlined processes, set up with
//     the commands its README gives; ProcLab can kill -9 and restart
//     nodes, and wait until a set of nodes agrees on a leader
//     (SettledAmong). StartProcLabAt runs the configs "hotlinectl lab
//     init --base-port" writes instead, each config edited first, and
//     StartProcLabFrom the same from another build's binaries (a previous
//     release); StartNodeFrom starts one node on another build and Stop
//     stops one with SIGTERM and tells how it exited.
//   - StartNetnsLab runs the six processes in network namespaces built by
//     daemon/netlab, where paths can be cut silently (needs root; skips
//     otherwise).
//   - Binaries builds hotlined and hotlinectl once per test binary.
//   - Ledger, SubmitRetrying, StartTraffic (a fixed number of messages
//     per node), Submitters (paced, until stopped) and DrainInbox drive
//     traffic and check exactly-once, in-order arrival of every
//     acknowledged submission; AckAll marks an inbox read and
//     Ledger.WaitRead waits for the receipts at every origin.
//   - Lab.Hotlinectl runs the CLI in this process against a node.
//   - Eventually polls a condition until it holds or a deadline passes.
//
// Every helper takes the test's testing.TB, fails the test on error and
// registers its teardown with t.Cleanup (nodes closed, processes stopped
// with SIGTERM, the tail of every node's log printed when the test failed).
// Labs are not safe for concurrent use unless a method says so; ProcLab's
// process table is.
//
// What a test needs from the daemon's internals it gets from the daemon
// package's export_test.go, not from here: this package uses only the
// daemon's exported API.
package clustertest
