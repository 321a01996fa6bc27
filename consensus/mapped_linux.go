package consensus

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// pageOut applies MADV_PAGEOUT to every map of the file at path in this
// process (found in /proc/self/maps: cheap, unlike /proc/self/smaps, which
// walks every map's page tables). Paging out evicts the pages from the
// page cache too, so the log's next reads go to the disk.
func pageOut(path string) error {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // maps name files by absolute path
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return err
	}
	dev := fmt.Sprintf("%02x:%02x", unix.Major(st.Dev), unix.Minor(st.Dev))
	ino := strconv.FormatUint(st.Ino, 10)
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// start-end perms offset dev inode path. By device and inode, or
		// by path: on some filesystems (btrfs, overlayfs) the device a map
		// shows is not the one stat gives.
		f := bytes.Fields(sc.Bytes())
		if len(f) < 5 || (string(f[3]) != dev || string(f[4]) != ino) && (len(f) < 6 || string(bytes.Join(f[5:], []byte(" "))) != path) {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT)
		if errno != 0 && errno != unix.ENOMEM { // ENOMEM: bbolt unmapped it meanwhile
			return errno
		}
	}
	return sc.Err()
}
