package replication

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

// This file is what the registry's handlers ask of replication: a push
// reads top to bottom, from the OCI handler (api/oci) through an Upload
// here, to the local blob store, the peers its bytes are mirrored to, and
// the Raft write that links the blob into its repository.
//
// An Upload's Commit does the whole choreography that makes a blob part of
// a repository and durable on the write quorum: it tells the mirrors the
// digest so that they commit their copies while this node commits its own
// (Committing), commits the local copy, collects the copies the mirrors
// committed meanwhile (Committed and handoff.go), and links the blob into
// the repository in one write that records this node and those copies as
// holders. The copies to the owners still missing follow in the
// background.

// Upload is a blob upload session on this node, bound to a repository. It
// implements blobstore.Writer.
type Upload struct {
	s    *Store
	u    *blobstore.Upload
	repo string
}

var _ blobstore.Writer = (*Upload)(nil)

// NewUpload starts an upload session on this node for repository repo.
func (s *Store) NewUpload(ctx context.Context, repo string) (blobstore.Writer, error) {
	u, err := s.cfg.Local.NewUploadFor(ctx, repo)
	if err != nil {
		return nil, err
	}
	return &Upload{s: s, u: u, repo: repo}, nil
}

// OpenUpload opens upload session id of this node, to commit into
// repository repo, or returns an error wrapping blobstore.ErrUploadUnknown.
// The caller checks that the session belongs to repo (its Owner).
func (s *Store) OpenUpload(ctx context.Context, repo, id string) (blobstore.Writer, error) {
	u, err := s.cfg.Local.OpenUpload(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Upload{s: s, u: u, repo: repo}, nil
}

// ID, Owner and Size are the session's.
func (w *Upload) ID() string    { return w.u.ID() }
func (w *Upload) Owner() string { return w.u.Owner() }
func (w *Upload) Size() int64   { return w.u.Size() }

// Close releases the session's lock; the session lives on unless it was
// committed or cancelled.
func (w *Upload) Close() error { return w.u.Close() }

// Append appends r to the session, mirroring the bytes to other nodes as
// they arrive. When the disk is full the session is dropped: its bytes are
// space the node lacks, and a client starts a refused upload again.
func (w *Upload) Append(ctx context.Context, r io.Reader) (int64, error) {
	progress := w.s.appending(ctx, w.u)
	n, err := w.u.Append(ctx, blobstore.ProgressReader(r, progress))
	progress()
	if err != nil && diskspace.IsFull(err) {
		if cerr := w.Cancel(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	return n, err
}

// Cancel ends the session and drops its bytes, here and on its mirrors.
func (w *Upload) Cancel(ctx context.Context) error {
	w.s.cancelled(w.u.ID())
	return w.u.Cancel(ctx)
}

// Commit verifies the session's bytes as blob d, stores them, and links
// the blob into the session's repository, durable on this node and on the
// mirrors that committed their copies by then. After a digest mismatch
// (blobstore.ErrDigestMismatch) the session lives on, without mirrors; a
// refused link wraps the FSM's refusal (fsm.ErrNamespaceConflict,
// fsm.ErrBlobCollected).
func (w *Upload) Commit(ctx context.Context, d digest.Digest) (int64, error) {
	w.s.committing(w.u.ID(), d, w.u.Size())
	size, err := w.u.Commit(ctx, d)
	if err != nil {
		w.s.cancelled(w.u.ID()) // the client's next bytes start new mirrors
		return 0, err
	}
	return size, w.s.link(ctx, w.repo, d, size, w.s.committed(ctx, w.u.ID(), d, size))
}

// mirrorMonolithicBytes is the size from which a monolithic upload is
// mirrored to other nodes while it arrives; smaller ones are copied after
// the commit. A mirror holds the POST until its first node has committed
// (the link records that copy), while the copy after the commit holds up
// nothing and, for a small blob such as an image config, is done long
// before the manifest that needs it arrives: mirroring configs too did
// not make 1 MiB pushes faster (bench-cluster with BENCH_NIC=1gbit).
const mirrorMonolithicBytes = 1 << 20

// Put stores r, of length bytes (negative if unknown), as blob d and links
// it into repo: a monolithic upload. A large one is mirrored while it
// arrives, through an upload session, as a chunked one is.
func (s *Store) Put(ctx context.Context, repo string, d digest.Digest, r io.Reader, length int64) (int64, error) {
	if d.Algorithm() == digest.SHA256 && (length < 0 || length >= mirrorMonolithicBytes) {
		return s.putMirrored(ctx, repo, d, r)
	}
	size, err := s.cfg.Local.Put(ctx, d, r)
	if err != nil {
		return 0, err
	}
	s.stored(ctx, d, size)
	return size, s.link(ctx, repo, d, size, nil)
}

// putMirrored is Put through an upload session whose bytes are mirrored.
func (s *Store) putMirrored(ctx context.Context, repo string, d digest.Digest, r io.Reader) (int64, error) {
	w, err := s.NewUpload(ctx, repo)
	if err != nil {
		return 0, err
	}
	defer w.Close()
	if _, err := w.Append(ctx, r); err != nil {
		return 0, errors.Join(err, w.Cancel(context.WithoutCancel(ctx)))
	}
	size, err := w.Commit(ctx, d)
	if errors.Is(err, blobstore.ErrDigestMismatch) {
		err = errors.Join(err, w.Cancel(context.WithoutCancel(ctx)))
	}
	return size, err
}

// Link links blob d, which the registry already holds, into repo: a
// cross-repository mount. It records no holder.
func (s *Store) Link(ctx context.Context, repo string, d digest.Digest, size int64) error {
	if err := s.cfg.Cluster.LinkBlob(ctx, repo, d, size); err != nil {
		return fmt.Errorf("link blob %s into %s: %w", d, repo, err)
	}
	return nil
}

// link links blob d, which a client has just stored on this node, into
// repo, recording this node as a holder, and the mirrored copies
// committed by then (copies, if not nil) too. The copies to the owners
// were started before, so that they overlap with the write. When the link
// fails, this node is recorded as a holder anyway, so that the blob is
// not taken for garbage while the client retries.
func (s *Store) link(ctx context.Context, repo string, d digest.Digest, size int64, copies MirroredCopies) error {
	holders := []string{s.cfg.Cluster.LocalID()}
	settle := func(bool) {}
	if copies != nil {
		var mirrored []string
		mirrored, settle = copies(ctx)
		holders = append(holders, mirrored...)
	}
	err := s.cfg.Cluster.LinkBlob(ctx, repo, d, size, holders...)
	settle(err == nil)
	if err == nil {
		s.recorded.signal()
		return nil
	}
	// The holder may be recorded already (a refused link keeps it);
	// recording it again changes nothing. A failure only costs the
	// manifest push its wait for this copy (it then fails and the client
	// retries); nothing is lost.
	if herr := s.hold(context.WithoutCancel(ctx), d, size); herr != nil {
		s.cfg.Logger.WarnContext(ctx, "record blob holder", "digest", d, "err", herr)
	}
	return fmt.Errorf("link blob %s into %s: %w", d, repo, err)
}

// MirroredCopies waits, for a bounded time, until the mirrors of a
// committed upload have committed their copies, and returns the nodes
// that did: the link records them as holders in the write that links the
// blob, so that the blob is durable on the write quorum as soon as the
// client is told it is stored. settle reports whether that write
// committed; if not, the replication records them itself.
type MirroredCopies = func(ctx context.Context) (nodes []string, settle func(recorded bool))
