package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	// ErrBlobUnknown: no blob with that digest is stored.
	ErrBlobUnknown = errors.New("blob unknown")
	// ErrUploadUnknown: no upload session with that ID.
	ErrUploadUnknown = errors.New("upload unknown")
	// ErrDigestMismatch: the uploaded bytes do not hash to the digest given.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrUnsupportedDigest: an algorithm other than sha256 or sha512, or a malformed digest.
	ErrUnsupportedDigest = errors.New("unsupported digest")
	// ErrSizeMismatch: a commit's expected size differs from the bytes received.
	ErrSizeMismatch = errors.New("size mismatch")
)

// Config configures a Store.
type Config struct {
	Root   string       // directory holding blobs/ and uploads/
	Logger *slog.Logger // reports problems that do not fail a call; nil discards them
	// Space, if set, decides whether new bytes may be written, and hears
	// of every failed write (see Space).
	Space Space
}

// Space is what a Store asks before it writes new bytes to its disk
// (*diskspace.Watcher is one).
type Space interface {
	// Allow is asked before n more bytes are written to an upload, and
	// with n = 0 before a session starts or an append reads its body. An
	// error refuses them; the store returns it, wrapped.
	Allow(n int64) error
	// Notice is told of every error from a write or a commit, so that a
	// full disk (ENOSPC) is noticed at once.
	Notice(err error)
}

// noSpaceCheck is the Space of a Store configured without one.
type noSpaceCheck struct{}

func (noSpaceCheck) Allow(int64) error { return nil }
func (noSpaceCheck) Notice(error)      {}

// Store is content-addressed blob storage on the local filesystem. It is safe
// for concurrent use. One Store should own a root directory at a time.
type Store struct {
	blobsDir   string
	uploadsDir string
	buffers    sync.Pool // *chunks
	logger     *slog.Logger
	space      Space

	mu       sync.Mutex // guards the fields below; held across a blob's exists-check and rename
	sessions map[string]*session
	nblobs   int64
	nbytes   int64
}

// Open creates the directories under cfg.Root and cleans up after a crash:
// it removes the remains of ended upload sessions, adopts the sessions that
// still hold data so they can be resumed, and counts the stored blobs.
func Open(cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, errors.New("blobstore: empty root directory")
	}
	s := &Store{
		blobsDir:   filepath.Join(cfg.Root, "blobs"),
		uploadsDir: filepath.Join(cfg.Root, "uploads"),
		buffers:    sync.Pool{New: newChunks},
		sessions:   make(map[string]*session),
		logger:     cfg.Logger,
		space:      cfg.Space,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.space == nil {
		s.space = noSpaceCheck{}
	}
	if err := s.makeDirs(cfg.Root); err != nil {
		return nil, fmt.Errorf("blobstore: %w", err)
	}
	if err := s.recoverUploads(); err != nil {
		return nil, fmt.Errorf("blobstore: recover uploads: %w", err)
	}
	for _, alg := range algorithms {
		if err := s.countBlobs(alg); err != nil {
			return nil, fmt.Errorf("blobstore: count %s blobs: %w", alg, err)
		}
	}
	return s, nil
}

// makeDirs creates the store's directories and makes their entries durable,
// so that later fsyncs of the directories below them are meaningful.
func (s *Store) makeDirs(root string) error {
	for _, dir := range []string{s.uploadsDir, s.algDir(digest.SHA256), s.algDir(digest.SHA512)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return errors.Join(syncDir(root), syncDir(s.blobsDir))
}

// countBlobs adds the blobs stored under blobs/<alg>/ to the counters. Files
// whose names are not digests of their directory are not blobs (the store
// never creates such files) and are ignored.
func (s *Store) countBlobs(alg digest.Algorithm) error {
	prefixes, err := os.ReadDir(s.algDir(alg))
	if err != nil {
		return err
	}
	for _, p := range prefixes {
		if !p.IsDir() || len(p.Name()) != 2 || !isLowerHex(p.Name()) {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.algDir(alg), p.Name()))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || !isBlobName(alg, p.Name(), e.Name()) {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			s.nblobs++
			s.nbytes += info.Size()
		}
	}
	return nil
}

// isBlobName reports whether name is a blob's file name inside blobs/<alg>/<prefix>/.
func isBlobName(alg digest.Algorithm, prefix, name string) bool {
	_, err := checkDigest(digest.NewDigestFromEncoded(alg, name))
	return err == nil && name[:2] == prefix
}

func (s *Store) algDir(alg digest.Algorithm) string { return filepath.Join(s.blobsDir, string(alg)) }

// Stat returns the size of a stored blob, or ErrBlobUnknown.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	if _, err := checkDigest(d); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	info, err := os.Lstat(blobPath(s.blobsDir, d))
	if err != nil {
		return 0, blobError(d, err)
	}
	return info.Size(), nil
}

// Open opens a stored blob for reading (http.ServeContent uses sendfile on it).
func (s *Store) Open(ctx context.Context, d digest.Digest) (*os.File, error) {
	if _, err := checkDigest(d); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(blobPath(s.blobsDir, d))
	if err != nil {
		return nil, blobError(d, err)
	}
	return f, nil
}

// Delete removes a stored blob; deleting an unknown blob is not an error.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if _, err := checkDigest(d); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	path := blobPath(s.blobsDir, d)
	s.mu.Lock()
	defer s.mu.Unlock()
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	s.nblobs--
	s.nbytes -= info.Size()
	return nil
}

// Stats returns the number of stored blobs and their total size. It reads
// counters kept up to date by commits and deletes; it does no I/O.
func (s *Store) Stats(ctx context.Context) (count, bytes int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nblobs, s.nbytes, nil
}

// Put stores the blob read from r, verified against d, and returns its size.
// Nothing is stored unless the bytes hash to d. It is meant for copying blobs
// between peers, whose digests are known in advance.
func (s *Store) Put(ctx context.Context, d digest.Digest, r io.Reader) (int64, error) {
	alg, err := checkDigest(d)
	if err != nil {
		return 0, err
	}
	u, err := s.newUpload(ctx, alg, "")
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", d, err)
	}
	defer u.Close()
	if _, err := u.Append(ctx, r); err != nil {
		return 0, errors.Join(fmt.Errorf("put %s: %w", d, err), u.Cancel(context.WithoutCancel(ctx)))
	}
	n, err := u.Commit(ctx, d)
	if errors.Is(err, ErrDigestMismatch) {
		err = errors.Join(err, u.Cancel(context.WithoutCancel(ctx)))
	}
	return n, err
}

// place moves the verified, fsynced file at src to the final path of blob d
// and returns whether it did; it does not when the blob is already stored.
func (s *Store) place(src string, d digest.Digest, size int64) (bool, error) {
	dst := blobPath(s.blobsDir, d)
	dir := filepath.Dir(dst)
	if err := mkdirSynced(dir, filepath.Dir(dir)); err != nil {
		return false, err
	}
	s.mu.Lock()
	placed, err := s.renameLocked(src, dst, size)
	s.mu.Unlock()
	if err != nil || !placed {
		return false, err
	}
	return true, syncDir(dir)
}

// renameLocked renames src to dst unless dst exists, updating the counters.
func (s *Store) renameLocked(src, dst string, size int64) (bool, error) {
	if _, err := os.Lstat(dst); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := os.Rename(src, dst); err != nil {
		return false, err
	}
	// The modification time says when the blob was last stored (see
	// DeleteIfStoredBefore); the upload's data may be older.
	now := time.Now()
	if err := os.Chtimes(dst, now, now); err != nil {
		s.logger.Warn("blobstore: set modification time", "path", dst, "err", err)
	}
	s.nblobs++
	s.nbytes += size
	return true, nil
}

// touch records that blob d was stored again (a commit found it present) by
// setting its modification time, and reports whether it is stored.
func (s *Store) touch(d digest.Digest) (bool, error) {
	path := blobPath(s.blobsDir, d)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	err := os.Chtimes(path, now, now)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// DeleteIfStoredBefore removes blob d unless it was stored (or stored again
// by a commit that found it present) at or after cutoff. It reports the
// bytes freed and whether a newer blob was kept; a missing blob frees
// nothing and is not kept. Commits and this check exclude each other, so a
// blob a commit has just reported stored is never removed under it.
func (s *Store) DeleteIfStoredBefore(ctx context.Context, d digest.Digest, cutoff time.Time) (freed int64, kept bool, err error) {
	if _, err := checkDigest(d); err != nil {
		return 0, false, err
	}
	if err := ctx.Err(); err != nil {
		return 0, false, err
	}
	path := blobPath(s.blobsDir, d)
	s.mu.Lock()
	defer s.mu.Unlock()
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("delete blob %s: %w", d, err)
	}
	if !info.ModTime().Before(cutoff) {
		return 0, true, nil
	}
	if err := os.Remove(path); err != nil {
		return 0, false, fmt.Errorf("delete blob %s: %w", d, err)
	}
	s.nblobs--
	s.nbytes -= info.Size()
	return info.Size(), false, nil
}

func blobError(d digest.Digest, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrBlobUnknown, d)
	}
	return fmt.Errorf("blob %s: %w", d, err)
}
