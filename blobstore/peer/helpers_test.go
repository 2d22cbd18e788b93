package peer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// testPeer is a node's Server on loopback HTTP over a real store, counting
// the requests it gets.
type testPeer struct {
	store *blobstore.Store
	url   string

	gets     atomic.Int32
	inflight atomic.Int32
	gate     chan struct{} // if not nil, requests wait until it is closed
}

func newTestPeer(t *testing.T) *testPeer {
	t.Helper()
	return newGatedPeer(t, nil)
}

func newGatedPeer(t *testing.T, gate chan struct{}) *testPeer {
	t.Helper()
	store, err := blobstore.Open(blobstore.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p := &testPeer{store: store, gate: gate}
	mux := http.NewServeMux()
	NewServer(store, nil).Register(mux)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.track(r)
		defer p.inflight.Add(-1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// track counts r and waits for the gate; the caller decrements inflight.
func (p *testPeer) track(r *http.Request) {
	p.inflight.Add(1)
	if r.Method == http.MethodGet {
		p.gets.Add(1)
	}
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-r.Context().Done():
		}
	}
}

// put stores content in the peer's store and returns its digest.
func (p *testPeer) put(t *testing.T, content string) digest.Digest {
	t.Helper()
	d := digest.FromString(content)
	if _, err := p.store.Put(context.Background(), d, strings.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	return d
}

// content returns the stored blob d, or fails the test.
func (p *testPeer) content(t *testing.T, d digest.Digest) string {
	t.Helper()
	f, err := p.store.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// staticServer answers every request with status and body.
func staticServer(t *testing.T, status int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// downURL returns the URL of a server that no longer listens.
func downURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func fetchFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, fetchFilePrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func readAll(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
