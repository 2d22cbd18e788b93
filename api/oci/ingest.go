package oci

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm"
)

// Ingester writes content synced from a remote registry into repositories,
// through the same blob store and metadata as a push, with the checks a
// push has (the manifest is parsed, its digest is the one named, its blobs
// are durable before it is committed) but without a caller: the sync job
// that uses it was authorized when it was requested. Its manifests are
// marked synced, so they enter mirrored repositories that refuse pushes,
// and an index may be sparse (a platform filter dropped some children),
// whatever Config.SparseManifests says for pushes.
type Ingester struct {
	meta        Metadata
	blobs       BlobStore
	maxManifest int64
}

// Ingester returns the handler's ingester of synced content.
func (h *Handler) Ingester() *Ingester {
	return &Ingester{meta: h.meta, blobs: h.blobs, maxManifest: h.maxManifestBytes}
}

// NewIngester returns an ingester over cfg's Metadata and Blobs, for a
// pull-through cache that the handler built from cfg will use.
func NewIngester(cfg Config) *Ingester {
	maxManifest := cfg.MaxManifestBytes
	if maxManifest <= 0 {
		maxManifest = DefaultMaxManifestBytes
	}
	return &Ingester{meta: cfg.Metadata, blobs: cfg.Blobs, maxManifest: maxManifest}
}

// ResolveTag returns the manifest digest tag points at in repo, or false.
func (in *Ingester) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, bool, error) {
	d, err := in.meta.ResolveTag(ctx, repo, tag)
	if errors.Is(err, fsm.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("resolve tag %s of %s: %w", tag, repo, err)
	}
	return d, true, nil
}

// ingestTagPage is how many tags Tags reads at a time.
const ingestTagPage = 1000

// Tags returns repo's tags and the digests they point at; none for a
// repository that does not exist yet.
func (in *Ingester) Tags(ctx context.Context, repo string) (map[string]digest.Digest, error) {
	out := map[string]digest.Digest{}
	for last := ""; ; {
		tags, err := in.meta.ListTags(ctx, repo, last, ingestTagPage)
		if errors.Is(err, fsm.ErrNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list tags of %s: %w", repo, err)
		}
		for _, t := range tags {
			d, err := in.meta.ResolveTag(ctx, repo, t)
			if errors.Is(err, fsm.ErrNotFound) {
				continue // deleted since the listing
			}
			if err != nil {
				return nil, fmt.Errorf("resolve tag %s of %s: %w", t, repo, err)
			}
			out[t] = d
		}
		if len(tags) < ingestTagPage {
			return out, nil
		}
		last = tags[len(tags)-1]
	}
}

// HasManifest reports whether repo holds manifest d.
func (in *Ingester) HasManifest(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	_, err := in.meta.Manifest(ctx, repo, d)
	if errors.Is(err, fsm.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up manifest %s in %s: %w", d, repo, err)
	}
	return true, nil
}

// HasBlob reports whether blob d is linked into repo.
func (in *Ingester) HasBlob(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	_, ok, err := in.meta.BlobLinked(ctx, repo, d)
	if err != nil {
		return false, fmt.Errorf("look up blob %s in %s: %w", d, repo, err)
	}
	return ok, nil
}

// LinkBlob links blob d into repo when the registry holds it already,
// once it is durable; false when the registry does not hold it.
func (in *Ingester) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64) (bool, error) {
	held, ok, err := in.blobs.Held(ctx, d)
	if err != nil {
		return false, fmt.Errorf("look up blob %s: %w", d, err)
	}
	if !ok || (size >= 0 && held != size) {
		return false, nil
	}
	if err := in.blobs.WaitDurable(ctx, []digest.Digest{d}); err != nil {
		return false, nil // a copy that is not durable is fetched again
	}
	if err := in.blobs.Link(ctx, repo, d, held); err != nil {
		return false, fmt.Errorf("link blob %s into %s: %w", d, repo, err)
	}
	return true, nil
}

// PutBlob stores r, size bytes, as blob d of repo, and returns once it is
// durable on enough nodes. The store verifies the digest as the bytes
// stream; a short stream is refused before it is stored.
func (in *Ingester) PutBlob(ctx context.Context, repo string, d digest.Digest, size int64, r io.Reader) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("blob digest %q: %w", d, err)
	}
	n, err := in.blobs.Put(ctx, repo, d, &exactReader{r: r, left: size}, size)
	if err != nil {
		return fmt.Errorf("store blob %s in %s: %w", d, repo, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("store blob %s in %s: %d bytes, want %d", d, repo, n, size)
	}
	if err := in.blobs.WaitDurable(ctx, []digest.Digest{d}); err != nil {
		return fmt.Errorf("blob %s is not durable: %w", d, err)
	}
	return nil
}

// exactReader fails instead of ending when its reader ends before left
// bytes, and refuses bytes beyond them.
type exactReader struct {
	r    io.Reader
	left int64 // negative: unknown
}

var errShortBlob = errors.New("the blob ended before its size")

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left < 0 {
		return e.r.Read(p)
	}
	if e.left == 0 {
		var one [1]byte
		if n, _ := e.r.Read(one[:]); n > 0 {
			return 0, errors.New("the blob is longer than its size")
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		return n, errShortBlob
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

// PutManifest stores manifest body, of mediaType, in repo under digest d
// and points tags at it. The blobs it references that repo holds must be
// durable; those it does not hold are allowed (a sparse index, or layers
// a sync does not fetch).
func (in *Ingester) PutManifest(ctx context.Context, repo string, d digest.Digest, mediaType string, body []byte, tags []string) error {
	if int64(len(body)) > in.maxManifest {
		return fmt.Errorf("manifest %s is %d bytes, more than the limit of %d", d, len(body), in.maxManifest)
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("manifest digest %q: %w", d, err)
	}
	if got := d.Algorithm().FromBytes(body); got != d {
		return fmt.Errorf("manifest bytes hash to %s, not %s", got, d)
	}
	if err := fsm.ValidateRepositoryName(repo); err != nil {
		return fmt.Errorf("repository %q: %w", repo, err)
	}
	for _, t := range tags {
		if err := fsm.ValidateTag(t); err != nil {
			return fmt.Errorf("tag %q: %w", t, err)
		}
	}
	pm, err := parseManifest(mediaType, body)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", d, err)
	}
	var present []digest.Digest
	for _, b := range pm.blobs {
		if ok, err := in.HasBlob(ctx, repo, b); err != nil {
			return err
		} else if ok {
			present = append(present, b)
		}
	}
	if len(present) > 0 {
		if err := in.blobs.WaitDurable(ctx, present); err != nil {
			return fmt.Errorf("the blobs of manifest %s are not durable: %w", d, err)
		}
	}
	p := &manifestPush{ref: reference{name: repo, digest: d}, tags: tags, body: body, digest: d, manifest: pm}
	cmd := p.command()
	cmd.Synced = true
	if err := in.meta.PutManifest(ctx, cmd); err != nil {
		return fmt.Errorf("put manifest %s into %s: %w", d, repo, err)
	}
	return nil
}

// DeleteTag removes a tag of repo; a tag already gone is not an error.
func (in *Ingester) DeleteTag(ctx context.Context, repo, tag string) error {
	err := in.meta.DeleteTag(ctx, repo, tag)
	if err != nil && !errors.Is(err, fsm.ErrNotFound) {
		return fmt.Errorf("delete tag %s of %s: %w", tag, repo, err)
	}
	return nil
}
