package oci

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	fsmv1 "github.com/wharf-registry/wharf/api/gen/wharf/fsm/v1"
	"github.com/wharf-registry/wharf/fsm"
)

// memMetadata is an in-memory Metadata that follows the contract of the
// replicated implementation, namespace rules included.
type memMetadata struct {
	mu         sync.Mutex
	namespaces map[string]bool // namespace name -> flat
	repos      map[string]*memRepo
}

type memRepo struct {
	manifests map[digest.Digest]*fsmv1.Manifest
	tags      map[string]digest.Digest
	blobs     map[digest.Digest]int64
}

var _ Metadata = (*memMetadata)(nil)

func newMemMetadata() *memMetadata {
	return &memMetadata{namespaces: map[string]bool{}, repos: map[string]*memRepo{}}
}

// namespaceRule returns the rule creating repo would break, or "".
func (m *memMetadata) namespaceRule(repo string) string {
	if _, ok := m.repos[repo]; ok {
		return ""
	}
	ns, _, nested := strings.Cut(repo, "/")
	flat, ok := m.namespaces[ns]
	switch {
	case !ok:
		return ""
	case flat:
		return fmt.Sprintf("namespace %q was created by the single-name repository %q and can hold no other repository", ns, ns)
	case !nested:
		return fmt.Sprintf("namespace %q already holds repositories, so %q cannot also be a single-name repository", ns, repo)
	}
	return ""
}

func (m *memMetadata) CheckRepositoryName(_ context.Context, repo string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rule := m.namespaceRule(repo); rule != "" {
		return fmt.Errorf("%w: %s", fsm.ErrNamespaceConflict, rule)
	}
	return nil
}

// ensureRepo creates repo and its namespace; the caller holds m.mu.
func (m *memMetadata) ensureRepo(repo string) (*memRepo, error) {
	if r, ok := m.repos[repo]; ok {
		return r, nil
	}
	if rule := m.namespaceRule(repo); rule != "" {
		return nil, fmt.Errorf("%w: %s", fsm.ErrNamespaceConflict, rule)
	}
	ns, _, nested := strings.Cut(repo, "/")
	if _, ok := m.namespaces[ns]; !ok {
		m.namespaces[ns] = !nested
	}
	r := &memRepo{
		manifests: map[digest.Digest]*fsmv1.Manifest{},
		tags:      map[string]digest.Digest{},
		blobs:     map[digest.Digest]int64{},
	}
	m.repos[repo] = r
	return r, nil
}

// existing returns repo for a write that needs it to exist.
func (m *memMetadata) existing(repo string) (*memRepo, error) {
	r, ok := m.repos[repo]
	if !ok {
		return nil, fmt.Errorf("repository %q: %w", repo, fsm.ErrNotFound)
	}
	return r, nil
}

func (m *memMetadata) RepositoryExists(_ context.Context, repo string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.repos[repo]
	return ok, nil
}

func (m *memMetadata) ListRepositories(_ context.Context, last string, n int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return listAfter(slices.Collect(maps.Keys(m.repos)), last, n), nil
}

func (m *memMetadata) ListTags(_ context.Context, repo, last string, n int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.repos[repo]
	if !ok {
		return nil, fmt.Errorf("repository %q: %w", repo, fsm.ErrNotFound)
	}
	return listAfter(slices.Collect(maps.Keys(r.tags)), last, n), nil
}

// listAfter returns up to n names after last in lexical order; n <= 0
// means no limit.
func listAfter(names []string, last string, n int) []string {
	slices.Sort(names)
	var out []string
	for _, name := range names {
		if name > last && (n <= 0 || len(out) < n) {
			out = append(out, name)
		}
	}
	return out
}

func (m *memMetadata) ResolveTag(_ context.Context, repo, tag string) (digest.Digest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.repos[repo]; ok {
		if d, ok := r.tags[tag]; ok {
			return d, nil
		}
	}
	return "", fmt.Errorf("tag %q of %q: %w", tag, repo, fsm.ErrNotFound)
}

func (m *memMetadata) Manifest(_ context.Context, repo string, d digest.Digest) (*fsmv1.Manifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.repos[repo]; ok {
		if man, ok := r.manifests[d]; ok {
			return proto.Clone(man).(*fsmv1.Manifest), nil
		}
	}
	return nil, fmt.Errorf("manifest %s of %q: %w", d, repo, fsm.ErrNotFound)
}

func (m *memMetadata) Referrers(_ context.Context, repo string, subject digest.Digest) ([]*fsmv1.Manifest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var refs []*fsmv1.Manifest
	if r, ok := m.repos[repo]; ok {
		for _, man := range r.manifests {
			if man.GetSubject() == subject.String() {
				refs = append(refs, proto.Clone(man).(*fsmv1.Manifest))
			}
		}
	}
	slices.SortFunc(refs, func(a, b *fsmv1.Manifest) int { return cmp.Compare(a.GetDigest(), b.GetDigest()) })
	return refs, nil
}

func (m *memMetadata) BlobLinked(_ context.Context, repo string, d digest.Digest) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.repos[repo]; ok {
		size, ok := r.blobs[d]
		return size, ok, nil
	}
	return 0, false, nil
}

func (m *memMetadata) PutManifest(_ context.Context, cmd *fsmv1.PutManifest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.ensureRepo(cmd.GetRepository())
	if err != nil {
		return err
	}
	d := digest.Digest(cmd.GetDigest())
	r.manifests[d] = &fsmv1.Manifest{
		Digest:       cmd.GetDigest(),
		MediaType:    cmd.GetMediaType(),
		Content:      slices.Clone(cmd.GetContent()),
		Subject:      cmd.GetSubject(),
		ArtifactType: cmd.GetArtifactType(),
		Annotations:  maps.Clone(cmd.GetAnnotations()),
		Blobs:        slices.Clone(cmd.GetBlobs()),
		Manifests:    slices.Clone(cmd.GetManifests()),
	}
	for _, t := range cmd.GetTags() {
		r.tags[t] = d
	}
	return nil
}

func (m *memMetadata) DeleteManifest(_ context.Context, repo string, d digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.existing(repo)
	if err != nil {
		return err
	}
	if _, ok := r.manifests[d]; !ok {
		return fmt.Errorf("manifest %s of %q: %w", d, repo, fsm.ErrNotFound)
	}
	delete(r.manifests, d)
	maps.DeleteFunc(r.tags, func(_ string, td digest.Digest) bool { return td == d })
	return nil
}

func (m *memMetadata) DeleteTag(_ context.Context, repo, tag string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.existing(repo)
	if err != nil {
		return err
	}
	if _, ok := r.tags[tag]; !ok {
		return fmt.Errorf("tag %q of %q: %w", tag, repo, fsm.ErrNotFound)
	}
	delete(r.tags, tag)
	return nil
}

func (m *memMetadata) LinkBlob(_ context.Context, repo string, d digest.Digest, size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.ensureRepo(repo)
	if err != nil {
		return err
	}
	r.blobs[d] = size
	return nil
}

func (m *memMetadata) UnlinkBlob(_ context.Context, repo string, d digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.existing(repo)
	if err != nil {
		return err
	}
	if _, ok := r.blobs[d]; !ok {
		return fmt.Errorf("blob %s of %q: %w", d, repo, fsm.ErrNotFound)
	}
	delete(r.blobs, d)
	return nil
}
