package oci

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestReferrers(t *testing.T) {
	ts := newTestServer(t)
	_, subject := ts.pushImage("repo", "v1")
	empty := v1.Descriptor{MediaType: v1.MediaTypeEmptyJSON, Digest: ts.pushBlob("repo", []byte("{}")), Size: 2}
	subjectDesc := &v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: subject, Size: 1}

	push := func(m any, mediaType string) v1.Descriptor {
		body := mustJSON(m)
		ts.pushManifest("repo", digest.FromBytes(body).String(), mediaType, body)
		return v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(body), Size: int64(len(body))}
	}
	// A signature: artifactType from the field, annotations kept.
	sig := push(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		ArtifactType: "application/vnd.example.sig", Config: empty, Layers: []v1.Descriptor{empty},
		Subject: subjectDesc, Annotations: map[string]string{"org.example": "yes"}}, v1.MediaTypeImageManifest)
	sig.ArtifactType, sig.Annotations = "application/vnd.example.sig", map[string]string{"org.example": "yes"}
	// An SBOM: artifactType from the config media type.
	sbom := push(v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest,
		Config:  v1.Descriptor{MediaType: "application/vnd.example.sbom", Digest: empty.Digest, Size: 2},
		Subject: subjectDesc}, v1.MediaTypeImageManifest)
	sbom.ArtifactType = "application/vnd.example.sbom"
	// An index with a subject.
	idx := push(v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex, ArtifactType: "application/vnd.example.sig",
		Manifests: []v1.Descriptor{}, Subject: subjectDesc}, v1.MediaTypeImageIndex)
	idx.ArtifactType = "application/vnd.example.sig"

	tests := []struct {
		name     string
		path     string
		want     []v1.Descriptor
		filtered bool
	}{
		{name: "all", path: "/v2/repo/referrers/" + subject.String(), want: []v1.Descriptor{sig, sbom, idx}},
		{name: "by artifact type", path: "/v2/repo/referrers/" + subject.String() + "?artifactType=application/vnd.example.sig",
			want: []v1.Descriptor{sig, idx}, filtered: true},
		{name: "filter matches none", path: "/v2/repo/referrers/" + subject.String() + "?artifactType=none",
			want: []v1.Descriptor{}, filtered: true},
		{name: "unknown subject", path: "/v2/repo/referrers/" + digest.FromString("x").String(), want: []v1.Descriptor{}},
		{name: "unknown repository", path: "/v2/nope/referrers/" + subject.String(), want: []v1.Descriptor{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.get(tt.path)
			wantStatus(t, resp, http.StatusOK)
			wantHeader(t, resp, "Content-Type", v1.MediaTypeImageIndex)
			if tt.filtered {
				wantHeader(t, resp, "OCI-Filters-Applied", "artifactType")
			} else {
				wantHeader(t, resp, "OCI-Filters-Applied", "")
			}
			var got v1.Index
			if err := json.Unmarshal(resp.body, &got); err != nil {
				t.Fatal(err)
			}
			if got.SchemaVersion != 2 || got.MediaType != v1.MediaTypeImageIndex || got.Manifests == nil {
				t.Fatalf("not an OCI index with a manifests list: %s", resp.body)
			}
			if !sameDescriptors(got.Manifests, tt.want) {
				t.Errorf("got %s\nwant %s", mustJSON(got.Manifests), mustJSON(tt.want))
			}
		})
	}
	wantError(t, ts.get("/v2/repo/referrers/sha256:bad"), http.StatusBadRequest, CodeDigestInvalid)
}

// sameDescriptors compares descriptor lists regardless of order.
func sameDescriptors(got, want []v1.Descriptor) bool {
	if len(got) != len(want) {
		return false
	}
	byDigest := map[digest.Digest]string{}
	for _, d := range want {
		byDigest[d.Digest] = string(mustJSON(d))
	}
	for _, d := range got {
		if byDigest[d.Digest] != string(mustJSON(d)) {
			return false
		}
	}
	return true
}
