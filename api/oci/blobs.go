package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/fsm"
)

// getBlob streams a blob. A blob this node holds is a file:
// http.ServeContent answers Range and conditional requests and lets the
// server use sendfile. One that only peers hold streams to the client as
// it arrives (unless the request asks for a range, which needs the whole
// blob verified first); if its bytes turn out not to be the blob's, the
// response is aborted rather than finished, so that the client sees a
// broken transfer, never a complete wrong blob.
func (h *Handler) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := h.linkedBlob(r.Context(), rt)
	if err != nil {
		if h.notYetCached(err, rt) {
			return h.serveCachedBlob(w, r, rt, d)
		}
		return err
	}
	return h.serveBlob(w, r, d)
}

// notYetCached reports whether err says that blob is not in repository
// rt.name, which is a pull-through cache: its upstream may have it.
func (h *Handler) notYetCached(err error, rt route) bool {
	e, ok := errors.AsType[*apiError](err)
	return ok && e.code == CodeBlobUnknown && h.cached(rt.name)
}

// serveBlob streams blob d, which the registry holds.
func (h *Handler) serveBlob(w http.ResponseWriter, r *http.Request, d digest.Digest) error {
	if r.Header.Get("Range") != "" {
		f, err := h.blobs.Open(r.Context(), d)
		if err != nil {
			return blobStoreError(d, err)
		}
		defer f.Close()
		setBlobHeaders(w, d)
		http.ServeContent(w, r, "", time.Time{}, f)
		return nil
	}
	rc, size, err := h.blobs.Stream(r.Context(), d)
	if err != nil {
		return blobStoreError(d, err)
	}
	defer rc.Close()
	setBlobHeaders(w, d)
	if f, ok := rc.(*os.File); ok {
		http.ServeContent(w, r, "", time.Time{}, f)
		return nil
	}
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil {
		if r.Context().Err() == nil {
			h.log.WarnContext(r.Context(), "aborted the pull of a blob fetched from a peer", "digest", d, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
	return nil
}

// headBlob answers whether a blob is in the repository, and its size.
func (h *Handler) headBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := h.linkedBlob(r.Context(), rt)
	if err != nil {
		if h.notYetCached(err, rt) {
			return h.serveCachedBlob(w, r, rt, d)
		}
		return err
	}
	size, err := h.blobs.Stat(r.Context(), d)
	if err != nil {
		return blobStoreError(d, err)
	}
	setBlobHeaders(w, d)
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
	return nil
}

// deleteBlob removes a blob from the repository. Its bytes stay in the
// store until garbage collection finds that no repository links them.
func (h *Handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := parseDigest(rt.arg)
	if err != nil {
		return err
	}
	err = h.meta.UnlinkBlob(r.Context(), rt.name, d)
	if errors.Is(err, fsm.ErrNotFound) {
		return errBlobUnknown(rt.name, d)
	}
	if err != nil {
		return fmt.Errorf("unlink blob %s from %s: %w", d, rt.name, err)
	}
	h.audit(r.Context(), "delete_blob", rt.name, "digest", d.String())
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// linkedBlob parses the route's digest and checks that the blob is part of
// the repository; when it is not, it returns the digest with the error.
func (h *Handler) linkedBlob(ctx context.Context, rt route) (digest.Digest, error) {
	d, err := parseDigest(rt.arg)
	if err != nil {
		return "", err
	}
	_, ok, err := h.meta.BlobLinked(ctx, rt.name, d)
	if err != nil {
		return "", fmt.Errorf("look up blob %s in %s: %w", d, rt.name, err)
	}
	if !ok {
		return d, errBlobUnknown(rt.name, d)
	}
	return d, nil
}

func setBlobHeaders(w http.ResponseWriter, d digest.Digest) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("ETag", `"`+d.String()+`"`)
	hdr.Set("Cache-Control", "max-age=31536000, immutable")
}

// blobStoreError translates a blob store failure for blob d.
func blobStoreError(d digest.Digest, err error) error {
	if errors.Is(err, blobstore.ErrBlobUnknown) {
		return newError(http.StatusNotFound, CodeBlobUnknown,
			"blob %s is linked but its content is missing on this node", d).
			withDetail(map[string]string{"digest": d.String()}).withCause(err)
	}
	return fmt.Errorf("read blob %s: %w", d, err)
}

func errBlobUnknown(repo string, d digest.Digest) error {
	return newError(http.StatusNotFound, CodeBlobUnknown,
		"blob %s is not in repository %s; upload it or mount it from another repository", d, repo).
		withDetail(map[string]string{"digest": d.String()})
}
