//go:build linux

package queue

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/hotline-link/hotline/internal/testutil"
)

// Reading a queue maps its pages; ReleaseMapped gives them back, and the
// next read sees the same messages.
func TestReleaseMappedUnmapsAndKeepsData(t *testing.T) {
	s, path := openStore(t, "alpha")
	var l cmdLog
	payload := bytes.Repeat([]byte("x"), 8000)
	const n = 2000
	for i := 0; i < n; i += 100 {
		var items []SubmitItem
		for j := i; j < i+100; j++ {
			items = append(items, item(fmt.Sprintf("m%d", j), "bravo", Routine, string(payload)))
		}
		l.apply(t, s, submitCmd(t1, items...))
	}
	read := func() {
		t.Helper()
		msgs, err := s.Pending("bravo", Routine, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != n || !bytes.Equal(msgs[n-1].Payload, payload) || msgs[n-1].ID != fmt.Sprintf("m%d", n-1) {
			t.Fatalf("read %d messages, the last %q of %d bytes; want %d", len(msgs), msgs[len(msgs)-1].ID, len(msgs[len(msgs)-1].Payload), n)
		}
	}
	read()
	before := testutil.MappedKiB(t, path)
	if before < n*8/2 { // 16 MB of payloads read
		t.Fatalf("only %d KiB of %s mapped after reading %d messages of 8 KB", before, path, n)
	}
	if err := s.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	after := testutil.MappedKiB(t, path)
	t.Logf("resident map of state.db: %d KiB after reading, %d KiB after ReleaseMapped", before, after)
	if after > before/10 {
		t.Errorf("%d KiB of %s still mapped after ReleaseMapped (%d before)", after, path, before)
	}
	read()
	_ = s.Close()
	if err := s.ReleaseMapped(); err == nil {
		t.Error("ReleaseMapped on a closed store: no error")
	}
}
