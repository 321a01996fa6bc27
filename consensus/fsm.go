package consensus

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// StateMachine is what the caller replicates. Raft calls Apply and Restore
// from a single goroutine, never concurrently with each other; Snapshot is
// called from that goroutine too, but the returned [Snapshot] is persisted
// later, concurrently with Apply.
type StateMachine interface {
	// Apply gets committed command entries in log order, in batches, with
	// no gaps between batches. It returns exactly one result per entry (any
	// value, including an error value); the result is returned by
	// [Node.Apply] on the node that proposed the entry. Apply must be
	// deterministic: every node applies the same entries. A result slice of
	// the wrong length is a programming error and panics. After the node
	// stood by (storage full, see [Node.StorageFull]), entries it has
	// already applied are given again, from its latest snapshot on: Apply
	// must skip entries at or below the last index it applied.
	Apply(entries []Entry) []any
	// Snapshot returns a point-in-time view of the state. It should be
	// cheap: the expensive writing happens later in Snapshot.WriteTo.
	Snapshot() (Snapshot, error)
	// Restore replaces all state with the snapshot read from r.
	Restore(r io.Reader) error
}

// Snapshot is a point-in-time view of a [StateMachine], written to the
// snapshot store concurrently with later Apply calls.
type Snapshot interface {
	// WriteTo writes the whole snapshot to w.
	WriteTo(w io.Writer) (int64, error)
	// Release is called when Raft is done with the snapshot, whether or not
	// WriteTo succeeded.
	Release()
}

// Entry is one committed command. Data must not be modified; it may be
// retained.
type Entry struct {
	Index uint64 // Raft log index, strictly increasing
	Data  []byte // the bytes given to Node.Apply
}

// fsm adapts a StateMachine to raft.BatchingFSM. Only LogCommand entries
// reach the StateMachine; every other entry type gets a nil result.
type fsm struct {
	sm StateMachine
}

var _ raft.BatchingFSM = (*fsm)(nil)

// ApplyBatch implements raft.BatchingFSM.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	results := make([]any, len(logs))
	entries := make([]Entry, 0, len(logs))
	for _, l := range logs {
		if l.Type == raft.LogCommand {
			entries = append(entries, Entry{Index: l.Index, Data: l.Data})
		}
	}
	if len(entries) == 0 {
		return results
	}
	out := f.sm.Apply(entries)
	if len(out) != len(entries) {
		panic(fmt.Sprintf("consensus: StateMachine.Apply returned %d results for %d entries", len(out), len(entries)))
	}
	j := 0
	for i, l := range logs {
		if l.Type == raft.LogCommand {
			results[i] = out[j]
			j++
		}
	}
	return results
}

// Apply implements raft.FSM; Raft uses it only when batching is off.
func (f *fsm) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// Snapshot implements raft.FSM.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.sm.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("consensus: snapshot: %w", err)
	}
	return fsmSnapshot{s}, nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.sm.Restore(rc); err != nil {
		return fmt.Errorf("consensus: restore: %w", err)
	}
	return nil
}

// fsmSnapshot adapts a Snapshot to raft.FSMSnapshot.
type fsmSnapshot struct {
	s Snapshot
}

// Persist implements raft.FSMSnapshot: the sink is closed on success and
// cancelled on failure.
func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("consensus: persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("consensus: persist snapshot: %w", err)
	}
	return nil
}

// Release implements raft.FSMSnapshot.
func (s fsmSnapshot) Release() { s.s.Release() }
