// Package bench is the engine behind `hotlinectl bench`: it measures the
// throughput and latency of the link between two sites and checks that
// every message arrives exactly once.
//
// A bench submits Options.N messages of Options.Size bytes to site
// Options.To through one daemon (the sending side) while it reads and
// acknowledges them from the inbox of a daemon of the destination site
// (the receiving side):
//
//	o := bench.Options{To: "bravo", Precedence: "routine", N: 1000, Size: 1024,
//		Concurrency: 16, Timeout: 2 * time.Minute}
//	res, err := bench.Run(ctx, alpha, bravo, o, os.Stderr) // *client.Client each
//	err = res.Check() // nil: nothing lost, duplicated or failed
//
// How it measures:
//
//   - Options.Concurrency submitters take the messages in order; with
//     Options.Rate set, message i is not handed out before i/Rate seconds
//     after the start. Each message has its own idempotency key, and a
//     submit is retried with that key (on errors [client.Retryable]
//     accepts) for up to Options.Timeout, so retries cannot duplicate.
//   - Each payload begins with a header naming the run and the message's
//     index ([HeaderSize] bytes), so the receiver tells this run's
//     messages from anything else in the inbox; it acknowledges what it
//     accounts. It stops when every successful submit has arrived, or
//     Options.Timeout after the last submit, after one last read that
//     counts late copies.
//   - Submit latency runs from the first attempt of a submit to its
//     success; end-to-end latency from that same start to the message's
//     first appearance in the far inbox. Throughput is the messages
//     delivered over the time from the first submit to the last arrival.
//     Percentiles are internal/latency's (nearest rank).
//   - A failure is a lost message (submitted successfully, never arrived),
//     a duplicate (a second appearance of a message in the inbox: the
//     same index under another id or at another position) or a submit
//     that failed for good. A failed submit's message is not lost; if it
//     arrives anyway it counts as delivered. [Result.Check] says whether
//     the bench passed.
//
// Contract:
//
//   - Run checks first its Options ([Options.Validate]), that both
//     daemons answer and that the receiving one is of site Options.To;
//     then it always returns a [Result], with an error alongside when ctx
//     ended the bench ([ErrInterrupted]) or the inbox could not be read.
//     Deciding the exit status is the caller's.
//   - Progress (a line a second), retried reads, failed acks and the
//     distinct submit errors go to the io.Writer the caller passes; the
//     engine never prints elsewhere.
//   - The daemons are seen through [Daemon], the few calls of
//     daemon/client's Client the engine uses, so a test can bench an
//     in-memory site.
//   - The cost: when a daemon is also a [Meter] (its metrics can be
//     read), its process's process_cpu_seconds_total is read just before
//     the first submit and just after the last inbox read;
//     [Result.Nodes] gives each daemon's CPU seconds over the run and
//     [Result.CPUSPerMsg] their sum (each process once) per delivered
//     message. A daemon that cannot be read has an error in its entry
//     and no figure, and then CPUSPerMsg is absent: never a made-up 0.
//   - Memory is proportional to Options.N (a few dozen bytes a message,
//     [MaxN] messages at most);
//     at most Options.Concurrency ([MaxConcurrency]) submits are in flight.
package bench
