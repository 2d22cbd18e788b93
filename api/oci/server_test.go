package oci

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/cluster/blobstate"
	"github.com/wharf-registry/wharf/cluster/replication"
	"github.com/wharf-registry/wharf/internal/clustertest"
)

// testServer is a registry over HTTP with a real blob store and a real
// single-node cluster for its metadata.
type testServer struct {
	t     *testing.T
	url   string
	blobs *blobstore.Store
}

// newTestServer starts a registry for one test. opts adjust its Config.
// This is the one place that builds the registry under test.
func newTestServer(t *testing.T, opts ...func(*Config)) *testServer {
	t.Helper()
	return newTestServerOn(t, blobstore.Config{Root: t.TempDir()}, startNode(t), opts...)
}

// newTestServerOn is newTestServer with a blob store of blobConfig and
// node for its metadata.
func newTestServerOn(t *testing.T, blobConfig blobstore.Config, node *cluster.Node, opts ...func(*Config)) *testServer {
	t.Helper()
	blobs, err := blobstore.Open(blobConfig)
	if err != nil {
		t.Fatalf("open blob store: %v", err)
	}
	cfg := Config{Metadata: node, Blobs: replicated(t, blobs, blobstate.Of(node))}
	for _, opt := range opts {
		opt(&cfg)
	}
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return &testServer{t: t, url: srv.URL, blobs: blobs}
}

// replicated is the blob store of a node whose state c shows: blobs
// replicated through c, as wharf serve assembles it.
func replicated(t *testing.T, blobs *blobstore.Store, c replication.Cluster) *replication.Store {
	t.Helper()
	store, err := replication.New(replication.Config{
		Local: blobs, Cluster: c, Client: http.DefaultClient, Replicas: 1, WriteQuorum: 1, FetchDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// startNode runs a real single-node cluster (Raft and Pebble on disk) for
// the test's metadata; tune adjusts its config.
func startNode(t *testing.T, tune ...func(*cluster.Config)) *cluster.Node {
	t.Helper()
	return clustertest.Node(t, tune...)
}

func sparse(c *Config) { c.SparseManifests = true }

// response is a completed HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request describes a request to the test server.
type request struct {
	method string
	path   string // path and query
	body   []byte
	header map[string]string
	// chunked sends the body without Content-Length.
	chunked bool
}

func (ts *testServer) do(req request) response {
	ts.t.Helper()
	var body io.Reader = http.NoBody
	if req.body != nil {
		body = bytes.NewReader(req.body)
		if req.chunked {
			body = io.MultiReader(body) // hides the length from net/http
		}
	}
	r, err := http.NewRequest(req.method, ts.url+req.path, body)
	if err != nil {
		ts.t.Fatalf("new request: %v", err)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", req.method, req.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatalf("%s %s: read body: %v", req.method, req.path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// startUpload opens an upload session in repo and returns its Location.
func (ts *testServer) startUpload(repo string) string {
	ts.t.Helper()
	resp := ts.do(request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/"})
	wantStatus(ts.t, resp, http.StatusAccepted)
	loc := resp.header.Get("Location")
	if loc == "" {
		ts.t.Fatal("upload started without Location")
	}
	return loc
}

func (ts *testServer) get(path string) response {
	ts.t.Helper()
	return ts.do(request{method: http.MethodGet, path: path})
}

// pushBlob uploads content to repo monolithically and returns its digest.
func (ts *testServer) pushBlob(repo string, content []byte) digest.Digest {
	ts.t.Helper()
	d := digest.FromBytes(content)
	resp := ts.do(request{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/?digest=" + d.String(), body: content})
	wantStatus(ts.t, resp, http.StatusCreated)
	return d
}

// pushManifest puts a manifest and fails the test unless it is created.
func (ts *testServer) pushManifest(repo, ref, mediaType string, body []byte) response {
	ts.t.Helper()
	resp := ts.putManifest(repo, ref, mediaType, body)
	wantStatus(ts.t, resp, http.StatusCreated)
	return resp
}

func (ts *testServer) putManifest(repo, ref, mediaType string, body []byte) response {
	ts.t.Helper()
	return ts.do(request{
		method: http.MethodPut,
		path:   "/v2/" + repo + "/manifests/" + ref,
		body:   body,
		header: map[string]string{"Content-Type": mediaType},
	})
}

// pushImage pushes a config and one layer and an image manifest for them,
// tagged tag (if not empty), and returns the manifest and its digest.
func (ts *testServer) pushImage(repo, tag string) ([]byte, digest.Digest) {
	ts.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := []byte("layer of " + repo + ":" + tag)
	body := imageManifest(
		v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: ts.pushBlob(repo, cfg), Size: int64(len(cfg))},
		v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: ts.pushBlob(repo, layer), Size: int64(len(layer))})
	ref := tag
	if ref == "" {
		ref = digest.FromBytes(body).String()
	}
	ts.pushManifest(repo, ref, v1.MediaTypeImageManifest, body)
	return body, digest.FromBytes(body)
}

// imageManifest encodes an OCI image manifest.
func imageManifest(config v1.Descriptor, layers ...v1.Descriptor) []byte {
	return mustJSON(v1.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    config,
		Layers:    append([]v1.Descriptor{}, layers...),
	})
}

// indexManifest encodes an OCI image index of the given manifests.
func indexManifest(children ...v1.Descriptor) []byte {
	return mustJSON(v1.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: append([]v1.Descriptor{}, children...),
	})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func wantStatus(t *testing.T, resp response, status int) {
	t.Helper()
	if resp.status != status {
		t.Fatalf("status %d, want %d; body: %s", resp.status, status, resp.body)
	}
}

// wantError checks the status and that the first error has the code.
func wantError(t *testing.T, resp response, status int, code ErrorCode) {
	t.Helper()
	wantStatus(t, resp, status)
	if len(resp.body) == 0 { // HEAD
		return
	}
	var env errorEnvelope
	if err := json.Unmarshal(resp.body, &env); err != nil {
		t.Fatalf("error body is not an error envelope: %v: %s", err, resp.body)
	}
	if len(env.Errors) == 0 || env.Errors[0].Code != code {
		t.Fatalf("error codes %+v, want %s", env.Errors, code)
	}
	if strings.TrimSpace(env.Errors[0].Message) == "" {
		t.Fatalf("error %s has no message", code)
	}
}

func wantHeader(t *testing.T, resp response, key, want string) {
	t.Helper()
	if got := resp.header.Get(key); got != want {
		t.Fatalf("header %s = %q, want %q", key, got, want)
	}
}
