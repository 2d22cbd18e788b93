package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// cacheService implements wharf.v1.CacheService: pull-through caches.
// Changing one needs a superuser, since a cache lets whoever may pull from
// its namespace make this registry fetch with the remote's credentials;
// reading one a login.
type cacheService struct {
	wharfv1connect.UnimplementedCacheServiceHandler
	cfg Config
}

// cacheAPIField is the API's name of a field of fsm.CheckPullThroughCache.
func cacheAPIField(field string) string {
	if field == "tag_ttl" {
		return "tag_ttl_seconds"
	}
	return field
}

// cacheFieldError turns a refusal of fsm.CheckPullThroughCache into
// invalid_argument naming the API's field.
func cacheFieldError(err error) error {
	fe, ok := fsm.AsFieldError(err)
	if !ok {
		return stateError(err)
	}
	return invalidArgument(cacheAPIField(fe.Field), errors.New(fe.Rule))
}

// requireCacheAdmin refuses anonymous callers and callers that are not
// superusers: what names the operation.
func (cfg Config) requireCacheAdmin(ctx context.Context, what string) (auth.Caller, error) {
	c, err := requireLogin(ctx)
	if err != nil {
		return c, err
	}
	return c, cfg.requireSuperuser(ctx, c, what)
}

// maxCacheTagTTLSeconds is fsm.MaxCacheTagTTL in the API's unit.
const maxCacheTagTTLSeconds = int64(fsm.MaxCacheTagTTL / time.Second)

// cacheTagTTLNanos converts a request's tag_ttl_seconds to the FSM's
// nanoseconds: 0 keeps the default.
func cacheTagTTLNanos(seconds int64) (int64, error) {
	switch {
	case seconds < 0:
		return 0, invalidArgument("tag_ttl_seconds", fmt.Errorf("must not be negative, got %d (0 takes the default, %d)", seconds, int64(fsm.DefaultCacheTagTTL/time.Second)))
	case seconds > maxCacheTagTTLSeconds:
		return 0, invalidArgument("tag_ttl_seconds", fmt.Errorf("must be at most %d (%v), got %d", maxCacheTagTTLSeconds, fsm.MaxCacheTagTTL, seconds))
	}
	return seconds * int64(time.Second), nil
}

// cacheMessage shows a record, with its effective tag TTL.
func cacheMessage(r *fsmpb.PullThroughCache) *wharfv1.Cache {
	return &wharfv1.Cache{
		Namespace: r.GetNamespace(), Remote: r.GetRemote(), UpstreamPrefix: r.GetUpstreamPrefix(),
		TagTtlSeconds:    int64(fsm.CacheTagTTL(r) / time.Second),
		CreatedUnixNanos: r.GetCreatedUnixNanos(), UpdatedUnixNanos: r.GetUpdatedUnixNanos(),
		CreatedBy: r.GetCreatedBy(), UpdatedBy: r.GetUpdatedBy(),
	}
}

// cacheNotFound says which namespace is no cache.
func cacheNotFound(ns string, err error) error {
	if errors.Is(err, fsm.ErrNotFound) {
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("namespace %q is not a pull-through cache (see wharf cache list)", ns))
	}
	return stateError(err)
}

// describe reads the cache of namespace ns as the API shows it.
func (s *cacheService) describe(ctx context.Context, ns string) (*wharfv1.Cache, error) {
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := f.PullThroughCache(ns)
	if err != nil {
		return nil, cacheNotFound(ns, err)
	}
	return cacheMessage(rec), nil
}

// CreateCache binds a namespace to a remote.
func (s *cacheService) CreateCache(ctx context.Context, req *connect.Request[wharfv1.CreateCacheRequest]) (*connect.Response[wharfv1.CreateCacheResponse], error) {
	m := req.Msg
	if err := checkNamespace("namespace", m.Namespace); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireCacheAdmin(ctx, "creating a pull-through cache")
	if err != nil {
		return nil, err
	}
	ttl, err := cacheTagTTLNanos(m.TagTtlSeconds)
	if err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := remoteOf(f, "remote", m.Remote); err != nil {
		return nil, err
	}
	rec := &fsmpb.PullThroughCache{
		Namespace: m.Namespace, Remote: m.Remote, UpstreamPrefix: m.UpstreamPrefix, TagTtlNanos: ttl,
		CreatedBy: c.User, UpdatedBy: c.User,
	}
	if err := fsm.CheckPullThroughCache(rec); err != nil {
		return nil, cacheFieldError(err)
	}
	cmd := fsm.NewCommand(&fsmpb.CreatePullThroughCache{Cache: rec})
	if err := s.cfg.apply(ctx, c, "cache.create", rec.Namespace, cmd,
		"remote", rec.Remote, "upstream_prefix", rec.UpstreamPrefix, "tag_ttl", fsm.CacheTagTTL(rec)); err != nil {
		return nil, err
	}
	out, err := s.describe(ctx, rec.Namespace)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.CreateCacheResponse{Cache: out}), nil
}

// GetCache describes one cache.
func (s *cacheService) GetCache(ctx context.Context, req *connect.Request[wharfv1.GetCacheRequest]) (*connect.Response[wharfv1.GetCacheResponse], error) {
	ns := req.Msg.Namespace
	if err := checkNamespace("namespace", ns); err != nil {
		return nil, err
	}
	// As the listing: a cache is visible to those who may pull from it.
	if _, err := s.cfg.requireOn(ctx, auth.ActionPull, ns); err != nil {
		return nil, err
	}
	out, err := s.describe(ctx, ns)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.GetCacheResponse{Cache: out}), nil
}

// ListCaches lists the caches of the namespaces the caller may pull from,
// in namespace order.
func (s *cacheService) ListCaches(ctx context.Context, _ *connect.Request[wharfv1.ListCachesRequest]) (*connect.Response[wharfv1.ListCachesResponse], error) {
	if _, err := requireLogin(ctx); err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	all, err := f.PullThroughCaches()
	if err != nil {
		return nil, stateError(err)
	}
	v := s.cfg.viewer(ctx, f)
	out := &wharfv1.ListCachesResponse{}
	for _, rec := range all {
		ok, err := v.may(auth.ActionPull, rec.GetNamespace())
		if err != nil {
			return nil, stateError(err)
		}
		if ok {
			out.Caches = append(out.Caches, cacheMessage(rec))
		}
	}
	return connect.NewResponse(out), nil
}

// UpdateCache changes the fields a request sets.
func (s *cacheService) UpdateCache(ctx context.Context, req *connect.Request[wharfv1.UpdateCacheRequest]) (*connect.Response[wharfv1.UpdateCacheResponse], error) {
	m := req.Msg
	if err := checkNamespace("namespace", m.Namespace); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireCacheAdmin(ctx, "changing a pull-through cache")
	if err != nil {
		return nil, err
	}
	op := &fsmpb.UpdatePullThroughCache{Namespace: m.Namespace, Remote: m.Remote, UpstreamPrefix: m.UpstreamPrefix}
	if m.TagTtlSeconds != nil {
		ttl, err := cacheTagTTLNanos(m.GetTagTtlSeconds())
		if err != nil {
			return nil, err
		}
		op.TagTtlNanos = &ttl
	}
	var changed []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"remote", op.Remote != nil}, {"upstream_prefix", op.UpstreamPrefix != nil}, {"tag_ttl_seconds", op.TagTtlNanos != nil},
	} {
		if f.set {
			changed = append(changed, f.name)
		}
	}
	if len(changed) == 0 {
		return nil, invalidArgument("namespace", errors.New("the request changes nothing: set at least one field"))
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	old, err := f.PullThroughCache(m.Namespace)
	if err != nil {
		return nil, cacheNotFound(m.Namespace, err)
	}
	if m.Remote != nil {
		if _, err := remoteOf(f, "remote", m.GetRemote()); err != nil {
			return nil, err
		}
	}
	if err := fsm.CheckPullThroughCache(applyCacheUpdate(old, op)); err != nil {
		return nil, cacheFieldError(err)
	}
	if err := s.cfg.apply(ctx, c, "cache.update", m.Namespace, fsm.NewCommand(op), "fields", strings.Join(changed, ",")); err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound && m.Remote == nil {
			return nil, cacheNotFound(m.Namespace, fsm.ErrNotFound)
		}
		return nil, err
	}
	out, err := s.describe(ctx, m.Namespace)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.UpdateCacheResponse{Cache: out}), nil
}

// DeleteCache ends a cache; what it fetched stays.
func (s *cacheService) DeleteCache(ctx context.Context, req *connect.Request[wharfv1.DeleteCacheRequest]) (*connect.Response[wharfv1.DeleteCacheResponse], error) {
	ns := req.Msg.Namespace
	if err := checkNamespace("namespace", ns); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireCacheAdmin(ctx, "deleting a pull-through cache")
	if err != nil {
		return nil, err
	}
	if err := s.cfg.apply(ctx, c, "cache.delete", ns, fsm.NewCommand(&fsmpb.DeletePullThroughCache{Namespace: ns})); err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound {
			return nil, cacheNotFound(ns, fsm.ErrNotFound)
		}
		return nil, err
	}
	return connect.NewResponse(&wharfv1.DeleteCacheResponse{}), nil
}

// applyCacheUpdate returns old with op's changes, to check them before
// they are proposed.
func applyCacheUpdate(old *fsmpb.PullThroughCache, op *fsmpb.UpdatePullThroughCache) *fsmpb.PullThroughCache {
	next := proto.Clone(old).(*fsmpb.PullThroughCache)
	if op.Remote != nil {
		next.Remote = op.GetRemote()
	}
	if op.UpstreamPrefix != nil {
		next.UpstreamPrefix = op.GetUpstreamPrefix()
	}
	if op.TagTtlNanos != nil {
		next.TagTtlNanos = op.GetTagTtlNanos()
	}
	return next
}
