// Command backlog is the client half of scripts/backlog.sh: it queues a
// backlog at one site and then drains it at the other, checking that
// every message arrives exactly once and in order.
//
//	backlog submit --socket A --to bravo --n N --size 512 --concurrency C --state FILE
//	backlog drain  --socket B --state FILE --since UNIXMS --timeout DUR
//
// submit sends N messages (each with its own idempotency key, retried
// with it, so retries cannot duplicate) and writes FILE: the run's id and
// the channel sequence number the origin gave each message (8 bytes a
// message). drain reads the destination's inbox from its start,
// acknowledges this run's messages as it goes (the ordinary consumer),
// and stops when every submitted message has arrived or --timeout has
// passed without a new one. It checks, per channel, that each message
// arrived once, at the sequence number the origin gave it, and in
// increasing sequence order; the drain rate counts from --since (when
// the paths came back) to the last arrival (its ReceivedAt). Each prints one JSON object on
// stdout and progress on stderr. Memory: a few bytes per message.
package main
