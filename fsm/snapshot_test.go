package fsm

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
)

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

func persist(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// dump returns every key/value pair of the live database.
func dump(t *testing.T, f *FSM) map[string]string {
	t.Helper()
	kv := map[string]string{}
	err := f.view(func(r pebble.Reader) error {
		return scan(r, nil, nil, func(k, v []byte) (bool, error) {
			kv[string(k)] = string(v)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func populate(tf *testFSM, n int) {
	for i := range n {
		repo := []string{"acme/app", "acme/db", "solo"}[i%3]
		tf.mustApply(
			withRequestID(string(rune('a'+i)), putManifest(repo, "m"+string(rune('a'+i)), "t"+string(rune('a'+i)), "latest")),
			linkBlob(repo, "b"+string(rune('a'+i)), int64(i)),
		)
	}
	tf.mustApply(putReferrer("acme/app", "sig", "ma"))
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src := openTest(t)
	populate(src, 10)
	data := persist(t, src.FSM)

	// Writes after the snapshot are not part of it.
	want := dump(t, src.FSM)
	src.mustApply(putManifest("acme/late", "late", "v1"))

	dst := openTest(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst.FSM); !mapsEqual(got, want) {
		t.Fatalf("restored state differs:\n got %v\nwant %v", got, want)
	}
	if got, want := dst.AppliedIndex(), src.index-1; got != want {
		t.Fatalf("AppliedIndex = %d, want %d", got, want)
	}
	if repos, _ := dst.ListRepositories("", 0); !slices.Equal(repos, []string{"acme/app", "acme/db", "solo"}) {
		t.Fatalf("repositories = %v", repos)
	}
	// The restored FSM refuses what the original refuses.
	if err := dst.CheckRepositoryName("solo/x"); !errors.Is(err, ErrNamespaceConflict) {
		t.Fatalf("CheckRepositoryName after restore = %v, want ErrNamespaceConflict", err)
	}
}

func TestRestoreSurvivesReopen(t *testing.T) {
	src := openTest(t)
	populate(src, 4)
	data := persist(t, src.FSM)

	dir := t.TempDir()
	dst, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	want := dump(t, dst)
	dst.Close()

	dst, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if got := dump(t, dst); !mapsEqual(got, want) {
		t.Fatal("state after reopen differs from the restored state")
	}
	if gens, _ := generations(dir); len(gens) != 1 {
		t.Fatalf("generations after restore = %v, want one", gens)
	}
}

func TestRestoreSkipsOlderSnapshot(t *testing.T) {
	f := openTest(t)
	populate(f, 2)
	old := persist(t, f.FSM)
	f.mustApply(putManifest("acme/new", "n", "v1"))

	if err := f.Restore(io.NopCloser(bytes.NewReader(old))); err != nil {
		t.Fatal(err)
	}
	if exists, _ := f.RepositoryExists("acme/new"); !exists {
		t.Fatal("restoring an older snapshot discarded newer state")
	}
}

func TestRestoreRejectsBadStreams(t *testing.T) {
	f := openTest(t)
	populate(f, 3)
	data := persist(t, f.FSM)
	tests := map[string][]byte{
		"empty":     nil,
		"not zstd":  []byte("hello, world"),
		"truncated": data[:len(data)/2],
	}
	for name, stream := range tests {
		t.Run(name, func(t *testing.T) {
			dst := openTest(t)
			if err := dst.Restore(io.NopCloser(bytes.NewReader(stream))); err == nil {
				t.Fatal("Restore succeeded")
			}
			if dst.AppliedIndex() != 0 {
				t.Fatal("failed restore changed the state")
			}
			if gens, _ := generations(dst.dir); len(gens) != 1 {
				t.Fatalf("failed restore left generations %v", gens)
			}
		})
	}
}

func TestOpenRemovesUnfinishedGeneration(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A restore that crashed before it switched CURRENT.
	if err := os.MkdirAll(filepath.Join(dir, generationName(2)), 0o750); err != nil {
		t.Fatal(err)
	}
	f, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if gens, _ := generations(dir); !slices.Equal(gens, []string{generationName(1)}) {
		t.Fatalf("generations = %v, want only %s", gens, generationName(1))
	}
}

// TestRestoreWhileReading swaps databases under concurrent readers: every
// read must succeed and see one whole state.
func TestRestoreWhileReading(t *testing.T) {
	f := openTest(t)
	var snaps [][]byte
	for i := range 5 {
		f.mustApply(putManifest("acme/app", "m"+string(rune('a'+i)), "latest"))
		snaps = append(snaps, persist(t, f.FSM))
	}
	// Restore needs each snapshot to be newer: replay them into a fresh FSM.
	dst := openTest(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := dst.RepositoryExists("acme/app"); err != nil {
					errs <- err
					return
				}
				if _, err := dst.ListRepositories("", 10); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, data := range snaps {
		if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
			t.Fatal(err)
		}
		d, err := dst.ResolveTag("acme/app", "latest")
		if err != nil {
			t.Fatal(err)
		}
		if want := dgst("m" + string(rune('a'+int(dst.AppliedIndex())-1))); d.String() != want {
			t.Fatalf("latest = %s after restore at %d, want %s", d, dst.AppliedIndex(), want)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("read during restore: %v", err)
	}
	if gens, _ := generations(dst.dir); len(gens) != 1 {
		t.Fatalf("generations = %v, want one", gens)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
