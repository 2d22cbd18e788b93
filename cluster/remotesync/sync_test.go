package remotesync

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const localRepo = "mirror/app"

// upstream is an in-memory registry over HTTP, with a request count.
type upstream struct {
	srv      *httptest.Server
	host     string
	requests atomic.Int64
}

func newUpstream(t testing.TB, wrap func(http.Handler) http.Handler) *upstream {
	t.Helper()
	u := &upstream{}
	var h http.Handler = withLinks(registry.New(registry.Logger(nopLogger())))
	if wrap != nil {
		h = wrap(h)
	}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	u.host = strings.TrimPrefix(u.srv.URL, "http://")
	return u
}

func (u *upstream) ref(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(u.host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// pushImage pushes a random image as repo:tag and returns it.
func (u *upstream) pushImage(t testing.TB, repoTag string) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(u.ref(t, repoTag), img); err != nil {
		t.Fatal(err)
	}
	return img
}

func (u *upstream) tag(t testing.TB, repoTag string, img v1.Image) {
	t.Helper()
	if err := remote.Write(u.ref(t, repoTag), img); err != nil {
		t.Fatal(err)
	}
}

func (u *upstream) deleteTag(t testing.TB, repoTag string) {
	t.Helper()
	if err := remote.Delete(u.ref(t, repoTag)); err != nil {
		t.Fatal(err)
	}
}

// pushIndex pushes an index of one random image per platform.
func (u *upstream) pushIndex(t testing.TB, repoTag string, platforms ...v1.Platform) (v1.ImageIndex, []v1.Image) {
	t.Helper()
	var idx v1.ImageIndex = empty.Index
	var imgs []v1.Image
	for _, p := range platforms {
		img, err := random.Image(1024, 1)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	if err := remote.WriteIndex(u.ref(t, repoTag), idx); err != nil {
		t.Fatal(err)
	}
	return idx, imgs
}

// withLinks adds the Link header of the next page to a full page of a
// tags listing, as real registries do; go-containerregistry's in-memory
// registry pages by n and last but does not link the pages.
func withLinks(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if !strings.HasSuffix(r.URL.Path, "/tags/list") || n <= 0 {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var page struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK && json.Unmarshal(body, &page) == nil {
			// The in-memory registry answers a last beyond every tag with
			// all of them: keep only the tags after last.
			if last := r.URL.Query().Get("last"); last != "" {
				page.Tags = slices.DeleteFunc(page.Tags, func(t string) bool { return t <= last })
			}
			if len(page.Tags) == n {
				q := url.Values{"n": {strconv.Itoa(n)}, "last": {page.Tags[n-1]}}
				w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, q.Encode()))
			}
			body, _ = json.Marshal(page)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	})
}

func nopLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func newTestSyncer(t testing.TB, up Upstream, sink Sink) *Syncer {
	t.Helper()
	s, err := NewSyncer(up, sink, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s.retry = retryPolicy{attempts: 6, base: 5 * time.Millisecond, ceiling: 40 * time.Millisecond, maxRetryAfter: 60 * time.Second}
	return s
}

func mustDigest(t testing.TB, x interface{ Digest() (v1.Hash, error) }) digest.Digest {
	t.Helper()
	h, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(h.String())
}

// checkImage fails unless the sink holds img under tag, with its blobs.
func checkImage(t *testing.T, sink *memSink, tag string, img v1.Image) {
	t.Helper()
	want := mustDigest(t, img)
	if tag != "" {
		if got, ok := sink.tag(localRepo, tag); !ok || got != want {
			t.Fatalf("tag %s: got %s (%v), want %s", tag, got, ok, want)
		}
	}
	if !sink.hasManifest(localRepo, want) {
		t.Fatalf("manifest %s missing", want)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		if !sink.hasBlob(localRepo, digest.Digest(b.Digest.String())) {
			t.Fatalf("blob %s of %s missing", b.Digest, tag)
		}
	}
}

func runSync(t *testing.T, s *Syncer, job Job) *fsmpb.SyncProgress {
	t.Helper()
	p, errs, err := s.Sync(context.Background(), job, nil)
	if err != nil {
		t.Fatalf("sync: %v", err)
	}
	if len(errs) > 0 {
		t.Fatalf("tag errors: %v", errs)
	}
	return p
}

func TestSyncFirstThenUnchanged(t *testing.T) {
	up := newUpstream(t, nil)
	a := up.pushImage(t, "app:a")
	b := up.pushImage(t, "app:b")
	up.tag(t, "app:b-again", b)
	idx, children := up.pushIndex(t, "app:multi", v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})

	sink := newMemSink()
	s := newTestSyncer(t, Upstream{URL: up.srv.URL}, sink)
	job := Job{Repository: localRepo, Upstream: "app"}
	var reports int
	p, errs, err := s.Sync(context.Background(), job, func(*fsmpb.SyncProgress, []*fsmpb.SyncTagError) { reports++ })
	if err != nil || len(errs) > 0 {
		t.Fatalf("sync: %v %v", err, errs)
	}
	if reports < 4 {
		t.Errorf("got %d reports, want one per tag at least", reports)
	}
	if p.TagsTotal != 4 || p.TagsDone != 4 || p.TagsUnchanged != 0 || p.TagsFailed != 0 {
		t.Errorf("progress %v", p)
	}
	checkImage(t, sink, "a", a)
	checkImage(t, sink, "b", b)
	checkImage(t, sink, "b-again", b)
	for _, c := range children {
		checkImage(t, sink, "", c)
	}
	if got, _ := sink.tag(localRepo, "multi"); got != mustDigest(t, idx) {
		t.Fatalf("multi: got %s, want %s", got, mustDigest(t, idx))
	}
	// The index was stored after its children.
	last := sink.order[len(sink.order)-1]
	for i, o := range sink.order {
		if strings.Contains(o, mustDigest(t, idx).String()) && i < 2 {
			t.Errorf("index stored before its children: %v", sink.order)
		}
	}
	_ = last

	// Nothing changed: only the ping, the list page and one HEAD per tag.
	// (go-containerregistry's ping of a plain-http registry tries https
	// first: an attempt sent, and counted, that the server never answers.)
	sink.resetCalls()
	up.requests.Store(0)
	p = runSync(t, s, job)
	const ping, pages, heads = 1, 1, 4
	if got := up.requests.Load(); got != ping+pages+heads {
		t.Errorf("unchanged sync sent %d requests, want %d", got, ping+pages+heads)
	}
	if p.UpstreamRequests != ping+pages+heads+1 {
		t.Errorf("upstream_requests %d, want %d", p.UpstreamRequests, ping+pages+heads+1)
	}
	if p.TagsUnchanged != 4 || p.BlobsFetched != 0 || p.ManifestsFetched != 0 || sink.count("PutBlob") != 0 || sink.count("PutManifest") != 0 {
		t.Errorf("unchanged sync moved content: %v, calls %v", p, sink.calls)
	}
}

func TestSyncChanges(t *testing.T) {
	for _, tc := range []struct {
		name        string
		mirror      bool
		wantDeleted bool
	}{
		{"plain", false, false},
		{"mirror mode", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t, nil)
			a := up.pushImage(t, "app:a")
			up.pushImage(t, "app:moving")
			up.pushImage(t, "app:gone")
			sink := newMemSink()
			s := newTestSyncer(t, Upstream{URL: up.srv.URL}, sink)
			job := Job{Repository: localRepo, Upstream: "app", MirrorMode: tc.mirror}
			runSync(t, s, job)

			fresh := up.pushImage(t, "app:new")
			moved := up.pushImage(t, "app:moving")
			up.deleteTag(t, "app:gone")
			sink.resetCalls()
			p := runSync(t, s, job)
			checkImage(t, sink, "a", a)
			checkImage(t, sink, "new", fresh)
			checkImage(t, sink, "moving", moved)
			if p.TagsUnchanged != 1 || p.ManifestsFetched != 2 || p.BlobsFetched != 6 {
				t.Errorf("progress %v: want only the new and the moved tag fetched", p)
			}
			_, kept := sink.tag(localRepo, "gone")
			if kept == tc.wantDeleted {
				t.Errorf("gone kept=%v, want deleted=%v", kept, tc.wantDeleted)
			}
			if tc.wantDeleted && p.TagsDeleted != 1 {
				t.Errorf("tags_deleted %d", p.TagsDeleted)
			}
		})
	}
}

func TestSyncFilters(t *testing.T) {
	up := newUpstream(t, nil)
	tags := []string{"1.0", "1.1", "1.1-rc1", "2.0", "1.0-source", "latest"}
	imgs := map[string]v1.Image{}
	for _, tg := range tags {
		imgs[tg] = up.pushImage(t, "app:"+tg)
	}
	for _, tc := range []struct {
		name             string
		include, exclude []string
		want             []string
	}{
		{"all", nil, nil, []string{"1.0", "1.1", "1.1-rc1", "2.0", "latest"}},
		{"include glob", []string{"1.*"}, nil, []string{"1.0", "1.1", "1.1-rc1"}},
		{"include and exclude", []string{"1.*"}, []string{"*-rc?"}, []string{"1.0", "1.1"}},
		{"source is never kept", []string{"*-source"}, nil, nil},
		{"exclude by digest", nil, []string{mustDigest(t, imgs["latest"]).String()}, []string{"1.0", "1.1", "1.1-rc1", "2.0"}},
		{"include by digest", []string{mustDigest(t, imgs["2.0"]).String()}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newMemSink()
			s := newTestSyncer(t, Upstream{URL: up.srv.URL}, sink)
			runSync(t, s, Job{Repository: localRepo, Upstream: "app", Include: tc.include, Exclude: tc.exclude})
			got, _ := sink.Tags(context.Background(), localRepo)
			if len(got) != len(tc.want) {
				t.Errorf("tags %v, want %v", got, tc.want)
			}
			for _, w := range tc.want {
				checkImage(t, sink, w, imgs[w])
			}
			if tc.name == "include by digest" {
				checkImage(t, sink, "", imgs["2.0"])
			}
		})
	}
}

func TestSyncPlatforms(t *testing.T) {
	up := newUpstream(t, nil)
	idx, children := up.pushIndex(t, "app:multi",
		v1.Platform{OS: "linux", Architecture: "amd64"},
		v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
		v1.Platform{OS: "windows", Architecture: "amd64"})
	for _, tc := range []struct {
		name      string
		platforms []string
		keep      []bool
	}{
		{"all", nil, []bool{true, true, true}},
		{"os/arch", []string{"linux/amd64"}, []bool{true, false, false}},
		{"variant", []string{"linux/arm64/v8"}, []bool{false, true, false}},
		{"wrong variant", []string{"linux/arm64/v7"}, []bool{false, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newMemSink()
			s := newTestSyncer(t, Upstream{URL: up.srv.URL}, sink)
			runSync(t, s, Job{Repository: localRepo, Upstream: "app", Platforms: tc.platforms})
			if got, _ := sink.tag(localRepo, "multi"); got != mustDigest(t, idx) {
				t.Fatalf("index stored as %s, want the upstream digest %s", got, mustDigest(t, idx))
			}
			for i, c := range children {
				if got := sink.hasManifest(localRepo, mustDigest(t, c)); got != tc.keep[i] {
					t.Errorf("child %d stored=%v, want %v", i, got, tc.keep[i])
				}
			}
		})
	}
}

func TestSyncCosignSignature(t *testing.T) {
	up := newUpstream(t, nil)
	signed := up.pushImage(t, "app:v1")
	other := up.pushImage(t, "app:v2")
	sig := up.pushImage(t, "app:"+strings.Replace(mustDigest(t, signed).String(), ":", "-", 1)+".sig")
	up.pushImage(t, "app:"+strings.Replace(mustDigest(t, other).String(), ":", "-", 1)+".sig")

	sink := newMemSink()
	s := newTestSyncer(t, Upstream{URL: up.srv.URL}, sink)
	p := runSync(t, s, Job{Repository: localRepo, Upstream: "app", Include: []string{"v1"}})
	sigTag := "sha256-" + mustDigest(t, signed).Encoded() + ".sig"
	checkImage(t, sink, sigTag, sig)
	got, _ := sink.Tags(context.Background(), localRepo)
	if len(got) != 2 {
		t.Errorf("tags %v: want v1 and its signature only", got)
	}
	if p.TagsTotal != 2 {
		t.Errorf("tags_total %d", p.TagsTotal)
	}
}

// faultProxy stands in front of an upstream: it answers 429 to the first
// requests, 503 to some, and cuts the first blob body in the middle.
type faultProxy struct {
	tooMany atomic.Int64 // 429s still to answer
	n       atomic.Int64
	cut     atomic.Bool
	cutDone atomic.Bool
	on      atomic.Bool
}

func (f *faultProxy) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.on.Load() {
			next.ServeHTTP(w, r)
			return
		}
		n := f.n.Add(1)
		if f.tooMany.Add(-1) >= 0 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		if n%7 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") && f.cut.Load() && !f.cutDone.Swap(true) {
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
		}
		next.ServeHTTP(w, r)
	})
}

func TestSyncThroughFaults(t *testing.T) {
	f := &faultProxy{}
	up := newUpstream(t, f.wrap)
	a := up.pushImage(t, "app:a")
	b := up.pushImage(t, "app:b")
	f.tooMany.Store(2)
	f.cut.Store(true)
	f.on.Store(true)
	sink := newMemSink()
	s := newTestSyncer(t, Upstream{URL: up.srv.URL}, sink)
	p := runSync(t, s, Job{Repository: localRepo, Upstream: "app"})
	checkImage(t, sink, "a", a)
	checkImage(t, sink, "b", b)
	if !f.cutDone.Load() {
		t.Error("no blob was cut")
	}
	if p.BlobsFetched != 6 {
		t.Errorf("blobs_fetched %d", p.BlobsFetched)
	}
	if p.UpstreamRequests != f.n.Load()+1 { // + the https probe of the ping
		t.Errorf("upstream_requests %d, the proxy saw %d", p.UpstreamRequests, f.n.Load())
	}
}

func TestSyncRateLimit(t *testing.T) {
	up := newUpstream(t, nil)
	img := up.pushImage(t, "app:t0")
	for i := 1; i < 30; i++ {
		up.tag(t, fmt.Sprintf("app:t%d", i), img)
	}
	sink := newMemSink()
	runSync(t, newTestSyncer(t, Upstream{URL: up.srv.URL}, sink), Job{Repository: localRepo, Upstream: "app"})

	const rps = 20
	s := newTestSyncer(t, Upstream{URL: up.srv.URL, RateLimit: rps}, sink)
	start := time.Now()
	p := runSync(t, s, Job{Repository: localRepo, Upstream: "app"})
	elapsed := time.Since(start)
	want := time.Duration(float64(p.UpstreamRequests-rps) / rps * float64(time.Second))
	if p.UpstreamRequests != 33 { // https probe, ping, page, 30 HEADs
		t.Errorf("upstream_requests %d, want 33", p.UpstreamRequests)
	}
	if elapsed < want-50*time.Millisecond {
		t.Errorf("%d requests took %v, want at least %v at %d/s", p.UpstreamRequests, elapsed, want, rps)
	}
}

func basicAuth(user, password string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="upstream"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestSyncBasicAuth(t *testing.T) {
	const secret = "s3cret-passw0rd"
	up := newUpstream(t, nil)
	img := up.pushImage(t, "app:a")
	guarded := httptest.NewServer(basicAuth("alice", secret)(up.srv.Config.Handler))
	t.Cleanup(guarded.Close)

	for _, tc := range []struct {
		name     string
		password string
		ok       bool
	}{
		{"right password", secret, true},
		{"wrong password", secret + "-wrong", false},
		{"anonymous", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := newMemSink()
			user := "alice"
			if tc.password == "" {
				user = ""
			}
			s := newTestSyncer(t, Upstream{URL: guarded.URL, Username: user, Password: tc.password}, sink)
			_, _, err := s.Sync(context.Background(), Job{Repository: localRepo, Upstream: "app"}, nil)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				checkImage(t, sink, "a", img)
				return
			}
			if err == nil {
				t.Fatal("sync succeeded without the right credentials")
			}
			msg := strings.ToLower(err.Error())
			if !strings.Contains(msg, "401") && !strings.Contains(msg, "unauthorized") {
				t.Errorf("error %q does not say unauthorized", err)
			}
			if tc.password != "" && strings.Contains(err.Error(), tc.password) {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestSyncTLS(t *testing.T) {
	srv := httptest.NewTLSServer(registry.New(registry.Logger(nopLogger())))
	t.Cleanup(srv.Close)
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// A name that is not loopback, so that the client speaks https; the
	// test certificate is valid for example.com.
	host := "example.com:" + port
	dialer := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}
	rec := &fsmpb.Remote{Name: "tls", Url: "https://" + host, CaCertificatePem: caPEM, Concurrency: 2, TimeoutNanos: int64(10 * time.Second)}
	tr, err := TransportFor(rec, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tr.DialContext = dialer

	// Push through the same transport.
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host + "/app:a")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithTransport(tr)); err != nil {
		t.Fatal(err)
	}

	sink := newMemSink()
	s := newTestSyncer(t, UpstreamFor(rec, "", tr, 1), sink)
	runSync(t, s, Job{Repository: localRepo, Upstream: "app"})
	checkImage(t, sink, "a", img)

	// Without the CA, the certificate is refused.
	plain, err := TransportFor(&fsmpb.Remote{Url: rec.Url}, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	plain.DialContext = dialer
	s = newTestSyncer(t, UpstreamFor(rec, "", plain, 1), newMemSink())
	_, _, err = s.Sync(context.Background(), Job{Repository: localRepo, Upstream: "app"}, nil)
	var uerr x509.UnknownAuthorityError
	if err == nil || (!errors.As(err, &uerr) && !strings.Contains(err.Error(), "certificate")) {
		t.Errorf("sync without the CA: %v", err)
	}
}

func TestSyncCancel(t *testing.T) {
	stall := make(chan struct{})
	up := newUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				select {
				case <-stall:
				case <-r.Context().Done():
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	t.Cleanup(func() { close(stall) })
	for i := range 3 {
		up.pushImageVia(t, fmt.Sprintf("app:t%d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	s := newTestSyncer(t, Upstream{URL: up.srv.URL}, newMemSink())
	start := time.Now()
	_, _, err := s.Sync(ctx, Job{Repository: localRepo, Upstream: "app"}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want a cancellation", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled sync took %v", d)
	}
}

// pushImageVia pushes a random image while blob GETs stall: pushes only
// HEAD and PUT blobs.
func (u *upstream) pushImageVia(t testing.TB, repoTag string) {
	t.Helper()
	u.pushImage(t, repoTag)
}
