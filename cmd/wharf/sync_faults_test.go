package main

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// cutWriter passes a response through until half of its Content-Length
// has been written, then flushes that half and aborts the connection: the
// client has the full Content-Length header and half the bytes.
type cutWriter struct {
	http.ResponseWriter
	half, written int64 // half < 0: no Content-Length, or not a 200; pass through
	cut           func()
}

func (c *cutWriter) WriteHeader(code int) {
	c.half = -1
	if cl, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64); err == nil && code == http.StatusOK && cl > 1 {
		c.half = cl / 2
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.half < 0 || c.written+int64(len(b)) < c.half {
		n, err := c.ResponseWriter.Write(b)
		c.written += int64(n)
		return n, err
	}
	n, _ := c.ResponseWriter.Write(b[:c.half-c.written])
	c.written += int64(n)
	c.ResponseWriter.(http.Flusher).Flush()
	c.cut()
	panic(http.ErrAbortHandler) // the server closes the connection without ending the body
}

func (c *cutWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// A mirror syncs from CNCF Distribution (TLS under the test's CA,
// htpasswd) through a proxy that answers the first HEAD of a manifest 429
// with Retry-After: 1, the first GET of a blob 503, and cuts the first GET
// of a large blob in the middle. The job still succeeds, with every tag at
// the upstream's digest and every blob whole: the transport retries the
// 429 after the Retry-After and the 503 after a backoff, the sync fetches
// the cut blob again.
func TestSyncThroughFaultyProxyFromDistribution(t *testing.T) {
	up := startDistribution(t)
	node := startAccessNodes(t, 1)[0]
	ctx := context.Background()

	big, err := random.Image(256<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(up.ref(t, "team/app:v1"), big, up.opts...); err != nil {
		t.Fatal(err)
	}
	small := up.pushImage(t, "team/app", "v2")
	idx := up.pushIndex(t, "team/app", "multi")
	want := map[string]v1.Hash{}
	want["v1"], _ = big.Digest()
	want["v2"], _ = small.Digest()
	want["multi"], _ = idx.Digest()

	bigLayers, _ := big.Layers()
	cutLayer := bigLayers[0]
	if size, _ := cutLayer.Size(); size < 64<<10 {
		t.Fatalf("the blob to cut is %d bytes, want at least 64 KiB", size)
	}
	cutDigest, _ := cutLayer.Digest()
	smallLayers, _ := small.Layers()
	busyDigest, _ := smallLayers[0].Digest()

	headKey := "/v2/team/app/manifests/v1"
	busyKey := "/v2/team/app/blobs/" + busyDigest.String()
	cutKey := "/v2/team/app/blobs/" + cutDigest.String()
	var tooMany, busy, cuts atomic.Int64
	var mu sync.Mutex
	var headTimes []time.Time // of the HEADs of headKey
	proxy := newFaultyProxy(t, up, func(w http.ResponseWriter, r *http.Request, n int, forward http.Handler) bool {
		switch {
		case r.Method == http.MethodHead && r.URL.Path == headKey:
			mu.Lock()
			headTimes = append(headTimes, time.Now())
			mu.Unlock()
			if n == 1 {
				tooMany.Add(1)
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			}
		case r.Method == http.MethodGet && r.URL.Path == busyKey && n == 1:
			busy.Add(1)
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		case r.Method == http.MethodGet && r.URL.Path == cutKey && n == 1:
			forward.ServeHTTP(&cutWriter{ResponseWriter: w, half: -1, cut: func() { cuts.Add(1) }}, r)
			return true
		}
		return false
	})

	if _, err := remotesAs(node, "admin", accAdminPassword).CreateRemote(ctx, req(&wharfv1.CreateRemoteRequest{
		Name: "dist", Url: proxy.srv.URL, Username: upstreamUser, Password: upstreamPassword,
		TimeoutNanos: int64(10 * time.Second),
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := node.reg.node.Apply(ctx, fsm.NewCommand(&fsmpb.CreateMirror{Mirror: &fsmpb.Mirror{
		Repository: "mirrors/app", Remote: "dist", Upstream: "team/app", MirrorMode: true, CreatedBy: "admin",
	}})); err != nil {
		t.Fatal(err)
	}

	job := syncAndWait(t, node, "mirrors/app")
	p := job.GetProgress()
	heads, busyGETs, cutGETs := proxy.count(http.MethodHead, headKey), proxy.count(http.MethodGet, busyKey), proxy.count(http.MethodGet, cutKey)
	t.Logf("sync through faults: %v, %v; injected 429 %d, 503 %d, cut %d; HEAD %s x%d, GET 503'd blob x%d, GET cut blob x%d; proxy saw %d GETs, %d manifest requests",
		job.GetState(), p, tooMany.Load(), busy.Load(), cuts.Load(), headKey, heads, busyGETs, cutGETs,
		proxy.count(http.MethodGet, ""), proxy.manifestRequests())
	if job.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED {
		t.Fatalf("sync through faults: %v %s %v", job.GetState(), job.GetError(), job.GetTagErrors())
	}

	// Each fault happened once, and its request was sent again, once.
	if tooMany.Load() != 1 || busy.Load() != 1 || cuts.Load() != 1 {
		t.Errorf("faults injected: 429 %d, 503 %d, cut %d; want one of each", tooMany.Load(), busy.Load(), cuts.Load())
	}
	if heads != 2 {
		t.Errorf("HEAD %s: %d requests, want 2 (the 429, then its retry)", headKey, heads)
	}
	if busyGETs != 2 {
		t.Errorf("GET %s: %d requests, want 2 (the 503, then its retry)", busyKey, busyGETs)
	}
	if cutGETs != 2 {
		t.Errorf("GET %s: %d requests, want 2 (the cut one, then the whole one)", cutKey, cutGETs)
	}
	mu.Lock()
	if len(headTimes) >= 2 {
		if wait := headTimes[1].Sub(headTimes[0]); wait < 950*time.Millisecond {
			t.Errorf("the 429'd HEAD was retried after %v, before its Retry-After: 1", wait)
		} else {
			t.Logf("the 429'd HEAD was retried after %v", wait)
		}
	}
	mu.Unlock()
	// 3 blobs of v1, 3 of v2, 2 of each of multi's two children: each
	// stored once, the cut one counted once.
	if p.GetBlobsFetched() != 10 || p.GetTagsFailed() != 0 {
		t.Errorf("progress %v: want 10 blobs fetched, no tag failed", p)
	}

	local := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: accAdminPassword})}
	ref := func(s string) name.Reference {
		r, err := name.ParseReference(node.host()+"/mirrors/app"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tags, err := remote.List(ref("").Context(), local...)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != len(want) {
		t.Errorf("local tags %v, upstream %v", tags, want)
	}
	for tag, d := range want {
		desc, err := remote.Head(ref(":"+tag), local...)
		if err != nil {
			t.Fatalf("HEAD %s here: %v", tag, err)
		}
		if desc.Digest != d {
			t.Fatalf("%s: %s here, %s upstream", tag, desc.Digest, d)
		}
	}
	for _, tag := range []string{"v1", "v2"} {
		img, err := remote.Image(ref(":"+tag), local...)
		if err != nil {
			t.Fatalf("pull %s through the node: %v", tag, err)
		}
		if _, err := img.RawConfigFile(); err != nil {
			t.Fatalf("%s: config: %v", tag, err)
		}
		if err := validateImage(img); err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
	}
	ii, err := remote.Index(ref(":multi"), local...)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		img, err := remote.Image(ref("@"+m.Digest.String()), local...)
		if err != nil {
			t.Fatalf("pull multi's child %s: %v", m.Digest, err)
		}
		if err := validateImage(img); err != nil {
			t.Fatalf("multi's child %s: %v", m.Digest, err)
		}
	}
}
