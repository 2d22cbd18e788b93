// Package diskspace watches the free space of the filesystem that holds a
// node's data directory and decides what the node may still write there.
//
// A Watcher measures the filesystem (statfs) when it starts, every
// Config.Interval, and again whenever a write fails for lack of space. Its
// checks are cheap enough for every chunk of an upload: they read the last
// measurement, less the bytes allowed since, under a mutex.
//
// Two thresholds split the free space into three levels:
//
//   - above Config.Reserve everything is accepted;
//   - below it, new blob bytes are refused (uploads, and copies from other
//     nodes), so that the metadata stores, the Raft log and Pebble, keep
//     room: small metadata writes (tags, manifests, users) still work;
//   - below Config.Floor, metadata writes are refused too, except those
//     that free space or keep the cluster running (deletions, garbage
//     collection, membership), so that an operator can always dig out.
//
// Leaving a level takes a quarter of its threshold more than entering it,
// so that free space hovering at a threshold does not flap. The Watcher
// logs each change of level once: a WARN on the way down, with the
// numbers, and an INFO on the way back.
//
// Pebble cannot survive a failed write to its log: it stops the process.
// The Watcher therefore keeps a ballast file, <Dir>/ballast, of
// Config.Ballast bytes, which DiskFull (called by the Pebble databases'
// filesystem when a write meets ENOSPC, before they retry it once) deletes
// so that the retry finds room. It is created again once free space is
// back above the reserve.
//
// Refusals are errors for which IsFull is true, as are ENOSPC and EDQUOT
// from the filesystem; callers answer them all the same way.
package diskspace

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrInsufficientStorage is what every refusal for lack of space matches
// (errors.Is).
var ErrInsufficientStorage = errors.New("insufficient storage")

// IsFull reports whether err says there is no room: a Watcher's refusal,
// or ENOSPC or EDQUOT from the filesystem.
func IsFull(err error) bool {
	return errors.Is(err, ErrInsufficientStorage) || isNoSpace(err)
}

// isNoSpace reports whether err comes from a filesystem out of space.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// RefusedError is a write a Watcher refused.
type RefusedError struct {
	// Write is what was refused: "upload" or "metadata write".
	Write string
	// Free is the free space the Watcher counted, and Threshold the
	// reserve or floor it is below, in bytes.
	Free, Threshold int64
}

func (e *RefusedError) Error() string {
	limit := "reserve"
	if e.Write != writeUpload {
		limit = "floor"
	}
	return fmt.Sprintf("insufficient storage: %s refused with %s free on the data disk, below its %s of %s",
		e.Write, FormatBytes(e.Free), limit, FormatBytes(e.Threshold))
}

// Is makes a RefusedError match ErrInsufficientStorage.
func (e *RefusedError) Is(target error) bool { return target == ErrInsufficientStorage }

const (
	writeUpload   = "upload"
	writeMetadata = "metadata write"
)
