package admin

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"connectrpc.com/connect"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// imageService implements wharf.v1.ImageService.
type imageService struct {
	wharfv1connect.UnimplementedImageServiceHandler
	cfg Config
}

// digestPrefixPattern is what a digest prefix may look like: an algorithm,
// or an algorithm, a colon and the start of the hex.
var digestPrefixPattern = regexp.MustCompile(`^[a-z0-9]+([+._-][a-z0-9]+)*(:[a-f0-9]*)?$`)

// ListImages pages through a repository's manifests.
func (s *imageService) ListImages(ctx context.Context, req *connect.Request[wharfv1.ListImagesRequest]) (*connect.Response[wharfv1.ListImagesResponse], error) {
	m := req.Msg
	if err := checkRepository("repository", m.Repository); err != nil {
		return nil, err
	}
	if m.DigestPrefix != "" && !digestPrefixPattern.MatchString(m.DigestPrefix) {
		return nil, invalidArgument("digest_prefix", fmt.Errorf("%q is not the start of a digest, such as sha256:ab12", m.DigestPrefix))
	}
	size, err := pageSize(m.PageSize)
	if err != nil {
		return nil, err
	}
	if _, err := s.cfg.requirePull(ctx, m.Repository); err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	q := fsm.ImageQuery{
		Repository: m.Repository, DigestPrefix: m.DigestPrefix, HideChildren: m.HideChildren,
		Limit: size, Token: m.PageToken,
	}
	if m.TagContains != "" {
		q.Keep = func(img *fsm.Image) bool {
			for _, t := range img.Tags {
				if strings.Contains(t, m.TagContains) {
					return true
				}
			}
			return false
		}
	}
	page, err := f.ListImages(q)
	if err != nil {
		if errors.Is(err, fsm.ErrInvalid) {
			return nil, invalidArgument("page_token", err)
		}
		return nil, stateError(err)
	}
	resp := &wharfv1.ListImagesResponse{NextPageToken: page.Next}
	for _, img := range page.Images {
		msg, err := imageMessage(f, m.Repository, img)
		if err != nil {
			return nil, stateError(err)
		}
		resp.Images = append(resp.Images, msg)
	}
	return connect.NewResponse(resp), nil
}

// GetImage describes one manifest, with its image configuration.
func (s *imageService) GetImage(ctx context.Context, req *connect.Request[wharfv1.GetImageRequest]) (*connect.Response[wharfv1.GetImageResponse], error) {
	m := req.Msg
	if err := checkRepository("repository", m.Repository); err != nil {
		return nil, err
	}
	if _, err := s.cfg.requirePull(ctx, m.Repository); err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	d, err := resolve(f, "reference", m.Repository, m.Reference)
	if err != nil {
		return nil, err
	}
	img, err := f.Image(m.Repository, d.String())
	if err != nil {
		return nil, stateError(err)
	}
	msg, err := imageMessage(f, m.Repository, img)
	if err != nil {
		return nil, stateError(err)
	}
	resp := &wharfv1.GetImageResponse{Image: msg, Manifest: img.Manifest.GetContent()}
	if msg.Config != nil && isImageConfig(msg.Config.MediaType) {
		cfg, err := readImageConfig(ctx, s.cfg.Content, msg.Config)
		if err != nil {
			resp.ConfigError = err.Error()
		}
		resp.Config = cfg
	}
	return connect.NewResponse(resp), nil
}

// tagging checks a request that changes tag of repo: the names, then the
// caller's right to change tags; it returns the caller and the state.
func (s *imageService) tagging(ctx context.Context, repo, tag string) (auth.Caller, *fsm.FSM, error) {
	if err := checkRepository("repository", repo); err != nil {
		return auth.Caller{}, nil, err
	}
	if err := fsm.ValidateTag(tag); err != nil {
		return auth.Caller{}, nil, invalidArgument("tag", err)
	}
	c, err := s.cfg.requireOn(ctx, auth.ActionTag, repo)
	if err != nil {
		return auth.Caller{}, nil, err
	}
	f, err := s.cfg.state(ctx)
	return c, f, err
}

// TagImage points a tag at a manifest of the repository.
func (s *imageService) TagImage(ctx context.Context, req *connect.Request[wharfv1.TagImageRequest]) (*connect.Response[wharfv1.TagImageResponse], error) {
	m := req.Msg
	c, f, err := s.tagging(ctx, m.Repository, m.Tag)
	if err != nil {
		return nil, err
	}
	d, err := resolve(f, "reference", m.Repository, m.Reference)
	if err != nil {
		return nil, err
	}
	resp := &wharfv1.TagImageResponse{Digest: d.String()}
	switch prev, err := f.ResolveTag(m.Repository, m.Tag); {
	case err == nil:
		resp.PreviousDigest = prev.String()
	case !errors.Is(err, fsm.ErrNotFound):
		return nil, stateError(err)
	}
	cmd := fsm.NewCommand(&fsmpb.TagManifest{Repository: m.Repository, Tag: m.Tag, Digest: d.String()})
	if err := s.cfg.apply(ctx, c, "tag_set", m.Repository+":"+m.Tag, cmd, "digest", d.String()); err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// UntagImage removes a tag.
func (s *imageService) UntagImage(ctx context.Context, req *connect.Request[wharfv1.UntagImageRequest]) (*connect.Response[wharfv1.UntagImageResponse], error) {
	m := req.Msg
	c, f, err := s.tagging(ctx, m.Repository, m.Tag)
	if err != nil {
		return nil, err
	}
	d, err := resolve(f, "tag", m.Repository, m.Tag)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.DeleteTag{Repository: m.Repository, Tag: m.Tag})
	if err := s.cfg.apply(ctx, c, "tag_removed", m.Repository+":"+m.Tag, cmd, "digest", d.String()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.UntagImageResponse{Digest: d.String()}), nil
}

// DeleteImage deletes a manifest with its tags, referrers and unshared
// children.
func (s *imageService) DeleteImage(ctx context.Context, req *connect.Request[wharfv1.DeleteImageRequest]) (*connect.Response[wharfv1.DeleteImageResponse], error) {
	m := req.Msg
	if err := checkRepository("repository", m.Repository); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireOn(ctx, auth.ActionDelete, m.Repository)
	if err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	d, err := resolve(f, "reference", m.Repository, m.Reference)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.DeleteManifest{Repository: m.Repository, Digest: d.String(), Image: true})
	if err := s.cfg.apply(ctx, c, "image_deleted", m.Repository+"@"+d.String(), cmd); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.DeleteImageResponse{Digest: d.String()}), nil
}

// imageMessage describes img of repo from its stored manifest.
func imageMessage(f *fsm.FSM, repo string, img *fsm.Image) (*wharfv1.Image, error) {
	m := img.Manifest
	out := &wharfv1.Image{
		Digest:          m.GetDigest(),
		MediaType:       m.GetMediaType(),
		ArtifactType:    m.GetArtifactType(),
		Tags:            img.Tags,
		PushedUnixNanos: m.GetCreatedUnixNanos(),
		Child:           img.Child,
		Subject:         m.GetSubject(),
		Referrers:       referrerGroups(img.Referrers),
	}
	parts, err := parseManifest(m.GetContent())
	if err != nil {
		// The registry validated the manifest when it was pushed: this
		// is a record the API cannot describe, not a bad request.
		return nil, fmt.Errorf("manifest %s of %q: %w", m.GetDigest(), repo, err)
	}
	out.Config, out.Layers, out.Platforms = parts.config, parts.layers, parts.platforms
	if out.SizeBytes, err = imageSize(f, repo, parts, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// maxIndexDepth bounds how deep the size of nested indexes is followed.
const maxIndexDepth = 3

// imageSize is the size of an image manifest's config and layers, or the
// sum of the sizes of an index's children that repo holds.
func imageSize(f *fsm.FSM, repo string, p manifestParts, depth int) (int64, error) {
	var size int64
	if p.config != nil {
		size += p.config.Size
	}
	for _, l := range p.layers {
		size += l.Size
	}
	if depth >= maxIndexDepth {
		return size, nil
	}
	for _, child := range p.platforms {
		m, err := f.Manifest(repo, digest.Digest(child.Digest))
		if errors.Is(err, fsm.ErrNotFound) {
			continue // a sparse index: the child was never pushed here
		}
		if err != nil {
			return 0, err
		}
		cp, err := parseManifest(m.GetContent())
		if err != nil {
			return 0, fmt.Errorf("child %s: %w", child.Digest, err)
		}
		n, err := imageSize(f, repo, cp, depth+1)
		if err != nil {
			return 0, err
		}
		size += n
	}
	return size, nil
}

// referrerGroups groups referrers by artifact type, in the order they
// come (by digest).
func referrerGroups(refs []*fsmpb.Manifest) []*wharfv1.ReferrerGroup {
	var groups []*wharfv1.ReferrerGroup
	byType := map[string]*wharfv1.ReferrerGroup{}
	for _, r := range refs {
		at := r.GetArtifactType()
		g, ok := byType[at]
		if !ok {
			g = &wharfv1.ReferrerGroup{Kind: referrerKind(at), ArtifactType: at}
			byType[at] = g
			groups = append(groups, g)
		}
		g.Digests = append(g.Digests, r.GetDigest())
	}
	return groups
}

// referrerKind sorts an artifact type into signatures, SBOMs and
// attestations, by the names their tools give them.
func referrerKind(artifactType string) wharfv1.ReferrerKind {
	at := strings.ToLower(artifactType)
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(at, w) {
				return true
			}
		}
		return false
	}
	switch {
	case fsm.IsSignature(artifactType):
		return wharfv1.ReferrerKind_REFERRER_KIND_SIGNATURE
	case has("spdx", "cyclonedx", "sbom", "syft"):
		return wharfv1.ReferrerKind_REFERRER_KIND_SBOM
	case has("in-toto", "intoto", "attestation", "provenance", "slsa", "vex"):
		return wharfv1.ReferrerKind_REFERRER_KIND_ATTESTATION
	}
	return wharfv1.ReferrerKind_REFERRER_KIND_UNSPECIFIED
}
