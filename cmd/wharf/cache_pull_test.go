package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// countingProxy passes requests to an upstream registry and counts them.
// A fault hook, when set, may answer a request itself instead.
type countingProxy struct {
	srv   *httptest.Server
	rp    *httputil.ReverseProxy
	mu    sync.Mutex
	hits  map[string]int // "METHOD path"
	fault faultHook
}

// faultHook sees each request before it is proxied, with n the count of
// its "METHOD path" including this one (1 for the first), and returns
// true when it answered the request itself, which it may do by passing it
// to forward, the upstream, with a writer of its own.
type faultHook func(w http.ResponseWriter, r *http.Request, n int, forward http.Handler) bool

func newCountingProxy(t *testing.T, up *distribution) *countingProxy {
	return newFaultyProxy(t, up, nil)
}

// newFaultyProxy is a countingProxy whose requests go through fault first;
// nil: none.
func newFaultyProxy(t *testing.T, up *distribution, fault faultHook) *countingProxy {
	t.Helper()
	target, err := url.Parse(up.url)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(up.caPEM))
	p := &countingProxy{hits: map[string]int{}, fault: fault}
	p.rp = &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		key := r.Method + " " + r.URL.Path
		p.hits[key]++
		n := p.hits[key]
		p.mu.Unlock()
		if p.fault != nil && p.fault(w, r, n, p.rp) {
			return
		}
		p.rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// count returns the requests of method whose path ends with suffix.
func (p *countingProxy) count(method, suffix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k, v := range p.hits {
		if strings.HasPrefix(k, method+" ") && strings.HasSuffix(k, suffix) {
			n += v
		}
	}
	return n
}

// manifestRequests counts the manifest requests of any method.
func (p *countingProxy) manifestRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k, v := range p.hits {
		if strings.Contains(k, "/manifests/") {
			n += v
		}
	}
	return n
}

// A pull-through cache on three nodes in front of CNCF Distribution:
// concurrent pulls through every node fetch each blob from the upstream
// once; what is cached is durable on W nodes, refuses pushes, is served
// without asking the upstream within the tag TTL, follows a moved tag
// after it, and stays pullable when the upstream is gone.
func TestPullThroughCache(t *testing.T) {
	up := startDistribution(t)
	proxy := newCountingProxy(t, up)
	h := startHarness(t, harnessOpts{nodes: 3, replicas: 3, writeQuorum: 2,
		deadNodeTimeout: time.Hour, repairInterval: time.Hour, gcInterval: time.Hour})
	nodes := accNodesOf(t, h)
	ctx := context.Background()

	img, err := random.Image(1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(up.ref(t, "team/app:v1"), img, up.opts...); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	idx := up.pushIndex(t, "team/multi", "v1")

	if _, err := remotesAs(nodes[0], "admin", accAdminPassword).CreateRemote(ctx, req(&wharfv1.CreateRemoteRequest{
		Name: "dist", Url: proxy.srv.URL, Username: upstreamUser, Password: upstreamPassword,
	})); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[0].reg.node.Apply(ctx, fsm.NewCommand(&fsmpb.CreatePullThroughCache{Cache: &fsmpb.PullThroughCache{
		Namespace: "hub", Remote: "dist", TagTtlNanos: int64(time.Hour), CreatedBy: "admin",
	}})); err != nil {
		t.Fatal(err)
	}
	admin := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: accAdminPassword})}
	ref := func(n *accNode, s string) name.Reference {
		r, err := name.ParseReference(n.host()+"/"+s, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	pull := func(n *accNode, s string) (v1.Image, error) {
		img, err := remote.Image(ref(n, s), admin...)
		if err != nil {
			return nil, err
		}
		if _, err := img.RawConfigFile(); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return img, validateImage(img)
	}

	// Six clients, two per node, pull the image at once.
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			got, err := pull(nodes[i%3], "hub/team/app:v1")
			if err == nil {
				if d, _ := got.Digest(); d != want {
					err = fmt.Errorf("digest %s, upstream %s", d, want)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent pulls through the cache: %v", err)
	}
	layers, _ := img.Layers()
	cfgName, _ := img.ConfigName()
	blobs := []digest.Digest{digest.Digest(cfgName.String())}
	for _, l := range layers {
		d, _ := l.Digest()
		blobs = append(blobs, digest.Digest(d.String()))
	}
	blobGETs := 0
	for _, d := range blobs {
		n := proxy.count(http.MethodGet, "/blobs/"+d.String())
		blobGETs += n
		if n != 1 {
			t.Errorf("blob %s: %d upstream GETs for 6 concurrent pulls through 3 nodes, want 1", d, n)
		}
		waitUntil(t, 30*time.Second, func() error {
			if on := h.onDisk(d); len(on) < 2 {
				return fmt.Errorf("blob %s on nodes %v, want at least W=2", d, on)
			}
			return nil
		})
	}
	t.Logf("6 concurrent pulls through 3 nodes: %d upstream blob GETs for %d blobs, %d manifest requests",
		blobGETs, len(blobs), proxy.manifestRequests())

	// Within the TTL, pulls ask the upstream nothing.
	before := proxy.manifestRequests()
	for _, n := range nodes {
		if _, err := pull(n, "hub/team/app:v1"); err != nil {
			t.Fatalf("cached pull: %v", err)
		}
	}
	if got := proxy.manifestRequests() - before; got != 0 {
		t.Errorf("pulls within the TTL sent %d manifest requests upstream, want 0", got)
	}

	// Pushes into the cache are refused.
	err = remote.Write(ref(nodes[1], "hub/team/app:mine"), img, admin...)
	if terr, ok := errors.AsType[*transport.Error](err); !ok || terr.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "pull-through cache") {
		t.Errorf("push into the cache: %v, want 403 DENIED naming the cache", err)
	}

	// A multi-platform index: the index, then one child by digest.
	idxDigest, _ := idx.Digest()
	ii, err := remote.Index(ref(nodes[2], "hub/team/multi:v1"), admin...)
	if err != nil {
		t.Fatalf("pull index through the cache: %v", err)
	}
	if d, _ := ii.Digest(); d != idxDigest {
		t.Fatalf("index digest %s, upstream %s", d, idxDigest)
	}
	arm, err := remote.Image(ref(nodes[2], "hub/team/multi:v1"), append(admin, remote.WithPlatform(v1.Platform{OS: "linux", Architecture: "arm64"}))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateImage(arm); err != nil {
		t.Fatalf("arm64 child through the cache: %v", err)
	}

	// The tag moves upstream: the cache keeps serving its copy until the
	// TTL has passed, then follows.
	moved := up.pushImage(t, "team/app", "v1")
	movedDigest, _ := moved.Digest()
	if got, err := pull(nodes[0], "hub/team/app:v1"); err != nil {
		t.Fatal(err)
	} else if d, _ := got.Digest(); d != want {
		t.Fatalf("within the TTL: %s, want the cached %s", d, want)
	}
	ttl := int64(time.Second)
	if _, err := nodes[0].reg.node.Apply(ctx, fsm.NewCommand(&fsmpb.UpdatePullThroughCache{Namespace: "hub", TagTtlNanos: &ttl})); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if got, err := pull(nodes[0], "hub/team/app:v1"); err != nil {
		t.Fatal(err)
	} else if d, _ := got.Digest(); d != movedDigest {
		t.Fatalf("after the TTL: %s, want the moved tag's %s", d, movedDigest)
	}

	// The upstream goes away: cached content stays pullable (stale after
	// its TTL), what was never cached fails with the upstream's error.
	proxy.srv.Close()
	time.Sleep(1500 * time.Millisecond)
	if got, err := pull(nodes[1], "hub/team/app:v1"); err != nil {
		t.Fatalf("cached tag with the upstream gone: %v", err)
	} else if d, _ := got.Digest(); d != movedDigest {
		t.Fatalf("with the upstream gone: %s, want %s", d, movedDigest)
	}
	_, err = remote.Image(ref(nodes[1], "hub/team/never:v1"), admin...)
	if terr, ok := errors.AsType[*transport.Error](err); !ok || terr.StatusCode != http.StatusBadGateway {
		t.Errorf("uncached image with the upstream gone: %v, want 502", err)
	}
}
