package remotesync

import (
	"fmt"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// Filter decides which tags a job keeps: include first (empty include =
// all), then exclude; "*-source" is always excluded. Digest entries are
// kept apart: included digests are fetched untagged, excluded digests drop
// the tags that point at them.
type Filter struct {
	include, exclude []string
	includeDigests   []digest.Digest
	excludeDigests   map[digest.Digest]bool
}

// alwaysExcluded are the globs no job keeps.
var alwaysExcluded = []string{"*-source"}

// NewFilter parses include and exclude lists of globs and digests.
func NewFilter(include, exclude []string) (*Filter, error) {
	f := &Filter{excludeDigests: map[digest.Digest]bool{}}
	for _, list := range []struct {
		entries []string
		globs   *[]string
		digests func(digest.Digest)
	}{
		{include, &f.include, func(d digest.Digest) { f.includeDigests = append(f.includeDigests, d) }},
		{exclude, &f.exclude, func(d digest.Digest) { f.excludeDigests[d] = true }},
	} {
		for _, e := range list.entries {
			if isDigest(e) {
				d, err := digest.Parse(e)
				if err != nil {
					return nil, fmt.Errorf("filter entry %q: %w", e, err)
				}
				list.digests(d)
				continue
			}
			if _, err := path.Match(e, ""); err != nil {
				return nil, fmt.Errorf("filter entry %q: %w", e, err)
			}
			*list.globs = append(*list.globs, e)
		}
	}
	return f, nil
}

func isDigest(s string) bool {
	return strings.HasPrefix(s, "sha256:") || strings.HasPrefix(s, "sha512:")
}

// matchAny reports whether tag matches one of globs. Tags hold no slash,
// so path.Match's * and ? are the globs the API documents.
func matchAny(globs []string, tag string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, tag); ok {
			return true
		}
	}
	return false
}

// Keep reports whether the filter keeps tag.
func (f *Filter) Keep(tag string) bool {
	if len(f.include) > 0 && !matchAny(f.include, tag) {
		return false
	}
	if len(f.include) == 0 && len(f.includeDigests) > 0 {
		// Only digests were asked for: no tag is included.
		return false
	}
	return !matchAny(f.exclude, tag) && !matchAny(alwaysExcluded, tag)
}

// IncludeDigests are the manifests to fetch by digest, untagged.
func (f *Filter) IncludeDigests() []digest.Digest { return f.includeDigests }

// ExcludesDigest reports whether tags pointing at d are dropped.
func (f *Filter) ExcludesDigest(d digest.Digest) bool { return f.excludeDigests[d] }

// platformFilter keeps the children of an index whose platform is listed.
type platformFilter []v1.Platform

func parsePlatforms(specs []string) (platformFilter, error) {
	var out platformFilter
	for _, s := range specs {
		parts := strings.Split(s, "/")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("platform %q: want os/arch or os/arch/variant", s)
		}
		p := v1.Platform{OS: parts[0], Architecture: parts[1]}
		if len(parts) == 3 {
			p.Variant = parts[2]
		}
		out = append(out, p)
	}
	return out, nil
}

// keep reports whether a child of platform p is kept: every child when
// the filter is empty; else one whose os and arch match an entry (and its
// variant, when the entry names one).
func (pf platformFilter) keep(p *v1.Platform) bool {
	if len(pf) == 0 {
		return true
	}
	if p == nil {
		return false
	}
	for _, w := range pf {
		if w.OS == p.OS && w.Architecture == p.Architecture && (w.Variant == "" || w.Variant == p.Variant) {
			return true
		}
	}
	return false
}
