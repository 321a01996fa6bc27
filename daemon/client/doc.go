// Package client is the Go client of hotlined's local API: HTTP/JSON on the
// node's Unix socket. The wire types and paths are in api.go; this package
// adds a [Client] that speaks them.
//
// Contract:
//
//   - A [Client] is safe for concurrent use and keeps idle connections for
//     at least 64 concurrent callers. It never retries on its own: a
//     submission with an idempotency key (SubmitRequest.Key) may be retried
//     by the caller after any error, and is then stored at most once.
//   - Every call is bounded only by its context (long polls and submit
//     waits can last minutes), so callers set deadlines.
//   - Errors: a non-2xx reply is an [*APIError] carrying the status and the
//     [Error] code (branch with errors.As, or [IsCode]); a daemon that cannot
//     be reached is an [*UnreachableError], which matches [ErrUnreachable]
//     and names the socket. Context cancellation is reported as the
//     context's error (errors.Is(err, context.Canceled) holds). Errors name
//     what failed (the socket, the request, the daemon's message and code)
//     and carry no advice for a particular program: hotlinectl adds its own.
//
// The examples submit, wait for delivery, read the inbox, acknowledge and
// follow a message to "read" against the dev lab (hotlined --dev);
// TestExamplesAgainstDevLab runs them.
package client
