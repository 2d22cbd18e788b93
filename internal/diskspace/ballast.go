package diskspace

import (
	"errors"
	"fmt"
	"os"
)

// ballastName is the ballast file's name in the watched directory.
const ballastName = "ballast"

// ballastOnDisk returns the size of the ballast file at path, 0 if there is
// none.
func ballastOnDisk(path string) int64 {
	info, err := os.Lstat(path)
	if err != nil || !info.Mode().IsRegular() {
		return 0
	}
	return info.Size()
}

// ballastWantLocked returns the size the ballast file should have now: the
// configured size (capped at the floor) once free space allows it without
// dropping below the reserve and its margin, and what it has until then.
func (w *Watcher) ballastWantLocked() int64 {
	size := min(w.cfg.Ballast, w.floorLocked())
	have := w.ballastSize
	reserve := w.reserveLocked()
	switch {
	case size <= 0:
		return 0
	case have >= size:
		return size
	case w.level == levelOK && w.freeLocked()-(size-have) >= reserve+margin(reserve):
		return size
	}
	return have
}

// adjustBallast gives the ballast file size want. The caller holds
// refreshMu. A failure is logged once until the ballast is made.
func (w *Watcher) adjustBallast(want int64) {
	w.mu.Lock()
	have := w.ballastSize
	w.mu.Unlock()
	if want == have {
		return
	}
	size, err := resizeBallast(w.ballastPath, want)
	w.mu.Lock()
	w.written += size - have // taken from (or given back to) the free space measured
	w.ballastSize = size
	failing := w.ballastFailing
	w.ballastFailing = err != nil
	w.mu.Unlock()
	switch {
	case err != nil && !failing:
		w.cfg.Logger.Warn("cannot keep the ballast file; a full disk may stop the node", "path", w.ballastPath,
			"size", FormatBytes(want), "err", err)
	case err == nil && size > have:
		w.cfg.Logger.Info("keeping a ballast file, deleted to give the metadata stores room when the disk is full",
			"path", w.ballastPath, "size", FormatBytes(size))
	}
}

// releaseBallast deletes the ballast file and returns the bytes it freed.
func (w *Watcher) releaseBallast() (int64, error) {
	w.refreshMu.Lock()
	defer w.refreshMu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	have := w.ballastSize
	if have == 0 {
		return 0, nil
	}
	if err := os.Remove(w.ballastPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("remove ballast: %w", err)
	}
	w.ballastSize = 0
	w.written -= have
	return have, nil
}

// resizeBallast makes the file at path want bytes long, allocated on disk,
// or removes it for 0, and returns the size it has then. A file it could not
// make whole is removed, so that it takes no space nobody counts.
func resizeBallast(path string, want int64) (int64, error) {
	if want == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return ballastOnDisk(path), fmt.Errorf("remove ballast: %w", err)
		}
		return 0, nil
	}
	err := sizeFile(path, want)
	if err != nil {
		if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
			return ballastOnDisk(path), errors.Join(err, rmErr)
		}
		return 0, err
	}
	return want, nil
}

// sizeFile truncates or allocates the file at path to size bytes and syncs it.
func sizeFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create ballast: %w", err)
	}
	info, err := f.Stat()
	if err == nil {
		if info.Size() > size {
			err = f.Truncate(size)
		} else {
			err = allocate(f, size)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size ballast to %d bytes: %w", size, err)
	}
	return nil
}

// writeZeros extends f to size bytes by writing zeros after its end.
func writeZeros(f *os.File, size int64) error {
	info, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := info.Size(); off < size; {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}
