package oci

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/wharf-registry/wharf/fsm"
)

func FuzzParseManifest(f *testing.F) {
	cfg := v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromString("c"), Size: 1}
	f.Add(v1.MediaTypeImageManifest, imageManifest(cfg))
	f.Add("", imageManifest(cfg, v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: digest.FromString("l"), Size: 1, URLs: []string{"x"}}))
	f.Add(v1.MediaTypeImageIndex, indexManifest(v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}))
	f.Add("application/json", []byte(`{"schemaVersion":2,"manifests":null}`))
	f.Add(mediaTypeDockerManifest, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"a","digest":"sha256:2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6","size":1},"layers":[]}`))
	f.Add(mediaTypeDockerSchema1Signed, []byte(`{"schemaVersion":1}`))
	f.Add("application/json", []byte(`{"schemaVersion":1,"fsLayers":[]}`))
	f.Add(v1.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:x","size":-1}}`))
	f.Add(v1.MediaTypeImageManifest, []byte(`{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6","size":1,"data":"Yw=="},"subject":{"mediaType":"b","digest":"sha512:00","size":0}}`))
	f.Add("text/plain; charset=", []byte(`null`))
	f.Add(v1.MediaTypeImageIndex, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		pm, err := parseManifest(contentType, body)
		pm2, err2 := parseManifest(contentType, body)
		if fmt.Sprint(err) != fmt.Sprint(err2) || !reflect.DeepEqual(pm, pm2) {
			t.Fatalf("parsing twice gave different results: %v / %v", err, err2)
		}
		if err != nil {
			ae, ok := errors.AsType[*apiError](err)
			if !ok || (ae.status != http.StatusBadRequest && ae.status != http.StatusUnsupportedMediaType) {
				t.Fatalf("rejection is not a 400 or 415 apiError: %#v", err)
			}
			return
		}
		checkParsed(t, pm)
		// The resolved media type is stable: sending it as Content-Type
		// yields the same result.
		again, err := parseManifest(pm.mediaType, body)
		if err != nil || !reflect.DeepEqual(again, pm) {
			t.Fatalf("accepted with %q but not with its media type %q: %v", contentType, pm.mediaType, err)
		}
	})
}

// checkParsed checks the invariants of an accepted manifest.
func checkParsed(t *testing.T, pm *parsedManifest) {
	t.Helper()
	isIndex, ok := isIndexType[pm.mediaType]
	if !ok {
		t.Fatalf("accepted unsupported media type %q", pm.mediaType)
	}
	if isIndex && len(pm.blobs) > 0 || !isIndex && len(pm.manifests) > 0 {
		t.Fatalf("%s with blobs %v and manifests %v", pm.mediaType, pm.blobs, pm.manifests)
	}
	if !isIndex && len(pm.blobs) == 0 {
		t.Fatal("image manifest accepted without its config blob")
	}
	for _, d := range append(append([]digest.Digest{}, pm.blobs...), pm.manifests...) {
		if err := d.Validate(); err != nil {
			t.Fatalf("accepted invalid digest %q: %v", d, err)
		}
	}
	if pm.subject != "" && pm.subject.Validate() != nil {
		t.Fatalf("accepted invalid subject %q", pm.subject)
	}
}

func FuzzParseReference(f *testing.F) {
	f.Add("library/ubuntu", "latest")
	f.Add("a/b/c", "sha256:"+strings.Repeat("a", 64))
	f.Add("a", "sha512:"+strings.Repeat("0", 128))
	f.Add("a__b--c.d_e", "_")
	f.Add("Foo", "latest")
	f.Add("foo", "sha256:baddigeststring")
	f.Add("foo/", ".tag")
	f.Add(strings.Repeat("a/", 128), strings.Repeat("t", 129))
	f.Add("foo", "sha384:"+strings.Repeat("a", 96))
	f.Fuzz(func(t *testing.T, name, ref string) {
		r, err := parseReference(name, ref)
		if err != nil {
			ae, ok := errors.AsType[*apiError](err)
			if !ok || ae.status != http.StatusBadRequest {
				t.Fatalf("rejection is not a 400 apiError: %#v", err)
			}
			switch ae.code {
			case CodeNameInvalid, CodeTagInvalid, CodeDigestInvalid:
			default:
				t.Fatalf("rejected with code %s", ae.code)
			}
			return
		}
		if fsm.ValidateRepositoryName(name) != nil || r.name != name {
			t.Fatalf("accepted invalid name %q", name)
		}
		if (r.tag == "") == (r.digest == "") {
			t.Fatalf("reference %+v is not exactly one of tag and digest", r)
		}
		if r.String() != ref {
			t.Fatalf("reference %q parsed as %q", ref, r)
		}
		if r.digest != "" {
			if alg := r.digest.Algorithm(); (alg != digest.SHA256 && alg != digest.SHA512) || r.digest.Validate() != nil {
				t.Fatalf("accepted digest %q", r.digest)
			}
		} else if fsm.ValidateTag(r.tag) != nil || strings.Contains(r.tag, ":") {
			t.Fatalf("accepted tag %q", r.tag)
		}
		// The router recovers a valid name and reference from their URL.
		if rt := parseRoute("/v2/" + name + "/manifests/" + ref); rt.kind != routeManifest || rt.name != name || rt.arg != ref {
			t.Fatalf("route of %s:%s is %+v", name, ref, rt)
		}
	})
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"0-0", "0-1023", "1024-2047", "bytes 0-9/10", "bytes 0-9/*", "", "-", "5-4", "+1-2", "1-99999999999999999999", "bytes 1-2/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, end, err := parseContentRange(s)
		if err != nil {
			if !errors.Is(err, errContentRange) {
				t.Fatalf("error does not wrap errContentRange: %v", err)
			}
			return
		}
		if start < 0 || end < start {
			t.Fatalf("parseContentRange(%q) = %d, %d", s, start, end)
		}
		s2, e2, err := parseContentRange(fmt.Sprintf("%d-%d", start, end))
		if err != nil || s2 != start || e2 != end {
			t.Fatalf("range %d-%d of %q does not round-trip: %d, %d, %v", start, end, s, s2, e2, err)
		}
	})
}
