package blobstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
)

// A session is two files in uploads/: <id>.data holds its bytes, and
// <id>.owner, if present, the owner it was started for (NewUploadFor).
// Files rather than a directory per session: creating and removing a
// directory costs two more metadata operations per upload, which are not
// free (on the VM the benchmarks ran on, 0.1-0.5 ms of kernel time each).
const (
	dataSuffix  = ".data"
	ownerSuffix = ".owner"
)

// maxOwnerLength bounds an owner; a repository name is far shorter.
const maxOwnerLength = 4096

// idLen is the length of a session ID: 128 random bits in base32.
const idLen = 26

// session is the state of one upload session. Upload handles own it in turn:
// a handle holds the session's lock from NewUpload or OpenUpload until Close,
// Commit or Cancel.
type session struct {
	id    string
	base  string        // uploads/<id>, to which the files' suffixes are added
	owner string        // what the session was started for; "" for anything
	lock  chan struct{} // holds a token while a handle owns the session
	size  atomic.Int64  // bytes in the data file

	// Owned by the lock holder.
	h     hash.Hash        // running hash of the data file, nil when unknown
	alg   digest.Algorithm // algorithm of h
	ended bool             // committed, cancelled or purged
}

func newSession(uploadsDir, id string) *session {
	return &session{id: id, base: filepath.Join(uploadsDir, id), lock: make(chan struct{}, 1)}
}

func (ss *session) dataPath() string  { return ss.base + dataSuffix }
func (ss *session) ownerPath() string { return ss.base + ownerSuffix }

// removeFiles removes the session's files; a commit has moved its data file
// already.
func (ss *session) removeFiles() error {
	var errs []error
	for _, path := range []string{ss.dataPath(), ss.ownerPath()} {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// acquire waits for the session's lock.
func (ss *session) acquire(ctx context.Context) error {
	select {
	case ss.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryAcquire takes the session's lock if it is free.
func (ss *session) tryAcquire() bool {
	select {
	case ss.lock <- struct{}{}:
		return true
	default:
		return false
	}
}

func (ss *session) release() { <-ss.lock }

// newID returns a random, URL-safe session ID.
func newID() string { return strings.ToLower(rand.Text()) }

// validID reports whether id could have come from newID. It keeps crafted
// IDs such as "../x" away from the filesystem.
func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

func uploadUnknown(id string) error {
	return fmt.Errorf("%w: %q", ErrUploadUnknown, truncate(id, 64))
}

// NewUpload starts an upload session. The returned handle owns the session
// until it is closed.
func (s *Store) NewUpload(ctx context.Context) (*Upload, error) {
	return s.newUpload(ctx, digest.SHA256, "")
}

// NewUploadFor starts an upload session that belongs to owner (for the
// registry, a repository): Owner reports it, also after a restart, so that
// a session's requests can be held to what it was started for. The owner
// is written without fsync: after a crash it may read as "".
func (s *Store) NewUploadFor(ctx context.Context, owner string) (*Upload, error) {
	if len(owner) > maxOwnerLength {
		return nil, fmt.Errorf("new upload: owner of %d bytes, the limit is %d", len(owner), maxOwnerLength)
	}
	return s.newUpload(ctx, digest.SHA256, owner)
}

// newUpload starts a session whose bytes are hashed with alg as they arrive.
func (s *Store) newUpload(ctx context.Context, alg digest.Algorithm, owner string) (*Upload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.space.Allow(0); err != nil {
		return nil, fmt.Errorf("new upload: %w", err)
	}
	ss := newSession(s.uploadsDir, newID())
	ss.owner = owner
	if owner != "" {
		// Before the data file: a session is recovered only with one.
		if err := os.WriteFile(ss.ownerPath(), []byte(owner), 0o644); err != nil {
			s.space.Notice(err)
			return nil, errors.Join(fmt.Errorf("new upload: %w", err), ss.removeFiles())
		}
	}
	f, err := os.OpenFile(ss.dataPath(), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		s.space.Notice(err)
		return nil, errors.Join(fmt.Errorf("new upload: %w", err), ss.removeFiles())
	}
	ss.h, ss.alg = newHash(alg), alg
	ss.lock <- struct{}{}
	s.mu.Lock()
	s.sessions[ss.id] = ss
	s.mu.Unlock()
	return &Upload{store: s, sess: ss, f: f}, nil
}

// OpenUpload finds a running upload session, or returns ErrUploadUnknown. If
// another handle owns the session, OpenUpload waits until it is closed or ctx
// is done, so requests on one session never interleave.
func (s *Store) OpenUpload(ctx context.Context, id string) (*Upload, error) {
	if !validID(id) {
		return nil, uploadUnknown(id)
	}
	s.mu.Lock()
	ss := s.sessions[id]
	s.mu.Unlock()
	if ss == nil {
		return nil, uploadUnknown(id)
	}
	if err := ss.acquire(ctx); err != nil {
		return nil, fmt.Errorf("open upload %s: %w", id, err)
	}
	u, err := s.attach(ss)
	if err != nil {
		ss.release()
		return nil, err
	}
	return u, nil
}

// attach opens the data file of a session whose lock the caller holds.
func (s *Store) attach(ss *session) (*Upload, error) {
	if ss.ended {
		return nil, uploadUnknown(ss.id)
	}
	f, err := os.OpenFile(ss.dataPath(), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		s.forget(ss)
		return nil, uploadUnknown(ss.id)
	}
	if err != nil {
		return nil, fmt.Errorf("open upload %s: %w", ss.id, err)
	}
	info, err := f.Stat()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open upload %s: %w", ss.id, err), f.Close())
	}
	if info.Size() != ss.size.Load() {
		// Only a failed write gets here; Commit will re-hash.
		ss.size.Store(info.Size())
		ss.h = nil
	}
	if ss.h == nil && info.Size() == 0 {
		ss.h, ss.alg = newHash(digest.SHA256), digest.SHA256
	}
	return &Upload{store: s, sess: ss, f: f}, nil
}

// forget removes an ended session from the index; the caller holds its lock.
func (s *Store) forget(ss *session) {
	ss.ended = true
	s.mu.Lock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	s.mu.Unlock()
}

// OpenUploads returns the number of upload sessions that have not ended,
// including idle ones and those adopted from a previous run.
func (s *Store) OpenUploads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// PurgeUploads ends the sessions that received no bytes for olderThan and
// are not in use, and returns how many it ended.
func (s *Store) PurgeUploads(ctx context.Context, olderThan time.Duration) (int, error) {
	s.mu.Lock()
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()

	cutoff := time.Now().Add(-olderThan)
	var n int
	var errs []error
	for _, ss := range sessions {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		purged, err := s.purge(ss, cutoff)
		if err != nil {
			errs = append(errs, fmt.Errorf("purge upload %s: %w", ss.id, err))
		}
		if purged {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// purge ends ss if no handle owns it and its data was last written before cutoff.
func (s *Store) purge(ss *session, cutoff time.Time) (bool, error) {
	if !ss.tryAcquire() {
		return false, nil
	}
	defer ss.release()
	if ss.ended {
		return false, nil
	}
	info, err := os.Stat(ss.dataPath())
	switch {
	case err == nil && !info.ModTime().Before(cutoff):
		return false, nil
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, err
	}
	if err := ss.removeFiles(); err != nil {
		return false, err
	}
	s.forget(ss)
	return true, nil
}

// recoverUploads adopts the sessions found under uploads/ at Open and removes
// everything else there: the files of sessions that ended while the process
// crashed, and anything that is not a session (a directory per session
// was the layout of an early version; its clients start those uploads
// again).
func (s *Store) recoverUploads() error {
	entries, err := os.ReadDir(s.uploadsDir)
	if err != nil {
		return err
	}
	var strays []string
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(s.uploadsDir, name)
		id, isData := strings.CutSuffix(name, dataSuffix)
		switch {
		case e.Type().IsRegular() && isData && validID(id):
			ss := newSession(s.uploadsDir, id)
			info, err := e.Info()
			if err != nil {
				return err
			}
			ss.size.Store(info.Size())
			ss.owner = readOwner(ss.ownerPath())
			s.sessions[id] = ss
		case e.Type().IsRegular() && strings.HasSuffix(name, ownerSuffix):
			strays = append(strays, path) // kept if its session is, below
		default:
			strays = append(strays, path)
		}
	}
	for _, path := range strays {
		if id, ok := strings.CutSuffix(filepath.Base(path), ownerSuffix); ok && s.sessions[id] != nil {
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			return err
		}
		s.logger.Info("blobstore: removed leftover upload state", "path", path)
	}
	return nil
}

// readOwner returns the owner recorded in the owner file at path, or "".
func readOwner(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) > maxOwnerLength {
		return ""
	}
	return string(b)
}

// Upload is one upload session: bytes appended in order, hashed as they stream.
// Its methods may be called concurrently; they run one at a time.
type Upload struct {
	store *Store
	sess  *session

	mu sync.Mutex // serializes the methods
	f  *os.File   // the session's data file; nil once closed or ended
}

// ID is the session's identifier (URL-safe).
func (u *Upload) ID() string { return u.sess.id }

// Owner is what the session was started for (NewUploadFor), or "".
func (u *Upload) Owner() string { return u.sess.owner }

// Size is the number of bytes received so far.
func (u *Upload) Size() int64 { return u.sess.size.Load() }

// OpenData opens the session's data file for reading, for a caller that
// follows the bytes as they are appended (a mirror to another node). The
// file only grows: bytes once written never change, and they stay readable
// through the returned descriptor after the session commits or ends. The
// caller closes it.
func (u *Upload) OpenData() (*os.File, error) {
	f, err := os.Open(u.sess.dataPath())
	if err != nil {
		return nil, fmt.Errorf("open upload %s data: %w", u.sess.id, err)
	}
	return f, nil
}

// Append copies r to the end of the upload until EOF and returns the bytes written.
func (u *Upload) Append(ctx context.Context, r io.Reader) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.f == nil {
		return 0, uploadUnknown(u.sess.id)
	}
	ss := u.sess
	space := u.store.space
	if err := space.Allow(0); err != nil {
		return 0, fmt.Errorf("append to upload %s: %w", ss.id, err)
	}
	buf := u.store.buffers.Get().(*chunks)
	defer u.store.buffers.Put(buf)
	n, hashOK, err := ingest(ctx, u.f, ss.size.Load(), ss.h, r, buf, space.Allow)
	ss.size.Add(n)
	if !hashOK {
		ss.h = nil
	}
	if err != nil {
		space.Notice(err)
		return n, fmt.Errorf("append to upload %s: %w", ss.id, err)
	}
	return n, nil
}

// Commit verifies the received bytes against d, fsyncs, and moves them into the
// content store atomically. The session ends whether or not it succeeds, except
// that a digest mismatch leaves the session open. Returns the blob's size.
func (u *Upload) Commit(ctx context.Context, d digest.Digest) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.f == nil {
		return 0, uploadUnknown(u.sess.id)
	}
	size, err := u.commit(ctx, d)
	if err != nil {
		u.store.space.Notice(err)
		err = fmt.Errorf("commit upload %s: %w", u.sess.id, err)
		if errors.Is(err, ErrDigestMismatch) {
			return 0, err
		}
	}
	if endErr := u.end(); endErr != nil {
		if err != nil {
			return 0, errors.Join(err, endErr)
		}
		// The blob is stored; what is left of the session is removed by the
		// next Open.
		u.store.logger.Warn("blobstore: clean up committed upload", "upload", u.sess.id, "err", endErr)
	}
	return size, err
}

// commit stores the session's data as blob d and returns its size.
func (u *Upload) commit(ctx context.Context, d digest.Digest) (int64, error) {
	alg, err := checkDigest(d)
	if err != nil {
		return 0, err
	}
	got, err := u.digest(ctx, alg)
	if err != nil {
		return 0, err
	}
	if got != d {
		return 0, fmt.Errorf("%w: got %s, want %s", ErrDigestMismatch, got, d)
	}
	size := u.sess.size.Load()
	exists, err := u.store.touch(d)
	if err != nil {
		return 0, err
	}
	if exists {
		return size, nil // the caller drops the upload
	}
	if err := u.f.Sync(); err != nil {
		return 0, fmt.Errorf("sync upload data: %w", err)
	}
	if size > cachedWindow {
		// A large blob keeps none of its pages cached (see ingest); a
		// small one stays cached whole for the pulls that follow a push.
		dropCached(u.f)
	}
	if _, err := u.store.place(u.sess.dataPath(), d, size); err != nil {
		return 0, fmt.Errorf("store blob %s: %w", d, err)
	}
	return size, nil
}

// digest returns the digest of the session's data with algorithm alg, from
// the running hash when it has one, else by re-reading the data file.
func (u *Upload) digest(ctx context.Context, alg digest.Algorithm) (digest.Digest, error) {
	ss := u.sess
	if ss.h != nil && ss.alg == alg {
		return digest.NewDigest(alg, ss.h), nil
	}
	h := newHash(alg)
	buf := u.store.buffers.Get().(*chunks)
	defer u.store.buffers.Put(buf)
	if err := hashFile(ctx, u.f, ss.size.Load(), h, buf[0]); err != nil {
		return "", err
	}
	if ss.h == nil {
		ss.h, ss.alg = h, alg // valid for further Appends after a mismatch
	}
	return digest.NewDigest(alg, h), nil
}

// Cancel ends the session and removes its data.
func (u *Upload) Cancel(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.f == nil {
		return uploadUnknown(u.sess.id)
	}
	if err := u.end(); err != nil {
		return fmt.Errorf("cancel upload %s: %w", u.sess.id, err)
	}
	return nil
}

// Close releases the session's lock without ending it. Closing a handle
// whose session has ended is a no-op.
func (u *Upload) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.f == nil {
		return nil
	}
	err := u.f.Close()
	u.f = nil
	u.sess.release()
	if err != nil {
		return fmt.Errorf("close upload %s: %w", u.sess.id, err)
	}
	return nil
}

// end closes the handle, removes the session's files and forgets it.
func (u *Upload) end() error {
	err := errors.Join(u.f.Close(), u.sess.removeFiles())
	u.f = nil
	u.store.forget(u.sess)
	u.sess.release()
	return err
}
