package diskspace

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// allocate extends f to size bytes with fallocate(2), so that the blocks
// are reserved without writing them; where the filesystem cannot, it
// writes zeros.
func allocate(f *os.File, size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.Fallocate(int(fd), 0, 0, size) }); err != nil {
		return err
	}
	if errors.Is(ferr, unix.EOPNOTSUPP) || errors.Is(ferr, unix.ENOSYS) {
		return writeZeros(f, size)
	}
	return ferr
}
