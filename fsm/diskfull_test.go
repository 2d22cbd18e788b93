package fsm

import (
	"os"
	"reflect"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// TestAcceptedOnFullDisk lists, for every command, whether a node below
// its disk floor accepts it: a new command is refused until it is added
// here on purpose.
func TestAcceptedOnFullDisk(t *testing.T) {
	accepted := map[string]bool{
		"delete_manifest": true, "delete_tag": true, "unlink_blob": true,
		"remove_blob_holder": true, "collect_blob": true, "collected_blob_deleted": true,
		"register_node": true, "deregister_node": true,
		"delete_user": true, "delete_group": true, "remove_group_member": true,
		"revoke_role": true, "delete_api_token": true, "delete_remote": true,
		"record_gc_run": true, "record_sweep": true,
	}
	for typ := range handlers {
		cmd := &fsmpb.Command{}
		reflect.ValueOf(cmd).Elem().FieldByName("Op").Set(reflect.New(typ.Elem()))
		name := opName(cmd)
		if got := AcceptedOnFullDisk(cmd); got != accepted[name] {
			t.Errorf("AcceptedOnFullDisk(%s) = %v, want %v", name, got, accepted[name])
		}
	}
	if AcceptedOnFullDisk(&fsmpb.Command{}) {
		t.Error("a command without an operation is accepted")
	}
}

// fillableFS fails every write with ENOSPC while full is set.
type fillableFS struct {
	vfs.FS
	full *atomic.Bool
}

func (fs fillableFS) Create(name string) (vfs.File, error) {
	f, err := fs.FS.Create(name)
	return fillableFile{File: f, full: fs.full}, err
}

func (fs fillableFS) ReuseForWrite(oldname, newname string) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname)
	return fillableFile{File: f, full: fs.full}, err
}

type fillableFile struct {
	vfs.File
	full *atomic.Bool
}

func (f fillableFile) Write(p []byte) (int, error) {
	if f.full.Load() {
		return 0, &os.PathError{Op: "write", Path: "wal", Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

// TestApplyThroughAFullDisk fills the disk under the FSM's database: the
// write to Pebble's log meets ENOSPC, which would stop the process, and
// WithOnDiskFull's callback makes room (as deleting the ballast does) so
// that the retry succeeds and the entry is applied.
func TestApplyThroughAFullDisk(t *testing.T) {
	var full atomic.Bool
	var called atomic.Int32
	base := fillableFS{FS: vfs.Default, full: &full}
	f, err := Open(t.TempDir(), func(f *FSM) { f.fs = base }, WithOnDiskFull(func() {
		called.Add(1)
		full.Store(false)
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	tf := &testFSM{FSM: f, t: t}
	tf.mustApply(putManifest("acme/app", "m1", "v1"))

	full.Store(true)
	tf.mustApply(deleteTag("acme/app", "v1"))
	// The batch is committed without sync: make its log record reach the
	// file, as the next synced write would.
	if err := f.cur.db.LogData(nil, pebble.Sync); err != nil {
		t.Fatalf("sync the log: %v", err)
	}
	if called.Load() != 1 {
		t.Fatalf("the disk-full callback ran %d times, want 1", called.Load())
	}
	wantTags(t, f, "acme/app")
}
