package testutil

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// MappedKiB is the resident size, in KiB, of this process's maps of the
// file at path (its absolute path, as /proc/self/smaps names it). It skips
// the test when /proc/self/smaps cannot be read.
func MappedKiB(t testing.TB, path string) int {
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
