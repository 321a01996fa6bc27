package daemon

import (
	"context"
	"log/slog"
	"time"
)

// How often a node gives back the pages of its bbolt files that their
// read-only maps hold. raft.db's (consensus.Node.ReleaseMapped: paged out,
// so that the log's next reads go to the disk, once the log uses 32 MiB):
// once a second. state.db's (queue.Store.ReleaseMapped: they stay in the
// page cache, so this costs only the minor faults of the pages read next):
// once a second, and four times a second once the file is
// releaseOftenFrom bytes or more. Between two calls a map holds what the
// node read meanwhile, and more: on Linux 6.x with large folios a fault on
// a cached file maps the whole folio around the page (one random 4 KiB
// read of a cached 512 MiB file mapped about 1.1 MiB), so a queue of a
// million messages (a state.db of 5 GiB, read at random through its
// indexes) held up to 200 MiB of mapped pages within a second. A small
// state holds little, and in a test process of nine nodes under the race
// detector releasing every node's four times a second slowed Raft enough
// to time out a leadership transfer.
const (
	releaseStateEvery = 250 * time.Millisecond
	releaseLogEvery   = time.Second
	releaseOftenFrom  = 256 << 20
)

// mappedReleaser gives back the pages of a file that its map holds.
type mappedReleaser interface {
	ReleaseMapped() error
}

// releaseMapped calls f.ReleaseMapped every interval until ctx ends (when
// often is set and says no, only every fourth interval), so that the
// node's resident memory does not grow with the size of its files (a
// backlog: everything queued, read once, and the log that carried it). It
// logs a failure once, until a call succeeds again.
func releaseMapped(ctx context.Context, log *slog.Logger, f mappedReleaser, every time.Duration, often func() bool) {
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for tick := 1; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if often != nil && tick%4 != 0 && !often() {
			continue
		}
		err := f.ReleaseMapped()
		if err != nil && !failing && ctx.Err() == nil {
			log.Warn("cannot release the mapped pages of a file", "err", err)
		}
		failing = err != nil
	}
}
