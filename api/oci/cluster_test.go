package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/cluster/blobstate"
)

// twoNodes starts node A, and node B sharing A's metadata but with a blob
// store of its own; A proxies B's sessions to B over HTTP.
func twoNodes(t *testing.T) (a, b *testServer, srvB *httptest.Server) {
	t.Helper()
	return twoNodesReleasing(t, true)
}

// twoNodesReleasing is twoNodes where B serves session releases only if
// releases is true.
func twoNodesReleasing(t *testing.T, releases bool) (a, b *testServer, srvB *httptest.Server) {
	t.Helper()
	urls := map[string]string{}
	var meta Metadata
	a = newTestServer(t, func(c *Config) {
		c.NodeID = "NODEA"
		c.Sessions = PeerSessions{
			Lookup: func(id string) (string, bool) {
				u, ok := urls[id]
				return u, ok
			},
			Transport: http.DefaultTransport,
		}
		meta = c.Metadata
	})
	blobsB, err := blobstore.Open(blobstore.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	handlerB := New(Config{Metadata: meta, Blobs: replicated(t, blobsB, nodeNamed{blobstate.Of(meta.(*cluster.Node)), "NODEB"}), NodeID: "NODEB"})
	// B's one server stands for both its listeners: the API and, for
	// session handover, the internal release endpoint.
	muxB := http.NewServeMux()
	muxB.Handle("/", handlerB)
	if releases {
		muxB.Handle(handlerB.ReleaseHandler())
	}
	srvB = httptest.NewServer(muxB)
	t.Cleanup(srvB.Close)
	urls["NODEB"] = srvB.URL
	return a, &testServer{t: t, url: srvB.URL, blobs: blobsB}, srvB
}

// nodeNamed is the state of a shared cluster node seen by another node,
// id: node B of twoNodes records its own copies.
type nodeNamed struct {
	blobstate.State
	id string
}

func (n nodeNamed) LocalID() string { return n.id }

func TestSessionIDsNameTheirNode(t *testing.T) {
	a, _, _ := twoNodes(t)
	loc := a.startUpload("team/app")
	if !strings.Contains(loc, "/blobs/uploads/NODEA.") {
		t.Fatalf("session location %q does not name node A", loc)
	}
}

func TestUploadSessionsAreProxiedToTheirNode(t *testing.T) {
	a, b, _ := twoNodes(t)
	content := []byte("bytes that live on node B")
	d := digest.FromBytes(content)

	// The first bytes reach B itself; from then on the session is B's.
	loc := b.startUpload("team/app")
	resp := b.do(request{method: http.MethodPatch, path: loc, body: content[:10],
		header: map[string]string{"Content-Range": "0-9"}})
	wantStatus(t, resp, http.StatusAccepted)

	resp = a.do(request{method: http.MethodGet, path: loc})
	wantStatus(t, resp, http.StatusNoContent)
	wantHeader(t, resp, "Range", "0-9")

	resp = a.do(request{method: http.MethodPatch, path: loc, body: content[10:15],
		header: map[string]string{"Content-Range": "10-14"}})
	wantStatus(t, resp, http.StatusAccepted)
	wantHeader(t, resp, "Range", "0-14")
	if got := resp.header.Get("Location"); got != loc {
		t.Errorf("Location after a proxied PATCH = %q, want the same session %q", got, loc)
	}

	// A PATCH without Content-Range might be a first chunk: A asks B to
	// release the session, B refuses (it holds bytes), and A proxies it.
	resp = a.do(request{method: http.MethodPatch, path: loc, body: content[15:20]})
	wantStatus(t, resp, http.StatusAccepted)
	wantHeader(t, resp, "Range", "0-19")

	resp = a.do(request{method: http.MethodPut, path: loc + "?digest=" + d.String(), body: content[20:]})
	wantStatus(t, resp, http.StatusCreated)
	if _, err := b.blobs.Stat(context.Background(), d); err != nil {
		t.Errorf("the blob is not on node B: %v", err)
	}
	if _, err := a.blobs.Stat(context.Background(), d); !errors.Is(err, blobstore.ErrBlobUnknown) {
		t.Errorf("node A stored the blob itself: %v", err)
	}
}

// TestEmptySessionsAreAdoptedWhereTheirBytesArrive: the first bytes of a
// session opened on B that reach A are stored on A, in a session of A's
// that replaces B's; the Location sends the client there.
func TestEmptySessionsAreAdoptedWhereTheirBytesArrive(t *testing.T) {
	content := []byte("bytes stored where they arrive")
	d := digest.FromBytes(content)
	tests := []struct {
		name  string
		first request // sent to A for a session started on B; path is added
	}{
		{"PATCH with Content-Range", request{method: http.MethodPatch, body: content,
			header: map[string]string{"Content-Range": fmt.Sprintf("0-%d", len(content)-1)}}},
		{"PATCH without Content-Range", request{method: http.MethodPatch, body: content}},
		{"chunked PATCH", request{method: http.MethodPatch, body: content, chunked: true}},
		{"PUT with the whole blob", request{method: http.MethodPut, body: content}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, _ := twoNodes(t)
			loc := b.startUpload("team/app")
			req := tt.first
			req.path = loc
			if req.method == http.MethodPut {
				req.path += "?digest=" + d.String()
			}
			resp := a.do(req)
			if req.method == http.MethodPatch {
				wantStatus(t, resp, http.StatusAccepted)
				wantHeader(t, resp, "Range", fmt.Sprintf("0-%d", len(content)-1))
				next := resp.header.Get("Location")
				if !strings.Contains(next, "/blobs/uploads/NODEA.") {
					t.Fatalf("Location after the first bytes = %q, want a session of node A", next)
				}
				resp = a.do(request{method: http.MethodPut, path: next + "?digest=" + d.String()})
			}
			wantStatus(t, resp, http.StatusCreated)
			if _, err := a.blobs.Stat(context.Background(), d); err != nil {
				t.Errorf("the blob is not on node A, where its bytes arrived: %v", err)
			}
			if _, err := b.blobs.Stat(context.Background(), d); !errors.Is(err, blobstore.ErrBlobUnknown) {
				t.Errorf("node B has the blob: %v", err)
			}
			// B's session is gone.
			wantError(t, b.do(request{method: http.MethodGet, path: loc}), http.StatusNotFound, CodeBlobUploadUnknown)
			if n := b.blobs.OpenUploads(); n != 0 {
				t.Errorf("node B still has %d upload sessions", n)
			}
		})
	}
}

// TestSessionsAreNotAdoptedWithoutAReleasingNode: a node that cannot
// release (it answers nothing for the release path) keeps its sessions,
// and their requests are proxied.
func TestSessionsAreNotAdoptedWithoutAReleasingNode(t *testing.T) {
	a, b, _ := twoNodesReleasing(t, false)
	content := []byte("stays on B")
	d := digest.FromBytes(content)
	loc := b.startUpload("team/app")
	resp := a.do(request{method: http.MethodPatch, path: loc, body: content})
	wantStatus(t, resp, http.StatusAccepted)
	if got := resp.header.Get("Location"); got != loc {
		t.Fatalf("Location = %q, want B's session %q", got, loc)
	}
	wantStatus(t, a.do(request{method: http.MethodPut, path: loc + "?digest=" + d.String()}), http.StatusCreated)
	if _, err := b.blobs.Stat(context.Background(), d); err != nil {
		t.Errorf("the blob is not on node B: %v", err)
	}
	if n := a.blobs.OpenUploads(); n != 0 {
		t.Errorf("node A kept %d unused upload sessions", n)
	}
}

// TestSessionsStayInTheirRepository: a session started in one repository
// cannot be used through another, on its own node, through a proxy, or by
// adoption; it still works in its own repository afterwards.
func TestSessionsStayInTheirRepository(t *testing.T) {
	content := []byte("bytes for team/app only")
	d := digest.FromBytes(content)
	a, b, _ := twoNodes(t)
	loc := b.startUpload("team/app")
	other := strings.Replace(loc, "/team/app/", "/team/other/", 1)
	for _, ts := range []*testServer{b, a} { // b: its own node; a: proxy or adoption
		for _, req := range []request{
			{method: http.MethodPatch, path: other, body: content},
			{method: http.MethodPut, path: other + "?digest=" + d.String(), body: content},
			{method: http.MethodGet, path: other},
			{method: http.MethodDelete, path: other},
		} {
			resp := ts.do(req)
			wantError(t, resp, http.StatusNotFound, CodeBlobUploadUnknown)
			if !strings.Contains(string(resp.body), "not started in repository team/other") {
				t.Errorf("%s %s: refusal does not say why: %s", req.method, req.path, resp.body)
			}
		}
	}
	if _, err := b.blobs.Stat(context.Background(), d); !errors.Is(err, blobstore.ErrBlobUnknown) {
		t.Fatalf("the blob was stored: %v", err)
	}
	resp := a.do(request{method: http.MethodPatch, path: loc, body: content})
	wantStatus(t, resp, http.StatusAccepted)
	resp = a.do(request{method: http.MethodPut, path: resp.header.Get("Location") + "?digest=" + d.String()})
	wantStatus(t, resp, http.StatusCreated)
}

// TestMountNeedsARecordedHolder: a mount without ?from= links a blob the
// registry holds, not a file that merely sits on this node's disk with no
// holder record (garbage the sweep is about to delete).
func TestMountNeedsARecordedHolder(t *testing.T) {
	ts := newTestServer(t)
	pushed := ts.pushBlob("source", []byte("pushed: recorded"))
	stray := []byte("on disk, never recorded")
	sd := digest.FromBytes(stray)
	if _, err := ts.blobs.Put(context.Background(), sd, bytes.NewReader(stray)); err != nil {
		t.Fatal(err)
	}
	resp := ts.do(request{method: http.MethodPost, path: "/v2/target/blobs/uploads/?mount=" + pushed.String()})
	wantStatus(t, resp, http.StatusCreated)
	resp = ts.do(request{method: http.MethodPost, path: "/v2/target/blobs/uploads/?mount=" + sd.String()})
	wantStatus(t, resp, http.StatusAccepted) // an upload session instead
	wantStatus(t, ts.get("/v2/target/blobs/"+sd.String()), http.StatusNotFound)
}

func TestSessionsOfUnknownNodes(t *testing.T) {
	tests := []struct{ name, id string }{
		{"unknown node", "NODEC.abcdefghijklmnopqrstuvwxyz"},
		{"local node, unknown session", "NODEA.abcdefghijklmnopqrstuvwxyz"},
		{"no node part on a cluster node", "abcdefghijklmnopqrstuvwxyz"},
	}
	a, _, _ := twoNodes(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPatch, http.MethodPut, http.MethodDelete} {
				resp := a.do(request{method: method, path: "/v2/team/app/blobs/uploads/" + tt.id + "?digest=" + digest.FromString("x").String()})
				wantError(t, resp, http.StatusNotFound, CodeBlobUploadUnknown)
			}
		})
	}
}

// durability is a blob store whose WaitDurable records what it is asked
// and fails with err, if set.
type durability struct {
	BlobStore
	mu    sync.Mutex
	asked []digest.Digest
	err   error
}

func (d *durability) WaitDurable(ctx context.Context, ds []digest.Digest) error {
	d.mu.Lock()
	d.asked = append(d.asked, ds...)
	err := d.err
	d.mu.Unlock()
	if err != nil {
		return err
	}
	return d.BlobStore.WaitDurable(ctx, ds)
}

// TestPushRecordsHoldersAndWaitsForDurability: the write that links an
// uploaded blob records this node as its holder, a manifest push waits
// until its blobs are durable, and a push its blobs are not durable for
// is refused as unavailable, saying why.
func TestPushRecordsHoldersAndWaitsForDurability(t *testing.T) {
	dur := &durability{}
	var node *cluster.Node
	ts := newTestServer(t, func(c *Config) {
		dur.BlobStore = c.Blobs
		c.Blobs = dur
		node = c.Metadata.(*cluster.Node)
	})
	cfg, layer := []byte(`{"os":"linux"}`), []byte("layer")
	cd, ld := ts.pushBlob("team/app", cfg), ts.pushBlob("team/app", layer)
	for _, d := range []digest.Digest{cd, ld} {
		rec, err := node.FSM().BlobHolders(d)
		if err != nil {
			t.Fatalf("holders of %s: %v", d, err)
		}
		if !slices.Equal(rec.GetNodeIds(), []string{node.ID()}) {
			t.Errorf("holders of %s: %v, want [%s]", d, rec.GetNodeIds(), node.ID())
		}
	}
	body := imageManifest(
		v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfg))},
		v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: ld, Size: int64(len(layer))})
	ts.pushManifest("team/app", "v1", v1.MediaTypeImageManifest, body)
	slices.Sort(dur.asked)
	want := []digest.Digest{cd, ld}
	slices.Sort(want)
	if !slices.Equal(dur.asked, want) {
		t.Errorf("waited for %v, want %v", dur.asked, want)
	}

	dur.err = errors.New("blob sha256:x has 1 of 2 copies")
	resp := ts.putManifest("team/app", "v2", v1.MediaTypeImageManifest, body)
	wantError(t, resp, http.StatusServiceUnavailable, CodeUnavailable)
	wantHeader(t, resp, "Retry-After", "1")
	if resp := ts.get("/v2/team/app/manifests/v2"); resp.status != http.StatusNotFound {
		t.Errorf("a manifest refused for durability was stored: %d", resp.status)
	}

	// Without quorum the holders cannot be read: the answer says so.
	dur.err = fmt.Errorf("read the blobs' holders: %w: no leader", cluster.ErrNoQuorum)
	resp = ts.putManifest("team/app", "v3", v1.MediaTypeImageManifest, body)
	wantError(t, resp, http.StatusServiceUnavailable, CodeUnavailable)
	if !strings.Contains(string(resp.body), "no quorum") || strings.Contains(string(resp.body), "enough nodes") {
		t.Errorf("refusal without quorum does not say so: %s", resp.body)
	}
}

func TestSessionOfAnUnreachableNode(t *testing.T) {
	a, b, srvB := twoNodes(t)
	loc := b.startUpload("team/app")
	srvB.Close()
	resp := a.do(request{method: http.MethodPatch, path: loc, body: []byte("data")})
	wantError(t, resp, http.StatusNotFound, CodeBlobUploadUnknown)
	if !strings.Contains(string(resp.body), "unreachable") {
		t.Errorf("message does not say the node is unreachable: %s", resp.body)
	}
}
