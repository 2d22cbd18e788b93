package peer

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

func newTestFetcher(t *testing.T, cacheBytes int64) (*Fetcher, string) {
	t.Helper()
	dir := t.TempDir()
	f, err := NewFetcher(FetcherConfig{Client: http.DefaultClient, Dir: dir, CacheBytes: cacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	return f, dir
}

func TestFetcherFallsBack(t *testing.T) {
	const content = "blob held by some nodes"
	good := newTestPeer(t)
	d := good.put(t, content)
	tests := []struct {
		name    string
		holders []string
		wantErr error // nil: the blob is fetched intact
	}{
		{"first holder lacks it", []string{newTestPeer(t).url, good.url}, nil},
		{"first holder is down", []string{downURL(t), good.url}, nil},
		{"first holder is corrupt", []string{staticServer(t, http.StatusOK, "corrupt"), good.url}, nil},
		{"first holder fails", []string{staticServer(t, http.StatusInternalServerError, "disk on fire"), good.url}, nil},
		{"only holder is corrupt", []string{staticServer(t, http.StatusOK, "corrupt")}, blobstore.ErrDigestMismatch},
		{"no holder has it", []string{newTestPeer(t).url, downURL(t)}, blobstore.ErrBlobUnknown},
		{"no holders", nil, blobstore.ErrBlobUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, dir := newTestFetcher(t, 0)
			b, err := f.Fetch(context.Background(), d, tt.holders)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Fetch = %v, want %v", err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if got := readAll(t, b.File()); got != content || b.Size() != int64(len(content)) {
					t.Fatalf("fetched %q (size %d), want %q", got, b.Size(), content)
				}
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if files := fetchFiles(t, dir); len(files) != 0 {
				t.Fatalf("files left behind: %q", files)
			}
		})
	}
}

func TestFetcherSharesOneDownload(t *testing.T) {
	const callers = 20
	gate := make(chan struct{})
	p := newGatedPeer(t, gate)
	d := p.put(t, "popular layer")
	f, dir := newTestFetcher(t, 0)

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			b, err := f.Fetch(context.Background(), d, []string{p.url})
			if err != nil {
				errs <- err
				return
			}
			defer b.Close()
			if got := readAll(t, b.File()); got != "popular layer" {
				errs <- errors.New("wrong content: " + got)
			}
		})
	}
	waitFor(t, func() bool { return f.refs(d) == callers }) // everyone waits on the one download
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := p.gets.Load(); n != 1 {
		t.Fatalf("%d callers caused %d upstream GETs, want 1", callers, n)
	}
	if files := fetchFiles(t, dir); len(files) != 0 {
		t.Fatalf("files left after the last caller: %q", files)
	}
}

func TestFetcherCancelledCallerStopsDownload(t *testing.T) {
	gate := make(chan struct{}) // never opened: the download hangs until cancelled
	p := newGatedPeer(t, gate)
	d := p.put(t, "slow")
	f, dir := newTestFetcher(t, 0)

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		waitFor(t, func() bool { return p.gets.Load() == 1 })
		cancel()
	}()
	if _, err := f.Fetch(ctx, d, []string{p.url}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch = %v, want context.Canceled", err)
	}
	waitFor(t, func() bool { return p.inflight.Load() == 0 && len(fetchFiles(t, dir)) == 0 })
	if f.refs(d) != 0 {
		t.Fatal("a cancelled fetch is still registered")
	}
}

func TestFetcherCache(t *testing.T) {
	p := newTestPeer(t)
	a, b := p.put(t, "aaaaaaaa"), p.put(t, "bbbbbbbb") // 8 bytes each
	f, dir := newTestFetcher(t, 12)                    // room for one of them
	steps := []struct {
		d        digest.Digest
		wantGets int32 // upstream GETs so far
		files    int   // cached files afterwards
	}{
		{a, 1, 1},
		{a, 1, 1}, // cached
		{b, 2, 1}, // evicts a
		{b, 2, 1},
		{a, 3, 1},
	}
	for i, s := range steps {
		blob, err := f.Fetch(context.Background(), s.d, []string{p.url})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		blob.Close()
		if got := p.gets.Load(); got != s.wantGets {
			t.Fatalf("step %d: %d upstream GETs, want %d", i, got, s.wantGets)
		}
		if got := len(fetchFiles(t, dir)); got != s.files {
			t.Fatalf("step %d: %d files, want %d", i, got, s.files)
		}
	}
}

// refs returns the number of callers holding d's entry.
func (f *Fetcher) refs(d digest.Digest) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.entries[d]; ok {
		return e.refs
	}
	return 0
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}
