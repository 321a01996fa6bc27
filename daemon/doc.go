// Package daemon composes a running hotline node: its config, the site's
// replicated queue (package queue) under Raft (package consensus), the
// inter-site link (package transport), the leader's forwarding (package
// forward), the receiver, the follower-to-leader relay, the local socket
// API, and the node's observation (metrics, health, alarms, certificates).
//
// # Composition
//
// [Node] is composition: it owns the parts and their lifecycle, and each
// piece of work is a small type that holds exactly the parts it uses (the
// store, the Raft node, the link, the config, a logger, its metrics),
// never the Node. Open builds them in this order:
//
//  1. the keyring (transport/pki) and the metrics' instruments
//     (newMetrics, metrics.go): Raft's state machine records its commits
//     in them;
//  2. the store (queue) and the sealer (seal.go: payload envelopes,
//     sealed at submit and opened at inbox reads), then Raft (consensus,
//     with the fsm adapter of node.go), then the link (transport): Raft
//     needs nothing of the link, and the link's routing table (calls.go)
//     reaches the parts below only once the node runs;
//  3. the parts over them: committer (commit.go, propose.go, submit.go,
//     readindex.go: propose, group commit, relay to the leader, read
//     index), membership (member.go), linkHealth (linkhealth.go: link
//     tests, what this node reaches, the leader's hand-off), admin
//     (admin.go, adminops.go: the admin operations, relayed or not, and
//     other sites' drill calls), health (health.go, storage.go, the
//     resync alarms of backup.go: healthz, readyz, alarms, storage full),
//     auditor (audit.go, audit_exchange.go, audit_api.go: operator
//     records, the leader's signed checkpoints and their exchange),
//     overdueWatch (objectives.go: read objectives, checked once a second
//     on every node, for status, alarms and the metric);
//     then metrics.watch registers the collectors that read the parts at
//     scrape time (metrics.go, certs.go, health.go), each holding only
//     what it reads;
//  4. the sender (sender.go: a submission's checks, key lookup, seal and
//     commit, or hold for two-person release, shared by the API's submit
//     and the spool directories), the socket API (api.go, inbox_api.go, socket.go,
//     status.go, backup.go, release.go: two-person release) and the
//     metrics listener (metricsserver.go), then the leadership loop and,
//     on every node, the mailbox exchange (mailbox_exchange.go: asks the
//     other sites for their mailbox lists into remoteMailboxes, which
//     the sender checks), and the mailboxes' spool directories
//     (spool.go, spool_out.go, spool_in.go; on n.wg, until the node's
//     context ends).
//
// The wiring between parts is by value, not through the Node: linkHealth
// proposes its barriers through the committer and hands the leadership
// over with admin.transferLeader; admin and health read linkHealth's last
// link tests. While this node leads, startLeaderDuties (leader.go) runs
// forwarding (package forward), expiry, purge and linkHealth's loops.
//
// Node itself keeps the lifecycle (Open, Close, Done, fail, the leadership
// loop; lifecycle.go's states admit work only while the node runs), the
// exported API (Status, Main, RestoreNode, CheckConfig, the lab), and thin
// glue: the link's and Raft's configs, the routing table of calls (its
// handlers reach the parts when called, after Open built them), the
// receiver of batches (receiver.go; it decides which inbound messages
// the site refuses by its mailboxes, refuse.go, in the command it
// proposes), the signatures on the link
// (linktrust.go: a forward.Notary with the site's keys, and the refusals'
// counters and bad_signature alarm, trustRefusals, held by the metrics)
// and the leader's duties (leader.go).
// The socket API (apiServer), the metrics listener and the leader's
// duties are built from the Node's parts by newAPIServer,
// startMetricsServer and startLeaderDuties; none keeps the Node. Reload
// (certs.go: reloader) holds the keyring and a copy of the config.
//
// # Ownership and locks
//
// Node's parts are set by Open before the node runs and never replaced;
// Close stops them in the reverse order (API, metrics listener, the node's
// context, group commit, link, in-flight work, Raft, store). The parts
// share no lock: each lock sits beside the fields it guards, in the type
// that owns them — lifecycle.mu (state transitions against enter),
// linkTests.mu (the last link test per site and path), coalescer.mu
// (the read-index round in flight), budget.mu (inbox reply bytes),
// sealer.mu (inbox payloads that do not open), trustRefusals.mu (the
// latest refusal per site), remoteMailboxes.mu (the other sites' mailbox
// lists), mailboxExchange.mu (what it last logged of each), spoolOut.mu
// (the files being submitted and the pause after a failure). The keyring
// (pki.Keyring) guards itself; reload replaces its contents, never the
// pointer. The config is read-only once Open has it.
//
// # Delivery contract, as implemented here
//
//   - A submission is answered only after the site's Raft majority has
//     committed it (group commit: concurrent submissions share entries).
//   - The leader forwards each outbound channel (destination, precedence)
//     in its own goroutine, pipelining batches, and resends from the last
//     cumulative ack after any failure. The destination applies a batch
//     only from last+1, so resending never duplicates.
//   - A batch is acknowledged only after the destination site committed it,
//     with its signed proof of the messages it holds; a batch's own
//     signature is checked before anything of it is proposed.
//   - Every command is idempotent, so a proposal whose outcome is unknown
//     (leader change, timeout) is simply retried.
package daemon
