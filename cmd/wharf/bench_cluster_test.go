package main

// Cluster benchmarks over the in-process harness:
//
//	go test -run='^$' -bench=Cluster -benchtime=2x ./cmd/wharf/
//
// WHARF_BENCH_LARGE=1 adds a 1 GiB push and repairs 1 GiB instead of
// 256 MiB.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}

func benchLarge() bool { return os.Getenv("WHARF_BENCH_LARGE") == "1" }

// benchPassword is the admin password benchDo sends: the harness nodes'
// one, unless a benchmark of nodes started elsewhere sets theirs
// (BenchmarkExternalPush).
var benchPassword = harnessAdminPassword

// blobSource is a blob generated on the fly from a seed, so that no blob
// is ever held in memory: Digest hashes one pass, Reader streams another.
type blobSource struct {
	seed uint64
	size int64
}

func (s blobSource) Reader() io.Reader {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], s.seed)
	return io.LimitReader(rand.NewChaCha8(seed), s.size)
}

func (s blobSource) Digest() digest.Digest {
	h := sha256.New()
	if _, err := io.Copy(h, s.Reader()); err != nil {
		panic(err)
	}
	return digest.NewDigest(digest.SHA256, h)
}

// benchDo sends one request and fails the benchmark unless it answers want.
func benchDo(b testing.TB, method, url string, hdr http.Header, body io.Reader, size int64, want int) http.Header {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = size
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.SetBasicAuth(adminUser, benchPassword)
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		b.Fatalf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, msg)
	}
	return resp.Header
}

// pushSteps adds up, over many pushes, the time each request of
// pushImageOfBlob took, so that a benchmark can say where a push spends
// its time. A nil *pushSteps records nothing. Safe for concurrent pushes.
type pushSteps struct {
	mu    sync.Mutex
	total [numPushSteps]time.Duration
	count int
}

// The requests of one push, in order.
const (
	stepConfig   = iota // POST ?digest= of the config blob, monolithic
	stepPost            // POST that opens the layer's upload session
	stepPatch           // PATCH with the whole layer
	stepPut             // PUT ?digest= that completes the layer
	stepManifest        // PUT of the manifest
	numPushSteps
)

var pushStepNames = [numPushSteps]string{"config", "post", "patch", "put", "manifest"}

// time runs one request of a push and adds its duration to step.
func (s *pushSteps) time(step int, do func()) {
	start := time.Now()
	do()
	if s == nil {
		return
	}
	s.mu.Lock()
	s.total[step] += time.Since(start)
	if step == stepManifest {
		s.count++
	}
	s.mu.Unlock()
}

// report adds each step's mean, in ms, as a metric named prefix-step-ms.
func (s *pushSteps) report(b *testing.B, prefix string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count == 0 {
		return
	}
	for i, name := range pushStepNames {
		b.ReportMetric(float64(s.total[i].Microseconds())/1e3/float64(s.count), prefix+"-"+name+"-ms")
	}
}

// pushBlobChunked pushes a blob the way podman does: POST, one PATCH with
// the whole stream, PUT ?digest=. Behind the balancer each lands on
// another node.
func pushBlobChunked(b testing.TB, base, repo string, src blobSource, d digest.Digest, steps *pushSteps) {
	var hdr http.Header
	steps.time(stepPost, func() {
		hdr = benchDo(b, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/", nil, nil, 0, http.StatusAccepted)
	})
	loc := resolve(b, base, hdr.Get("Location"))
	steps.time(stepPatch, func() {
		hdr = benchDo(b, http.MethodPatch, loc, http.Header{"Content-Type": {"application/octet-stream"}},
			src.Reader(), src.size, http.StatusAccepted)
	})
	loc = resolve(b, base, hdr.Get("Location"))
	sep := "?"
	if bytes.ContainsRune([]byte(loc), '?') {
		sep = "&"
	}
	steps.time(stepPut, func() {
		benchDo(b, http.MethodPut, loc+sep+"digest="+d.String(), nil, nil, 0, http.StatusCreated)
	})
}

// pushImageOfBlob pushes a config, the blob as its one layer, and the
// manifest, which the registry accepts only once the blobs have W copies.
// It returns the config's digest. steps, when not nil, records how long
// each request took.
func pushImageOfBlob(b testing.TB, base, repo, tag string, src blobSource, d digest.Digest, steps *pushSteps) digest.Digest {
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","seed":%d}`, src.seed))
	cd := digest.FromBytes(config)
	steps.time(stepConfig, func() {
		benchDo(b, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+cd.String(),
			nil, bytes.NewReader(config), int64(len(config)), http.StatusCreated)
	})
	pushBlobChunked(b, base, repo, src, d, steps)
	m := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},`+
		`"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`,
		cd, len(config), d, src.size)
	steps.time(stepManifest, func() {
		benchDo(b, http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag,
			http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}},
			bytes.NewReader(m), int64(len(m)), http.StatusCreated)
	})
	return cd
}

// BenchmarkClusterPush: one blob plus its manifest (whose PUT waits for W
// copies) through the balancer to 3 nodes with R=3 W=2, against the same
// push to a lone node. Reports both rates and cluster/single.
func BenchmarkClusterPush(b *testing.B) {
	three := startHarness(b, harnessOpts{nodes: 3, replicas: 3, writeQuorum: 2})
	one := startHarness(b, harnessOpts{nodes: 1, replicas: 3, writeQuorum: 2})
	sizes := []int64{1 << 20, 10 << 20, 100 << 20}
	if benchLarge() {
		sizes = append(sizes, 1<<30)
	}
	seed := uint64(time.Now().UnixNano())
	for _, size := range sizes {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			var clusterTime, singleTime time.Duration
			var clusterSteps, singleSteps pushSteps
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				seed++
				src := blobSource{seed: seed, size: size}
				d := src.Digest()
				b.StartTimer()
				tag := fmt.Sprintf("s%d", seed)
				start := time.Now()
				pushImageOfBlob(b, three.lbURL(), "bench/push", tag, src, d, &clusterSteps)
				clusterTime += time.Since(start)
				start = time.Now()
				pushImageOfBlob(b, one.nodes[0].baseURL, "bench/push", tag, src, d, &singleSteps)
				singleTime += time.Since(start)
			}
			mb := float64(size) * float64(b.N) / 1e6
			b.ReportMetric(mb/clusterTime.Seconds(), "cluster-MB/s")
			b.ReportMetric(mb/singleTime.Seconds(), "single-MB/s")
			b.ReportMetric(singleTime.Seconds()/clusterTime.Seconds(), "cluster/single")
			clusterSteps.report(b, "cluster")
			singleSteps.report(b, "single")
		})
	}
}

// BenchmarkClusterRepair: 4 nodes, R=2 W=2, 256 MiB of layers (2 GiB with
// WHARF_BENCH_LARGE=1, so that the node that dies holds about 1 GiB), each
// recorded on exactly its 2 owners (extra copies trimmed); the follower
// holding the most crashes. Measures the time from the crash until every
// blob it held is back at 2 live copies (on disk and in the FSM);
// repaired-MB/s counts the bytes of the blobs that were left with one copy.
func BenchmarkClusterRepair(b *testing.B) {
	count, size := 32, int64(8<<20)
	if benchLarge() {
		count, size = 128, 16<<20
	}
	var total time.Duration
	var repairedBytes int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h := startHarness(b, harnessOpts{nodes: 4, replicas: 2, writeQuorum: 2})
		var blobs []digest.Digest
		base := uint64(time.Now().UnixNano())
		for j := range count {
			src := blobSource{seed: base + uint64(j), size: size}
			d := src.Digest()
			// Written on one of its owners, so that it has exactly R copies
			// and every blob the victim holds needs repair.
			owner := h.owners(d, h.nodes, 2)[0]
			config := pushImageOfBlob(b, h.nodes[owner].baseURL, "bench/repair", fmt.Sprintf("b%d", j), src, d, nil)
			blobs = append(blobs, d, config)
		}
		leader := h.leader()
		// Every blob at exactly R holders: the copies and the trims of
		// extra holders (repair, every 200ms here) are done.
		waitUntil(b, 120*time.Second, func() error {
			for _, d := range blobs {
				if got := h.holders(leader, d); len(got) != 2 {
					return fmt.Errorf("blob %s has holders %v", d, got)
				}
			}
			return nil
		})
		// The victim: the follower recorded as holding the most blobs,
		// each of which it leaves with one live copy.
		victim, exposed := -1, []digest.Digest(nil)
		for _, n := range h.nodes {
			var mine []digest.Digest
			for _, d := range blobs {
				if slices.Contains(h.holders(leader, d), n.idx) {
					mine = append(mine, d)
				}
			}
			if n.idx != leader && len(mine) > len(exposed) {
				victim, exposed = n.idx, mine
			}
		}
		held := exposed
		b.StartTimer()
		died := time.Now()
		h.crash(victim)
		waitUntil(b, 120*time.Second, func() error {
			for _, d := range held {
				disk := h.onDisk(d)
				live := 0
				for _, x := range h.holders(leader, d) {
					if x != victim && slices.Contains(disk, x) {
						live++
					}
				}
				if live < 2 {
					return fmt.Errorf("blob %s has %d live copies", d, live)
				}
			}
			return nil
		})
		took := time.Since(died)
		b.StopTimer()
		total += took
		exposedBytes := int64(0)
		for _, d := range exposed {
			size, err := h.nodes[leader].registry().replica.Stat(context.Background(), d)
			if err != nil {
				b.Fatal(err)
			}
			exposedBytes += size
		}
		repairedBytes += exposedBytes
		b.Logf("n%d died holding %d of %d blobs (layers and configs), %d (%.1f MiB) of them left with one live copy; all back at 2 live copies after %v",
			victim, len(held), len(blobs), len(exposed), float64(exposedBytes)/(1<<20), took.Round(time.Millisecond))
		h.shutdown()
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "repair-s")
	b.ReportMetric(float64(repairedBytes)/1e6/total.Seconds(), "repaired-MB/s")
}

// percentile returns the p-th percentile (0..100) of ds, sorting it.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// benchImage pushes a small image to repo:tag through the balancer.
func benchImage(b *testing.B, h *harness, repo, tag string) {
	src := blobSource{seed: uint64(time.Now().UnixNano()), size: 4 << 10}
	pushImageOfBlob(b, h.lbURL(), repo, tag, src, src.Digest(), nil)
}

// BenchmarkClusterTagWrite: writing a tag (a manifest PUT of an image whose
// blobs are durable, to a new tag) through a follower of 3 nodes, where the
// PUT checks references with read indexes and forwards the commit to the
// leader; and, for comparison, through the leader. A follower learns of a
// commit only with the leader's next AppendEntries, so the follower's
// figure follows Raft's CommitTimeout (cluster.Config default 5ms).
// Reports p50 and p99.
func BenchmarkClusterTagWrite(b *testing.B) {
	h := startHarness(b, harnessOpts{nodes: 3})
	defer h.shutdown()
	benchImage(b, h, "bench/tags", "base")
	for _, role := range []string{"follower", "leader"} {
		b.Run(role, func(b *testing.B) {
			node := h.nodes[h.leader()].baseURL
			if role == "follower" {
				node = h.nodes[h.follower()].baseURL
			}
			manifest := getBody(b, node+"/v2/bench/tags/manifests/base")
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				benchDo(b, http.MethodPut, fmt.Sprintf("%s/v2/bench/tags/manifests/%s%d", node, role, i),
					http.Header{"Content-Type": {"application/vnd.oci.image.manifest.v1+json"}},
					bytes.NewReader(manifest), int64(len(manifest)), http.StatusCreated)
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			b.ReportMetric(micros(percentile(lat, 50)), "p50-µs")
			b.ReportMetric(micros(percentile(lat, 99)), "p99-µs")
		})
	}
}

func getBody(b testing.TB, url string) []byte {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth(adminUser, harnessAdminPassword)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	resp, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return body
}

// BenchmarkClusterManifestGet: linearizable manifest GETs by tag through a
// follower of 3 nodes (each resolves the tag after a read index from the
// leader; concurrent reads share one), from 16 concurrent clients.
// Reports GETs per second and the p99 latency.
func BenchmarkClusterManifestGet(b *testing.B) {
	const clients = 16
	h := startHarness(b, harnessOpts{nodes: 3})
	benchImage(b, h, "bench/gets", "v1")
	url := h.nodes[h.follower()].baseURL + "/v2/bench/gets/manifests/v1"
	want := getBody(b, url)
	lats := make([][]time.Duration, clients)
	var next sync.WaitGroup
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	errs := make(chan error, clients)
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		next.Go(func() {
			for range work {
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.SetBasicAuth(adminUser, harnessAdminPassword)
				req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
				resp, err := benchClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
					errs <- fmt.Errorf("GET: %d %v", resp.StatusCode, err)
					return
				}
				lats[c] = append(lats[c], time.Since(t0))
			}
		})
	}
	next.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "gets/s")
	b.ReportMetric(micros(percentile(all, 50)), "p50-µs")
	b.ReportMetric(micros(percentile(all, 99)), "p99-µs")
}
