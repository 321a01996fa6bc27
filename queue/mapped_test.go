//go:build linux

package queue

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// mappedKiB is the resident size of this process's maps of file path
// (/proc/self/smaps).
func mappedKiB(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":"):
			in = len(fields) >= 6 && fields[5] == path
		case in && len(fields) == 3 && fields[0] == "Rss:":
			n, _ := strconv.Atoi(fields[1])
			total += n
		}
	}
	return total
}

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
	before := mappedKiB(t, path)
	if before < n*8/2 { // 16 MB of payloads read
		t.Fatalf("only %d KiB of %s mapped after reading %d messages of 8 KB", before, path, n)
	}
	if err := s.ReleaseMapped(); err != nil {
		t.Fatal(err)
	}
	after := mappedKiB(t, path)
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
