package oci

import (
	"net/http/httptest"
	"testing"
)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		path string
		want route
	}{
		{"/v2/", route{kind: routeBase}},
		{"/v2", route{kind: routeBase}},
		{"/v2/_catalog", route{kind: routeCatalog}},
		{"/v2/foo/tags/list", route{kind: routeTagsList, name: "foo"}},
		{"/v2/a/b/c/tags/list", route{kind: routeTagsList, name: "a/b/c"}},
		{"/v2/foo/manifests/latest", route{kind: routeManifest, name: "foo", arg: "latest"}},
		{"/v2/foo/manifests/sha256:abc", route{kind: routeManifest, name: "foo", arg: "sha256:abc"}},
		{"/v2/foo/blobs/sha256:abc", route{kind: routeBlob, name: "foo", arg: "sha256:abc"}},
		{"/v2/foo/blobs/uploads/", route{kind: routeUploadStart, name: "foo"}},
		{"/v2/foo/blobs/uploads", route{kind: routeUploadStart, name: "foo"}},
		{"/v2/foo/blobs/uploads/abc", route{kind: routeUploadSession, name: "foo", arg: "abc"}},
		{"/v2/foo/referrers/sha256:abc", route{kind: routeReferrers, name: "foo", arg: "sha256:abc"}},
		// Names that contain endpoint words are split at the last one.
		{"/v2/a/blobs/b/manifests/latest", route{kind: routeManifest, name: "a/blobs/b", arg: "latest"}},
		{"/v2/a/manifests/b/blobs/sha256:x", route{kind: routeBlob, name: "a/manifests/b", arg: "sha256:x"}},
		{"/v2/blobs/blobs/uploads/id", route{kind: routeUploadSession, name: "blobs", arg: "id"}},
		{"/v2/tags/list/tags/list", route{kind: routeTagsList, name: "tags/list"}},
		{"/v2/manifests/manifests/x", route{kind: routeManifest, name: "manifests", arg: "x"}},
		{"/v2/a/referrers/b/referrers/sha256:x", route{kind: routeReferrers, name: "a/referrers/b", arg: "sha256:x"}},
		// No endpoint.
		{"/v2/foo", route{}},
		{"/v2/foo/manifests/", route{}},
		{"/v2/manifests/x", route{}},
		{"/v2/foo/blobs/", route{}},
		{"/v3/", route{}},
		{"/", route{}},
		{"/v2x/foo/tags/list", route{}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := parseRoute(tt.path); got != tt.want {
				t.Errorf("parseRoute(%q) = %+v, want %+v", tt.path, got, tt.want)
			}
		})
	}
}

func TestRoute(t *testing.T) {
	tests := []struct {
		method, path, want string
	}{
		{"GET", "/v2/", "base"},
		{"GET", "/v2/_catalog?n=1", "catalog"},
		{"GET", "/v2/a/b/tags/list", "tags_list"},
		{"PUT", "/v2/a/manifests/v1", "manifest"},
		{"HEAD", "/v2/a/blobs/sha256:0", "blob"},
		{"POST", "/v2/a/blobs/uploads/", "blob_upload"},
		{"PATCH", "/v2/a/blobs/uploads/xyz", "blob_upload"},
		{"GET", "/v2/a/referrers/sha256:0", "referrers"},
		{"GET", "/metrics", "unknown"},
		{"GET", "/v2/a", "unknown"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if got := Route(r); got != tt.want {
			t.Errorf("Route(%s %s) = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}
