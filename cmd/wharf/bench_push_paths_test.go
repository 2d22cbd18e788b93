package main

// Where a cluster push spends its time, by path:
//
//	go test -run='^$' -bench=ClusterPushPaths -benchtime=3x ./cmd/wharf/
//
// For each size it pushes an image (config, one layer, manifest) four ways:
// through the round-robin balancer to 3 nodes with R=3 W=2 (lb; as
// BenchmarkClusterPush), straight to one node of that cluster (direct: no
// balancer, no session proxying between nodes, the same copies), to a lone
// node through a balancer (single-lb: the balancer's own cost), and
// straight to a lone node (single). Each reports MB/s, and the time spent
// uploading the layer (POST, PATCH, PUT) and in the manifest PUT, which
// waits for W durable copies.

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func BenchmarkClusterPushPaths(b *testing.B) {
	three := startHarness(b, harnessOpts{nodes: 3, replicas: 3, writeQuorum: 2})
	one := startHarness(b, harnessOpts{nodes: 1, replicas: 3, writeQuorum: 2})
	paths := []struct {
		name string
		base func() string
	}{
		{"lb", three.lbURL},
		{"direct", func() string { return three.nodes[0].baseURL }},
		{"single-lb", one.lbURL},
		{"single", func() string { return one.nodes[0].baseURL }},
	}
	seed := uint64(time.Now().UnixNano())
	for _, size := range []int64{1 << 20, 100 << 20} {
		for _, p := range paths {
			b.Run(fmt.Sprintf("%dMiB/%s", size>>20, p.name), func(b *testing.B) {
				var upload, manifest time.Duration
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					seed++
					src := blobSource{seed: seed, size: size}
					d := src.Digest()
					b.StartTimer()
					base := p.base()
					config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","seed":%d}`, src.seed))
					cd := digest.FromBytes(config)
					t0 := time.Now()
					benchDo(b, http.MethodPost, base+"/v2/bench/paths/blobs/uploads/?digest="+cd.String(),
						nil, bytes.NewReader(config), int64(len(config)), http.StatusCreated)
					pushBlobChunked(b, base, "bench/paths", src, d, nil)
					t1 := time.Now()
					m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
						`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
						`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
						cd, len(config), d, src.size)
					benchDo(b, http.MethodPut, fmt.Sprintf("%s/v2/bench/paths/manifests/s%d", base, seed),
						http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}},
						bytes.NewReader(m), int64(len(m)), http.StatusCreated)
					t2 := time.Now()
					upload += t1.Sub(t0)
					manifest += t2.Sub(t1)
				}
				total := upload + manifest
				b.ReportMetric(float64(size)*float64(b.N)/1e6/total.Seconds(), "MB/s")
				b.ReportMetric(float64(upload.Milliseconds())/float64(b.N), "upload-ms")
				b.ReportMetric(float64(manifest.Milliseconds())/float64(b.N), "manifest-ms")
			})
		}
	}
}
