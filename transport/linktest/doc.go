// Package linktest is test support for code that uses hotline's transport
// and pki packages: a throwaway CA in a test's temporary directory that
// issues and loads node certificates on demand, and loopback UDP
// addresses ([FreeUDPAddr]) for links whose peers must be known in advance.
//
// Contract: a [CA] lives in t.TempDir() and goes with the test; its
// methods are safe for concurrent use and fail the test (never return an
// error) when something goes wrong. A node's certificate is issued once,
// on first use, and its bundle cached.
//
// It also has Net, an in-memory network of sites that drops, delays,
// reorders and duplicates batches, for tests of the logic that sends them
// (daemon/forward).
//
// It depends only on pki, so the transport package's own tests can use it.
package linktest
