package remotesync

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"sync"

	"github.com/opencontainers/go-digest"
)

// memSink is an in-memory Sink: it verifies what PutBlob gets and records
// the calls.
type memSink struct {
	mu        sync.Mutex
	tags      map[string]map[string]digest.Digest
	manifests map[string]map[digest.Digest][]byte
	links     map[string]map[digest.Digest]bool
	blobs     map[digest.Digest][]byte // every repository's blobs
	calls     map[string]int
	order     []string // "manifest <digest> <tags>" in the order stored
	// failPut makes PutBlob fail after reading its stream (a broken disk).
	failPut bool
}

func newMemSink() *memSink {
	return &memSink{
		tags: map[string]map[string]digest.Digest{}, manifests: map[string]map[digest.Digest][]byte{},
		links: map[string]map[digest.Digest]bool{}, blobs: map[digest.Digest][]byte{}, calls: map[string]int{},
	}
}

func (m *memSink) count(call string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[call]
}

func (m *memSink) resetCalls() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = map[string]int{}
	m.order = nil
}

func (m *memSink) Tags(_ context.Context, repo string) (map[string]digest.Digest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["Tags"]++
	return maps.Clone(m.tags[repo]), nil
}

func (m *memSink) HasManifest(_ context.Context, repo string, d digest.Digest) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["HasManifest"]++
	_, ok := m.manifests[repo][d]
	return ok, nil
}

func (m *memSink) HasBlob(_ context.Context, repo string, d digest.Digest) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["HasBlob"]++
	return m.links[repo][d], nil
}

func (m *memSink) link(repo string, d digest.Digest) {
	if m.links[repo] == nil {
		m.links[repo] = map[digest.Digest]bool{}
	}
	m.links[repo][d] = true
}

func (m *memSink) LinkBlob(_ context.Context, repo string, d digest.Digest, size int64) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["LinkBlob"]++
	b, ok := m.blobs[d]
	if !ok || (size >= 0 && int64(len(b)) != size) { // a size below 0 is unknown, as oci.Ingester takes it
		return false, nil
	}
	m.link(repo, d)
	return true, nil
}

func (m *memSink) PutBlob(_ context.Context, repo string, d digest.Digest, size int64, r io.Reader) error {
	var buf bytes.Buffer
	n, err := io.Copy(&buf, r)
	if err != nil {
		return fmt.Errorf("put blob %s: %w", d, err)
	}
	if n != size {
		return fmt.Errorf("put blob %s: got %d bytes, want %d", d, n, size)
	}
	if got := d.Algorithm().FromBytes(buf.Bytes()); got != d {
		return fmt.Errorf("put blob %s: got digest %s", d, got)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["PutBlob"]++
	if m.failPut {
		return fmt.Errorf("put blob %s: disk broken", d)
	}
	m.blobs[d] = buf.Bytes()
	m.link(repo, d)
	return nil
}

func (m *memSink) PutManifest(_ context.Context, repo string, d digest.Digest, mediaType string, body []byte, tags []string) error {
	if got := digest.FromBytes(body); got != d {
		return fmt.Errorf("put manifest %s: body has digest %s", d, got)
	}
	if mediaType == "" {
		return fmt.Errorf("put manifest %s: no media type", d)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["PutManifest"]++
	if m.manifests[repo] == nil {
		m.manifests[repo] = map[digest.Digest][]byte{}
		m.tags[repo] = map[string]digest.Digest{}
	}
	m.manifests[repo][d] = bytes.Clone(body)
	for _, t := range tags {
		m.tags[repo][t] = d
	}
	m.order = append(m.order, fmt.Sprintf("manifest %s %v", d, tags))
	return nil
}

// ResolveTag makes memSink a CacheSink.
func (m *memSink) ResolveTag(_ context.Context, repo, tag string) (digest.Digest, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["ResolveTag"]++
	d, ok := m.tags[repo][tag]
	return d, ok, nil
}

func (m *memSink) blob(d digest.Digest) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	return b, ok
}

func (m *memSink) DeleteTag(_ context.Context, repo, tag string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls["DeleteTag"]++
	delete(m.tags[repo], tag)
	return nil
}

func (m *memSink) tag(repo, tag string) (digest.Digest, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.tags[repo][tag]
	return d, ok
}

func (m *memSink) hasManifest(repo string, d digest.Digest) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.manifests[repo][d]
	return ok
}

func (m *memSink) hasBlob(repo string, d digest.Digest) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.links[repo][d]
}

var _ CacheSink = (*memSink)(nil)
