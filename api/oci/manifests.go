package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// getManifest answers GET and HEAD of a manifest by tag or digest with the
// stored bytes and media type (no content negotiation).
func (h *Handler) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := parseReference(rt.name, rt.arg)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var upstreamErr error
	if h.cached(ref.name) {
		upstreamErr = h.refreshCachedManifest(ctx, ref)
		// Another request's fetch may have written what this one reads.
		ctx = cluster.WithReadScope(ctx)
	}
	m, err := h.lookupManifest(ctx, ref)
	if err != nil && upstreamErr != nil {
		return errUpstream(ref.name, upstreamErr)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Docker-Content-Digest", m.GetDigest())
	w.Header().Set("ETag", `"`+m.GetDigest()+`"`)
	writeBody(w, r, http.StatusOK, m.GetMediaType(), m.GetContent())
	return nil
}

// putManifest validates and stores a manifest, pointing the tag of the
// reference and any ?tag= parameters at it.
func (h *Handler) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	p, err := h.readPush(r, rt)
	if err != nil {
		return err
	}
	if err := h.prepareWrite(r.Context(), rt.name); err != nil {
		return err
	}
	if err := h.storeManifest(r.Context(), p); err != nil {
		return err
	}
	h.audit(r.Context(), "push", rt.name, "digest", p.digest.String(), "tags", p.tags)
	hdr := w.Header()
	hdr.Set("Location", h.location("/v2/"+p.ref.name+"/manifests/"+p.digest.String()))
	hdr.Set("Docker-Content-Digest", p.digest.String())
	if p.manifest.subject != "" {
		hdr.Set("OCI-Subject", p.manifest.subject.String())
	}
	for _, t := range p.tags {
		hdr.Add("OCI-Tag", t)
	}
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// manifestPush is a validated manifest push.
type manifestPush struct {
	ref      reference
	tags     []string
	body     []byte
	digest   digest.Digest
	manifest *parsedManifest
}

// readPush reads and validates a manifest push.
func (h *Handler) readPush(r *http.Request, rt route) (*manifestPush, error) {
	ref, err := parseReference(rt.name, rt.arg)
	if err != nil {
		return nil, err
	}
	tags, err := pushTags(ref, r.URL.Query()["tag"])
	if err != nil {
		return nil, err
	}
	body, err := h.readManifest(r)
	if err != nil {
		return nil, err
	}
	pm, err := parseManifest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return nil, err
	}
	d, err := manifestDigest(ref, body)
	if err != nil {
		return nil, err
	}
	return &manifestPush{ref: ref, tags: tags, body: body, digest: d, manifest: pm}, nil
}

// storeManifest checks the push's references unless sparse manifests are
// allowed, and commits it.
func (h *Handler) storeManifest(ctx context.Context, p *manifestPush) error {
	repo := p.ref.name
	if !h.sparse {
		if err := h.checkReferences(ctx, repo, p.manifest); err != nil {
			return err
		}
	}
	if err := h.waitDurable(ctx, h.presentBlobs(ctx, repo, p.manifest)); err != nil {
		return err
	}
	err := h.meta.PutManifest(ctx, p.command())
	if errors.Is(err, fsm.ErrNamespaceConflict) {
		return errNamespaceConflict(repo, err)
	}
	if errors.Is(err, fsm.ErrMirroredRepository) {
		return errMirrored(err)
	}
	if errors.Is(err, fsm.ErrBlobCollected) {
		// Garbage collection removed a blob between validation and commit.
		return newError(http.StatusBadRequest, CodeManifestBlobUnknown,
			"%v, then the manifest", err).
			withCause(err)
	}
	if err != nil {
		return fmt.Errorf("put manifest %s into %s: %w", p.digest, repo, err)
	}
	return nil
}

// deleteManifest deletes a manifest and its tags (by digest) or only a tag.
func (h *Handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := parseReference(rt.name, rt.arg)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if ref.tag != "" {
		err = h.meta.DeleteTag(ctx, ref.name, ref.tag)
	} else {
		err = h.meta.DeleteManifest(ctx, ref.name, ref.digest)
	}
	if errors.Is(err, fsm.ErrNotFound) {
		return h.manifestUnknown(ctx, ref)
	}
	if err != nil {
		return fmt.Errorf("delete manifest %s from %s: %w", ref, ref.name, err)
	}
	h.audit(ctx, "delete", ref.name, "reference", rt.arg)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// lookupManifest finds the manifest a reference names.
func (h *Handler) lookupManifest(ctx context.Context, ref reference) (*fsmpb.Manifest, error) {
	d := ref.digest
	if ref.tag != "" {
		var err error
		d, err = h.meta.ResolveTag(ctx, ref.name, ref.tag)
		if errors.Is(err, fsm.ErrNotFound) {
			return nil, h.manifestUnknown(ctx, ref)
		}
		if err != nil {
			return nil, fmt.Errorf("resolve tag %s in %s: %w", ref.tag, ref.name, err)
		}
	}
	m, err := h.meta.Manifest(ctx, ref.name, d)
	if errors.Is(err, fsm.ErrNotFound) {
		return nil, h.manifestUnknown(ctx, ref)
	}
	if err != nil {
		return nil, fmt.Errorf("read manifest %s in %s: %w", d, ref.name, err)
	}
	return m, nil
}

// manifestUnknown returns NAME_UNKNOWN if the repository does not exist,
// else MANIFEST_UNKNOWN.
func (h *Handler) manifestUnknown(ctx context.Context, ref reference) error {
	if err := h.requireRepository(ctx, ref.name); err != nil {
		return err
	}
	return newError(http.StatusNotFound, CodeManifestUnknown,
		"manifest %s not found in repository %s", ref, ref.name).
		withDetail(map[string]string{"reference": ref.String()})
}

// readManifest reads a manifest body of at most maxManifestBytes.
func (h *Handler) readManifest(r *http.Request) ([]byte, error) {
	if r.ContentLength > h.maxManifestBytes {
		return nil, h.errManifestTooLarge()
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxManifestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest body: %w", err)
	}
	if int64(len(body)) > h.maxManifestBytes {
		return nil, h.errManifestTooLarge()
	}
	return body, nil
}

func (h *Handler) errManifestTooLarge() error {
	return newError(http.StatusRequestEntityTooLarge, CodeSizeInvalid,
		"manifest is larger than this registry's limit of %d bytes; split it, e.g. into an index of smaller manifests",
		h.maxManifestBytes).withDetail(map[string]int64{"limit": h.maxManifestBytes})
}

// pushTags returns the tags a manifest push sets: the reference's tag and
// the ?tag= parameters, without duplicates.
func pushTags(ref reference, params []string) ([]string, error) {
	var tags []string
	if ref.tag != "" {
		tags = append(tags, ref.tag)
	}
	for _, t := range params {
		if err := validateTag(t); err != nil {
			return nil, err
		}
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return tags, nil
}

// manifestDigest returns the digest of a pushed manifest: the reference's
// digest, which the body must match, or the body's sha256 digest.
func manifestDigest(ref reference, body []byte) (digest.Digest, error) {
	if ref.digest == "" {
		return digest.SHA256.FromBytes(body), nil
	}
	if got := ref.digest.Algorithm().FromBytes(body); got != ref.digest {
		return "", newError(http.StatusBadRequest, CodeDigestInvalid,
			"the manifest's digest is %s, not %s as in the URL; push it by its own digest or fix the content", got, ref.digest).
			withDetail(map[string]string{"digest": ref.digest.String()})
	}
	return ref.digest, nil
}

// checkReferences reports MANIFEST_BLOB_UNKNOWN for each blob and child
// manifest the manifest needs that is not in the repository.
func (h *Handler) checkReferences(ctx context.Context, repo string, pm *parsedManifest) error {
	var missing []error
	for _, d := range pm.blobs {
		_, ok, err := h.meta.BlobLinked(ctx, repo, d)
		if err != nil {
			return fmt.Errorf("look up blob %s in %s: %w", d, repo, err)
		}
		if !ok {
			missing = append(missing, errManifestBlobUnknown(repo, "blob", d))
		}
	}
	for _, d := range pm.manifests {
		_, err := h.meta.Manifest(ctx, repo, d)
		if errors.Is(err, fsm.ErrNotFound) {
			missing = append(missing, errManifestBlobUnknown(repo, "manifest", d))
			continue
		}
		if err != nil {
			return fmt.Errorf("look up manifest %s in %s: %w", d, repo, err)
		}
	}
	return errors.Join(missing...)
}

// presentBlobs returns the blobs of pm that are in the repository: all of
// them after checkReferences, only some for a sparse manifest.
func (h *Handler) presentBlobs(ctx context.Context, repo string, pm *parsedManifest) []digest.Digest {
	if !h.sparse {
		return pm.blobs
	}
	var present []digest.Digest
	for _, d := range pm.blobs {
		if _, ok, err := h.meta.BlobLinked(ctx, repo, d); err == nil && ok {
			present = append(present, d)
		}
	}
	return present
}

func errManifestBlobUnknown(repo, what string, d digest.Digest) error {
	return newError(http.StatusBadRequest, CodeManifestBlobUnknown,
		"the manifest references %s %s, which is not in repository %s; push it first", what, d, repo).
		withDetail(map[string]string{"digest": d.String()})
}

// command builds the metadata command for the push.
func (p *manifestPush) command() *fsmpb.PutManifest {
	pm := p.manifest
	return &fsmpb.PutManifest{
		Repository:   p.ref.name,
		Digest:       p.digest.String(),
		MediaType:    pm.mediaType,
		Content:      p.body,
		Tags:         p.tags,
		Subject:      pm.subject.String(),
		ArtifactType: pm.artifactType,
		Annotations:  pm.annotations,
		Blobs:        digestStrings(pm.blobs),
		Manifests:    digestStrings(pm.manifests),
	}
}

func digestStrings(ds []digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}
