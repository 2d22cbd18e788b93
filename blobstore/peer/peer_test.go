package peer

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

func TestPush(t *testing.T) {
	const content = "layer bytes"
	tests := []struct {
		name       string
		held       bool          // the peer holds the blob already
		digest     digest.Digest // pushed as; the body is always content
		wantStatus int           // 0: success
	}{
		{name: "stores and verifies", digest: digest.FromString(content)},
		{name: "already held", held: true, digest: digest.FromString(content)},
		{name: "wrong digest stores nothing", digest: digest.FromString("other"), wantStatus: http.StatusBadRequest},
		{name: "unsupported digest", digest: "md5:d41d8cd98f00b204e9800998ecf8427e", wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newTestPeer(t)
			if tt.held {
				p.put(t, content)
			}
			err := Push(context.Background(), http.DefaultClient, p.url, tt.digest, int64(len(content)), strings.NewReader(content))
			if tt.wantStatus != 0 {
				var se *StatusError
				if !errors.As(err, &se) || se.StatusCode != tt.wantStatus {
					t.Fatalf("Push = %v, want status %d", err, tt.wantStatus)
				}
				if n, _, _ := p.store.Stats(context.Background()); n != 0 {
					t.Fatalf("peer stores %d blobs after a refused push", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Push: %v", err)
			}
			if got := p.content(t, tt.digest); got != content {
				t.Fatalf("peer stored %q, want %q", got, content)
			}
		})
	}
}

func TestPushEmptyBlob(t *testing.T) {
	p := newTestPeer(t)
	d := digest.FromString("")
	if err := Push(context.Background(), http.DefaultClient, p.url, d, 0, strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	if size, err := p.store.Stat(context.Background(), d); err != nil || size != 0 {
		t.Fatalf("Stat = %d, %v", size, err)
	}
}

func TestFetch(t *testing.T) {
	const content = "0123456789abcdef"
	p := newTestPeer(t)
	d := p.put(t, content)
	tests := []struct {
		name    string
		baseURL string
		d       digest.Digest
		want    string
		wantErr error
	}{
		{name: "whole blob", baseURL: p.url, d: d, want: content},
		{name: "trailing slash in base URL", baseURL: p.url + "/", d: d, want: content},
		{name: "unknown blob", baseURL: p.url, d: digest.FromString("nope"), wantErr: blobstore.ErrBlobUnknown},
		{name: "corrupt holder", baseURL: staticServer(t, http.StatusOK, "0123456789abcdeX"), d: d, want: "0123456789abcdeX", wantErr: blobstore.ErrDigestMismatch},
		{name: "truncating holder", baseURL: staticServer(t, http.StatusOK, "0123"), d: d, want: "0123", wantErr: blobstore.ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			n, err := Fetch(context.Background(), http.DefaultClient, tt.baseURL, tt.d, &buf)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Fetch = %v, want %v", err, tt.wantErr)
			}
			if buf.String() != tt.want || n != int64(len(tt.want)) {
				t.Fatalf("Fetch wrote %q (n=%d), want %q", buf.String(), n, tt.want)
			}
		})
	}
}

// TestServerRange: the peer server answers Range requests (206, or 416
// past the end), as http.ServeContent does.
func TestServerRange(t *testing.T) {
	const content = "0123456789abcdef"
	p := newTestPeer(t)
	d := p.put(t, content)
	tests := []struct {
		name       string
		start, end int64
		want       string
		wantStatus int
	}{
		{name: "middle", start: 2, end: 5, want: "2345"},
		{name: "open end", start: 10, end: -1, want: "abcdef"},
		{name: "last byte", start: 15, end: 15, want: "f"},
		{name: "end past the blob", start: 12, end: 100, want: "cdef"},
		{name: "start past the blob", start: 16, end: -1, wantStatus: http.StatusRequestedRangeNotSatisfiable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := fmt.Sprintf("bytes=%d-", tt.start)
			if tt.end >= 0 {
				spec += fmt.Sprint(tt.end)
			}
			req, _ := http.NewRequest(http.MethodGet, blobURL(p.url, d), nil)
			req.Header.Set("Range", spec)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := cmp.Or(tt.wantStatus, http.StatusPartialContent)
			if resp.StatusCode != want || (want == http.StatusPartialContent && string(body) != tt.want) {
				t.Fatalf("GET with Range %s: %d %q; want %d %q", spec, resp.StatusCode, body, want, tt.want)
			}
		})
	}
}

func TestServerHead(t *testing.T) {
	p := newTestPeer(t)
	d := p.put(t, "twelve bytes")
	tests := []struct {
		name       string
		path       string
		wantStatus int
		wantLength int64
	}{
		{"held", PathPrefix + string(d), http.StatusOK, 12},
		{"absent", PathPrefix + digest.FromString("x").String(), http.StatusNotFound, -1},
		{"malformed digest", PathPrefix + "sha256:xyz", http.StatusBadRequest, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Head(p.url + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantLength >= 0 && resp.ContentLength != tt.wantLength {
				t.Fatalf("Content-Length %d, want %d", resp.ContentLength, tt.wantLength)
			}
		})
	}
}
