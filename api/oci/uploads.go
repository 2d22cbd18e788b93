package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

// startUpload answers POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=), a monolithic upload (?digest= with the blob as body), or
// the start of an upload session.
func (h *Handler) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	if err := h.checkPush(ctx, rt.name); err != nil {
		// Checked on this node's state (authorize): a lagging node must
		// not refuse what the cluster allows, so check again on
		// linearizable state.
		lin, ok := linearizable(ctx)
		if !ok {
			return err
		}
		ctx, r = lin, r.WithContext(lin)
		if err := h.checkPush(ctx, rt.name); err != nil {
			return err
		}
	}
	q := r.URL.Query()
	if q.Has("mount") {
		mounted, err := h.mountBlob(ctx, w, rt.name, q)
		if err != nil || mounted {
			return err
		}
	}
	if q.Has("digest") {
		return h.monolithicUpload(w, r, rt)
	}
	u, err := h.blobs.NewUploadFor(ctx, rt.name)
	if err != nil {
		return fmt.Errorf("start upload to %s: %w", rt.name, err)
	}
	defer h.release(ctx, u)
	h.writeUploadStatus(w, rt.name, u, http.StatusAccepted)
	return nil
}

// checkPush checks, before any bytes are sent, that the caller may push
// to repo: that its name breaks no namespace rule, and that its namespace
// exists, or that the caller may create it, which it then does.
func (h *Handler) checkPush(ctx context.Context, repo string) error {
	if err := h.checkPushName(ctx, repo); err != nil {
		return err
	}
	return h.prepareWrite(ctx, repo)
}

// checkPushName refuses, before any bytes are sent, a push to a repository
// whose name breaks a namespace rule.
func (h *Handler) checkPushName(ctx context.Context, repo string) error {
	err := h.meta.CheckRepositoryName(ctx, repo)
	if errors.Is(err, fsm.ErrNamespaceConflict) {
		return errNamespaceConflict(repo, err)
	}
	if err != nil {
		return fmt.Errorf("check repository name %s: %w", repo, err)
	}
	return nil
}

// mountBlob links an existing blob into repo: from the repository named by
// ?from= if the blob is linked there, or, without ?from=, from any
// repository the caller may pull that it is linked into. It reports false,
// without error, when there is nothing to mount (or nothing the caller may
// mount) and the client should get an upload session instead.
func (h *Handler) mountBlob(ctx context.Context, w http.ResponseWriter, repo string, q url.Values) (bool, error) {
	d, err := parseDigest(q.Get("mount"))
	if err != nil {
		return false, err
	}
	from := q.Get("from")
	if from != "" {
		if err := validateName(from); err != nil {
			return false, err
		}
	}
	if ok, err := h.mayMount(ctx, d, from); err != nil || !ok {
		return false, err // not allowed: upload the blob instead
	}
	size, ok, err := h.mountable(ctx, d, from)
	if err != nil || !ok {
		return false, err
	}
	err = h.linkBlob(ctx, w, repo, d, size)
	if errors.Is(err, fsm.ErrBlobCollected) {
		return false, nil // collected since mountable looked: upload it instead
	}
	return true, err
}

// mountable reports whether blob d can be mounted, and its size.
func (h *Handler) mountable(ctx context.Context, d digest.Digest, from string) (int64, bool, error) {
	if from != "" {
		_, ok, err := h.meta.BlobLinked(ctx, from, d)
		if err != nil {
			return 0, false, fmt.Errorf("look up blob %s in %s: %w", d, from, err)
		}
		if !ok {
			return 0, false, nil
		}
	}
	if h.replication != nil {
		size, ok, err := h.replication.Held(ctx, d)
		if err != nil {
			return 0, false, fmt.Errorf("look up holders of blob %s: %w", d, err)
		}
		return size, ok, nil
	}
	size, err := h.blobs.Stat(ctx, d)
	if errors.Is(err, blobstore.ErrBlobUnknown) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("stat blob %s: %w", d, err)
	}
	return size, true, nil
}

// monolithicUpload stores the request body as the blob named by ?digest=.
func (h *Handler) monolithicUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	if h.mirror() != nil && d.Algorithm() == digest.SHA256 &&
		(r.ContentLength < 0 || r.ContentLength >= mirrorMonolithicBytes) {
		size, copies, err := h.putMirrored(r.Context(), d, r.Body)
		if err != nil {
			return storeError(d, err)
		}
		return h.linkStored(r.Context(), w, rt.name, d, size, copies)
	}
	size, err := h.blobs.Put(r.Context(), d, r.Body)
	if err != nil {
		return storeError(d, err)
	}
	h.stored(r.Context(), d, size)
	return h.linkStored(r.Context(), w, rt.name, d, size, nil)
}

// mirrorMonolithicBytes is the size from which a monolithic upload is
// mirrored to other nodes while it arrives; smaller ones are copied after
// the commit. A mirror holds the POST until its first node has committed
// (the link records that copy), while the copy after the commit holds up
// nothing and, for a small blob such as an image config, is done long
// before the manifest that needs it arrives: mirroring configs too did
// not make 1 MiB pushes faster (bench-cluster with BENCH_NIC=1gbit).
const mirrorMonolithicBytes = 1 << 20

// putMirrored stores body as blob d through an upload session whose bytes
// are mirrored while they arrive, as Put would without the mirror, and
// returns the mirrored copies for the link to record.
func (h *Handler) putMirrored(ctx context.Context, d digest.Digest, body io.Reader) (int64, MirroredCopies, error) {
	u, err := h.blobs.NewUpload(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer h.release(ctx, u)
	if _, err := h.appendMirrored(ctx, u, body); err != nil {
		h.uploadEnded(u.ID())
		return 0, nil, errors.Join(err, u.Cancel(context.WithoutCancel(ctx)))
	}
	h.committing(u, d)
	size, err := u.Commit(ctx, d)
	if err != nil {
		if errors.Is(err, blobstore.ErrDigestMismatch) {
			err = errors.Join(err, u.Cancel(context.WithoutCancel(ctx)))
		}
		h.uploadEnded(u.ID())
		return 0, nil, err
	}
	return size, h.storedUpload(ctx, u.ID(), d, size), nil
}

// getUpload reports the progress of an upload session.
func (h *Handler) getUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	u, err := h.openUpload(r.Context(), rt)
	if err != nil {
		return err
	}
	defer h.release(r.Context(), u)
	h.writeUploadStatus(w, rt.name, u, http.StatusNoContent)
	return nil
}

// patchUpload appends a chunk (with Content-Range) or a stream (without)
// to an upload session.
func (h *Handler) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	u, err := h.openUpload(ctx, rt)
	if err != nil {
		return err
	}
	defer h.release(ctx, u)
	if err := h.appendBody(w, r, rt, u); err != nil {
		return err
	}
	h.writeUploadStatus(w, rt.name, u, http.StatusAccepted)
	return nil
}

// putUpload completes an upload session, with an optional last chunk.
func (h *Handler) putUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	q := r.URL.Query()
	if !q.Has("digest") {
		return newError(http.StatusBadRequest, CodeDigestInvalid,
			"the digest query parameter is required to complete an upload: PUT ...?digest=<digest>")
	}
	d, err := parseDigest(q.Get("digest"))
	if err != nil {
		return err
	}
	ctx := r.Context()
	u, err := h.openUpload(ctx, rt)
	if err != nil {
		return err
	}
	defer h.release(ctx, u)
	if r.Header.Get("Content-Range") != "" {
		if err := h.appendBody(w, r, rt, u); err != nil {
			return err
		}
		return h.commit(ctx, w, rt.name, u, d, http.NoBody)
	}
	return h.commit(ctx, w, rt.name, u, d, r.Body)
}

// deleteUpload cancels an upload session and drops its data.
func (h *Handler) deleteUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	u, err := h.openUpload(ctx, rt)
	if err != nil {
		return err
	}
	defer h.release(ctx, u)
	if err := u.Cancel(ctx); err != nil {
		return fmt.Errorf("cancel upload %s: %w", rt.arg, err)
	}
	h.uploadEnded(u.ID())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// openUpload finds the session named by the route, which must belong to
// the route's repository.
func (h *Handler) openUpload(ctx context.Context, rt route) (*blobstore.Upload, error) {
	node, local := splitSessionID(rt.arg)
	if node != h.nodeID {
		return nil, errUploadUnknown(rt.arg)
	}
	u, err := h.blobs.OpenUpload(ctx, local)
	if errors.Is(err, blobstore.ErrUploadUnknown) {
		return nil, errUploadUnknown(rt.arg)
	}
	if err != nil {
		return nil, fmt.Errorf("open upload %s: %w", rt.arg, err)
	}
	if !ownedBy(u, rt.name) {
		h.release(ctx, u)
		return nil, errOtherRepository(rt.arg, rt.name)
	}
	return u, nil
}

// ownedBy reports whether upload u may be used through repository repo:
// the one it was started in. A session without a recorded repository
// (started before sessions recorded it, or whose record a crash lost) may
// be used through any.
func ownedBy(u *blobstore.Upload, repo string) bool {
	return u.Owner() == "" || u.Owner() == repo
}

// errOtherRepository answers a request for a session of another
// repository as for an unknown one: a session ID reveals nothing, and
// its bytes cannot be moved into another repository.
func errOtherRepository(id, repo string) error {
	e := errUploadUnknownAPI(id)
	e.message = fmt.Sprintf("upload session %s was not started in repository %s; start a new upload there", id, repo)
	return e
}

// appendBody appends the request body to u. With a Content-Range header
// the chunk must start where the upload ends (else 416) and its length
// must match Content-Length.
func (h *Handler) appendBody(w http.ResponseWriter, r *http.Request, rt route, u *blobstore.Upload) error {
	ctx := r.Context()
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		if _, err := h.appendMirrored(ctx, u, r.Body); err != nil {
			h.dropIfFull(ctx, u, err)
			return fmt.Errorf("append to upload %s: %w", u.ID(), err)
		}
		return nil
	}
	start, end, err := parseContentRange(cr)
	if err != nil {
		return newError(http.StatusBadRequest, CodeBlobUploadInvalid,
			"%v; send Content-Range: <start>-<end>, inclusive byte offsets", err)
	}
	if start != u.Size() {
		h.setUploadHeaders(w, rt.name, u)
		return newError(http.StatusRequestedRangeNotSatisfiable, CodeBlobUploadInvalid,
			"chunk starts at byte %d but the upload has %d bytes; send the chunk starting at byte %d",
			start, u.Size(), u.Size())
	}
	length := end - start + 1
	if r.ContentLength >= 0 && r.ContentLength != length {
		return newError(http.StatusBadRequest, CodeBlobUploadInvalid,
			"Content-Length %d does not match Content-Range %s (%d bytes)", r.ContentLength, cr, length)
	}
	n, err := h.appendMirrored(ctx, u, io.LimitReader(r.Body, length))
	if err != nil {
		h.dropIfFull(ctx, u, err)
		return fmt.Errorf("append to upload %s: %w", u.ID(), err)
	}
	if n != length {
		h.setUploadHeaders(w, rt.name, u)
		return newError(http.StatusBadRequest, CodeBlobUploadInvalid,
			"chunk ended after %d of the %d bytes of Content-Range %s; resume from the Range header", n, length, cr)
	}
	return nil
}

// commit appends rest to u, commits it as blob d and links the blob into repo.
func (h *Handler) commit(ctx context.Context, w http.ResponseWriter, repo string, u *blobstore.Upload, d digest.Digest, rest io.Reader) error {
	if _, err := h.appendMirrored(ctx, u, rest); err != nil {
		h.dropIfFull(ctx, u, err)
		return fmt.Errorf("append to upload %s: %w", u.ID(), err)
	}
	h.committing(u, d)
	size, err := u.Commit(ctx, d)
	if err != nil {
		// After a digest mismatch the session lives on, but its mirrors
		// were told to commit and are dropped; the client's next bytes
		// start new ones.
		h.uploadEnded(u.ID())
		return storeError(d, err)
	}
	copies := h.storedUpload(ctx, u.ID(), d, size)
	return h.linkStored(ctx, w, repo, d, size, copies)
}

// dropIfFull cancels upload u after an append failed with err, if err
// says the disk is full: the session's bytes are space the node lacks,
// and clients start a refused upload again from the beginning.
func (h *Handler) dropIfFull(ctx context.Context, u *blobstore.Upload, err error) {
	if !diskspace.IsFull(err) {
		return
	}
	h.uploadEnded(u.ID())
	if cerr := u.Cancel(context.WithoutCancel(ctx)); cerr != nil {
		h.log.DebugContext(ctx, "drop upload refused for lack of space", "upload", u.ID(), "err", cerr)
	}
}

// storeError translates a failure to store blob d.
func storeError(d digest.Digest, err error) error {
	if errors.Is(err, blobstore.ErrDigestMismatch) {
		return newError(http.StatusBadRequest, CodeDigestInvalid,
			"the uploaded content does not match digest %s; check the digest and the data sent", d).
			withDetail(map[string]string{"digest": d.String()}).withCause(err)
	}
	return fmt.Errorf("store blob %s: %w", d, err)
}

// linkStored links blob d, which a client has just stored on this node,
// into repo, recording the node as its holder, and answers 201. The copies
// to the blob's owners were started before, so that they overlap with the
// write; the mirrored copies committed by then (copies, if not nil) are
// recorded by the same write.
func (h *Handler) linkStored(ctx context.Context, w http.ResponseWriter, repo string, d digest.Digest, size int64, copies MirroredCopies) error {
	var holders []string
	if self := h.holder(); self != "" {
		holders = append(holders, self)
	}
	settle := func(bool) {}
	if copies != nil {
		var mirrored []string
		mirrored, settle = copies(ctx)
		holders = append(holders, mirrored...)
	}
	err := h.linkBlob(ctx, w, repo, d, size, holders...)
	settle(err == nil)
	if err != nil && h.holder() != "" {
		// The holder may be recorded already (a refused link keeps it);
		// recording it again changes nothing.
		h.hold(context.WithoutCancel(ctx), d, size)
	}
	return err
}

// linkBlob links stored blob d into repo and answers 201. The holders are
// recorded as holding the blob by the same write.
func (h *Handler) linkBlob(ctx context.Context, w http.ResponseWriter, repo string, d digest.Digest, size int64, holders ...string) error {
	err := h.meta.LinkBlob(ctx, repo, d, size, holders...)
	if errors.Is(err, fsm.ErrNamespaceConflict) {
		return errNamespaceConflict(repo, err)
	}
	if errors.Is(err, fsm.ErrBlobCollected) {
		return newError(http.StatusNotFound, CodeBlobUnknown,
			"blob %s was garbage-collected and this node could not record its new copy; upload it again", d).
			withCause(err)
	}
	if err != nil {
		return fmt.Errorf("link blob %s into %s: %w", d, repo, err)
	}
	w.Header().Set("Location", h.location("/v2/"+repo+"/blobs/"+d.String()))
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// release lets go of the session's lock; the session itself lives on
// unless it was committed or cancelled.
func (h *Handler) release(ctx context.Context, u *blobstore.Upload) {
	if err := u.Close(); err != nil {
		h.log.DebugContext(ctx, "release upload", "upload", u.ID(), "err", err)
	}
}

func (h *Handler) uploadLocation(repo string, u *blobstore.Upload) string {
	return h.location("/v2/" + repo + "/blobs/uploads/" + h.sessionID(u))
}

// writeUploadStatus answers with the state of an upload session.
func (h *Handler) writeUploadStatus(w http.ResponseWriter, repo string, u *blobstore.Upload, status int) {
	h.setUploadHeaders(w, repo, u)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// setUploadHeaders sets Location, Range and Docker-Upload-UUID. Range is
// the inclusive range received so far; like the Docker registry, an empty
// upload reports "0-0".
func (h *Handler) setUploadHeaders(w http.ResponseWriter, repo string, u *blobstore.Upload) {
	hdr := w.Header()
	hdr.Set("Location", h.uploadLocation(repo, u))
	hdr.Set("Range", "0-"+strconv.FormatInt(max(u.Size()-1, 0), 10))
	hdr.Set("Docker-Upload-UUID", h.sessionID(u))
}
