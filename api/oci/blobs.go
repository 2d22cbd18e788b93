package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/fsm"
)

// getBlob streams a blob. http.ServeContent answers Range and conditional
// requests and lets the server use sendfile on the *os.File.
func (h *Handler) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := h.linkedBlob(r.Context(), rt)
	if err != nil {
		return err
	}
	f, err := h.blobs.Open(r.Context(), d)
	if err != nil {
		return blobStoreError(d, err)
	}
	defer f.Close()
	setBlobHeaders(w, d)
	http.ServeContent(w, r, "", time.Time{}, f)
	return nil
}

// headBlob answers whether a blob is in the repository, and its size.
func (h *Handler) headBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := h.linkedBlob(r.Context(), rt)
	if err != nil {
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
// the repository.
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
		return "", errBlobUnknown(rt.name, d)
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
