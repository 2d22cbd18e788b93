package blobstore

import (
	"errors"
	"os"
)

// syncDir fsyncs a directory so that entries created or renamed into it
// survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// mkdirSynced creates dir if needed and, when it did, fsyncs its parent so the
// new entry is durable.
func mkdirSynced(dir, parent string) error {
	err := os.Mkdir(dir, 0o755)
	switch {
	case err == nil:
		return syncDir(parent)
	case errors.Is(err, os.ErrExist):
		return nil
	default:
		return err
	}
}
