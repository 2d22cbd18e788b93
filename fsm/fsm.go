package fsm

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
	"github.com/cockroachdb/pebble/vfs"
	"github.com/hashicorp/raft"
)

// requestHistory is how many request IDs the FSM remembers. It shapes the
// replicated state, so every replica must use the same value.
const requestHistory = 10_000

// errClosed is returned by reads after Close.
var errClosed = errors.New("fsm is closed")

// FSM is the registry metadata state machine. It implements raft.FSM; its
// read methods are safe to call concurrently with Apply and Restore.
type FSM struct {
	dir    string
	logger *slog.Logger
	fs     vfs.FS // the databases' filesystem
	// requestHistory is a field only so tests can shrink it.
	requestHistory uint64

	// applied caches the applied index of the live database.
	applied atomic.Uint64

	mu  sync.RWMutex
	cur *handle // nil once closed
}

var _ raft.FSM = (*FSM)(nil)

// handle is one open database generation. Restore replaces the FSM's handle;
// the old database is closed once the last reader releases it.
type handle struct {
	db   *pebble.DB
	name string
	refs sync.WaitGroup
}

func (h *handle) release() { h.refs.Done() }

// Option configures Open.
type Option func(*FSM)

// WithLogger sets the logger for the FSM and its Pebble databases.
func WithLogger(l *slog.Logger) Option {
	return func(f *FSM) { f.logger = l }
}

// WithOnDiskFull makes a write of the databases that fails with ENOSPC
// call fn, then try once more (pebble's vfs.OnDiskFull): fn can make room,
// by deleting a ballast file. Pebble stops the process when a write to its
// log fails, so this is the FSM's only way through a full disk.
func WithOnDiskFull(fn func()) Option {
	return func(f *FSM) { f.fs = vfs.OnDiskFull(f.fs, fn) }
}

// Open opens (or creates) the FSM stored in dir.
func Open(dir string, opts ...Option) (*FSM, error) {
	f := &FSM{dir: dir, logger: slog.New(slog.DiscardHandler), fs: vfs.Default, requestHistory: requestHistory}
	for _, opt := range opts {
		opt(f)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open fsm: %w", err)
	}
	h, err := f.openCurrent()
	if err != nil {
		return nil, fmt.Errorf("open fsm in %s: %w", dir, err)
	}
	applied, err := getUint64(h.db, keyApplied)
	if err == nil {
		err = prepareState(h.db, applied)
	}
	if err != nil {
		h.db.Close()
		return nil, fmt.Errorf("open fsm in %s: %w", dir, err)
	}
	f.cur = h
	f.applied.Store(applied)
	return f, nil
}

// ErrStateTooOld: the state was written by a version of wharf that kept no
// blob reference index, which garbage collection needs to know what is in
// use. Open the data dir once with wharf at commit 1296e9c, the last that
// builds the index on its first write, then with this one.
var ErrStateTooOld = errors.New("state predates the blob reference index")

// prepareState checks the format of state being opened or restored, and
// builds the records that state written before them lacks.
func prepareState(db *pebble.DB, applied uint64) error {
	if err := checkFormat(db, applied); err != nil {
		return err
	}
	return indexManagement(db, applied)
}

// checkFormat refuses state that lacks the blob reference index, and marks
// new, empty state as having it.
func checkFormat(db *pebble.DB, applied uint64) error {
	_, closer, err := db.Get(keyBlobRefsIndexed)
	if err == nil {
		return closer.Close()
	}
	if !errors.Is(err, pebble.ErrNotFound) {
		return err
	}
	if applied > 0 {
		return ErrStateTooOld
	}
	return db.Set(keyBlobRefsIndexed, []byte{1}, pebble.Sync)
}

// openCurrent opens the generation CURRENT names, creating the first one if
// there is none, and removes every other generation.
func (f *FSM) openCurrent() (*handle, error) {
	name, ok, err := readCurrent(f.dir)
	if err != nil {
		return nil, err
	}
	if ok {
		if err := removeGenerationsExcept(f.dir, name); err != nil {
			return nil, err
		}
		return f.openGeneration(name, true)
	}
	// No CURRENT: any generation is an unfinished first creation.
	name = generationName(1)
	if err := removeGenerationsExcept(f.dir, ""); err != nil {
		return nil, err
	}
	h, err := f.openGeneration(name, false)
	if err != nil {
		return nil, err
	}
	if err := writeCurrent(f.dir, name); err != nil {
		h.db.Close()
		return nil, err
	}
	return h, nil
}

// blockCacheBytes is the size of a database's block cache. Pebble's
// default (8 MiB) is smaller than the index and filter blocks of a state
// with 10,000 repositories, so that every read went to the disk for them.
const blockCacheBytes = 128 << 20

// bloomBitsPerKey sizes the bloom filters of every level's tables (1%
// false positives): most point reads (a grant, a public flag, a holder
// record) ask for keys that do not exist, and without filters each such
// read searched every level.
const bloomBitsPerKey = 10

func (f *FSM) openGeneration(name string, mustExist bool) (*handle, error) {
	cache := pebble.NewCache(blockCacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		ErrorIfNotExists: mustExist,
		Logger:           pebbleLogger{f.logger},
		FS:               f.fs,
		Cache:            cache,
		Levels:           make([]pebble.LevelOptions, 7),
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(bloomBitsPerKey)
	}
	db, err := pebble.Open(filepath.Join(f.dir, name), opts.EnsureDefaults())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	return &handle{db: db, name: name}, nil
}

// Close closes the database after in-flight reads and snapshots finish.
// Close is idempotent.
func (f *FSM) Close() error {
	f.mu.Lock()
	h := f.cur
	f.cur = nil
	f.mu.Unlock()
	if h == nil {
		return nil
	}
	h.refs.Wait()
	if err := h.db.Close(); err != nil {
		return fmt.Errorf("close fsm: %w", err)
	}
	return nil
}

// acquire returns the live database; the caller must release it.
func (f *FSM) acquire() (*handle, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.cur == nil {
		return nil, errClosed
	}
	f.cur.refs.Add(1)
	return f.cur, nil
}

// swap makes h the live database, then closes and removes the old one once
// its readers are done.
func (f *FSM) swap(h *handle, applied uint64) error {
	f.mu.Lock()
	old := f.cur
	if old == nil {
		f.mu.Unlock()
		h.db.Close()
		return errClosed
	}
	f.cur = h
	f.applied.Store(applied)
	f.mu.Unlock()
	old.refs.Wait()
	if err := old.db.Close(); err != nil {
		f.logger.Warn("close replaced fsm database", "generation", old.name, "error", err)
	}
	if err := os.RemoveAll(filepath.Join(f.dir, old.name)); err != nil {
		// Open removes it next time.
		f.logger.Warn("remove replaced fsm database", "generation", old.name, "error", err)
	}
	return nil
}

// view runs fn against the live database.
func (f *FSM) view(fn func(r pebble.Reader) error) error {
	h, err := f.acquire()
	if err != nil {
		return err
	}
	defer h.release()
	return fn(h.db)
}

// AppliedIndex returns the index of the last log entry applied to the state.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// pebbleLogger sends Pebble's log to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble")
	panic("pebble: " + msg)
}
