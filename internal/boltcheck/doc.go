// Package boltcheck opens bbolt files that may be damaged without letting
// bbolt crash the process: a damaged file is an error (*CorruptError),
// never a panic. Both of a node's bbolt files (the queue's state.db and
// Raft's raft.db) are opened through it.
//
// Contract:
//
//   - [Check] walks the file's page tree with plain reads, before bbolt
//     maps it, and refuses a structure bbolt could not walk safely (page
//     ids beyond the high-water mark, pages referenced twice, unknown page
//     types, elements outside their page, a bad meta page). A missing or
//     empty file passes: bbolt creates it.
//   - [Open] runs Check, opens the file with bbolt and runs bbolt's own
//     consistency check (tx.Check) over all of it. A damaged file is a
//     *CorruptError ("file is corrupt: ..."), also when bbolt panics on
//     the calling goroutine; a file locked by another process is bbolt's
//     ErrTimeout, wrapped. On success the caller owns the *bolt.DB.
//   - [InUse] reports how much of the file bbolt's valid meta page says is
//     in use; what lies beyond is preallocated space nothing reads.
//   - Cost: a read of every reachable page, about 0.2 s for a 100 MB file
//     (README: "Corruption and recovery").
//
// Not detected here: damage in free pages, and damage to keys and values
// that leaves the structure intact (the queue checksums its records for
// that).
package boltcheck
