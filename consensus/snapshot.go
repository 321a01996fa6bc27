package consensus

import "context"

// Snapshot has Raft snapshot the state machine now and compact the log,
// as it does by itself every SnapshotThreshold entries; for an operator
// (before a backup) and for tests that need a snapshot on disk. Errors
// are as for Apply, and Raft's when there is nothing new to snapshot.
func (n *Node) Snapshot(ctx context.Context) error {
	r, err := n.active("snapshot")
	if err != nil {
		return err
	}
	_, err = n.wait(ctx, "snapshot", func() (any, error) {
		return nil, r.Snapshot().Error()
	})
	return err
}
