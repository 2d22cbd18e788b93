package oci

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestBlobGetHead(t *testing.T) {
	ts := newTestServer(t)
	content := []byte(strings.Repeat("0123456789", 100))
	d := ts.pushBlob("repo", content)
	other := digest.FromString("not pushed")

	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		status int
		code   ErrorCode
		body   string
	}{
		{name: "get", method: "GET", path: "/v2/repo/blobs/" + d.String(), status: 200, body: string(content)},
		{name: "head", method: "HEAD", path: "/v2/repo/blobs/" + d.String(), status: 200},
		{name: "range", method: "GET", path: "/v2/repo/blobs/" + d.String(),
			header: map[string]string{"Range": "bytes=10-19"}, status: 206, body: string(content[10:20])},
		{name: "suffix range", method: "GET", path: "/v2/repo/blobs/" + d.String(),
			header: map[string]string{"Range": "bytes=-5"}, status: 206, body: string(content[995:])},
		{name: "unsatisfiable range", method: "GET", path: "/v2/repo/blobs/" + d.String(),
			header: map[string]string{"Range": "bytes=5000-6000"}, status: 416},
		{name: "not linked in repo", method: "GET", path: "/v2/other/blobs/" + d.String(), status: 404, code: CodeBlobUnknown},
		{name: "unknown", method: "GET", path: "/v2/repo/blobs/" + other.String(), status: 404, code: CodeBlobUnknown},
		{name: "head unknown", method: "HEAD", path: "/v2/repo/blobs/" + other.String(), status: 404},
		{name: "bad digest", method: "GET", path: "/v2/repo/blobs/sha256:nothex", status: 400, code: CodeDigestInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(request{method: tt.method, path: tt.path, header: tt.header})
			if tt.code != "" {
				wantError(t, resp, tt.status, tt.code)
				return
			}
			wantStatus(t, resp, tt.status)
			if tt.status >= 300 {
				return
			}
			wantHeader(t, resp, "Docker-Content-Digest", d.String())
			wantHeader(t, resp, "Content-Type", "application/octet-stream")
			wantHeader(t, resp, "ETag", `"`+d.String()+`"`)
			if tt.method == "HEAD" {
				wantHeader(t, resp, "Content-Length", strconv.Itoa(len(content)))
			}
			if string(resp.body) != tt.body {
				t.Errorf("body %q, want %q", resp.body, tt.body)
			}
		})
	}
}

func TestBlobDelete(t *testing.T) {
	ts := newTestServer(t)
	d := ts.pushBlob("repo", []byte("delete me"))
	path := "/v2/repo/blobs/" + d.String()

	wantStatus(t, ts.do(request{method: "DELETE", path: path}), http.StatusAccepted)
	wantStatus(t, ts.do(request{method: "HEAD", path: path}), http.StatusNotFound)
	wantError(t, ts.do(request{method: "DELETE", path: path}), http.StatusNotFound, CodeBlobUnknown)
	wantError(t, ts.do(request{method: "DELETE", path: "/v2/repo/blobs/sha256:x"}), http.StatusBadRequest, CodeDigestInvalid)
}
