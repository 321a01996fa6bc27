// Package daemon composes a running hotline node: its config, the site's
// replicated queue (package queue) under Raft (package consensus), the
// inter-site link (package transport), the leader's forwarding (package forward), the
// receiver, follower-to-leader relay, and the local socket API; and its
// observation: metrics (metrics.go, raftmetrics.go), health and readiness
// (health.go), the read-only metrics listener (metricsserver.go), and
// certificate expiry and reload (certs.go).
//
// Delivery contract, as implemented here:
//   - A submission is answered only after the site's Raft majority has
//     committed it (group commit: concurrent submissions share entries).
//   - The leader forwards each outbound channel (destination, precedence)
//     in its own goroutine, pipelining batches, and resends from the last
//     cumulative ack after any failure. The destination applies a batch
//     only from last+1, so resending never duplicates.
//   - A batch is acknowledged only after the destination site committed it.
//   - Every command is idempotent, so a proposal whose outcome is unknown
//     (leader change, timeout) is simply retried.
package daemon
