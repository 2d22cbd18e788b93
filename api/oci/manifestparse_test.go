package oci

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseManifest(t *testing.T) {
	cfg := digest.FromString("config")
	layer := digest.FromString("layer")
	child := digest.FromString("child")
	desc := func(mt string, d digest.Digest) string {
		return fmt.Sprintf(`{"mediaType":%q,"digest":%q,"size":1}`, mt, d)
	}
	image := func(extra string) string {
		return `{"schemaVersion":2,"mediaType":"` + v1.MediaTypeImageManifest + `","config":` +
			desc("application/vnd.example.config", cfg) + `,"layers":[` + desc(v1.MediaTypeImageLayer, layer) + `]` + extra + `}`
	}
	tests := []struct {
		name         string
		contentType  string
		body         string
		wantErr      string // substring of the error message; empty means accepted
		artifactType string
		blobs        []digest.Digest
		manifests    []digest.Digest
		subject      digest.Digest
	}{
		{name: "image", contentType: v1.MediaTypeImageManifest, body: image(""),
			artifactType: "application/vnd.example.config", blobs: []digest.Digest{cfg, layer}},
		{name: "artifactType field wins", contentType: v1.MediaTypeImageManifest, body: image(`,"artifactType":"application/vnd.example.sig"`),
			artifactType: "application/vnd.example.sig", blobs: []digest.Digest{cfg, layer}},
		{name: "subject and annotations", contentType: v1.MediaTypeImageManifest,
			body:         image(`,"subject":` + desc(v1.MediaTypeImageManifest, child) + `,"annotations":{"a":"b"}`),
			artifactType: "application/vnd.example.config", blobs: []digest.Digest{cfg, layer}, subject: child},
		{name: "duplicate and foreign layers", contentType: v1.MediaTypeImageManifest,
			body: `{"schemaVersion":2,"config":` + desc("c", cfg) + `,"layers":[` + desc("l", cfg) + `,` + desc("l", layer) + `,` +
				desc("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", child) + `]}`,
			artifactType: "c", blobs: []digest.Digest{cfg, layer}},
		{name: "index", contentType: v1.MediaTypeImageIndex,
			body:      `{"schemaVersion":2,"artifactType":"x/y","manifests":[` + desc(v1.MediaTypeImageManifest, child) + `,` + desc(v1.MediaTypeImageManifest, child) + `]}`,
			manifests: []digest.Digest{child}, artifactType: "x/y"},
		{name: "empty index", contentType: v1.MediaTypeImageIndex, body: `{"schemaVersion":2,"manifests":[]}`},
		{name: "index without manifests field", contentType: v1.MediaTypeImageIndex, body: `{"schemaVersion":2}`},
		{name: "data field", contentType: v1.MediaTypeImageManifest,
			body:         `{"schemaVersion":2,"config":{"mediaType":"c","digest":"` + digest.FromString("{}").String() + `","size":2,"data":"e30="}}`,
			artifactType: "c", blobs: []digest.Digest{digest.FromString("{}")}},

		{name: "schema 1 type", contentType: mediaTypeDockerSchema1, body: `{}`, wantErr: "schema 1 is not supported"},
		{name: "schema 1 body", contentType: "", body: `{"schemaVersion":1}`, wantErr: "schema 1 is not supported"},
		{name: "schema 1 media type field", contentType: "", body: `{"schemaVersion":2,"mediaType":"` + mediaTypeDockerSchema1 + `"}`, wantErr: "schema 1"},
		{name: "no schemaVersion", contentType: v1.MediaTypeImageManifest, body: `{"config":` + desc("c", cfg) + `}`, wantErr: "schemaVersion must be 2"},
		{name: "schemaVersion 3", contentType: v1.MediaTypeImageManifest, body: `{"schemaVersion":3}`, wantErr: "schemaVersion must be 2"},
		{name: "not JSON", contentType: v1.MediaTypeImageManifest, body: `]`, wantErr: "not a valid JSON"},
		{name: "bad content type", contentType: "a/b; =", body: image(""), wantErr: "invalid Content-Type"},
		{name: "unknown type", contentType: "", body: `{"schemaVersion":2}`, wantErr: "cannot tell"},
		{name: "unsupported type", contentType: "application/vnd.oci.artifact.manifest.v1+json", body: `{"schemaVersion":2}`, wantErr: "not supported"},
		{name: "type mismatch", contentType: mediaTypeDockerManifest, body: image(""), wantErr: "does not match"},
		{name: "no config", contentType: v1.MediaTypeImageManifest, body: `{"schemaVersion":2,"layers":[]}`, wantErr: "no config"},
		{name: "image with manifests", contentType: v1.MediaTypeImageManifest, body: image(`,"manifests":[` + desc("m", child) + `]`), wantErr: "push it as an index"},
		{name: "index with layers", contentType: v1.MediaTypeImageIndex, body: `{"schemaVersion":2,"layers":[` + desc("l", layer) + `]}`, wantErr: "push it as an image"},
		{name: "descriptor without media type", contentType: v1.MediaTypeImageManifest, body: `{"schemaVersion":2,"config":{"digest":"` + cfg.String() + `","size":1}}`, wantErr: "config has no mediaType"},
		{name: "bad layer digest", contentType: v1.MediaTypeImageManifest, body: `{"schemaVersion":2,"config":` + desc("c", cfg) + `,"layers":[{"mediaType":"l","digest":"sha256:nope","size":1}]}`, wantErr: "layers[0] has an invalid digest"},
		{name: "negative size", contentType: v1.MediaTypeImageManifest, body: `{"schemaVersion":2,"config":{"mediaType":"c","digest":"` + cfg.String() + `","size":-1}}`, wantErr: "negative size"},
		{name: "bad subject", contentType: v1.MediaTypeImageManifest, body: image(`,"subject":{"mediaType":"m","digest":"x","size":1}`), wantErr: "subject has an invalid digest"},
		{name: "bad child", contentType: v1.MediaTypeImageIndex, body: `{"schemaVersion":2,"manifests":[{"mediaType":"m","digest":"sha256:00","size":1}]}`, wantErr: "manifests[0]"},
		{name: "data size mismatch", contentType: v1.MediaTypeImageManifest, body: `{"schemaVersion":2,"config":{"mediaType":"c","digest":"` + digest.FromString("{}").String() + `","size":3,"data":"e30="}}`, wantErr: "bytes of data but size 3"},
		{name: "data digest mismatch", contentType: v1.MediaTypeImageManifest, body: `{"schemaVersion":2,"config":{"mediaType":"c","digest":"` + cfg.String() + `","size":2,"data":"e30="}}`, wantErr: "does not match its digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm, err := parseManifest(tt.contentType, []byte(tt.body))
			if tt.wantErr != "" {
				var ae *apiError
				if !errors.As(err, &ae) || !strings.Contains(ae.message, tt.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if pm.artifactType != tt.artifactType || pm.subject != tt.subject ||
				!slices.Equal(pm.blobs, tt.blobs) || !slices.Equal(pm.manifests, tt.manifests) {
				t.Errorf("got %+v", pm)
			}
		})
	}
}

func TestParsePage(t *testing.T) {
	tests := []struct {
		query string
		want  page
		ok    bool
	}{
		{"", page{n: maxPageSize}, true},
		{"n=5&last=x", page{n: 5, last: "x"}, true},
		{"n=0", page{n: 0}, true},
		{fmt.Sprintf("n=%d", maxPageSize+1), page{n: maxPageSize}, true},
		{"n=-1", page{}, false},
		{"n=", page{}, false},
		{"n=1e3", page{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parsePage(q)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parsePage(%q) = %+v, %v; want %+v, ok=%v", tt.query, got, err, tt.want, tt.ok)
			}
		})
	}
}
