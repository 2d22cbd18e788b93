package remotesync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	dto "github.com/prometheus/client_model/go"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// reqLog records the requests an upstream answers, as "METHOD path".
type reqLog struct {
	mu   sync.Mutex
	reqs []string
}

func (l *reqLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// take returns the requests since the last take, pings (GET /v2/) left out.
func (l *reqLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.DeleteFunc(l.reqs, func(s string) bool { return s == "GET /v2/" })
	l.reqs = nil
	return out
}

func (l *reqLog) all() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.reqs)
}

// cacheEnv is a cache "hub" on remote "up", an in-process registry over
// TCP, filling a memSink, with the cluster's clock.
type cacheEnv struct {
	c     *localCluster
	up    *upstream
	log   *reqLog
	sink  *memSink
	cache *Cache
}

// newCacheEnv starts the upstream; wrap, when not nil, stands between the
// request log and the registry (faults are logged too).
func newCacheEnv(t *testing.T, ttl time.Duration, wrap func(http.Handler) http.Handler, nodes ...string) *cacheEnv {
	t.Helper()
	if len(nodes) == 0 {
		nodes = []string{"n1"}
	}
	e := &cacheEnv{c: newLocalCluster(t, nodes...), log: &reqLog{}, sink: newMemSink()}
	e.up = newUpstream(t, func(next http.Handler) http.Handler {
		if wrap != nil {
			next = wrap(next)
		}
		return e.log.wrap(next)
	})
	e.c.mustApply(&fsmpb.CreateRemote{Remote: &fsmpb.Remote{Name: "up", Url: e.up.srv.URL}})
	e.c.mustApply(&fsmpb.CreatePullThroughCache{Cache: &fsmpb.PullThroughCache{Namespace: "hub", Remote: "up", TagTtlNanos: int64(ttl)}})
	e.cache = NewCache(e.c, CacheConfig{
		Sink:    e.sink,
		Secrets: func(*fsmpb.Remote) (string, string, string, error) { return "", "", "", nil },
		Now:     e.c.clock,
	})
	return e
}

// fastRetries makes the retries of the cache's clients built so far quick,
// so that a dead upstream fails in milliseconds rather than seconds.
func (e *cacheEnv) fastRetries() {
	e.cache.mu.Lock()
	defer e.cache.mu.Unlock()
	for _, cl := range e.cache.clients {
		cl.rt.policy = retryPolicy{attempts: 3, base: time.Millisecond, ceiling: 4 * time.Millisecond, maxRetryAfter: time.Second}
	}
}

// layer returns the digest and bytes of img's only layer.
func layerOf(t *testing.T, img v1.Image) (digest.Digest, []byte) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil || len(ls) == 0 {
		t.Fatalf("layers: %v %d", err, len(ls))
	}
	d := mustDigest(t, ls[0])
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return d, b
}

// bigImage pushes an image of one layer of about 1 MiB, large enough to
// stream in many writes.
func (e *cacheEnv) bigImage(t *testing.T, repoTag string) (digest.Digest, []byte) {
	t.Helper()
	img, err := random.Image(1<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(e.up.ref(t, repoTag), img); err != nil {
		t.Fatal(err)
	}
	e.log.take()
	return layerOf(t, img)
}

func isBlobGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
}

func count(reqs []string, prefix string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

// A tag is fetched once, answered locally within its TTL, revalidated by
// one HEAD after it, and fetched again when it moved upstream.
func TestCacheRefreshTag(t *testing.T) {
	const ttl = 10 * time.Minute
	e := newCacheEnv(t, ttl, nil)
	ctx := context.Background()
	img := e.up.pushImage(t, "app:v1")
	d := mustDigest(t, img)
	e.log.take()

	if err := e.cache.RefreshManifest(ctx, "hub/app", "v1"); err != nil {
		t.Fatal(err)
	}
	want := []string{"HEAD /v2/app/manifests/v1", "GET /v2/app/manifests/" + d.String()}
	if got := e.log.take(); !slices.Equal(got, want) {
		t.Fatalf("first refresh sent %q, want %q", got, want)
	}
	if got, ok := e.sink.tag("hub/app", "v1"); !ok || got != d {
		t.Fatalf("tag v1 = %s (%v), want %s", got, ok, d)
	}
	if !e.sink.hasManifest("hub/app", d) || e.sink.count("PutBlob") != 0 || e.sink.count("LinkBlob") != 0 {
		t.Fatalf("stored more or less than the manifest: calls %v", e.sink.calls)
	}

	// Within the TTL: nothing is asked upstream, pings included.
	e.c.advance(ttl - time.Second)
	before := e.log.all()
	if err := e.cache.RefreshManifest(ctx, "hub/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if n := e.log.all() - before; n != 0 {
		t.Fatalf("refresh within the TTL sent %d requests: %q", n, e.log.take())
	}

	// Past it, unchanged upstream: one HEAD, nothing stored.
	e.c.advance(2 * time.Second)
	e.sink.resetCalls()
	if err := e.cache.RefreshManifest(ctx, "hub/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if got := e.log.take(); !slices.Equal(got, want[:1]) {
		t.Fatalf("revalidation sent %q, want %q", got, want[:1])
	}
	if e.sink.count("PutManifest") != 0 {
		t.Fatal("an unchanged tag was stored again")
	}

	// The tag moves upstream: the old copy is served until the TTL passes
	// again, then the new one is fetched and tagged.
	moved := e.up.pushImage(t, "app:v1")
	md := mustDigest(t, moved)
	e.log.take()
	if err := e.cache.RefreshManifest(ctx, "hub/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if got := e.log.take(); len(got) != 0 {
		t.Fatalf("refresh within the renewed TTL sent %q", got)
	}
	if got, _ := e.sink.tag("hub/app", "v1"); got != d {
		t.Fatalf("tag moved before the TTL passed: %s", got)
	}
	e.c.advance(ttl)
	if err := e.cache.RefreshManifest(ctx, "hub/app", "v1"); err != nil {
		t.Fatal(err)
	}
	want = []string{"HEAD /v2/app/manifests/v1", "GET /v2/app/manifests/" + md.String()}
	if got := e.log.take(); !slices.Equal(got, want) {
		t.Fatalf("refresh of the moved tag sent %q, want %q", got, want)
	}
	if got, _ := e.sink.tag("hub/app", "v1"); got != md {
		t.Fatalf("tag v1 = %s after it moved, want %s", got, md)
	}
	if !e.sink.hasManifest("hub/app", d) || !e.sink.hasManifest("hub/app", md) {
		t.Fatal("a manifest is missing")
	}
}

// A digest is fetched once and stored untagged; a held digest is never
// asked upstream, whatever the clock.
func TestCacheRefreshDigest(t *testing.T) {
	e := newCacheEnv(t, time.Minute, nil)
	ctx := context.Background()
	img := e.up.pushImage(t, "app:v1")
	d := mustDigest(t, img)
	e.log.take()

	if err := e.cache.RefreshManifest(ctx, "hub/app", d.String()); err != nil {
		t.Fatal(err)
	}
	want := []string{"GET /v2/app/manifests/" + d.String()}
	if got := e.log.take(); !slices.Equal(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
	if !e.sink.hasManifest("hub/app", d) {
		t.Fatal("manifest not stored")
	}
	if tags, _ := e.sink.Tags(ctx, "hub/app"); len(tags) != 0 {
		t.Fatalf("a digest pull tagged %v", tags)
	}
	e.c.advance(time.Hour)
	before := e.log.all()
	if err := e.cache.RefreshManifest(ctx, "hub/app", d.String()); err != nil {
		t.Fatal(err)
	}
	if n := e.log.all() - before; n != 0 {
		t.Fatalf("a held digest sent %d requests", n)
	}
}

// What the upstream lacks is ErrUpstreamMissing, an fs.ErrNotExist.
func TestCacheUpstreamMissing(t *testing.T) {
	e := newCacheEnv(t, time.Minute, nil)
	ctx := context.Background()
	e.up.pushImage(t, "app:v1")
	absent := digest.FromString("not upstream")
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"tag", func() error { return e.cache.RefreshManifest(ctx, "hub/app", "nope") }},
		{"manifest digest", func() error { return e.cache.RefreshManifest(ctx, "hub/app", absent.String()) }},
		{"repository", func() error { return e.cache.RefreshManifest(ctx, "hub/other", "v1") }},
		{"blob", func() error { _, err := e.cache.FetchBlob(ctx, "hub/app", absent, nil); return err }},
		{"blob size", func() error { _, err := e.cache.BlobSize(ctx, "hub/app", absent); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrUpstreamMissing) {
				t.Fatalf("got %v, want an fs.ErrNotExist", err)
			}
		})
	}
	if tags, _ := e.sink.Tags(ctx, "hub/app"); len(tags) != 0 || e.sink.count("PutBlob") != 0 {
		t.Fatalf("something was stored: %v %v", tags, e.sink.calls)
	}
}

// A held tag past its TTL that the upstream cannot confirm returns the
// error, keeps the local tag, and is asked again at the next pull.
func TestCacheUpstreamFailingKeepsStaleTag(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(e *cacheEnv, fail *atomic.Bool)
		again   bool // the next pull reaches the upstream again
	}{
		{"manifests answer 500", func(_ *cacheEnv, fail *atomic.Bool) { fail.Store(true) }, true},
		{"server closed", func(e *cacheEnv, _ *atomic.Bool) { e.up.srv.Close() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fail atomic.Bool
			e := newCacheEnv(t, time.Minute, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if fail.Load() && strings.Contains(r.URL.Path, "/manifests/") {
						http.Error(w, "broken", http.StatusInternalServerError)
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			ctx := context.Background()
			img := e.up.pushImage(t, "app:v1")
			d := mustDigest(t, img)
			if err := e.cache.RefreshManifest(ctx, "hub/app", "v1"); err != nil {
				t.Fatal(err)
			}
			e.fastRetries()
			e.up.pushImage(t, "app:v1") // moved, but the cache cannot see it
			e.log.take()
			tc.breakIt(e, &fail)
			e.c.advance(2 * time.Minute)
			e.sink.resetCalls()
			err := e.cache.RefreshManifest(ctx, "hub/app", "v1")
			if err == nil {
				t.Fatal("a failing upstream returned no error")
			}
			if errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("a failing upstream reads as a missing manifest: %v", err)
			}
			if got, ok := e.sink.tag("hub/app", "v1"); !ok || got != d {
				t.Fatalf("tag v1 = %s (%v), want the stale %s", got, ok, d)
			}
			if e.sink.count("PutManifest") != 0 || e.sink.count("DeleteTag") != 0 {
				t.Fatalf("the sink was written: %v", e.sink.calls)
			}
			if tc.again {
				e.log.take()
				if err := e.cache.RefreshManifest(ctx, "hub/app", "v1"); err == nil {
					t.Fatal("second pull: no error")
				}
				if got := e.log.take(); count(got, "HEAD /v2/app/manifests/v1") != 1 {
					t.Fatalf("an unconfirmed tag was taken as fresh: the next pull sent %q", got)
				}
			}
		})
	}
}

// recorder collects what a FetchBlob streams.
type recorder struct {
	mu     sync.Mutex
	size   int64
	starts int
	buf    bytes.Buffer
}

func (r *recorder) start(size int64) io.Writer {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.size = size
	r.starts++
	return r
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

// A blob is streamed whole to the client that started it and stored.
func TestCacheFetchBlobStreamsAndStores(t *testing.T) {
	e := newCacheEnv(t, time.Minute, nil)
	ctx := context.Background()
	d, want := e.bigImage(t, "app:v1")

	var rec recorder
	streamed, err := e.cache.FetchBlob(ctx, "hub/app", d, rec.start)
	if err != nil || !streamed {
		t.Fatalf("FetchBlob = %v, %v; want streamed", streamed, err)
	}
	if rec.starts != 1 || rec.size != int64(len(want)) || !bytes.Equal(rec.buf.Bytes(), want) {
		t.Fatalf("streamed %d bytes (size %d, %d starts), want %d", rec.buf.Len(), rec.size, rec.starts, len(want))
	}
	if got, ok := e.sink.blob(d); !ok || !bytes.Equal(got, want) || !e.sink.hasBlob("hub/app", d) {
		t.Fatal("blob not stored and linked")
	}
	reqs := e.log.take()
	if count(reqs, "GET /v2/app/blobs/") != 1 || count(reqs, "HEAD /v2/app/blobs/") != 1 {
		t.Fatalf("sent %q, want one HEAD and one GET of the blob", reqs)
	}

	// Held: linked locally, not streamed, nothing sent.
	streamed, err = e.cache.FetchBlob(ctx, "hub/app", d, rec.start)
	if err != nil || streamed || rec.starts != 1 {
		t.Fatalf("held blob: streamed=%v err=%v starts=%d", streamed, err, rec.starts)
	}
	if got := e.log.take(); len(got) != 0 {
		t.Fatalf("held blob sent %q", got)
	}
}

// Concurrent pulls of one blob, from several repositories, cause one
// upstream GET; one caller streams it, the others find it linked.
func TestCacheFetchBlobOnceForConcurrentPulls(t *testing.T) {
	const n = 8
	gate := make(chan struct{})
	arrived := make(chan struct{}, 1)
	e := newCacheEnv(t, time.Minute, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if isBlobGet(r) {
				select {
				case arrived <- struct{}{}:
				default:
				}
				<-gate
			}
			next.ServeHTTP(w, r)
		})
	})
	ctx := context.Background()
	d, want := e.bigImage(t, "app0:v1")
	// The in-memory registry serves a blob from any repository; the cache
	// asks the upstream repository of the pull that leads the fetch.

	var wg sync.WaitGroup
	recs := make([]recorder, n)
	streamed := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			streamed[i], errs[i] = e.cache.FetchBlob(ctx, fmt.Sprintf("hub/app%d", i), d, recs[i].start)
		})
	}
	<-arrived
	// Let the other pulls join the fetch that holds the GET; the outcome
	// checked below is the same if some come after it ended.
	time.Sleep(100 * time.Millisecond)
	close(gate)
	wg.Wait()

	leaders := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("pull %d: %v", i, errs[i])
		}
		if streamed[i] {
			leaders++
			if !bytes.Equal(recs[i].buf.Bytes(), want) {
				t.Errorf("pull %d streamed %d of %d bytes", i, recs[i].buf.Len(), len(want))
			}
		} else if recs[i].starts != 0 {
			t.Errorf("pull %d: start called, yet not streamed", i)
		}
		if !e.sink.hasBlob(fmt.Sprintf("hub/app%d", i), d) {
			t.Errorf("pull %d: blob not linked into its repository", i)
		}
	}
	if leaders != 1 {
		t.Errorf("%d pulls streamed, want 1", leaders)
	}
	reqs := e.log.take()
	blobGets := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET ") && strings.Contains(r, "/blobs/") {
			blobGets++
		}
	}
	if blobGets != 1 {
		t.Errorf("%d upstream blob GETs (%q), want 1", blobGets, reqs)
	}
	if e.sink.count("PutBlob") != 1 {
		t.Errorf("%d PutBlob calls, want 1", e.sink.count("PutBlob"))
	}
	var m dto.Metric
	if err := e.cache.metrics.results.WithLabelValues("shared").Write(&m); err == nil {
		t.Logf("pulls that joined the running fetch: %v of %d", m.GetCounter().GetValue(), n-1)
	}
}

// failAfter accepts its first write and fails every later one.
type failAfter struct{ writes int }

func (f *failAfter) Write(p []byte) (int, error) {
	f.writes++
	if f.writes > 1 {
		return 0, errors.New("client went away")
	}
	return len(p), nil
}

// A client that goes away mid-stream does not stop the cache's fetch.
func TestCacheFetchBlobOutlivesFailingClient(t *testing.T) {
	e := newCacheEnv(t, time.Minute, nil)
	d, want := e.bigImage(t, "app:v1")
	w := &failAfter{}
	streamed, err := e.cache.FetchBlob(context.Background(), "hub/app", d, func(int64) io.Writer { return w })
	if err != nil || !streamed {
		t.Fatalf("FetchBlob = %v, %v; want streamed without error", streamed, err)
	}
	if w.writes != 2 {
		t.Errorf("the failed writer got %d writes, want 2 (dropped after its failure)", w.writes)
	}
	if got, ok := e.sink.blob(d); !ok || !bytes.Equal(got, want) {
		t.Fatal("the whole blob was not stored")
	}
}

// cutOnce cuts the next blob GET after half its body, with the whole
// Content-Length announced, when armed.
type cutOnce struct{ armed atomic.Bool }

func (c *cutOnce) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isBlobGet(r) || !c.armed.Swap(false) {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
}

// A stream the upstream cuts fails the fetch (the client got part of the
// blob) and stores nothing; the next pull fetches it whole. The resilient
// transport retries only until the response headers: a body cut after
// them is not retried.
func TestCacheFetchBlobCutMidStream(t *testing.T) {
	cut := &cutOnce{}
	e := newCacheEnv(t, time.Minute, cut.wrap)
	ctx := context.Background()
	d, want := e.bigImage(t, "app:v1")

	cut.armed.Store(true)
	var rec recorder
	streamed, err := e.cache.FetchBlob(ctx, "hub/app", d, rec.start)
	if err == nil {
		t.Fatal("a cut stream returned no error")
	}
	if !streamed || rec.starts != 1 {
		t.Fatalf("streamed=%v starts=%d, want the client told it got a stream", streamed, rec.starts)
	}
	if rec.buf.Len() >= len(want) {
		t.Fatalf("the client got %d of %d bytes of a cut stream", rec.buf.Len(), len(want))
	}
	if _, ok := e.sink.blob(d); ok || e.sink.hasBlob("hub/app", d) {
		t.Fatal("a cut blob was stored")
	}
	if got := count(e.log.take(), "GET /v2/app/blobs/"); got != 1 {
		t.Errorf("%d GETs of the cut blob, want 1 (no retry of a body)", got)
	}

	rec = recorder{}
	streamed, err = e.cache.FetchBlob(ctx, "hub/app", d, rec.start)
	if err != nil || !streamed || !bytes.Equal(rec.buf.Bytes(), want) {
		t.Fatalf("after the cut: streamed=%v err=%v, %d of %d bytes", streamed, err, rec.buf.Len(), len(want))
	}
	if got, ok := e.sink.blob(d); !ok || !bytes.Equal(got, want) {
		t.Fatal("blob not stored after the cut")
	}
}

// redirectBlobs answers blob GETs with a 307 to a second server, standing
// for object storage, that serves the registry's bytes.
type redirectBlobs struct {
	objects *httptest.Server
	hits    atomic.Int64
	inner   atomic.Pointer[http.Handler]
}

func newRedirectBlobs(t *testing.T) *redirectBlobs {
	t.Helper()
	rb := &redirectBlobs{}
	rb.objects = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rb.hits.Add(1)
		repo, d, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/objects/"), "/sha256:")
		h := rb.inner.Load()
		if r.Method != http.MethodGet || !ok || h == nil || r.URL.Query().Get("sig") != "x" {
			http.Error(w, "no such object", http.StatusForbidden)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/v2/" + repo + "/blobs/sha256:" + d
		(*h).ServeHTTP(w, r2)
	}))
	t.Cleanup(rb.objects.Close)
	return rb
}

func (rb *redirectBlobs) wrap(next http.Handler) http.Handler {
	rb.inner.Store(&next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, d, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/blobs/")
		if !isBlobGet(r) || !ok || strings.HasPrefix(d, "uploads") {
			next.ServeHTTP(w, r)
			return
		}
		http.Redirect(w, r, rb.objects.URL+"/objects/"+repo+"/"+d+"?sig=x", http.StatusTemporaryRedirect)
	})
}

// A blob GET redirected to object storage is followed.
func TestCacheFetchBlobRedirect(t *testing.T) {
	rb := newRedirectBlobs(t)
	e := newCacheEnv(t, time.Minute, rb.wrap)
	d, want := e.bigImage(t, "app:v1")
	var rec recorder
	streamed, err := e.cache.FetchBlob(context.Background(), "hub/app", d, rec.start)
	if err != nil || !streamed || !bytes.Equal(rec.buf.Bytes(), want) {
		t.Fatalf("streamed=%v err=%v, %d of %d bytes", streamed, err, rec.buf.Len(), len(want))
	}
	if got, ok := e.sink.blob(d); !ok || !bytes.Equal(got, want) {
		t.Fatal("redirected blob not stored")
	}
	if rb.hits.Load() != 1 {
		t.Errorf("object storage got %d requests, want 1", rb.hits.Load())
	}
}

// A sync follows redirects of blob GETs too.
func TestSyncBlobRedirect(t *testing.T) {
	rb := newRedirectBlobs(t)
	up := newUpstream(t, rb.wrap)
	a := up.pushImage(t, "app:a")
	b := up.pushImage(t, "app:b")
	sink := newMemSink()
	p := runSync(t, newTestSyncer(t, Upstream{URL: up.srv.URL}, sink), Job{Repository: localRepo, Upstream: "app"})
	checkImage(t, sink, "a", a)
	checkImage(t, sink, "b", b)
	// Two layers and a config per image, each GET redirected once.
	if rb.hits.Load() != 6 || p.BlobsFetched != 6 {
		t.Errorf("object storage got %d requests, blobs_fetched %d; want 6 and 6", rb.hits.Load(), p.BlobsFetched)
	}
}

// Each blob has one owner among the live nodes, whatever their order; the
// owners spread; a node leaving moves only its own blobs.
func TestCacheBlobOwner(t *testing.T) {
	c := newLocalCluster(t, "n1", "n2", "n3")
	pc := NewCache(c, CacheConfig{Sink: newMemSink()})
	other := NewCache(c, CacheConfig{Sink: newMemSink()})
	rng := rand.New(rand.NewPCG(1, 2))
	ds := make([]digest.Digest, 300)
	for i := range ds {
		ds[i] = digest.FromString(fmt.Sprint(rng.Uint64()))
	}
	owners := map[digest.Digest]string{}
	per := map[string]int{}
	for _, d := range ds {
		o := pc.BlobOwner(d)
		owners[d] = o
		per[o]++
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if per[n] < 50 {
			t.Errorf("node %s owns %d of 300 blobs, want at least 50: %v", n, per[n], per)
		}
	}
	c.setLive("n3", "n1", "n2")
	for _, d := range ds {
		if o, o2 := pc.BlobOwner(d), other.BlobOwner(d); o != owners[d] || o2 != owners[d] {
			t.Fatalf("owner of %s: %s and %s, first %s", d, o, o2, owners[d])
		}
	}
	c.setLive("n1", "n3")
	moved := 0
	for _, d := range ds {
		o := pc.BlobOwner(d)
		switch {
		case owners[d] == "n2" && o == "n2":
			t.Fatalf("%s still owned by the node that left", d)
		case owners[d] == "n2":
			moved++
		case o != owners[d]:
			t.Fatalf("%s moved from %s to %s though its owner stayed", d, owners[d], o)
		}
	}
	if moved != per["n2"] {
		t.Errorf("%d blobs moved, want the %d of n2", moved, per["n2"])
	}
	c.setLive()
	if o := pc.BlobOwner(ds[0]); o != c.NodeID() {
		t.Errorf("no live nodes: owner %s, want this node", o)
	}
}

// BlobSize asks the upstream by a HEAD and stores nothing.
func TestCacheBlobSize(t *testing.T) {
	e := newCacheEnv(t, time.Minute, nil)
	d, want := e.bigImage(t, "app:v1")
	size, err := e.cache.BlobSize(context.Background(), "hub/app", d)
	if err != nil || size != int64(len(want)) {
		t.Fatalf("BlobSize = %d, %v; want %d", size, err, len(want))
	}
	if got, wantReqs := e.log.take(), []string{"HEAD /v2/app/blobs/" + d.String()}; !slices.Equal(got, wantReqs) {
		t.Fatalf("sent %q, want %q", got, wantReqs)
	}
	if e.sink.count("PutBlob") != 0 || e.sink.count("LinkBlob") != 0 {
		t.Fatalf("BlobSize wrote to the sink: %v", e.sink.calls)
	}
}
