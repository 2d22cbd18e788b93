package oci

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/cluster"
)

// wantBlob checks that repo serves content as blob d.
func (ts *testServer) wantBlob(repo string, d digest.Digest, content []byte) {
	ts.t.Helper()
	resp := ts.get("/v2/" + repo + "/blobs/" + d.String())
	wantStatus(ts.t, resp, http.StatusOK)
	if !bytes.Equal(resp.body, content) {
		ts.t.Fatalf("blob %s has %d bytes, want %d", d, len(resp.body), len(content))
	}
}

// wantCreated checks a 201 answer for blob d of repo and follows its Location.
func (ts *testServer) wantCreated(resp response, repo string, d digest.Digest, content []byte) {
	ts.t.Helper()
	wantStatus(ts.t, resp, http.StatusCreated)
	wantHeader(ts.t, resp, "Location", "/v2/"+repo+"/blobs/"+d.String())
	wantHeader(ts.t, resp, "Docker-Content-Digest", d.String())
	ts.wantBlob(repo, d, content)
}

func TestMonolithicUpload(t *testing.T) {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(alg.String(), func(t *testing.T) {
			ts := newTestServer(t)
			content := []byte("monolithic " + alg.String())
			d := alg.FromBytes(content)
			resp := ts.do(request{method: "POST", path: "/v2/a/b/blobs/uploads/?digest=" + d.String(), body: content})
			ts.wantCreated(resp, "a/b", d, content)
		})
	}
}

func TestMonolithicUploadErrors(t *testing.T) {
	ts := newTestServer(t)
	content := []byte("content")
	tests := []struct {
		name   string
		query  string
		status int
		code   ErrorCode
	}{
		{"wrong digest", "?digest=" + digest.FromString("other").String(), 400, CodeDigestInvalid},
		{"malformed digest", "?digest=sha256:xyz", 400, CodeDigestInvalid},
		{"unsupported algorithm", "?digest=sha384:" + strings.Repeat("a", 96), 400, CodeDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(request{method: "POST", path: "/v2/repo/blobs/uploads/" + tt.query, body: content})
			wantError(t, resp, tt.status, tt.code)
		})
	}
	if n := ts.blobs.OpenUploads(); n != 0 {
		t.Errorf("%d upload sessions left open, want 0", n)
	}
}

func TestPostPutUpload(t *testing.T) {
	ts := newTestServer(t)
	content := []byte("post then put")
	d := digest.FromBytes(content)
	loc := ts.startUpload("repo")
	resp := ts.do(request{method: "PUT", path: loc + "?digest=" + d.String(), body: content})
	ts.wantCreated(resp, "repo", d, content)
	wantError(t, ts.get(loc), http.StatusNotFound, CodeBlobUploadUnknown)
}

func TestStreamedUpload(t *testing.T) {
	ts := newTestServer(t)
	content := bytes.Repeat([]byte("stream"), 10000)
	d := digest.FromBytes(content)
	loc := ts.startUpload("repo")
	// podman streams the blob with PATCH, without Content-Range or Content-Length.
	resp := ts.do(request{method: "PATCH", path: loc, body: content, chunked: true})
	wantStatus(t, resp, http.StatusAccepted)
	wantHeader(t, resp, "Range", fmt.Sprintf("0-%d", len(content)-1))
	resp = ts.do(request{method: "PUT", path: resp.header.Get("Location") + "?digest=" + d.String()})
	ts.wantCreated(resp, "repo", d, content)
}

func TestChunkedUpload(t *testing.T) {
	for _, putLast := range []bool{false, true} {
		t.Run(fmt.Sprintf("put last chunk %v", putLast), func(t *testing.T) {
			ts := newTestServer(t)
			content := bytes.Repeat([]byte("0123456789"), 30)
			d := digest.SHA512.FromBytes(content)
			loc := ts.startUpload("repo")
			for start := 0; start < len(content); start += 100 {
				end := start + 99
				last := end == len(content)-1
				req := request{method: "PATCH", path: loc, body: content[start : end+1],
					header: map[string]string{"Content-Range": fmt.Sprintf("%d-%d", start, end)}}
				if last && putLast {
					req.method, req.path = "PUT", loc+"?digest="+d.String()
					ts.wantCreated(ts.do(req), "repo", d, content)
					return
				}
				resp := ts.do(req)
				wantStatus(t, resp, http.StatusAccepted)
				wantHeader(t, resp, "Range", fmt.Sprintf("0-%d", end))
				loc = resp.header.Get("Location")
			}
			ts.wantCreated(ts.do(request{method: "PUT", path: loc + "?digest=" + d.String()}), "repo", d, content)
		})
	}
}

func TestUploadChunkErrors(t *testing.T) {
	ts := newTestServer(t)
	loc := ts.startUpload("repo")
	first := ts.do(request{method: "PATCH", path: loc, body: []byte("0123456789"),
		header: map[string]string{"Content-Range": "0-9"}})
	wantStatus(t, first, http.StatusAccepted)

	tests := []struct {
		name   string
		req    request
		status int
		code   ErrorCode
	}{
		{"gap", request{method: "PATCH", path: loc, body: []byte("abc"),
			header: map[string]string{"Content-Range": "20-22"}}, 416, CodeBlobUploadInvalid},
		{"overlap", request{method: "PATCH", path: loc, body: []byte("abc"),
			header: map[string]string{"Content-Range": "0-2"}}, 416, CodeBlobUploadInvalid},
		{"put out of order", request{method: "PUT", path: loc + "?digest=" + digest.FromString("x").String(), body: []byte("abc"),
			header: map[string]string{"Content-Range": "0-2"}}, 416, CodeBlobUploadInvalid},
		{"length mismatch", request{method: "PATCH", path: loc, body: []byte("abcd"),
			header: map[string]string{"Content-Range": "10-12"}}, 400, CodeBlobUploadInvalid},
		{"malformed range", request{method: "PATCH", path: loc, body: []byte("abc"),
			header: map[string]string{"Content-Range": "ten-twelve"}}, 400, CodeBlobUploadInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(tt.req)
			wantError(t, resp, tt.status, tt.code)
			if tt.status == http.StatusRequestedRangeNotSatisfiable {
				wantHeader(t, resp, "Range", "0-9")
				wantHeader(t, resp, "Location", loc)
			}
		})
	}
	// The session is intact: it still holds the first chunk.
	status := ts.get(loc)
	wantStatus(t, status, http.StatusNoContent)
	wantHeader(t, status, "Range", "0-9")
}

func TestUploadStatusAndCancel(t *testing.T) {
	ts := newTestServer(t)
	loc := ts.startUpload("repo")
	id := loc[strings.LastIndex(loc, "/")+1:]

	resp := ts.get(loc)
	wantStatus(t, resp, http.StatusNoContent)
	wantHeader(t, resp, "Range", "0-0")
	wantHeader(t, resp, "Docker-Upload-UUID", id)
	wantHeader(t, resp, "Location", loc)

	wantStatus(t, ts.do(request{method: "DELETE", path: loc}), http.StatusNoContent)
	wantError(t, ts.get(loc), http.StatusNotFound, CodeBlobUploadUnknown)
	wantError(t, ts.do(request{method: "DELETE", path: loc}), http.StatusNotFound, CodeBlobUploadUnknown)
	if n := ts.blobs.OpenUploads(); n != 0 {
		t.Errorf("%d upload sessions open after cancel, want 0", n)
	}
}

func TestUploadCompleteErrors(t *testing.T) {
	ts := newTestServer(t)
	loc := ts.startUpload("repo")
	tests := []struct {
		name   string
		req    request
		status int
		code   ErrorCode
	}{
		{"no digest", request{method: "PUT", path: loc, body: []byte("x")}, 400, CodeDigestInvalid},
		{"bad digest", request{method: "PUT", path: loc + "?digest=sha256:0", body: []byte("x")}, 400, CodeDigestInvalid},
		{"wrong digest", request{method: "PUT", path: loc + "?digest=" + digest.FromString("y").String(), body: []byte("x")}, 400, CodeDigestInvalid},
		{"unknown session", request{method: "PUT", path: "/v2/repo/blobs/uploads/nosuchsession?digest=" + digest.FromString("x").String()}, 404, CodeBlobUploadUnknown},
		{"dot segments", request{method: "PATCH", path: "/v2/repo/blobs/uploads/../../x", body: []byte("x")}, 400, CodeNameInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, ts.do(tt.req), tt.status, tt.code)
		})
	}
	// A digest mismatch leaves the session open, holding the data sent.
	resp := ts.get(loc)
	wantStatus(t, resp, http.StatusNoContent)
	wantHeader(t, resp, "Range", "0-0")
	d := digest.FromString("x")
	ts.wantCreated(ts.do(request{method: "PUT", path: loc + "?digest=" + d.String()}), "repo", d, []byte("x"))
}

func TestMount(t *testing.T) {
	ts := newTestServer(t)
	content := []byte("shared layer")
	d := ts.pushBlob("source", content)
	unknown := digest.FromString("never pushed")

	tests := []struct {
		name   string
		query  string
		status int
		code   ErrorCode
	}{
		{"from repo that has it", "?mount=" + d.String() + "&from=source", http.StatusCreated, ""},
		{"from repo that lacks it", "?mount=" + d.String() + "&from=elsewhere", http.StatusAccepted, ""},
		{"anonymous, stored", "?mount=" + d.String(), http.StatusCreated, ""},
		{"anonymous, not stored", "?mount=" + unknown.String(), http.StatusAccepted, ""},
		{"from repo, blob unknown", "?mount=" + unknown.String() + "&from=source", http.StatusAccepted, ""},
		{"bad digest", "?mount=sha256:zz&from=source", http.StatusBadRequest, CodeDigestInvalid},
		{"bad from", "?mount=" + d.String() + "&from=Bad", http.StatusBadRequest, CodeNameInvalid},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := fmt.Sprintf("target%d", i)
			resp := ts.do(request{method: "POST", path: "/v2/" + repo + "/blobs/uploads/" + tt.query})
			switch {
			case tt.code != "":
				wantError(t, resp, tt.status, tt.code)
			case tt.status == http.StatusCreated:
				ts.wantCreated(resp, repo, d, content)
			default:
				wantStatus(t, resp, tt.status)
				if resp.header.Get("Location") == "" || resp.header.Get("Docker-Upload-UUID") == "" {
					t.Fatalf("fallback upload session without Location or Docker-Upload-UUID: %v", resp.header)
				}
				wantStatus(t, ts.get("/v2/"+repo+"/blobs/"+d.String()), http.StatusNotFound)
			}
		})
	}
}

func TestUploadNamespaceRules(t *testing.T) {
	ts := newTestServer(t)
	ts.pushBlob("flat", []byte("x"))
	ts.pushBlob("nested/one", []byte("y"))
	tests := []struct {
		repo   string
		status int
	}{
		{"flat", http.StatusAccepted},
		{"flat/child", http.StatusBadRequest},
		{"nested/two", http.StatusAccepted},
		{"nested", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			resp := ts.do(request{method: "POST", path: "/v2/" + tt.repo + "/blobs/uploads/"})
			if tt.status == http.StatusAccepted {
				wantStatus(t, resp, tt.status)
				return
			}
			wantError(t, resp, tt.status, CodeNameInvalid)
			if !strings.Contains(string(resp.body), "namespace") || strings.Contains(string(resp.body), "read-only") {
				t.Errorf("message does not name the namespace rule: %s", resp.body)
			}
		})
	}
	if n := ts.blobs.OpenUploads(); n != 2 {
		t.Errorf("%d upload sessions, want 2 (refused pushes must not open any)", n)
	}
}

// noQuorum is a BlobStore whose links fail as on a node without quorum.
type noQuorum struct{ BlobStore }

func (noQuorum) Put(context.Context, string, digest.Digest, io.Reader, int64) (int64, error) {
	return 0, fmt.Errorf("link blob: propose: %w", cluster.ErrNoQuorum)
}

func TestNoQuorum(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.Blobs = noQuorum{c.Blobs} })
	content := []byte("content")
	resp := ts.do(request{method: "POST", path: "/v2/repo/blobs/uploads/?digest=" + digest.FromBytes(content).String(), body: content})
	wantError(t, resp, http.StatusServiceUnavailable, CodeUnavailable)
	wantHeader(t, resp, "Retry-After", "1")
	if !strings.Contains(string(resp.body), "quorum") {
		t.Errorf("message does not mention quorum: %s", resp.body)
	}
}
