// Package drill is the fault-drill engine behind `hotlinectl drill`: it
// sends a stream of small canary messages from this site to another,
// injects a fault in the middle third of the stream (a silent cut of
// paths, or a leadership transfer), undoes it, waits for every
// acknowledged canary to arrive, and reports what the link did: lost and
// duplicated canaries, latency by phase, the longest gap between
// arrivals.
//
// The pipeline is plan → run → statistics → report:
//
//	o := drill.Options{To: "bravo", Scenario: drill.CutActivePath, Rate: 50,
//		Duration: 30 * time.Second, Drain: time.Minute, Size: 256, Precedence: "routine"}
//	plan, err := drill.Prepare(ctx, c, o) // asks the cluster, decides, or refuses
//	res, err := drill.Run(ctx, c, plan, os.Stderr) // res.Report: the statistics
//	err = res.WriteFiles(dir) // report.md, report.json, timeline.svg
//
// [Prepare] reads the topology through the socket ([Cluster]: the few
// calls of daemon/client's Client the engine uses) and refuses a drill
// that cannot run or would undo an operator's decision (no leader, no
// path up, a path to cut already down). [Run] sends the canaries (each
// retried with its idempotency key until acknowledged or the end of
// sending plus a grace), applies and undoes the fault through the admin
// API, reads the destination's arrivals of this run, and computes the
// [Report] from what it recorded: a pure function of the record, tested
// without a cluster. Progress lines go to the io.Writer the caller
// passes; the engine never prints elsewhere.
//
// Contract:
//
//   - A cut is always restored before Run returns, also when ctx ends
//     early (under a fresh context bounded by the admin timeout); what
//     cannot be restored is reported with the command to do it by hand.
//   - A canary is "sent" once the origin acknowledged it; a sent canary
//     that never arrived is lost; one committed twice at the destination
//     is duplicated; unacknowledged canaries are never counted as lost.
//     See [Report] for the schema of report.json.
//   - Run returns a [Result] whenever the stream began, with an error
//     alongside when the drill was interrupted ([ErrInterrupted]), a
//     submit failed for good, or the arrivals could not be read; the
//     fault's own failures are in Result.Errors. Deciding the exit status
//     is the caller's.
//   - Memory is bounded by [MaxCanaries] canaries and [MaxRate] per
//     second (checked by [Options.Validate], which Prepare calls); at
//     most a fixed number of submits are in flight.
package drill
