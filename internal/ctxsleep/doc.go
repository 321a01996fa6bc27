// Package ctxsleep is the one "wait d, or until ctx ends" of the module:
// retry loops in the forwarder, the CLI, the drill and bench engines, and
// test support share it.
package ctxsleep
