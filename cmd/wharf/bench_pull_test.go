package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkClusterPullThroughNonOwner: a layer pulled through a node that
// holds no copy of it, which fetches it from a holder (3 nodes, R=1 W=1,
// so that such a node exists). Reports the time to the first byte of the
// response, and the rate of the whole pull:
//
//	go test -run='^$' -bench=ClusterPullThroughNonOwner -benchtime=3x ./cmd/wharf/
//
// 100 MiB; WHARF_BENCH_LARGE=1 adds 1 GiB.
func BenchmarkClusterPullThroughNonOwner(b *testing.B) {
	h := startHarness(b, harnessOpts{nodes: 3, replicas: 1, writeQuorum: 1})
	sizes := []int64{100 << 20}
	if benchLarge() {
		sizes = append(sizes, 1<<30)
	}
	seed := uint64(time.Now().UnixNano())
	for _, size := range sizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			var ttfb, total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				seed++
				src := blobSource{seed: seed, size: size}
				d := src.Digest()
				pushBlobChunked(b, h.nodes[0].baseURL, "bench/pull", src, d, nil)
				// The node that holds no copy once the copies settle.
				var reader int
				waitUntil(b, 30*time.Second, func() error {
					held := h.onDisk(d)
					if len(held) != 1 {
						return fmt.Errorf("copies on %v, want one", held)
					}
					reader = slices.IndexFunc(h.nodes, func(n *testNode) bool { return n.idx != held[0] })
					return nil
				})
				b.StartTimer()
				first, whole := timePull(b, h.nodes[reader].baseURL+"/v2/bench/pull/blobs/"+d.String(), size)
				ttfb += first
				total += whole
			}
			b.ReportMetric(float64(ttfb.Microseconds())/1e3/float64(b.N), "ttfb-ms")
			b.ReportMetric(float64(size)*float64(b.N)/1e6/total.Seconds(), "MB/s")
		})
	}
}

// timePull GETs url and returns the time to the first byte of the body and
// to the last one; it fails unless the body has size bytes.
func timePull(b *testing.B, url string, size int64) (first, whole time.Duration) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.SetBasicAuth(adminUser, benchPassword)
	start := time.Now()
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s", url, resp.Status)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		b.Fatal(err)
	}
	first = time.Since(start)
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n+1 != size {
		b.Fatalf("GET %s: %d bytes, %v; want %d", url, n+1, err, size)
	}
	return first, time.Since(start)
}
