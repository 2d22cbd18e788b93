package fsm

import (
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Pull-through caches (issue 14): namespaces whose repositories fill from
// a remote registry when they are pulled.
//
//	cache/<namespace>                     fsmpb.PullThroughCache
//	cache-remote/<remote>\x00<namespace>  empty; the caches of a remote
const (
	prefixCache       = "cache/"
	prefixCacheRemote = "cache-remote/"
)

func cacheKey(ns string) []byte               { return key(prefixCache, ns) }
func cacheRemoteKey(remote, ns string) []byte { return key(prefixCacheRemote, remote, ns) }
func cacheRemotePrefix(remote string) []byte  { return key(prefixCacheRemote, remote, "") }

// Bounds and default of a cache's tag TTL.
const (
	DefaultCacheTagTTL = 10 * time.Minute
	MinCacheTagTTL     = time.Second
	MaxCacheTagTTL     = 30 * 24 * time.Hour
)

// CacheTagTTL returns c's tag TTL, the default when it stores none.
func CacheTagTTL(c *fsmpb.PullThroughCache) time.Duration {
	if ttl := time.Duration(c.GetTagTtlNanos()); ttl > 0 {
		return ttl
	}
	return DefaultCacheTagTTL
}

// CacheUpstream returns the repository at the remote that local repository
// repo of cache c reads, or false when repo is not in c's namespace.
// remoteURL is the remote's URL, for Docker Hub's library/ rule.
func CacheUpstream(c *fsmpb.PullThroughCache, remoteURL, repo string) (string, bool) {
	path, ok := strings.CutPrefix(repo, c.GetNamespace()+"/")
	if !ok || path == "" {
		return "", false
	}
	if p := c.GetUpstreamPrefix(); p != "" {
		return p + "/" + path, true
	}
	return NormalizeUpstream(remoteURL, path), true
}

// CheckPullThroughCache checks a cache's record as it would be stored; the
// error is a *FieldError.
func CheckPullThroughCache(c *fsmpb.PullThroughCache) error {
	if res := validateNamespace(c.GetNamespace()); res != nil {
		return fieldError("namespace", "must be one component of a repository name (lowercase letters, digits and separators), got %q", c.GetNamespace())
	}
	if err := ValidateRemoteName(c.GetRemote()); err != nil {
		fe, _ := AsFieldError(err)
		return fieldError("remote", "%s", fe.Rule)
	}
	if p := c.GetUpstreamPrefix(); p != "" {
		if err := ValidateRepositoryName(p); err != nil {
			return fieldError("upstream_prefix", "%s", ruleOf(err))
		}
	}
	if ttl := time.Duration(c.GetTagTtlNanos()); ttl != 0 && (ttl < MinCacheTagTTL || ttl > MaxCacheTagTTL) {
		return fieldError("tag_ttl", "must be between %v and %v, got %v", MinCacheTagTTL, MaxCacheTagTTL, ttl)
	}
	return nil
}

// --- reads ---

// PullThroughCache returns the cache of namespace ns, or ErrNotFound.
func (f *FSM) PullThroughCache(ns string) (*fsmpb.PullThroughCache, error) {
	if res := validateNamespace(ns); res != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, res.GetMessage())
	}
	var rec fsmpb.PullThroughCache
	if err := f.getRecord(cacheKey(ns), &rec, "pull-through cache %q", ns); err != nil {
		return nil, err
	}
	return &rec, nil
}

// CacheOf returns the cache that repository repo belongs to, or false.
func (f *FSM) CacheOf(repo string) (*fsmpb.PullThroughCache, bool, error) {
	ns, flat := splitNamespace(repo)
	if flat {
		return nil, false, nil
	}
	var rec fsmpb.PullThroughCache
	var found bool
	err := f.view(func(r pebble.Reader) (err error) {
		found, err = getProto(r, cacheKey(ns), &rec)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("look up the cache of %q: %w", repo, err)
	}
	if !found {
		return nil, false, nil
	}
	return &rec, true, nil
}

// PullThroughCaches returns every cache in namespace order.
func (f *FSM) PullThroughCaches() ([]*fsmpb.PullThroughCache, error) {
	var out []*fsmpb.PullThroughCache
	err := f.view(func(r pebble.Reader) error {
		return scanPrefix(r, []byte(prefixCache), func(k, v []byte) (bool, error) {
			var rec fsmpb.PullThroughCache
			if err := unmarshalRecord(k, v, &rec); err != nil {
				return false, err
			}
			out = append(out, &rec)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list pull-through caches: %w", err)
	}
	return out, nil
}

// refuseCached returns a MIRRORED result when repo is in a pull-through
// cache and the write is not the cache's own.
func refuseCached(r pebble.Reader, repo string) (*fsmpb.Result, error) {
	ns, flat := splitNamespace(repo)
	if flat {
		return nil, nil
	}
	var c fsmpb.PullThroughCache
	found, err := getProto(r, cacheKey(ns), &c)
	if err != nil || !found {
		return nil, err
	}
	return mirrored("repository %s is in the pull-through cache %s of remote %s: pulls fill it, pushes cannot; push to another namespace", repo, ns, c.GetRemote()), nil
}

// --- apply ---

func applyCreatePullThroughCache(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	if cmd.GetCreatePullThroughCache().GetCache() == nil {
		return invalid("cache: is required"), nil
	}
	rec := proto.Clone(cmd.GetCreatePullThroughCache().GetCache()).(*fsmpb.PullThroughCache)
	now := cmd.GetUnixNanos()
	rec.CreatedUnixNanos, rec.UpdatedUnixNanos = now, now
	rec.CreatedBy, rec.UpdatedBy = cmd.GetActor(), cmd.GetActor()
	if err := CheckPullThroughCache(rec); err != nil {
		return invalid("%v", err), nil
	}
	ns := rec.GetNamespace()
	if exists, err := has(b, cacheKey(ns)); err != nil {
		return nil, err
	} else if exists {
		return alreadyExists("namespace %q is already a pull-through cache", ns), nil
	}
	if res, err := requireRemote(b, rec.GetRemote()); res != nil || err != nil {
		return res, err
	}
	example, err := firstRepository(b, ns+"/")
	if err != nil {
		return nil, err
	}
	if flat, err := has(b, repositoryKey(ns)); err != nil {
		return nil, err
	} else if flat {
		example = ns
	}
	if example != "" {
		return failedPrecondition("namespace %q already holds repositories, such as %q: a cache starts in an empty namespace", ns, example), nil
	}
	known, err := namespaceKnown(b, ns)
	if err != nil {
		return nil, err
	}
	if !known {
		if err := claimFor(b, ns, rec.GetCreatedBy(), now); err != nil {
			return nil, err
		}
	}
	if err := b.Set(cacheRemoteKey(rec.GetRemote(), ns), nil, nil); err != nil {
		return nil, err
	}
	return success(), setProto(b, cacheKey(ns), rec)
}

// requireRemote refuses a command naming a remote that does not exist.
func requireRemote(b *pebble.Batch, name string) (*fsmpb.Result, error) {
	found, err := has(b, remoteKey(name))
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("remote registry %q not found: create it first", name), nil
	}
	return nil, nil
}

func applyUpdatePullThroughCache(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetUpdatePullThroughCache()
	ns := op.GetNamespace()
	if res := validateNamespace(ns); res != nil {
		return res, nil
	}
	var old fsmpb.PullThroughCache
	found, err := getProto(b, cacheKey(ns), &old)
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("namespace %q is not a pull-through cache", ns), nil
	}
	rec := proto.Clone(&old).(*fsmpb.PullThroughCache)
	if op.Remote != nil {
		rec.Remote = op.GetRemote()
	}
	if op.UpstreamPrefix != nil {
		rec.UpstreamPrefix = op.GetUpstreamPrefix()
	}
	if op.TagTtlNanos != nil {
		rec.TagTtlNanos = op.GetTagTtlNanos()
	}
	rec.UpdatedUnixNanos, rec.UpdatedBy = max(cmd.GetUnixNanos(), old.GetUpdatedUnixNanos()), cmd.GetActor()
	if err := CheckPullThroughCache(rec); err != nil {
		return invalid("%v", err), nil
	}
	if res, err := requireRemote(b, rec.GetRemote()); res != nil || err != nil {
		return res, err
	}
	if rec.GetRemote() != old.GetRemote() {
		if err := b.Delete(cacheRemoteKey(old.GetRemote(), ns), nil); err != nil {
			return nil, err
		}
		if err := b.Set(cacheRemoteKey(rec.GetRemote(), ns), nil, nil); err != nil {
			return nil, err
		}
	}
	return success(), setProto(b, cacheKey(ns), rec)
}

func applyDeletePullThroughCache(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	ns := cmd.GetDeletePullThroughCache().GetNamespace()
	if res := validateNamespace(ns); res != nil {
		return res, nil
	}
	found, err := dropCache(b, ns)
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("namespace %q is not a pull-through cache", ns), nil
	}
	return success(), nil
}

// dropCache deletes the cache of namespace ns, if any, with its index
// entry.
func dropCache(b *pebble.Batch, ns string) (bool, error) {
	var c fsmpb.PullThroughCache
	found, err := getProto(b, cacheKey(ns), &c)
	if err != nil || !found {
		return false, err
	}
	return true, deleteKeys(b, cacheKey(ns), cacheRemoteKey(c.GetRemote(), ns))
}
