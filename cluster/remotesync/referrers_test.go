package remotesync

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestSyncReferrers: the OCI 1.1 referrers of a synced manifest come
// along, untagged, through the referrers API or its tag fallback.
func TestSyncReferrers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		referrers bool
	}{
		{"referrers API", true},
		{"no referrers API", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(withLinks(registry.New(registry.Logger(nopLogger()), registry.WithReferrersSupport(tc.referrers))))
			t.Cleanup(srv.Close)
			up := &upstream{srv: srv, host: strings.TrimPrefix(srv.URL, "http://")}
			subject := up.pushImage(t, "app:v1")
			sd, err := subject.Digest()
			if err != nil {
				t.Fatal(err)
			}
			mf, err := subject.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			att, err := random.Image(512, 1)
			if err != nil {
				t.Fatal(err)
			}
			att = mutate.Subject(att, v1.Descriptor{MediaType: mf.MediaType, Digest: sd, Size: mustSize(t, subject)}).(v1.Image)
			ad := mustDigest(t, att)
			ref := up.ref(t, "app@"+ad.String())
			if err := remote.Write(ref, att); err != nil {
				t.Fatal(err)
			}

			sink := newMemSink()
			s := newTestSyncer(t, Upstream{URL: srv.URL}, sink)
			runSync(t, s, Job{Repository: localRepo, Upstream: "app", Include: []string{"v1"}})
			checkImage(t, sink, "v1", subject)
			// Without the API, go-containerregistry's push kept the
			// referrers tag (sha256-<hex>) that the client falls back to.
			checkImage(t, sink, "", att)
		})
	}
}

func mustSize(t *testing.T, img v1.Image) int64 {
	t.Helper()
	n, err := img.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
