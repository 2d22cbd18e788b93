package peer

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// fetchFilePrefix names the Fetcher's files in its directory.
const fetchFilePrefix = "fetch-"

// FetcherConfig configures a Fetcher.
type FetcherConfig struct {
	// Client reaches the peers; it carries the cluster's TLS configuration.
	Client *http.Client
	// Dir holds the downloaded blobs. The Fetcher owns the files in it
	// whose names start with "fetch-" and removes them on start.
	Dir string
	// CacheBytes is how many bytes of fetched blobs to keep once nobody
	// reads them, least recently used evicted first; 0 keeps none.
	CacheBytes int64
	// Logger reports holders that failed; nil discards messages.
	Logger *slog.Logger
}

// Fetcher fetches blobs this node does not hold from nodes that do. However
// many callers ask for a blob at once, it is downloaded once, into a file,
// and verified before any caller reads it. It is safe for concurrent use.
type Fetcher struct {
	client     *http.Client
	dir        string
	cacheBytes int64
	logger     *slog.Logger

	mu      sync.Mutex // guards the fields below and each entry's refs and elem
	entries map[digest.Digest]*entry
	idle    list.List // of *entry: complete, unreferenced, cached; most recently used first
	cached  int64     // bytes of the complete entries in entries
}

// entry is one download of one blob, and the file it fills.
type entry struct {
	d      digest.Digest
	path   string
	done   chan struct{} // closed when the download ends; path, size and err are set before
	size   int64
	err    error
	cancel context.CancelFunc // stops the download
	refs   int                // callers holding the entry
	elem   *list.Element      // in Fetcher.idle, or nil

	// For streams (Stream), guarded by Fetcher.mu: the file being filled,
	// how many bytes of the current attempt are in it, which attempt (one
	// per holder tried) that is, and a channel closed, and replaced, at
	// each change.
	file    *os.File
	written int64
	attempt int
	grew    chan struct{}
}

// NewFetcher returns a Fetcher, creating cfg.Dir if needed and removing the
// files an earlier process left in it.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	if cfg.Client == nil || cfg.Dir == "" {
		return nil, errors.New("peer: fetcher needs a client and a directory")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("peer: fetcher directory: %w", err)
	}
	if err := removeFetchFiles(cfg.Dir); err != nil {
		return nil, fmt.Errorf("peer: clean fetcher directory: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Fetcher{
		client:     cfg.Client,
		dir:        cfg.Dir,
		cacheBytes: max(cfg.CacheBytes, 0),
		logger:     logger,
		entries:    make(map[digest.Digest]*entry),
	}, nil
}

func removeFetchFiles(dir string) error {
	names, err := filepath.Glob(filepath.Join(dir, fetchFilePrefix+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		errs = append(errs, os.Remove(name))
	}
	return errors.Join(errs...)
}

// Fetch returns blob d, downloaded from the first of holders (peer base
// URLs, most preferred first) that serves it intact. A holder that fails,
// even part-way or with corrupt bytes, is logged and the next one is tried.
// Concurrent calls for the same digest share one download, from the
// holders of the call that started it; ctx only bounds this caller's wait,
// and the download stops when every caller has gone.
//
// The returned Blob is verified. The caller must Close it.
func (f *Fetcher) Fetch(ctx context.Context, d digest.Digest, holders []string) (*Blob, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", d, err)
	}
	e := f.acquire(ctx, d, holders)
	select {
	case <-e.done:
	case <-ctx.Done():
		f.release(e)
		return nil, fmt.Errorf("fetch %s: %w", d, context.Cause(ctx))
	}
	if e.err != nil {
		f.release(e)
		return nil, e.err
	}
	file, err := os.Open(e.path)
	if err != nil {
		f.release(e)
		return nil, fmt.Errorf("fetch %s: open download: %w", d, err)
	}
	return &Blob{file: file, size: e.size, release: func() { f.release(e) }}, nil
}

// acquire returns the entry of d with a reference taken, starting its
// download if there is none.
func (f *Fetcher) acquire(ctx context.Context, d digest.Digest, holders []string) *entry {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e, ok := f.entries[d]; ok {
		e.refs++
		if e.elem != nil {
			f.idle.Remove(e.elem)
			e.elem = nil
		}
		return e
	}
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e := &entry{d: d, done: make(chan struct{}), cancel: cancel, refs: 1, grew: make(chan struct{})}
	f.entries[d] = e
	go f.download(dctx, e, slices.Clone(holders))
	return e
}

// release drops a reference to e. The last one stops an unfinished
// download, and caches or removes a finished one.
func (f *Fetcher) release(e *entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e.refs--
	switch {
	case e.refs > 0:
	case !isDone(e):
		// Nobody waits any more: detach the entry, so that a new caller
		// starts afresh, and stop the download; finish removes the file.
		f.forget(e)
		e.cancel()
	case e.err != nil:
		// finish detached the entry and removed its file.
	case f.cacheBytes == 0:
		f.forget(e)
		f.removeFile(e)
	default:
		e.elem = f.idle.PushFront(e)
		f.evict()
	}
}

// download fills e's file from the first holder that serves the blob intact.
func (f *Fetcher) download(ctx context.Context, e *entry, holders []string) {
	defer e.cancel()
	path, size, err := f.fetchToFile(ctx, e, holders)
	f.finish(e, path, size, err)
}

// finish publishes the outcome of e's download to its waiters. A failed
// entry is detached so that the next caller tries again; a file nobody
// waits for any more is removed.
func (f *Fetcher) finish(e *entry, path string, size int64, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e.path, e.size, e.err = path, size, err
	close(e.done)
	e.signal()
	attached := f.entries[e.d] == e
	switch {
	case err != nil:
		if attached {
			delete(f.entries, e.d)
		}
		if path != "" {
			f.removeFile(e)
		}
	case !attached:
		f.removeFile(e)
	default:
		f.cached += size
		f.evict()
	}
}

// evict removes idle entries, least recently used first, until the cache
// is within its budget. Entries in use are never evicted.
func (f *Fetcher) evict() {
	for f.cached > f.cacheBytes && f.idle.Len() > 0 {
		e := f.idle.Remove(f.idle.Back()).(*entry)
		e.elem = nil
		f.forget(e)
		f.removeFile(e)
	}
}

// forget detaches e from the map if it is there, and takes its bytes out of
// the cache.
func (f *Fetcher) forget(e *entry) {
	if f.entries[e.d] != e {
		return
	}
	delete(f.entries, e.d)
	if isDone(e) && e.err == nil {
		f.cached -= e.size
	}
}

func (f *Fetcher) removeFile(e *entry) {
	if err := os.Remove(e.path); err != nil {
		f.logger.Warn("cannot remove fetched blob", "digest", e.d, "err", err)
	}
}

func isDone(e *entry) bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// fetchToFile downloads e's blob into a new file and returns its path and
// size; on failure finish removes the file (under the Fetcher's lock, so
// that Stream never opens a file about to go).
func (f *Fetcher) fetchToFile(ctx context.Context, e *entry, holders []string) (string, int64, error) {
	file, err := os.CreateTemp(f.dir, fetchFilePrefix+"*")
	if err != nil {
		return "", 0, fmt.Errorf("fetch %s: %w", e.d, err)
	}
	f.mu.Lock()
	e.path, e.file = file.Name(), file
	e.signal()
	f.mu.Unlock()
	size, err := f.fetchFirst(ctx, e, holders)
	if cerr := file.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("fetch %s: %w", e.d, cerr)
	}
	return file.Name(), size, err
}

// fetchFirst fetches e's blob into its file from each holder in turn until
// one serves it intact, starting the file over for each.
func (f *Fetcher) fetchFirst(ctx context.Context, e *entry, holders []string) (int64, error) {
	d := e.d
	if len(holders) == 0 {
		return 0, fmt.Errorf("fetch %s: %w: no node holds it", d, blobstore.ErrBlobUnknown)
	}
	var errs []error
	for i, holder := range holders {
		if i > 0 {
			f.restart(e)
		}
		if err := rewind(e.file); err != nil {
			return 0, fmt.Errorf("fetch %s: %w", d, err)
		}
		n, err := Fetch(ctx, f.client, holder, d, progressWriter{f, e})
		if err == nil {
			return n, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
		f.logger.Warn("fetching a blob from a holder failed", "digest", d, "holder", holder, "err", err)
	}
	return 0, fmt.Errorf("no holder served %s intact: %w", d, errors.Join(errs...))
}

// progressWriter writes into an entry's file and tells its streams.
type progressWriter struct {
	f *Fetcher
	e *entry
}

func (w progressWriter) Write(p []byte) (int, error) {
	n, err := w.e.file.Write(p)
	w.f.mu.Lock()
	w.e.written += int64(n)
	w.e.signal()
	w.f.mu.Unlock()
	return n, err
}

// restart starts another attempt: the streams of the previous one fail.
func (f *Fetcher) restart(e *entry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e.attempt++
	e.written = 0
	e.signal()
}

// signal wakes e's streams; the caller holds Fetcher.mu, or is finish.
func (e *entry) signal() {
	close(e.grew)
	e.grew = make(chan struct{})
}

// rewind empties file for another attempt.
func rewind(file *os.File) error {
	if err := file.Truncate(0); err != nil {
		return err
	}
	_, err := file.Seek(0, io.SeekStart)
	return err
}

// Blob is a verified blob fetched from a peer, open for reading. Serve it
// with http.ServeContent(w, r, "", time.Time{}, b.File()) for Range support
// and sendfile.
type Blob struct {
	file    *os.File
	size    int64
	release func()
	once    sync.Once
}

// File returns the blob's file, opened read-only; Close closes it.
func (b *Blob) File() *os.File { return b.file }

// Size returns the blob's size in bytes.
func (b *Blob) Size() int64 { return b.size }

// Close closes the file and lets the Fetcher remove or cache it. Calls
// after the first do nothing.
func (b *Blob) Close() error {
	var err error
	b.once.Do(func() {
		err = b.file.Close()
		b.release()
	})
	return err
}
