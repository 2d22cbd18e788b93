package remotesync

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// CacheSink is the local registry a pull-through cache writes into: a
// sync's Sink that also resolves one tag.
type CacheSink interface {
	Sink
	// ResolveTag returns the digest tag points at in repo, or false.
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, bool, error)
}

// CacheConfig configures a Cache.
type CacheConfig struct {
	// Sink stores what the cache fetches (oci.Ingester).
	Sink CacheSink
	// Secrets opens the remotes' secrets.
	Secrets Secrets
	// Logger receives upstream failures; nil discards them.
	Logger *slog.Logger
	// Registerer receives the cache's metrics; nil registers none.
	Registerer prometheus.Registerer
	// FetchTimeout bounds one blob's fetch from the upstream, which goes
	// on after the client that started it has gone (default 30m).
	FetchTimeout time.Duration
	// MaxCheckedTags bounds the tag checks remembered (default 100,000).
	MaxCheckedTags int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Cache fills the repositories of pull-through caches (fsmpb.PullThroughCache)
// from their remote registries as they are pulled. It stores manifests
// when they are asked for, and a blob when it is first pulled, streaming
// it to that client as it arrives; everything goes through the Sink, so a
// cached blob is durable on W nodes like a pushed one.
//
// One upstream fetch serves the cluster: each blob has an owner node
// (BlobOwner, rendezvous hashing over the live nodes), other nodes pass
// its pulls to the owner, and the owner runs one fetch per blob at a time,
// whoever asks. A tag is asked upstream again once its TTL has passed on
// this node; when the upstream cannot answer, the cached copy is served.
type Cache struct {
	c       Cluster
	cfg     CacheConfig
	log     *slog.Logger
	flights singleflight.Group
	metrics *cacheMetrics

	mu      sync.Mutex
	checked map[tagRef]time.Time    // when this node last asked the upstream about a tag
	clients map[string]*cacheClient // by remote name
	retired int64                   // requests sent by clients since replaced
}

type tagRef struct{ repo, tag string }

// cacheClient reads one remote, as configured at version.
type cacheClient struct {
	version int64 // the remote's updated_unix_nanos
	puller  *remote.Puller
	rt      *resilientTransport
	reg     name.Registry
	close   func()
}

// NewCache returns a Cache running on cluster c.
func NewCache(c Cluster, cfg CacheConfig) *Cache {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 30 * time.Minute
	}
	if cfg.MaxCheckedTags <= 0 {
		cfg.MaxCheckedTags = 100_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pc := &Cache{
		c: c, cfg: cfg, log: cfg.Logger,
		checked: map[tagRef]time.Time{},
		clients: map[string]*cacheClient{},
	}
	pc.metrics = newCacheMetrics(cfg.Registerer, pc.upstreamRequests)
	return pc
}

// upstreamRequests counts the HTTP requests the cache's clients sent,
// retries and token requests included.
func (c *Cache) upstreamRequests() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.retired
	for _, cl := range c.clients {
		n += cl.rt.sent.Load()
	}
	return float64(n)
}

// Cached reports whether repo is in a pull-through cache.
func (c *Cache) Cached(repo string) bool {
	_, ok, err := c.c.State().CacheOf(repo)
	return err == nil && ok
}

// ErrUpstreamMissing is returned (wrapped) when the upstream has no such
// manifest or blob; it matches fs.ErrNotExist.
var ErrUpstreamMissing = fmt.Errorf("the upstream registry does not have it (%w)", fs.ErrNotExist)

// target is where a cached repository reads from.
type target struct {
	cache    *fsmpb.PullThroughCache
	client   *cacheClient
	upstream name.Repository
}

// target returns the upstream of repo, which must be in a cache.
func (c *Cache) target(repo string) (*target, error) {
	state := c.c.State()
	pc, ok, err := state.CacheOf(repo)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("repository %s is in no pull-through cache", repo)
	}
	r, err := state.Remote(pc.GetRemote())
	if err != nil {
		return nil, fmt.Errorf("remote %s of cache %s: %w", pc.GetRemote(), pc.GetNamespace(), err)
	}
	cl, err := c.client(r)
	if err != nil {
		return nil, err
	}
	path, ok := fsm.CacheUpstream(pc, r.GetUrl(), repo)
	if !ok {
		return nil, fmt.Errorf("repository %s is not inside cache %s", repo, pc.GetNamespace())
	}
	var opts []name.Option
	if cl.reg.Scheme() == "http" {
		opts = append(opts, name.Insecure)
	}
	up, err := name.NewRepository(cl.reg.RegistryStr()+"/"+path, opts...)
	if err != nil {
		return nil, fmt.Errorf("upstream repository %q: %w", path, err)
	}
	return &target{cache: pc, client: cl, upstream: up}, nil
}

// client returns the client of remote r, built again when r changed.
func (c *Cache) client(r *fsmpb.Remote) (*cacheClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[r.GetName()]; ok && cl.version == r.GetUpdatedUnixNanos() {
		return cl, nil
	}
	password, clientKey, proxyPassword, err := c.cfg.Secrets(r)
	if err != nil {
		return nil, fmt.Errorf("open the secrets of remote %s: %w", r.GetName(), err)
	}
	t, err := TransportFor(r, password, clientKey, proxyPassword)
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", r.GetName(), err)
	}
	// Every live node may fill caches from r: each takes its share of the
	// rate limit.
	up := UpstreamFor(r, password, t, len(c.c.LiveNodes()))
	s, err := NewSyncer(up, c.cfg.Sink, c.log)
	if err != nil {
		return nil, err
	}
	rt := newResilientTransport(s.base, up.RateLimit, up.Timeout, defaultRetry)
	puller, err := remote.NewPuller(
		remote.WithTransport(rt),
		remote.WithAuth(s.auth),
		remote.WithJobs(s.up.Concurrency),
		remote.WithUserAgent("wharf-cache"),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	)
	if err != nil {
		return nil, fmt.Errorf("remote %s: upstream client: %w", r.GetName(), err)
	}
	if old, ok := c.clients[r.GetName()]; ok {
		c.retired += old.rt.sent.Load()
		old.close()
	}
	cl := &cacheClient{version: r.GetUpdatedUnixNanos(), puller: puller, rt: rt, reg: s.reg, close: t.CloseIdleConnections}
	c.clients[r.GetName()] = cl
	return cl, nil
}

// RefreshManifest makes the registry hold manifest ref (a tag or a digest)
// of cached repository repo: a digest it does not hold, or a tag it does
// not hold or whose TTL has passed and which now points elsewhere
// upstream, is fetched and stored (an index without its children, which
// are fetched when they are pulled). The error says why the upstream could
// not answer; the registry may still hold an older copy, which the caller
// then serves. A manifest the upstream does not have is ErrUpstreamMissing.
func (c *Cache) RefreshManifest(ctx context.Context, repo, ref string) error {
	if d, err := digest.Parse(ref); err == nil {
		has, err := c.cfg.Sink.HasManifest(ctx, repo, d)
		if err != nil || has {
			if has {
				c.metrics.results.WithLabelValues("hit").Inc()
			}
			return err
		}
		_, err, _ = c.flights.Do("manifest\x00"+repo+"@"+ref, func() (any, error) {
			fctx, cancel := c.detached(ctx)
			defer cancel()
			return nil, c.fetchManifest(fctx, repo, d, "")
		})
		return err
	}
	local, held, err := c.cfg.Sink.ResolveTag(ctx, repo, ref)
	if err != nil {
		return err
	}
	if held && c.fresh(repo, ref) {
		c.metrics.results.WithLabelValues("hit").Inc()
		return nil
	}
	_, err, _ = c.flights.Do("tag\x00"+repo+":"+ref, func() (any, error) {
		fctx, cancel := c.detached(ctx)
		defer cancel()
		return nil, c.refreshTag(fctx, repo, ref, local, held)
	})
	return err
}

// detached returns a context for a fetch that others may be waiting for:
// it ends at the fetch timeout, not when the request that began it does.
func (c *Cache) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), c.cfg.FetchTimeout)
}

// refreshTag asks the upstream where tag points and fetches the manifest
// when it is not the local one.
func (c *Cache) refreshTag(ctx context.Context, repo, tag string, local digest.Digest, held bool) error {
	t, err := c.target(repo)
	if err != nil {
		return err
	}
	desc, err := t.client.puller.Head(ctx, t.upstream.Tag(tag))
	if err != nil {
		err = upstreamError(fmt.Sprintf("HEAD manifest %s:%s", t.upstream, tag), err)
		if held {
			c.metrics.results.WithLabelValues("stale").Inc()
			c.log.Warn("pull-through cache: serving a cached tag the upstream could not confirm", "repository", repo, "tag", tag, "error", err)
		}
		return err
	}
	d := digest.Digest(desc.Digest.String())
	if held && d == local {
		c.metrics.results.WithLabelValues("revalidated").Inc()
		c.markChecked(repo, tag)
		return nil
	}
	if err := c.fetchManifest(ctx, repo, d, tag); err != nil {
		return err
	}
	c.markChecked(repo, tag)
	return nil
}

// fetchManifest GETs manifest d of repo's upstream and stores it, tagged
// tag unless tag is empty.
func (c *Cache) fetchManifest(ctx context.Context, repo string, d digest.Digest, tag string) error {
	t, err := c.target(repo)
	if err != nil {
		return err
	}
	got, err := t.client.puller.Get(ctx, t.upstream.Digest(d.String()))
	if err != nil {
		return upstreamError(fmt.Sprintf("GET manifest %s@%s", t.upstream, d), err)
	}
	if len(got.Manifest) > maxManifestBytes {
		return fmt.Errorf("manifest %s: %d bytes, more than the %d allowed", d, len(got.Manifest), maxManifestBytes)
	}
	if sum := d.Algorithm().FromBytes(got.Manifest); sum != d {
		return fmt.Errorf("manifest %s: upstream sent content of digest %s", d, sum)
	}
	var tags []string
	if tag != "" {
		tags = []string{tag}
	}
	if err := c.cfg.Sink.PutManifest(ctx, repo, d, string(got.MediaType), got.Manifest, tags); err != nil {
		return fmt.Errorf("store manifest %s: %w", d, err)
	}
	c.metrics.results.WithLabelValues("miss").Inc()
	c.metrics.manifests.Inc()
	return nil
}

// fresh reports whether this node asked the upstream about tag of repo
// less than the cache's TTL ago.
func (c *Cache) fresh(repo, tag string) bool {
	pc, ok, err := c.c.State().CacheOf(repo)
	if err != nil || !ok {
		return false
	}
	c.mu.Lock()
	at, ok := c.checked[tagRef{repo, tag}]
	c.mu.Unlock()
	return ok && c.cfg.Now().Sub(at) < fsm.CacheTagTTL(pc)
}

// markChecked remembers that the upstream confirmed tag of repo now. When
// the memory is full it forgets everything: the next pull of each tag
// asks the upstream again, which is what a TTL allows anyway.
func (c *Cache) markChecked(repo, tag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.checked) >= c.cfg.MaxCheckedTags {
		clear(c.checked)
	}
	c.checked[tagRef{repo, tag}] = c.cfg.Now()
}

// BlobOwner returns the node that fetches blob d from the upstream for the
// whole cluster: the live node with the highest rendezvous hash of d.
func (c *Cache) BlobOwner(d digest.Digest) string {
	nodes := c.c.LiveNodes()
	if len(nodes) == 0 {
		return c.c.NodeID()
	}
	slices.Sort(nodes)
	var best string
	var bestScore uint64
	for _, n := range nodes {
		h := fnv.New64a()
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(d))
		if s := h.Sum64(); best == "" || s > bestScore {
			best, bestScore = n, s
		}
	}
	return best
}

// BlobSize asks the upstream for the size of blob d of cached repository
// repo, without fetching it.
func (c *Cache) BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	t, err := c.target(repo)
	if err != nil {
		return 0, err
	}
	l, err := t.client.puller.Layer(ctx, t.upstream.Digest(d.String()))
	if err != nil {
		return 0, upstreamError("HEAD blob "+d.String(), err)
	}
	size, err := l.Size()
	if err != nil {
		return 0, upstreamError("HEAD blob "+d.String(), err)
	}
	return size, nil
}

// FetchBlob brings blob d of cached repository repo into the registry. The
// one fetch of d that runs on this node at a time streams it to the
// client that started it: start, when not nil, is called with the blob's
// size once the upstream answered, and what it returns receives the bytes
// as they arrive (a failing writer is dropped: the fetch goes on for the
// cache). FetchBlob then reports streamed; otherwise, or when another
// request's fetch brought d, it returns with d linked into repo and the
// caller serves it from the registry. A stream cut after start means the
// client got a partial blob, which the caller must abort.
func (c *Cache) FetchBlob(ctx context.Context, repo string, d digest.Digest, start func(size int64) io.Writer) (streamed bool, err error) {
	if err := d.Validate(); err != nil {
		return false, fmt.Errorf("blob digest %q: %w", d, err)
	}
	ours := false
	v, err, _ := c.flights.Do("blob\x00"+d.String(), func() (any, error) {
		ours = true
		// The fetch outlives its client: the cache keeps what it began.
		fctx, cancel := c.detached(ctx)
		defer cancel()
		return c.fetchBlob(fctx, repo, d, start)
	})
	if ours {
		started, _ := v.(bool)
		return started, err
	}
	if err != nil {
		return false, err
	}
	// Another request brought d, perhaps into another repository.
	c.metrics.results.WithLabelValues("shared").Inc()
	if linked, err := c.cfg.Sink.LinkBlob(ctx, repo, d, -1); err != nil {
		return false, err
	} else if !linked {
		return false, fmt.Errorf("blob %s: fetched, but not found to link into %s", d, repo)
	}
	return false, nil
}

// fetchBlob GETs blob d and stores it, teeing it to start's writer; it
// returns whether start was called.
func (c *Cache) fetchBlob(ctx context.Context, repo string, d digest.Digest, start func(int64) io.Writer) (bool, error) {
	if linked, err := c.cfg.Sink.LinkBlob(ctx, repo, d, -1); err != nil {
		return false, err
	} else if linked {
		return false, nil // another repository of the registry holds it
	}
	t, err := c.target(repo)
	if err != nil {
		return false, err
	}
	l, err := t.client.puller.Layer(ctx, t.upstream.Digest(d.String()))
	if err != nil {
		return false, upstreamError("GET blob "+d.String(), err)
	}
	size, err := l.Size()
	if err != nil {
		return false, upstreamError("HEAD blob "+d.String(), err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return false, upstreamError("GET blob "+d.String(), err)
	}
	defer rc.Close()
	var src io.Reader = rc
	started := false
	if start != nil {
		src = io.TeeReader(rc, &dropOnError{w: start(size)})
		started = true
	}
	cr := &checkedReader{r: src, want: d, size: size, h: d.Algorithm().Hash()}
	if err := c.cfg.Sink.PutBlob(ctx, repo, d, size, cr); err != nil {
		return started, fmt.Errorf("store blob %s: %w", d, err)
	}
	if !cr.ok {
		return started, fmt.Errorf("store blob %s: the store did not read the whole blob", d)
	}
	c.metrics.results.WithLabelValues("miss").Inc()
	c.metrics.blobs.Inc()
	c.metrics.bytes.Add(float64(size))
	return started, nil
}

// dropOnError writes to w until a write fails, and then drops what comes:
// a client that went away does not stop the cache's fetch.
type dropOnError struct {
	w      io.Writer
	failed bool
}

func (d *dropOnError) Write(p []byte) (int, error) {
	if !d.failed {
		if _, err := d.w.Write(p); err != nil {
			d.failed = true
		}
	}
	return len(p), nil
}

// upstreamError wraps an upstream failure; a 404 matches
// ErrUpstreamMissing.
func upstreamError(what string, err error) error {
	if terr, ok := errors.AsType[*transport.Error](err); ok && terr.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%s: %w", what, ErrUpstreamMissing)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// cacheMetrics are the cache's counters, per node.
type cacheMetrics struct {
	results   *prometheus.CounterVec
	manifests prometheus.Counter
	blobs     prometheus.Counter
	bytes     prometheus.Counter
}

func newCacheMetrics(reg prometheus.Registerer, requests func() float64) *cacheMetrics {
	m := &cacheMetrics{
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wharf_cache_lookups_total",
			Help: "Pulls of pull-through cache content by outcome: hit, miss (fetched upstream), revalidated (tag confirmed upstream), stale (served while the upstream failed), shared (brought by another request's fetch).",
		}, []string{"result"}),
		manifests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_cache_manifests_fetched_total",
			Help: "Manifests this node's pull-through caches fetched.",
		}),
		blobs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_cache_blobs_fetched_total",
			Help: "Blobs this node's pull-through caches fetched.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_cache_bytes_fetched_total",
			Help: "Bytes of blobs this node's pull-through caches fetched.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.results, m.manifests, m.blobs, m.bytes, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wharf_cache_upstream_requests_total",
			Help: "HTTP requests this node's pull-through caches sent to upstream registries, retries and token requests included.",
		}, requests))
	}
	return m
}
