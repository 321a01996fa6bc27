package queue

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func snapshotBytes(t testing.TB, s *Store) []byte {
	t.Helper()
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Release()
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo: %d %v", n, err)
	}
	return buf.Bytes()
}

func TestSnapshotRestore(t *testing.T) {
	entries := script(t, 5, 300)
	a, _ := openStore(t, "alpha")
	a.Apply(entries[:200])
	want, wantRaw := readView(t, a), rawDump(t, a)

	// The snapshot is a point in time: later applies do not show in it.
	sn, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if sn.Index() != 200 {
		t.Fatalf("snapshot index = %d", sn.Index())
	}
	a.Apply(entries[200:])
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	sn.Release() // idempotent
	if _, err := sn.WriteTo(&buf); err == nil {
		t.Fatal("WriteTo after Release succeeded")
	}

	b, pathB := openStore(t, "alpha")
	var lb cmdLog
	lb.apply(t, b, submitCmd(t1, item("only-in-b", "zulu", Flash, "x")))
	changed := b.Changed()
	if err := b.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Restore did not wake Changed")
	}
	assertSameView(t, want, readView(t, b))
	assertSameRaw(t, wantRaw, rawDump(t, b))
	if _, err := b.Lookup("only-in-b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old state survived Restore: %v", err)
	}
	if fi, err := os.Stat(pathB); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored file mode: %v %v", fi.Mode(), err)
	}
	if left, _ := filepath.Glob(pathB + ".restore-*"); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}

	// Raft then applies the entries after the snapshot; replays are skipped.
	b.Apply(entries[150:])
	assertSameRaw(t, rawDump(t, a), rawDump(t, b))

	// The restored state persists.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := Open(pathB, "alpha", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	assertSameRaw(t, rawDump(t, a), rawDump(t, b2))
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	other, _ := openStore(t, "bravo")
	var l cmdLog
	l.apply(t, other, receiveCmd(t1, "alpha", Routine, inMsg("alpha", Routine, 1, "x", "y")))
	otherSite := snapshotBytes(t, other)

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "not a queue snapshot"},
		{"garbage", bytes.Repeat([]byte("hotline"), 5000), "not a queue snapshot"},
		{"truncated", otherSite[:4096], "snapshot"},
		{"other site", otherSite, "belongs to site"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, path := openStore(t, "alpha")
			var l cmdLog
			l.apply(t, s, submitCmd(t1, item("keep", "bravo", Routine, "x")))
			before := rawDump(t, s)
			err := s.Restore(bytes.NewReader(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore = %v, want error containing %q", err, tc.want)
			}
			assertSameRaw(t, before, rawDump(t, s))
			if s.Err() != nil {
				t.Fatalf("store failed after a rejected snapshot: %v", s.Err())
			}
			if left, _ := filepath.Glob(path + ".restore-*"); len(left) != 0 {
				t.Fatalf("temporary files left: %v", left)
			}
			l.apply(t, s, submitCmd(t2, item("after", "bravo", Routine, "x")))
		})
	}
}

// TestRestoreWhileReading restores repeatedly while readers query the
// store: every read sees either the old or the new state, never an error.
func TestRestoreWhileReading(t *testing.T) {
	src, _ := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, src, submitCmd(t1, item("m1", "bravo", Routine, "one")))
	snap1 := snapshotBytes(t, src)
	l.apply(t, src, submitCmd(t2, item("m2", "bravo", Routine, "two")), deliveredCmd(t3, "bravo", Routine, 1))
	snap2 := snapshotBytes(t, src)

	s, _ := openStore(t, "alpha")
	if err := s.Restore(bytes.NewReader(snap1)); err != nil {
		t.Fatal(err)
	}
	// A snapshot taken before the restores stays readable throughout.
	held, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				st, err := s.Lookup("m1")
				if err != nil {
					errs <- err
					return
				}
				msgs, err := s.Pending("bravo", Routine, 0, 0, 0)
				if err != nil {
					errs <- err
					return
				}
				if string(st.Message.Payload) != "one" || len(msgs) < 1 || len(msgs) > 2 || len(s.Outbound()) != 1 {
					errs <- errors.New("inconsistent read")
					return
				}
				reads.Add(1)
			}
		}()
	}
	for i := range 20 {
		data := snap1
		if i%2 == 1 {
			data = snap2
		}
		if err := s.Restore(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	// Let the readers run against the final state too.
	deadline := time.Now().Add(10 * time.Second)
	for start := reads.Load(); reads.Load() < start+100 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := mustStatus(t, s, "m1"); st.State != Delivered {
		t.Fatalf("final state = %+v", st) // the last restore was snap2
	}
	var buf bytes.Buffer
	if _, err := held.WriteTo(&buf); err != nil {
		t.Fatalf("snapshot of a replaced file: %v", err)
	}
	held.Release()
	if !bytes.Contains(buf.Bytes(), []byte("one")) {
		t.Fatal("held snapshot lost its data")
	}
}

// TestSnapshotOutlivesClose: Close does not wait for (or break) an open
// snapshot; the file is closed when it is released.
func TestSnapshotOutlivesClose(t *testing.T) {
	s, path := openStore(t, "alpha")
	var l cmdLog
	l.apply(t, s, submitCmd(t1, item("m1", "bravo", Routine, "one")))
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sn.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	sn.Release()
	s2, err := Open(path, "alpha", Options{}) // the file lock is free again
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if st := mustStatus(t, s2, "m1"); string(st.Message.Payload) != "one" {
		t.Fatalf("status = %+v", st)
	}
}

// TestSnapshotWhileApplying writes snapshots while batches keep applying.
func TestSnapshotWhileApplying(t *testing.T) {
	entries := script(t, 9, 300)
	s, _ := openStore(t, "alpha")
	ref, _ := openStore(t, "alpha")
	done := make(chan struct{})
	go func() {
		defer close(done)
		applyInBatches(s, entries, 7)
	}()
	var snaps [][]byte
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		snaps = append(snaps, snapshotBytes(t, s))
	}
	// Every snapshot restores to exactly the state after its index.
	step := max(1, len(snaps)/10)
	for i := 0; i < len(snaps); i += step {
		data := snaps[i]
		r, _ := openStore(t, "alpha")
		if err := r.Restore(bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		idx := r.AppliedIndex()
		for ref.AppliedIndex() < idx {
			ref.Apply(entries[ref.AppliedIndex() : ref.AppliedIndex()+1])
		}
		assertSameRaw(t, rawDump(t, ref), rawDump(t, r))
	}
}
