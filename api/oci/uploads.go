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
)

// startUpload answers POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=), a monolithic upload (?digest= with the blob as body), or
// the start of an upload session.
func (h *Handler) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	if err := h.checkPush(ctx, rt.name); err != nil {
		if !onApplied(ctx) {
			return err
		}
		// Authorized and checked on this node's applied state: a lagging
		// node must not refuse what the cluster allows, so authorize and
		// check again on linearizable state.
		if r, err = h.authorizeLinearizably(r, rt); err != nil {
			return err
		}
		ctx = r.Context()
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
	u, err := h.blobs.NewUpload(ctx, rt.name)
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
	var err error
	if onApplied(ctx) && h.applied != nil {
		err = h.applied.CheckRepositoryName(repo)
		if err == nil {
			err = h.applied.CheckPushable(repo)
		}
	} else {
		err = h.meta.CheckRepositoryName(ctx, repo)
		if err == nil {
			err = h.meta.CheckPushable(ctx, repo)
		}
	}
	if errors.Is(err, fsm.ErrNamespaceConflict) {
		return errNamespaceConflict(repo, err)
	}
	if errors.Is(err, fsm.ErrMirroredRepository) {
		return errMirrored(err)
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
	err = h.blobs.Link(ctx, repo, d, size)
	if errors.Is(err, fsm.ErrBlobCollected) {
		return false, nil // collected since mountable looked: upload it instead
	}
	if err != nil {
		return false, linkError(repo, d, err)
	}
	h.created(w, repo, d)
	return true, nil
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
	size, ok, err := h.blobs.Held(ctx, d)
	if err != nil {
		return 0, false, fmt.Errorf("look up holders of blob %s: %w", d, err)
	}
	return size, ok, nil
}

// monolithicUpload stores the request body as the blob named by ?digest=.
func (h *Handler) monolithicUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(r.URL.Query().Get("digest"))
	if err != nil {
		return err
	}
	if _, err := h.blobs.Put(r.Context(), rt.name, d, r.Body, r.ContentLength); err != nil {
		return storeError(rt.name, d, err)
	}
	h.created(w, rt.name, d)
	return nil
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
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// openUpload finds the session named by the route, which must belong to
// the route's repository.
func (h *Handler) openUpload(ctx context.Context, rt route) (blobstore.Writer, error) {
	node, local := splitSessionID(rt.arg)
	if node != h.nodeID {
		return nil, errUploadUnknown(rt.arg)
	}
	u, err := h.blobs.OpenUpload(ctx, rt.name, local)
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
func ownedBy(u blobstore.Writer, repo string) bool {
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
func (h *Handler) appendBody(w http.ResponseWriter, r *http.Request, rt route, u blobstore.Writer) error {
	ctx := r.Context()
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		if _, err := u.Append(ctx, r.Body); err != nil {
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
	n, err := u.Append(ctx, io.LimitReader(r.Body, length))
	if err != nil {
		return fmt.Errorf("append to upload %s: %w", u.ID(), err)
	}
	if n != length {
		h.setUploadHeaders(w, rt.name, u)
		return newError(http.StatusBadRequest, CodeBlobUploadInvalid,
			"chunk ended after %d of the %d bytes of Content-Range %s; resume from the Range header", n, length, cr)
	}
	return nil
}

// commit appends rest to u, commits it as blob d and links the blob into
// repo.
func (h *Handler) commit(ctx context.Context, w http.ResponseWriter, repo string, u blobstore.Writer, d digest.Digest, rest io.Reader) error {
	if _, err := u.Append(ctx, rest); err != nil {
		return fmt.Errorf("append to upload %s: %w", u.ID(), err)
	}
	if _, err := u.Commit(ctx, d); err != nil {
		return storeError(repo, d, err)
	}
	h.created(w, repo, d)
	return nil
}

// storeError translates a failure to store blob d and link it into repo.
func storeError(repo string, d digest.Digest, err error) error {
	if errors.Is(err, blobstore.ErrDigestMismatch) {
		return newError(http.StatusBadRequest, CodeDigestInvalid,
			"the uploaded content does not match digest %s; check the digest and the data sent", d).
			withDetail(map[string]string{"digest": d.String()}).withCause(err)
	}
	return linkError(repo, d, err)
}

// linkError translates a failure to link blob d into repo.
func linkError(repo string, d digest.Digest, err error) error {
	switch {
	case errors.Is(err, fsm.ErrNamespaceConflict):
		return errNamespaceConflict(repo, err)
	case errors.Is(err, fsm.ErrBlobCollected):
		return newError(http.StatusNotFound, CodeBlobUnknown,
			"blob %s was garbage-collected and this node could not record its new copy; upload it again", d).
			withCause(err)
	}
	return fmt.Errorf("store blob %s in %s: %w", d, repo, err)
}

// created answers 201 for blob d, now part of repo.
func (h *Handler) created(w http.ResponseWriter, repo string, d digest.Digest) {
	w.Header().Set("Location", h.location("/v2/"+repo+"/blobs/"+d.String()))
	w.Header().Set("Docker-Content-Digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// release lets go of the session's lock; the session itself lives on
// unless it was committed or cancelled.
func (h *Handler) release(ctx context.Context, u blobstore.Writer) {
	if err := u.Close(); err != nil {
		h.log.DebugContext(ctx, "release upload", "upload", u.ID(), "err", err)
	}
}

func (h *Handler) uploadLocation(repo string, u blobstore.Writer) string {
	return h.location("/v2/" + repo + "/blobs/uploads/" + h.sessionID(u))
}

// writeUploadStatus answers with the state of an upload session.
func (h *Handler) writeUploadStatus(w http.ResponseWriter, repo string, u blobstore.Writer, status int) {
	h.setUploadHeaders(w, repo, u)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// setUploadHeaders sets Location, Range and Docker-Upload-UUID. Range is
// the inclusive range received so far; like the Docker registry, an empty
// upload reports "0-0".
func (h *Handler) setUploadHeaders(w http.ResponseWriter, repo string, u blobstore.Writer) {
	hdr := w.Header()
	hdr.Set("Location", h.uploadLocation(repo, u))
	hdr.Set("Range", "0-"+strconv.FormatInt(max(u.Size()-1, 0), 10))
	hdr.Set("Docker-Upload-UUID", h.sessionID(u))
}
