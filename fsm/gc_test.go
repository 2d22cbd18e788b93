package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const (
	codeCollected      = fsmpb.ResultCode_RESULT_CODE_BLOB_COLLECTED
	codeNotCollectable = fsmpb.ResultCode_RESULT_CODE_BLOB_NOT_COLLECTABLE
)

// at stamps cmd with the proposer's clock.
func at(nanos int64, cmd *fsmpb.Command) *fsmpb.Command {
	cmd.UnixNanos = nanos
	return cmd
}

// putImage is a manifest of repo that references blobs (by content).
func putImage(repo, content string, blobs ...string) *fsmpb.Command {
	cmd := putManifest(repo, content)
	for _, b := range blobs {
		cmd.GetPutManifest().Blobs = append(cmd.GetPutManifest().Blobs, dgst(b))
	}
	return cmd
}

func collectBlob(content string, grace int64) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_CollectBlob{CollectBlob: &fsmpb.CollectBlob{
		Digest: dgst(content), GraceNanos: grace,
	}}}
}

func collectedBlobDeleted(content, node string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_CollectedBlobDeleted{CollectedBlobDeleted: &fsmpb.CollectedBlobDeleted{
		Digest: dgst(content), NodeId: node,
	}}}
}

// wantUnreferenced checks blob content's gc record: since > 0 wants that
// timestamp, since == 0 wants no record.
func wantUnreferenced(t *testing.T, f *FSM, content string, since int64) {
	t.Helper()
	got, ok, err := unreferencedSince(f, digest.Digest(dgst(content)))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case since == 0 && ok:
		t.Errorf("blob %s: unreferenced since %d, want referenced (no gc record)", content, got)
	case since != 0 && (!ok || got != since):
		t.Errorf("blob %s: gc record %d (present %v), want %d", content, got, ok, since)
	}
}

func wantTombstone(t *testing.T, f *FSM, content string, nodes ...string) {
	t.Helper()
	rec, err := f.CollectedBlob(digest.Digest(dgst(content)))
	if len(nodes) == 0 {
		if err == nil {
			t.Errorf("blob %s: tombstone %v, want none", content, rec)
		}
		return
	}
	if err != nil {
		t.Fatalf("blob %s: %v, want a tombstone for %v", content, err, nodes)
	}
	if !slices.Equal(rec.GetNodeIds(), nodes) {
		t.Errorf("blob %s: tombstone nodes %v, want %v", content, rec.GetNodeIds(), nodes)
	}
}

const hour = int64(3600e9)

func TestBlobReferencesAndCollection(t *testing.T) {
	tests := []struct {
		name     string
		setup    []*fsmpb.Command
		cmd      *fsmpb.Command
		want     fsmpb.ResultCode
		contains string
		check    func(t *testing.T, f *FSM)
	}{
		{
			name:  "a stored blob not yet linked is unreferenced since it was stored",
			setup: []*fsmpb.Command{at(5, addHolder("b", 1, "n1"))},
			cmd:   at(7, addHolder("b", 1, "n2")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantUnreferenced(t, f, "b", 7) },
		},
		{
			name:  "a link clears the gc record",
			setup: []*fsmpb.Command{at(5, addHolder("b", 1, "n1"))},
			cmd:   at(6, linkBlob("acme/app", "b", 1)),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				wantUnreferenced(t, f, "b", 0)
				if l, m, _ := f.BlobReferences(digest.Digest(dgst("b"))); l != 1 || m != 0 {
					t.Errorf("references = %d links, %d manifests; want 1, 0", l, m)
				}
			},
		},
		{
			name:  "unlinking the last link starts the grace period",
			setup: []*fsmpb.Command{at(5, addHolder("b", 1, "n1")), at(6, linkBlob("acme/app", "b", 1))},
			cmd:   at(9, unlinkBlob("acme/app", "b")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantUnreferenced(t, f, "b", 9) },
		},
		{
			name: "a blob linked in another repository stays referenced",
			setup: []*fsmpb.Command{at(5, addHolder("b", 1, "n1")), at(6, linkBlob("acme/app", "b", 1)),
				at(7, linkBlob("acme/db", "b", 1))},
			cmd:   at(9, unlinkBlob("acme/app", "b")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantUnreferenced(t, f, "b", 0) },
		},
		{
			name:  "a blob nobody holds gets no gc record",
			setup: []*fsmpb.Command{at(6, linkBlob("acme/app", "b", 1))},
			cmd:   at(9, unlinkBlob("acme/app", "b")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantUnreferenced(t, f, "b", 0) },
		},
		{
			name: "a manifest keeps its blobs referenced after their links go",
			setup: []*fsmpb.Command{at(5, addHolder("b", 1, "n1")), at(6, linkBlob("acme/app", "b", 1)),
				at(7, putImage("acme/app", "m", "b"))},
			cmd:  at(9, unlinkBlob("acme/app", "b")),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantUnreferenced(t, f, "b", 0)
				if l, m, _ := f.BlobReferences(digest.Digest(dgst("b"))); l != 0 || m != 1 {
					t.Errorf("references = %d links, %d manifests; want 0, 1", l, m)
				}
			},
		},
		{
			name: "deleting the last manifest that lists a blob (twice) starts its grace period",
			setup: []*fsmpb.Command{at(5, addHolder("b", 1, "n1")), at(5, addHolder("c", 1, "n1")),
				at(7, putImage("acme/app", "m", "b", "c", "b")), at(8, putImage("acme/db", "m2", "c"))},
			cmd:  at(9, deleteManifest("acme/app", "m")),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantUnreferenced(t, f, "b", 9)
				wantUnreferenced(t, f, "c", 0) // still in acme/db's manifest
			},
		},
		{
			name: "deleting an image unlinks the blobs only it listed, so they become collectable",
			setup: []*fsmpb.Command{
				at(5, addHolder("shared", 1, "n1")), at(5, addHolder("own", 1, "n1")), at(5, addHolder("elsewhere", 1, "n1")),
				at(6, linkBlob("acme/app", "shared", 1)), at(6, linkBlob("acme/app", "own", 1)), at(6, linkBlob("acme/app", "elsewhere", 1)),
				at(6, linkBlob("acme/db", "elsewhere", 1)),
				at(7, putImage("acme/app", "v1", "shared", "own", "elsewhere")), at(8, putImage("acme/app", "v2", "shared")),
			},
			cmd:  at(9, deleteImage("acme/app", "v1")),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantUnreferenced(t, f, "own", 9)
				wantUnreferenced(t, f, "shared", 0)    // v2 lists it
				wantUnreferenced(t, f, "elsewhere", 0) // acme/db links it
				for blob, want := range map[string][2]int{"own": {0, 0}, "shared": {1, 1}, "elsewhere": {1, 0}} {
					if l, m, _ := f.BlobReferences(digest.Digest(dgst(blob))); l != want[0] || m != want[1] {
						t.Errorf("%s: references = %d links, %d manifests; want %d, %d", blob, l, m, want[0], want[1])
					}
				}
			},
		},
		{
			name: "deleting a manifest alone (the registry API's DELETE) keeps the repository's links",
			setup: []*fsmpb.Command{at(5, addHolder("own", 1, "n1")), at(6, linkBlob("acme/app", "own", 1)),
				at(7, putImage("acme/app", "v1", "own")), at(8, putImage("acme/app", "v2"))},
			cmd:   at(9, deleteManifest("acme/app", "v1")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantUnreferenced(t, f, "own", 0) },
		},
		{
			name: "pushing the same manifest again adds no reference",
			setup: []*fsmpb.Command{at(5, addHolder("b", 1, "n1")), at(7, putImage("acme/app", "m", "b")),
				at(8, putImage("acme/app", "m", "b"))},
			cmd:   at(9, deleteManifest("acme/app", "m")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantUnreferenced(t, f, "b", 9) },
		},
		{
			name: "storing the blob again restarts an unreferenced blob's grace period",
			setup: []*fsmpb.Command{at(5, addHolder("b", 1, "n1")), at(6, linkBlob("acme/app", "b", 1)),
				at(7, unlinkBlob("acme/app", "b"))},
			cmd:   at(2*hour, addHolder("b", 1, "n1")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantUnreferenced(t, f, "b", 2*hour) },
		},
		{
			name:     "collect refuses a blob within its grace period",
			setup:    []*fsmpb.Command{at(hour, addHolder("b", 1, "n1"))},
			cmd:      at(2*hour-1, collectBlob("b", hour)),
			want:     codeNotCollectable,
			contains: "less than the grace period",
		},
		{
			name:     "collect refuses a referenced blob",
			setup:    []*fsmpb.Command{at(5, addHolder("b", 1, "n1")), at(6, putImage("acme/app", "m", "b"))},
			cmd:      at(3*hour, collectBlob("b", hour)),
			want:     codeNotCollectable,
			contains: "is referenced",
		},
		{
			name:     "collect refuses a blob without gc record",
			cmd:      at(3*hour, collectBlob("b", hour)),
			want:     codeNotCollectable,
			contains: "no unreferenced record",
		},
		{
			name: "collect after the grace period removes the holders and leaves a tombstone",
			setup: []*fsmpb.Command{at(hour, addHolder("b", 1, "n2")), at(hour, addHolder("b", 1, "n1")),
				at(hour+1, linkBlob("acme/app", "b", 1)), at(hour+2, unlinkBlob("acme/app", "b"))},
			cmd:  at(2*hour+2, collectBlob("b", hour)),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				if _, err := f.BlobHolders(digest.Digest(dgst("b"))); err == nil {
					t.Error("holder record kept after collection")
				}
				wantUnreferenced(t, f, "b", 0)
				wantTombstone(t, f, "b", "n1", "n2")
				rec, _ := f.CollectedBlob(digest.Digest(dgst("b")))
				if rec.GetSize() != 1 || rec.GetCollectedUnixNanos() != 2*hour+2 {
					t.Errorf("tombstone %v: want size 1 collected at %d", rec, 2*hour+2)
				}
			},
		},
		{
			name:  "collecting a blob nobody holds only drops its record",
			setup: []*fsmpb.Command{at(hour, addHolder("b", 1, "n1")), at(hour, removeHolder("b", "n1"))},
			cmd:   at(3*hour, collectBlob("b", hour)),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				wantUnreferenced(t, f, "b", 0)
				wantTombstone(t, f, "b")
			},
		},
		{
			name:     "a manifest push referencing a collected blob fails clearly",
			setup:    []*fsmpb.Command{at(hour, addHolder("b", 1, "n1")), at(3*hour, collectBlob("b", hour))},
			cmd:      at(3*hour+1, putImage("acme/app", "m", "b")),
			want:     codeCollected,
			contains: "blob " + dgst("b") + " was garbage-collected",
			check: func(t *testing.T, f *FSM) {
				if _, err := f.Manifest("acme/app", digest.Digest(dgst("m"))); err == nil {
					t.Error("manifest stored although its blob was collected")
				}
			},
		},
		{
			name:     "a link (mount) of a collected blob fails clearly",
			setup:    []*fsmpb.Command{at(hour, addHolder("b", 1, "n1")), at(3*hour, collectBlob("b", hour))},
			cmd:      at(3*hour+1, linkBlob("acme/app", "b", 1)),
			want:     codeCollected,
			contains: "push the blob again",
		},
		{
			name: "a blob stored again after collection can be linked; the node leaves the tombstone",
			setup: []*fsmpb.Command{at(hour, addHolder("b", 1, "n1")), at(hour, addHolder("b", 1, "n2")),
				at(3*hour, collectBlob("b", hour)), at(3*hour+1, addHolder("b", 1, "n1"))},
			cmd:  at(3*hour+2, putImage("acme/app", "m", "b")),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantTombstone(t, f, "b", "n2")
				wantUnreferenced(t, f, "b", 0)
				wantHolders(t, f, dgst("b"), 1, []string{"n1"})
			},
		},
		{
			name: "nodes report deleting their copies; the tombstone goes with the last",
			setup: []*fsmpb.Command{at(hour, addHolder("b", 1, "n1")), at(hour, addHolder("b", 1, "n2")),
				at(3*hour, collectBlob("b", hour)), collectedBlobDeleted("b", "n2")},
			cmd:   collectedBlobDeleted("b", "n1"),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantTombstone(t, f, "b") },
		},
		{
			name: "a node that is not on the tombstone is NOT_FOUND",
			setup: []*fsmpb.Command{at(hour, addHolder("b", 1, "n1")),
				at(3*hour, collectBlob("b", hour))},
			cmd:  collectedBlobDeleted("b", "n9"),
			want: codeNotFound,
		},
		{
			name: "collecting again merges the tombstone",
			setup: []*fsmpb.Command{at(hour, addHolder("b", 1, "n1")), at(3*hour, collectBlob("b", hour)),
				at(3*hour, addHolder("b", 1, "n2"))},
			cmd:   at(5*hour, collectBlob("b", hour)),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantTombstone(t, f, "b", "n1", "n2") },
		},
		{
			name: "negative grace is invalid",
			cmd:  collectBlob("b", -1),
			want: codeInvalid,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openTest(t)
			f.mustApply(tt.setup...)
			res := f.apply(tt.cmd)
			if res.GetCode() != tt.want || !strings.Contains(res.GetMessage(), tt.contains) {
				t.Fatalf("result %v, want %v containing %q", res, tt.want, tt.contains)
			}
			if tt.check != nil {
				tt.check(t, f.FSM)
			}
		})
	}
}

// gcLog exercises every command that touches references or collection.
func gcLog() []*fsmpb.Command {
	return []*fsmpb.Command{
		at(hour, addHolder("b1", 1, "n1")),
		at(hour, addHolder("b2", 2, "n1")),
		at(hour, addHolder("b2", 2, "n2")),
		at(hour+1, linkBlob("acme/app", "b1", 1)),
		at(hour+2, putImage("acme/app", "m", "b1", "b2")),
		at(hour+3, unlinkBlob("acme/app", "b1")),
		at(hour+4, deleteManifest("acme/app", "m")),
		at(hour+5, addHolder("b3", 3, "n2")),
		at(hour+6, linkBlob("acme/db", "b3", 3)),
		at(3*hour, collectBlob("b1", hour)),
		at(3*hour, collectBlob("b2", hour)),
		collectedBlobDeleted("b2", "n1"),
	}
}

func TestGCStateSurvivesSnapshotRestoreAndReplaysIdentically(t *testing.T) {
	src := openTest(t)
	src.mustApply(gcLog()...)
	want := dump(t, src.FSM)
	for _, prefix := range []string{prefixBlobRef, prefixCollected} {
		if !slices.ContainsFunc(mapsKeys(want), func(k string) bool { return strings.HasPrefix(k, prefix) }) {
			t.Fatalf("the log wrote no %s keys; state %v", prefix, want)
		}
	}

	// A replica that applies the same log ends with the same bytes.
	replay := openTest(t)
	replay.mustApply(gcLog()...)
	if got := dump(t, replay.FSM); !mapsEqual(got, want) {
		t.Fatalf("replayed state differs:\n got %v\nwant %v", got, want)
	}

	dst := openTest(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(persist(t, src.FSM)))); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst.FSM); !mapsEqual(got, want) {
		t.Fatalf("restored state differs:\n got %v\nwant %v", got, want)
	}
	wantTombstone(t, dst.FSM, "b1", "n1")
	wantTombstone(t, dst.FSM, "b2", "n2")
	// The restored FSM goes on: a new unreferenced blob, and a refusal.
	dst.index = src.index
	dst.mustApply(at(4*hour, unlinkBlob("acme/db", "b3")))
	wantUnreferenced(t, dst.FSM, "b3", 4*hour)
	if res := dst.apply(at(4*hour, linkBlob("acme/x", "b1", 1))); res.GetCode() != codeCollected {
		t.Fatalf("link of a collected blob after restore: %v", res)
	}
	list, err := dst.ListUnreferencedBlobs("", 0)
	if err != nil || len(list) != 1 || list[0].Digest != digest.Digest(dgst("b3")) {
		t.Fatalf("ListUnreferencedBlobs = %v, %v", list, err)
	}
	tombs, err := dst.ListCollectedBlobs("", 1)
	if err != nil || len(tombs) != 1 {
		t.Fatalf("ListCollectedBlobs(n=1) = %v, %v", tombs, err)
	}
	rest, err := dst.ListCollectedBlobs(tombs[0].GetDigest(), 0)
	if err != nil || len(rest) != 1 || rest[0].GetDigest() == tombs[0].GetDigest() {
		t.Fatalf("ListCollectedBlobs after %s = %v, %v", tombs[0].GetDigest(), rest, err)
	}
}

// State written before the reference index existed is refused, at Open as
// in a snapshot: its gc would take referenced blobs for garbage. New state
// is marked as indexed from the start.
func TestStateWithoutTheReferenceIndexIsRefused(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tf := &testFSM{t: t, FSM: f}
	tf.mustApply(at(hour, linkBlob("acme/app", "b1", 1)))
	snapshotOf := func() []byte {
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		defer snap.Release()
		var buf bytes.Buffer
		if err := snap.(*snapshot).write(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	good := snapshotOf()
	// Forget the marker, as a data dir from before the index has none.
	h, err := f.acquire()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.db.Delete(keyBlobRefsIndexed, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	h.release()
	old := snapshotOf()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrStateTooOld) {
		t.Fatalf("Open of state without the index: %v, want ErrStateTooOld", err)
	}

	fresh, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.Restore(io.NopCloser(bytes.NewReader(old))); !errors.Is(err, ErrStateTooOld) {
		t.Fatalf("Restore of a snapshot without the index: %v, want ErrStateTooOld", err)
	}
	if err := fresh.Restore(io.NopCloser(bytes.NewReader(good))); err != nil {
		t.Fatalf("Restore of a snapshot with the index: %v", err)
	}
	if _, ok, err := fresh.BlobLinked("acme/app", digest.Digest(dgst("b1"))); err != nil || !ok {
		t.Fatalf("restored state lacks the link: %v", err)
	}
}

func mapsKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// unreferencedSince returns when blob d became unreferenced, or ok ==
// false if it has no gc record.
func unreferencedSince(f *FSM, d digest.Digest) (nanos int64, ok bool, err error) {
	err = f.view(func(r pebble.Reader) error {
		v, found, err := get(r, unreferencedKey(string(d)))
		if err != nil || !found {
			return err
		}
		if len(v) != 8 {
			return fmt.Errorf("gc record of %s has %d bytes, want 8", d, len(v))
		}
		nanos, ok = int64(decodeUint64(v)), true
		return nil
	})
	return nanos, ok, err
}
