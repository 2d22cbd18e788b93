//go:build !linux

package blobstore

import "os"

// startWriteback is a no-op where sync_file_range(2) does not exist.
func startWriteback(*os.File, int64, int64) {}

// dropWritten is a no-op where sync_file_range(2) does not exist.
func dropWritten(*os.File, int64, int64) {}

// dropCached is a no-op where posix_fadvise(2) is not used.
func dropCached(*os.File) {}
