package oci

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/cluster"
)

// PullThrough fills the repositories of pull-through caches from their
// remote registries as they are pulled (cluster/remotesync.Cache). The
// handler asks it only about repositories it reports Cached, and only for
// what the registry does not hold or, for a tag, what it may have to
// check again.
type PullThrough interface {
	// Cached reports whether repo is in a pull-through cache.
	Cached(repo string) bool
	// RefreshManifest makes the registry hold manifest ref (a tag or a
	// digest) of repo as the upstream has it now, within the cache's tag
	// TTL. An error says why the upstream did not answer; the registry
	// may still hold an older copy, which is then served.
	RefreshManifest(ctx context.Context, repo, ref string) error
	// BlobOwner names the node that fetches blob d from the upstream for
	// the whole cluster.
	BlobOwner(d digest.Digest) string
	// BlobSize asks the upstream for the size of blob d of repo.
	BlobSize(ctx context.Context, repo string, d digest.Digest) (int64, error)
	// FetchBlob brings blob d of repo from the upstream into the
	// registry. BlobSize, FetchBlob and RefreshManifest report what the
	// upstream does not have with an error matching fs.ErrNotExist. When it calls start (if not nil) with the blob's size, it
	// streams the blob to what start returns and reports streamed; else
	// the blob is in the registry when it returns.
	FetchBlob(ctx context.Context, repo string, d digest.Digest, start func(size int64) io.Writer) (streamed bool, err error)
}

// OwnerRouter passes a request for a cached blob to the node that fetches
// it (PeerSessions implements it).
type OwnerRouter interface {
	// ProxyToOwner returns a handler that streams r to node nodeID and its
	// answer back, or serves fallback when the node cannot be reached
	// before anything was written; false if no such node is known.
	ProxyToOwner(nodeID string, fallback http.Handler) (http.Handler, bool)
}

// headerCacheOwner marks a request a node passed to a cached blob's
// owner, which then fetches the blob itself rather than pass it on.
const headerCacheOwner = "Wharf-Cache-Owner"

// cached reports whether repo is in a pull-through cache.
func (h *Handler) cached(repo string) bool {
	return h.cache != nil && h.cache.Cached(repo)
}

// refreshCachedManifest brings ref of a cached repository up to date
// before it is looked up. It returns the upstream's failure, for the
// caller to answer if the registry holds no copy; nil when the upstream
// answered, even that it has no such manifest.
func (h *Handler) refreshCachedManifest(ctx context.Context, ref reference) error {
	arg := ref.tag
	if arg == "" {
		arg = ref.digest.String()
	}
	err := h.cache.RefreshManifest(ctx, ref.name, arg)
	if err == nil || errors.Is(err, fs.ErrNotExist) || ctx.Err() != nil {
		return nil
	}
	h.log.WarnContext(ctx, "pull-through cache: the upstream did not answer", "repository", ref.name, "reference", arg, "err", err)
	return err
}

// errUpstream answers a pull of a cached repository that the registry does
// not hold and the upstream could not serve.
func errUpstream(repo string, cause error) error {
	return newError(http.StatusBadGateway, CodeUnavailable,
		"repository %s is a pull-through cache and its upstream registry could not be read: %v", repo, cause).
		withCause(cause)
}

// serveCachedBlob answers the GET or HEAD of blob d that cached repository
// rt.name does not hold yet: from the upstream, through the blob's owner
// node.
func (h *Handler) serveCachedBlob(w http.ResponseWriter, r *http.Request, rt route, d digest.Digest) error {
	if r.Method == http.MethodHead {
		size, err := h.cache.BlobSize(r.Context(), rt.name, d)
		if err != nil {
			return cachedBlobError(rt.name, d, err)
		}
		setBlobHeaders(w, d)
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.fetchCachedBlob(w, r, rt, d); err != nil {
			h.writeError(w, r, err)
		}
	})
	if owner := h.cache.BlobOwner(d); owner != h.nodeID && r.Header.Get(headerCacheOwner) == "" {
		if router, ok := h.sessions.(OwnerRouter); ok {
			if proxy, ok := router.ProxyToOwner(owner, local); ok {
				r.Header.Set(headerCacheOwner, owner)
				proxy.ServeHTTP(w, r)
				return nil
			}
		}
	}
	local.ServeHTTP(w, r)
	return nil
}

// fetchCachedBlob fetches blob d on this node: streamed to the client as
// it arrives, or served from the registry once another request's fetch
// brought it (and for a Range request, which needs the whole blob first).
func (h *Handler) fetchCachedBlob(w http.ResponseWriter, r *http.Request, rt route, d digest.Digest) error {
	var start func(int64) io.Writer
	if r.Header.Get("Range") == "" {
		start = func(size int64) io.Writer {
			setBlobHeaders(w, d)
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
			w.WriteHeader(http.StatusOK)
			return w
		}
	}
	streamed, err := h.cache.FetchBlob(r.Context(), rt.name, d, start)
	if streamed {
		if err != nil {
			h.log.WarnContext(r.Context(), "aborted the pull of a blob fetched from the upstream", "digest", d, "err", err)
			panic(http.ErrAbortHandler)
		}
		return nil
	}
	if err != nil {
		return cachedBlobError(rt.name, d, err)
	}
	// Another request's fetch may have written what this one reads.
	return h.serveBlob(w, r.WithContext(cluster.WithReadScope(r.Context())), d)
}

// cachedBlobError answers a cached blob the upstream could not serve.
func cachedBlobError(repo string, d digest.Digest, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errBlobUnknown(repo, d)
	}
	return errUpstream(repo, err)
}

// ProxyToOwner implements OwnerRouter.
func (p PeerSessions) ProxyToOwner(nodeID string, fallback http.Handler) (http.Handler, bool) {
	base, ok := p.Lookup(nodeID)
	if !ok {
		return nil, false
	}
	target, err := url.Parse(base)
	if err != nil {
		return nil, false
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport:     p.Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, _ error) {
			// The owner is unreachable and nothing was written: fetch here.
			fallback.ServeHTTP(w, r)
		},
	}, true
}
