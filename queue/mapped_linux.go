package queue

import "golang.org/x/sys/unix"

// releaseMapped unmaps the pages of the size bytes mapped at data
// (MADV_DONTNEED on a shared file map: the file keeps them).
func releaseMapped(data uintptr, size int64) error {
	if data == 0 || size <= 0 {
		return nil
	}
	if _, _, errno := unix.Syscall(unix.SYS_MADVISE, data, uintptr(size), unix.MADV_DONTNEED); errno != 0 {
		return errno
	}
	return nil
}
