package api_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wharf-registry/wharf/api"
	"github.com/wharf-registry/wharf/api/oci"
	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/cluster/blobstate"
	"github.com/wharf-registry/wharf/cluster/replication"
	"github.com/wharf-registry/wharf/internal/clustertest"
)

// startNode runs a complete single-node registry on a loopback port, as
// wharf serve assembles it: real Raft, Pebble, blob files under dir and the
// replicated blob store.
func startNode(tb testing.TB, dir string) string {
	tb.Helper()
	reg := prometheus.NewRegistry()
	blobs, err := blobstore.Open(blobstore.Config{Root: filepath.Join(dir, "blobs")})
	if err != nil {
		tb.Fatal(err)
	}
	// Default Raft timings: the benchmark measures a node as it runs.
	node := clustertest.Node(tb, func(c *cluster.Config) {
		c.DataDir, c.NodeName, c.Registerer = dir, "bench", reg
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = 0, 0, 0
	})
	// The blob path of wharf serve: a replicated store, here with one node.
	store, err := replication.New(replication.Config{
		Local: blobs, Cluster: blobstate.Of(node), Client: node.PeerHTTPClient(),
		FetchDir: filepath.Join(dir, "fetch"),
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	srv := httptest.NewServer(api.NewHandler(api.Config{
		OCI: oci.New(oci.Config{
			Metadata: node, Blobs: store, NodeID: node.ID(),
		}),
		Route:    oci.Route,
		Ready:    func() bool { return node.Status().Ready() },
		Registry: reg,
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// patternReader yields size bytes by repeating one random MiB, so that a
// 1 GiB blob costs no memory and the source is never the bottleneck.
type patternReader struct {
	pattern []byte
	left    int64
	off     int
}

func newPattern() []byte {
	p := make([]byte, 1<<20)
	_, _ = rand.Read(p)
	return p
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := copy(p, r.pattern[r.off:])
	r.off = (r.off + n) % len(r.pattern)
	r.left -= int64(n)
	return n, nil
}

func patternDigest(pattern []byte, size int64) digest.Digest {
	h := sha256.New()
	_, _ = io.Copy(h, &patternReader{pattern: pattern, left: size})
	return digest.NewDigest(digest.SHA256, h)
}

// plainIngest is the baseline a registry push is measured against: write
// the bytes to a file while hashing them, then fsync.
func plainIngest(dir string, pattern []byte, size int64) error {
	f, err := os.CreateTemp(dir, "baseline-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), &patternReader{pattern: pattern, left: size}, buf); err != nil {
		return err
	}
	_ = h.Sum(nil)
	return f.Sync()
}

// plainRead is the pull baseline: read the stored file to the end.
func plainRead(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

func benchSizes() []int64 {
	sizes := []int64{1 << 20, 10 << 20, 100 << 20}
	if os.Getenv("WHARF_BENCH_LARGE") == "1" {
		sizes = append(sizes, 1<<30)
	}
	return sizes
}

func sizeName(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%dGiB", n>>30)
	}
	return fmt.Sprintf("%dMiB", n>>20)
}

// BenchmarkMonolithicPush pushes one blob per iteration with POST
// ?digest= and compares it with plainIngest of the same bytes on the same
// disk in the same run. Metrics: push_MB/s, plain_MB/s and ratio.
func BenchmarkMonolithicPush(b *testing.B) {
	pattern := newPattern()
	for _, size := range benchSizes() {
		b.Run(sizeName(size), func(b *testing.B) {
			dir := b.TempDir()
			base := startNode(b, dir)
			d := patternDigest(pattern, size)
			var pushTime, plainTime time.Duration
			for i := 0; b.Loop(); i++ {
				start := time.Now()
				if err := plainIngest(dir, pattern, size); err != nil {
					b.Fatal(err)
				}
				plainTime += time.Since(start)

				repo := fmt.Sprintf("bench/push%d", i) // a new repository, so the blob is ingested again
				start = time.Now()
				pushBlob(b, base, repo, d, &patternReader{pattern: pattern, left: size}, size)
				pushTime += time.Since(start)
				removeBlob(b, dir, d)
			}
			reportRatio(b, "push", size, pushTime, plainTime)
		})
	}
}

// BenchmarkMonolithicPull fetches one blob per iteration. Its ratio is
// against the same plain write+hash+fsync baseline as the push (the issue's
// yardstick); ratio_vs_read compares it with reading the stored file
// directly from the page cache, the ceiling for any HTTP server.
func BenchmarkMonolithicPull(b *testing.B) {
	pattern := newPattern()
	for _, size := range benchSizes() {
		b.Run(sizeName(size), func(b *testing.B) {
			dir := b.TempDir()
			base := startNode(b, dir)
			d := patternDigest(pattern, size)
			pushBlob(b, base, "bench/pull", d, &patternReader{pattern: pattern, left: size}, size)
			path := filepath.Join(dir, "blobs", "blobs", "sha256", d.Encoded()[:2], d.Encoded())
			var pullTime, plainTime, readTime time.Duration
			for b.Loop() {
				start := time.Now()
				if err := plainIngest(dir, pattern, size); err != nil {
					b.Fatal(err)
				}
				plainTime += time.Since(start)
				start = time.Now()
				if err := plainRead(path); err != nil {
					b.Fatal(err)
				}
				readTime += time.Since(start)
				start = time.Now()
				pullBlob(b, base, "bench/pull", d, size)
				pullTime += time.Since(start)
			}
			reportRatio(b, "pull", size, pullTime, plainTime)
			b.ReportMetric(readTime.Seconds()/pullTime.Seconds(), "ratio_vs_read")
		})
	}
}

func reportRatio(b *testing.B, what string, size int64, wharf, plain time.Duration) {
	total := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(total/wharf.Seconds(), what+"_MB/s")
	b.ReportMetric(total/plain.Seconds(), "plain_MB/s")
	b.ReportMetric(plain.Seconds()/wharf.Seconds(), "ratio")
}

func pushBlob(tb testing.TB, base, repo string, d digest.Digest, body io.Reader, size int64) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(), body)
	if err != nil {
		tb.Fatal(err)
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		tb.Fatalf("push: %s: %s", resp.Status, msg)
	}
}

func pullBlob(tb testing.TB, base, repo string, d digest.Digest, size int64) {
	tb.Helper()
	resp, err := http.Get(base + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || n != size {
		tb.Fatalf("pull: %s, %d bytes, %v", resp.Status, n, err)
	}
}

// removeBlob deletes a pushed blob's file so the next push ingests it
// again instead of finding it stored.
func removeBlob(tb testing.TB, dir string, d digest.Digest) {
	tb.Helper()
	path := filepath.Join(dir, "blobs", "blobs", "sha256", d.Encoded()[:2], d.Encoded())
	if err := os.Remove(path); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkManifestReads measures manifest GET by tag and HEAD by digest
// with 16 concurrent clients: requests per second and p99 latency.
func BenchmarkManifestReads(b *testing.B) {
	base := startNode(b, b.TempDir())
	d := pushSmallImage(b, base, "bench/manifests", "latest")
	cases := []struct {
		name, method, ref string
	}{
		{"GetByTag", http.MethodGet, "latest"},
		{"HeadByDigest", http.MethodHead, d.String()},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			url := base + "/v2/bench/manifests/manifests/" + c.ref
			lat := concurrentRequests(b, 16, c.method, url)
			slices.Sort(lat)
			p99 := lat[len(lat)*99/100]
			b.ReportMetric(float64(p99.Microseconds()), "p99_µs")
		})
	}
}

// concurrentRequests issues b.N requests from clients goroutines and returns
// each request's latency.
func concurrentRequests(b *testing.B, clients int, method, url string) []time.Duration {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism((clients + 1) / 2) // RunParallel runs GOMAXPROCS*p goroutines; 2 cores here
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			req, _ := http.NewRequest(method, url, nil)
			req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("%s %s: %s", method, url, resp.Status)
				return
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	return lat
}

// pushSmallImage pushes a config blob, one layer and an image manifest,
// and returns the manifest's digest.
func pushSmallImage(tb testing.TB, base, repo, tag string) digest.Digest {
	tb.Helper()
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := make([]byte, 4096)
	_, _ = rand.Read(layer)
	cd, ld := digest.FromBytes(config), digest.FromBytes(layer)
	pushBlob(tb, base, repo, cd, bytes.NewReader(config), int64(len(config)))
	pushBlob(tb, base, repo, ld, bytes.NewReader(layer), int64(len(layer)))
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		cd, len(config), ld, len(layer))
	req, _ := http.NewRequest(http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader([]byte(manifest)))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(resp.Body)
		tb.Fatalf("manifest put: %s: %s", resp.Status, msg)
	}
	return digest.FromBytes([]byte(manifest))
}
