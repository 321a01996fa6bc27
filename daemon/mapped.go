package daemon

import (
	"context"
	"log/slog"
	"time"
)

// releaseMappedEvery is how often a node gives back the pages of its
// bbolt files that their read-only maps hold: state.db's
// (queue.Store.ReleaseMapped: they stay in the page cache) and raft.db's
// (consensus.Node.ReleaseMapped: paged out once the log uses 32 MiB). Between two calls the maps
// hold what the node read meanwhile: with a backlog draining at a few
// thousand messages a second, some tens of MiB. Each call costs a walk
// of the maps' page tables and the faults of the pages read next (the
// B+trees' upper pages, the log's last entry): well under a millisecond.
const releaseMappedEvery = time.Second

// mappedReleaser gives back the pages of a file that its map holds.
type mappedReleaser interface {
	ReleaseMapped() error
}

// releaseMapped calls ReleaseMapped of each of files every
// releaseMappedEvery until ctx ends, so that the node's resident memory
// does not grow with the size of its files (a backlog: everything queued,
// read once, and the log that carried it). It logs a failure once, until
// a call succeeds again.
func releaseMapped(ctx context.Context, log *slog.Logger, files ...mappedReleaser) {
	t := time.NewTicker(releaseMappedEvery)
	defer t.Stop()
	failing := make([]bool, len(files))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for i, f := range files {
			err := f.ReleaseMapped()
			if err != nil && !failing[i] && ctx.Err() == nil {
				log.Warn("cannot release the mapped pages of a file", "err", err)
			}
			failing[i] = err != nil
		}
	}
}
