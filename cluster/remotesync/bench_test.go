package remotesync

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// BenchmarkSyncUnchanged10kTags times a sync of 10,000 upstream tags that
// are all up to date locally: a listing of 10 pages and 10,000 HEADs.
func BenchmarkSyncUnchanged10kTags(b *testing.B) {
	const tags = 10000
	up := newUpstream(b, nil)
	img, err := random.Image(256, 1)
	if err != nil {
		b.Fatal(err)
	}
	up.tag(b, "app:t0", img)
	desc, err := remote.Get(up.ref(b, "app:t0"))
	if err != nil {
		b.Fatal(err)
	}
	p, err := remote.NewPusher()
	if err != nil {
		b.Fatal(err)
	}
	for i := 1; i < tags; i++ {
		if err := remote.Tag(up.ref(b, fmt.Sprintf("app:t%d", i)).Context().Tag(fmt.Sprintf("t%d", i)), desc, remote.Reuse(p)); err != nil {
			b.Fatal(err)
		}
	}
	sink := newMemSink()
	s := newTestSyncer(b, Upstream{URL: up.srv.URL, Concurrency: 8}, sink)
	job := Job{Repository: localRepo, Upstream: "app"}
	if _, errs, err := s.Sync(context.Background(), job, nil); err != nil || len(errs) > 0 {
		b.Fatal(err, errs)
	}
	b.ResetTimer()
	for b.Loop() {
		prog, _, err := s.Sync(context.Background(), job, nil)
		if err != nil {
			b.Fatal(err)
		}
		if prog.TagsUnchanged != tags {
			b.Fatalf("unchanged %d of %d", prog.TagsUnchanged, tags)
		}
		// The https probe and the ping, 11 pages (the last one empty) and
		// one HEAD per tag.
		if want := int64(2 + 11 + tags); prog.UpstreamRequests != want {
			b.Fatalf("upstream_requests %d, want %d", prog.UpstreamRequests, want)
		}
	}
	b.ReportMetric(float64(tags*b.N)/b.Elapsed().Seconds(), "tags/s")
}
