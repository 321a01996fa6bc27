//go:build linux

package consensus

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"golang.org/x/sys/unix"
)

// residentKiB is the resident size of this process's maps of path.
func residentKiB(t *testing.T, path string) int {
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

// Reading the log maps raft.db's pages; pageOut gives them back, and the
// log reads the same afterwards.
func TestPageOutReleasesRaftDB(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err == nil && fs.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is a tmpfs: its pages cannot be paged out without swap")
	}
	path := filepath.Join(dir, "raft.db")
	store, err := openBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const n, size = 64, 256 << 10
	for i := uint64(1); i <= n; i++ {
		data := bytes.Repeat([]byte{byte(i)}, size)
		if err := store.StoreLog(&raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	read := func() {
		t.Helper()
		for i := uint64(1); i <= n; i++ {
			var l raft.Log
			if err := store.GetLog(i, &l); err != nil || len(l.Data) != size || l.Data[size-1] != byte(i) {
				t.Fatalf("GetLog(%d): %d bytes, err %v", i, len(l.Data), err)
			}
		}
	}
	read()
	before := residentKiB(t, path)
	if before < n*size/1024/2 {
		t.Fatalf("only %d KiB of %s mapped after reading %d entries of %d KiB", before, path, n, size>>10)
	}
	if err := pageOut(path); err != nil {
		t.Fatal(err)
	}
	after := residentKiB(t, path)
	t.Logf("resident map of raft.db: %d KiB after reading, %d KiB after pageOut", before, after)
	if after > before/4 {
		t.Errorf("%d KiB of %s still mapped after pageOut (%d before)", after, path, before)
	}
	read()
}
