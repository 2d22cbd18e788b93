package oci

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestManifestPushPull(t *testing.T) {
	ts := newTestServer(t)
	body, d := ts.pushImage("repo", "v1")

	for _, ref := range []string{"v1", d.String()} {
		for _, method := range []string{"GET", "HEAD"} {
			t.Run(method+" "+ref, func(t *testing.T) {
				resp := ts.do(request{method: method, path: "/v2/repo/manifests/" + ref})
				wantStatus(t, resp, http.StatusOK)
				wantHeader(t, resp, "Content-Type", v1.MediaTypeImageManifest)
				wantHeader(t, resp, "Docker-Content-Digest", d.String())
				wantHeader(t, resp, "Content-Length", fmt.Sprint(len(body)))
				wantHeader(t, resp, "ETag", `"`+d.String()+`"`)
				if method == "GET" && !bytes.Equal(resp.body, body) {
					t.Errorf("body differs from the pushed manifest")
				}
			})
		}
	}
}

func TestManifestPutResponse(t *testing.T) {
	ts := newTestServer(t, func(c *Config) { c.PublicURL = "https://reg.example.com/" })
	_, subject := ts.pushImage("repo", "base")
	cfg := []byte("{}")
	cfgDesc := v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: ts.pushBlob("repo", cfg), Size: 2}
	body := mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     v1.MediaTypeImageManifest,
		"artifactType":  "application/vnd.example.sig",
		"config":        cfgDesc,
		"layers":        []v1.Descriptor{cfgDesc},
		"subject":       v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: subject, Size: 1},
	})
	d := digest.FromBytes(body)
	resp := ts.do(request{
		method: "PUT",
		path:   "/v2/repo/manifests/" + d.String() + "?tag=sig&tag=sig2&tag=sig",
		body:   body,
		header: map[string]string{"Content-Type": v1.MediaTypeImageManifest},
	})
	wantStatus(t, resp, http.StatusCreated)
	wantHeader(t, resp, "Location", "https://reg.example.com/v2/repo/manifests/"+d.String())
	wantHeader(t, resp, "Docker-Content-Digest", d.String())
	wantHeader(t, resp, "OCI-Subject", subject.String())
	if got := resp.header.Values("OCI-Tag"); !slices.Equal(got, []string{"sig", "sig2"}) {
		t.Errorf("OCI-Tag = %q, want [sig sig2]", got)
	}
	for _, tag := range []string{"sig", "sig2"} {
		wantHeader(t, ts.get("/v2/repo/manifests/"+tag), "Docker-Content-Digest", d.String())
	}
}

func TestManifestMediaTypes(t *testing.T) {
	ts := newTestServer(t)
	_, child := ts.pushImage("repo", "child")
	cfg := ts.pushBlob("repo", []byte("cfg"))
	layer := ts.pushBlob("repo", []byte("layer"))
	docker := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":%q,"size":3},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":%q,"size":5}]}`,
		mediaTypeDockerManifest, cfg, layer)
	dockerList := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"manifests":[{"mediaType":%q,"digest":%q,"size":1,"platform":{"architecture":"amd64","os":"linux"}}]}`,
		mediaTypeDockerManifestList, v1.MediaTypeImageManifest, child)
	noMediaType := fmt.Sprintf(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":3},"layers":[]}`, cfg)
	tests := []struct {
		name        string
		contentType string
		body        string
		stored      string
	}{
		{"docker schema 2", mediaTypeDockerManifest, docker, mediaTypeDockerManifest},
		{"docker manifest list", mediaTypeDockerManifestList, dockerList, mediaTypeDockerManifestList},
		{"oci index", v1.MediaTypeImageIndex, string(indexManifest(v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: child, Size: 1})), v1.MediaTypeImageIndex},
		{"generic content type", "application/json", docker, mediaTypeDockerManifest},
		{"no media type anywhere", "", noMediaType, v1.MediaTypeImageManifest},
		{"content type with parameters", mediaTypeDockerManifest + "; charset=utf-8", docker, mediaTypeDockerManifest},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag := fmt.Sprintf("t%d", i)
			ts.pushManifest("repo", tag, tt.contentType, []byte(tt.body))
			wantHeader(t, ts.get("/v2/repo/manifests/"+tag), "Content-Type", tt.stored)
		})
	}
}

func TestManifestPutErrors(t *testing.T) {
	ts := newTestServer(t)
	body, _ := ts.pushImage("repo", "v1")
	d := digest.FromBytes(body)
	schema1 := `{"schemaVersion":1,"name":"repo","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}`
	tests := []struct {
		name        string
		ref         string
		contentType string
		body        string
		status      int
		code        ErrorCode
		message     string
	}{
		{"schema 1 by content type", "x", mediaTypeDockerSchema1Signed, schema1, 400, CodeManifestInvalid, "schema 1"},
		{"schema 1 unsigned", "x", mediaTypeDockerSchema1, schema1, 400, CodeManifestInvalid, "schema 1"},
		{"schema 1 by body", "x", "application/json", schema1, 400, CodeManifestInvalid, "schema 1"},
		{"not json", "x", v1.MediaTypeImageManifest, "{not json", 400, CodeManifestInvalid, "JSON"},
		{"json array", "x", v1.MediaTypeImageManifest, "[]", 400, CodeManifestInvalid, "JSON"},
		{"media type mismatch", "x", v1.MediaTypeImageIndex, string(body), 400, CodeManifestInvalid, "does not match"},
		{"unsupported media type", "x", "application/vnd.example+json", `{"schemaVersion":2}`, 415, CodeUnsupported, "not supported"},
		{"digest mismatch", digest.FromString("other").String(), v1.MediaTypeImageManifest, string(body), 400, CodeDigestInvalid, ""},
		{"bad digest reference", "sha256:baddigeststring", v1.MediaTypeImageManifest, string(body), 400, CodeDigestInvalid, ""},
		{"sha512 mismatch", digest.SHA512.FromString("x").String(), v1.MediaTypeImageManifest, string(body), 400, CodeDigestInvalid, ""},
		{"bad tag", "-tag", v1.MediaTypeImageManifest, string(body), 400, CodeTagInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.putManifest("repo", tt.ref, tt.contentType, []byte(tt.body))
			wantError(t, resp, tt.status, tt.code)
			if !strings.Contains(string(resp.body), tt.message) {
				t.Errorf("message %s does not mention %q", resp.body, tt.message)
			}
		})
	}
	resp := ts.do(request{method: "PUT", path: "/v2/repo/manifests/" + d.String() + "?tag=.bad",
		body: body, header: map[string]string{"Content-Type": v1.MediaTypeImageManifest}})
	wantError(t, resp, http.StatusBadRequest, CodeTagInvalid)
}

func TestManifestSizeLimit(t *testing.T) {
	const limit = 4 << 20
	ts := newTestServer(t, sparse)
	// A manifest padded with whitespace to an exact size.
	manifestOfSize := func(size int) []byte {
		base := imageManifest(v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromString("c"), Size: 1})
		return append(base, bytes.Repeat([]byte(" "), size-len(base))...)
	}
	tests := []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"exactly the limit", limit, false, http.StatusCreated},
		{"one byte over", limit + 1, false, http.StatusRequestEntityTooLarge},
		{"one byte over, no Content-Length", limit + 1, true, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(request{method: "PUT", path: "/v2/repo/manifests/big", body: manifestOfSize(tt.size),
				chunked: tt.chunked, header: map[string]string{"Content-Type": v1.MediaTypeImageManifest}})
			if tt.status == http.StatusCreated {
				wantStatus(t, resp, tt.status)
				return
			}
			wantError(t, resp, tt.status, CodeSizeInvalid)
			if !strings.Contains(string(resp.body), "4194304 bytes") {
				t.Errorf("message does not state the limit: %s", resp.body)
			}
		})
	}
}

func TestManifestReferenceChecks(t *testing.T) {
	present := []byte("present layer")
	missing := digest.FromString("missing layer")
	foreign := digest.FromString("foreign layer")
	missingChild := digest.FromString("missing child")
	tests := []struct {
		name      string
		body      func(ts *testServer) []byte
		mediaType string
		missing   []digest.Digest // reported when strict; empty means accepted
	}{
		{
			name: "all blobs present",
			body: func(ts *testServer) []byte {
				d := ts.pushBlob("repo", present)
				return imageManifest(v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: d, Size: 13})
			},
			mediaType: v1.MediaTypeImageManifest,
		},
		{
			name: "missing layer",
			body: func(ts *testServer) []byte {
				d := ts.pushBlob("repo", present)
				return imageManifest(v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: d, Size: 13},
					v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: missing, Size: 1})
			},
			mediaType: v1.MediaTypeImageManifest,
			missing:   []digest.Digest{missing},
		},
		{
			name: "missing config and layer",
			body: func(ts *testServer) []byte {
				return imageManifest(v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: foreign, Size: 1},
					v1.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: missing, Size: 1})
			},
			mediaType: v1.MediaTypeImageManifest,
			missing:   []digest.Digest{foreign, missing},
		},
		{
			name: "foreign layers need not be present",
			body: func(ts *testServer) []byte {
				d := ts.pushBlob("repo", present)
				return imageManifest(v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: d, Size: 13},
					v1.Descriptor{MediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Digest: foreign, Size: 1},
					v1.Descriptor{MediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Digest: foreign, Size: 1},
					v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: missing, Size: 1, URLs: []string{"https://example.com/layer"}})
			},
			mediaType: v1.MediaTypeImageManifest,
		},
		{
			name: "missing child manifest",
			body: func(ts *testServer) []byte {
				_, child := ts.pushImage("repo", "")
				return indexManifest(
					v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: child, Size: 1},
					v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: missingChild, Size: 1})
			},
			mediaType: v1.MediaTypeImageIndex,
			missing:   []digest.Digest{missingChild},
		},
	}
	for _, tt := range tests {
		for _, sparseMode := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/sparse=%v", tt.name, sparseMode), func(t *testing.T) {
				ts := newTestServer(t, func(c *Config) { c.SparseManifests = sparseMode })
				resp := ts.putManifest("repo", "tag", tt.mediaType, tt.body(ts))
				if sparseMode || len(tt.missing) == 0 {
					wantStatus(t, resp, http.StatusCreated)
					return
				}
				wantError(t, resp, http.StatusBadRequest, CodeManifestBlobUnknown)
				var env errorEnvelope
				if err := json.Unmarshal(resp.body, &env); err != nil {
					t.Fatal(err)
				}
				var got []digest.Digest
				for _, e := range env.Errors {
					got = append(got, digest.Digest(e.Detail.(map[string]any)["digest"].(string)))
				}
				if !slices.Equal(got, tt.missing) {
					t.Errorf("reported missing %v, want %v", got, tt.missing)
				}
			})
		}
	}
}

func TestManifestNotFound(t *testing.T) {
	ts := newTestServer(t)
	ts.pushImage("repo", "v1")
	tests := []struct {
		method, path string
		code         ErrorCode
	}{
		{"GET", "/v2/repo/manifests/nope", CodeManifestUnknown},
		{"GET", "/v2/repo/manifests/" + digest.FromString("x").String(), CodeManifestUnknown},
		{"HEAD", "/v2/repo/manifests/nope", CodeManifestUnknown},
		{"GET", "/v2/norepo/manifests/v1", CodeNameUnknown},
		{"DELETE", "/v2/repo/manifests/nope", CodeManifestUnknown},
		{"DELETE", "/v2/repo/manifests/" + digest.FromString("x").String(), CodeManifestUnknown},
		{"DELETE", "/v2/norepo/manifests/v1", CodeNameUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			wantError(t, ts.do(request{method: tt.method, path: tt.path}), http.StatusNotFound, tt.code)
		})
	}
	wantStatus(t, ts.get("/v2/repo/manifests/sha256:baddigeststring"), http.StatusBadRequest)
}

func TestManifestDelete(t *testing.T) {
	ts := newTestServer(t)
	_, d := ts.pushImage("repo", "v1")
	ts.pushManifest("repo", "v2", v1.MediaTypeImageManifest, ts.get("/v2/repo/manifests/v1").body)

	// Deleting a tag leaves the manifest and its other tags.
	wantStatus(t, ts.do(request{method: "DELETE", path: "/v2/repo/manifests/v1"}), http.StatusAccepted)
	wantStatus(t, ts.do(request{method: "HEAD", path: "/v2/repo/manifests/v1"}), http.StatusNotFound)
	wantStatus(t, ts.do(request{method: "HEAD", path: "/v2/repo/manifests/v2"}), http.StatusOK)
	wantStatus(t, ts.do(request{method: "HEAD", path: "/v2/repo/manifests/" + d.String()}), http.StatusOK)

	// Deleting by digest removes the remaining tags too.
	wantStatus(t, ts.do(request{method: "DELETE", path: "/v2/repo/manifests/" + d.String()}), http.StatusAccepted)
	wantStatus(t, ts.do(request{method: "HEAD", path: "/v2/repo/manifests/" + d.String()}), http.StatusNotFound)
	wantStatus(t, ts.do(request{method: "HEAD", path: "/v2/repo/manifests/v2"}), http.StatusNotFound)
}

func TestManifestNamespaceConflict(t *testing.T) {
	ts := newTestServer(t, sparse)
	ts.pushImage("flat", "v1")
	body := imageManifest(v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromString("c"), Size: 1})
	resp := ts.putManifest("flat/child", "v1", v1.MediaTypeImageManifest, body)
	wantError(t, resp, http.StatusBadRequest, CodeNameInvalid)
	if !strings.Contains(string(resp.body), "single-name repository") {
		t.Errorf("message does not name the rule: %s", resp.body)
	}
}
