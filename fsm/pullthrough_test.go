package fsm

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

func goodCache() *fsmpb.PullThroughCache {
	return &fsmpb.PullThroughCache{Namespace: "dockerhub", Remote: "hub", UpstreamPrefix: "library", TagTtlNanos: int64(time.Hour)}
}

func cacheWith(edit func(c *fsmpb.PullThroughCache)) *fsmpb.PullThroughCache {
	c := goodCache()
	edit(c)
	return c
}

func createCache(c *fsmpb.PullThroughCache) *fsmpb.Command {
	return by("alice", at(100, NewCommand(&fsmpb.CreatePullThroughCache{Cache: c})))
}

func cacheSetup() []*fsmpb.Command {
	return []*fsmpb.Command{createUser("alice", true), createRemote(1, goodRemote())}
}

func syncedManifest(repo, content string, tags ...string) *fsmpb.Command {
	c := putManifest(repo, content, tags...)
	c.GetPutManifest().Synced = true
	return c
}

func TestPullThroughCacheCommands(t *testing.T) {
	quay := createRemote(2, remoteWith(func(r *fsmpb.Remote) { r.Name = "quay"; r.Url = "https://quay.io" }))
	tests := []struct {
		name     string
		setup    []*fsmpb.Command
		cmd      *fsmpb.Command
		want     fsmpb.ResultCode
		contains string
		check    func(t *testing.T, f *testFSM)
	}{
		{name: "create", setup: cacheSetup(), cmd: createCache(goodCache()), want: codeOK, check: func(t *testing.T, f *testFSM) {
			c, err := f.PullThroughCache("dockerhub")
			if err != nil || c.GetRemote() != "hub" || c.GetCreatedBy() != "alice" || c.GetCreatedUnixNanos() != 100 || CacheTagTTL(c) != time.Hour {
				t.Fatalf("cache = %v, %v", c, err)
			}
			if own, err := f.NamespaceOwner("dockerhub"); err != nil || own.GetUser() != "alice" {
				t.Fatalf("namespace owner = %v, %v", own, err)
			}
			if all, err := f.PullThroughCaches(); err != nil || len(all) != 1 {
				t.Fatalf("caches = %v, %v", all, err)
			}
			if c, ok, err := f.CacheOf("dockerhub/nginx"); err != nil || !ok || c.GetNamespace() != "dockerhub" {
				t.Fatalf("CacheOf = %v, %v, %v", c, ok, err)
			}
		}},
		{name: "create with the default TTL", setup: cacheSetup(), cmd: createCache(cacheWith(func(c *fsmpb.PullThroughCache) { c.TagTtlNanos = 0 })), want: codeOK, check: func(t *testing.T, f *testFSM) {
			if c, _ := f.PullThroughCache("dockerhub"); CacheTagTTL(c) != DefaultCacheTagTTL {
				t.Fatalf("TTL = %v", CacheTagTTL(c))
			}
		}},
		{name: "create invalid namespace", setup: cacheSetup(), cmd: createCache(cacheWith(func(c *fsmpb.PullThroughCache) { c.Namespace = "Docker" })), want: codeInvalid, contains: "namespace"},
		{name: "create invalid ttl", setup: cacheSetup(), cmd: createCache(cacheWith(func(c *fsmpb.PullThroughCache) { c.TagTtlNanos = int64(MaxCacheTagTTL + time.Second) })), want: codeInvalid, contains: "tag_ttl"},
		{name: "create twice", setup: append(cacheSetup(), createCache(goodCache())), cmd: createCache(goodCache()), want: codeExists},
		{name: "create without remote", setup: cacheSetup(), cmd: createCache(cacheWith(func(c *fsmpb.PullThroughCache) { c.Remote = "nope" })), want: codeNotFound, contains: `remote registry "nope"`},
		{name: "create over content", setup: append(cacheSetup(), putManifest("dockerhub/nginx", "m1", "v1")), cmd: createCache(goodCache()), want: codePrecond, contains: `"dockerhub/nginx"`},
		{name: "create over a flat repository", setup: append(cacheSetup(), putManifest("dockerhub", "m1", "v1")), cmd: createCache(goodCache()), want: codePrecond},
		{name: "update", setup: append(cacheSetup(), createCache(goodCache()), quay),
			cmd: by("bob", at(200, NewCommand(&fsmpb.UpdatePullThroughCache{Namespace: "dockerhub", Remote: ptr("quay"), UpstreamPrefix: ptr(""), TagTtlNanos: ptr(int64(0))}))), want: codeOK,
			check: func(t *testing.T, f *testFSM) {
				c, _ := f.PullThroughCache("dockerhub")
				if c.GetRemote() != "quay" || c.GetUpstreamPrefix() != "" || CacheTagTTL(c) != DefaultCacheTagTTL || c.GetUpdatedBy() != "bob" || c.GetUpdatedUnixNanos() != 200 || c.GetCreatedBy() != "alice" {
					t.Fatalf("cache = %v", c)
				}
				// The index follows the remote: hub is free, quay is not.
				if res := f.apply(NewCommand(&fsmpb.DeleteRemote{Name: "hub"})); res.GetCode() != codeOK {
					t.Fatalf("delete hub = %v", res)
				}
				if res := f.apply(NewCommand(&fsmpb.DeleteRemote{Name: "quay"})); res.GetCode() != codePrecond {
					t.Fatalf("delete quay = %v", res)
				}
			}},
		{name: "update keeps what it does not set", setup: append(cacheSetup(), createCache(goodCache())),
			cmd: NewCommand(&fsmpb.UpdatePullThroughCache{Namespace: "dockerhub", TagTtlNanos: ptr(int64(time.Minute))}), want: codeOK,
			check: func(t *testing.T, f *testFSM) {
				if c, _ := f.PullThroughCache("dockerhub"); c.GetRemote() != "hub" || c.GetUpstreamPrefix() != "library" || CacheTagTTL(c) != time.Minute {
					t.Fatalf("cache = %v", c)
				}
			}},
		{name: "update missing", setup: cacheSetup(), cmd: NewCommand(&fsmpb.UpdatePullThroughCache{Namespace: "dockerhub", TagTtlNanos: ptr(int64(time.Minute))}), want: codeNotFound},
		{name: "update to missing remote", setup: append(cacheSetup(), createCache(goodCache())), cmd: NewCommand(&fsmpb.UpdatePullThroughCache{Namespace: "dockerhub", Remote: ptr("nope")}), want: codeNotFound},
		{name: "update invalid", setup: append(cacheSetup(), createCache(goodCache())), cmd: NewCommand(&fsmpb.UpdatePullThroughCache{Namespace: "dockerhub", TagTtlNanos: ptr(int64(time.Millisecond))}), want: codeInvalid, contains: "tag_ttl"},
		{name: "delete", setup: append(cacheSetup(), createCache(goodCache()), syncedManifest("dockerhub/nginx", "m1", "v1")),
			cmd: NewCommand(&fsmpb.DeletePullThroughCache{Namespace: "dockerhub"}), want: codeOK,
			check: func(t *testing.T, f *testFSM) {
				if _, err := f.PullThroughCache("dockerhub"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("cache: %v", err)
				}
				// What it fetched stays, and takes pushes now.
				if ok, err := f.RepositoryExists("dockerhub/nginx"); !ok || err != nil {
					t.Fatalf("repository exists = %v, %v", ok, err)
				}
				if res := f.apply(putManifest("dockerhub/nginx", "m2", "v2")); res.GetCode() != codeOK {
					t.Fatalf("push after delete = %v", res)
				}
				if res := f.apply(NewCommand(&fsmpb.DeleteRemote{Name: "hub"})); res.GetCode() != codeOK {
					t.Fatalf("delete hub = %v", res)
				}
			}},
		{name: "delete missing", setup: cacheSetup(), cmd: NewCommand(&fsmpb.DeletePullThroughCache{Namespace: "dockerhub"}), want: codeNotFound},
		{name: "push refused", setup: append(cacheSetup(), createCache(goodCache())), cmd: putManifest("dockerhub/nginx", "m1", "v1"), want: codeMirrored,
			contains: "pull-through cache dockerhub of remote hub", check: func(t *testing.T, f *testFSM) {
				if ok, _ := f.RepositoryExists("dockerhub/nginx"); ok {
					t.Fatal("the refused push created the repository")
				}
			}},
		{name: "synced push", setup: append(cacheSetup(), createCache(goodCache())), cmd: syncedManifest("dockerhub/nginx", "m1", "v1"), want: codeOK},
		{name: "delete namespace drops the cache", setup: append(cacheSetup(), createCache(goodCache())), cmd: deleteNamespace("dockerhub"), want: codeOK, check: func(t *testing.T, f *testFSM) {
			if _, err := f.PullThroughCache("dockerhub"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("cache: %v", err)
			}
			if res := f.apply(NewCommand(&fsmpb.DeleteRemote{Name: "hub"})); res.GetCode() != codeOK {
				t.Fatalf("delete hub after the namespace = %v", res)
			}
		}},
		{name: "delete remote in use", setup: append(cacheSetup(), createCache(goodCache())), cmd: NewCommand(&fsmpb.DeleteRemote{Name: "hub"}), want: codePrecond, contains: `namespace "dockerhub"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openTest(t)
			f.mustApply(tt.setup...)
			res := f.apply(tt.cmd)
			if res.GetCode() != tt.want || !strings.Contains(res.GetMessage(), tt.contains) {
				t.Fatalf("result = %v; want %v containing %q", res, tt.want, tt.contains)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

// A push into a cache's namespace is refused as ErrMirroredRepository, the
// error the registry turns into DENIED.
func TestPullThroughCacheRefusesPushes(t *testing.T) {
	f := openTest(t)
	f.mustApply(append(cacheSetup(), createCache(goodCache()))...)
	if err := ResultError(f.apply(putManifest("dockerhub/nginx", "m1", "v1"))); !errors.Is(err, ErrMirroredRepository) {
		t.Fatalf("push into the cache: %v, want ErrMirroredRepository", err)
	}
	if err := ResultError(f.apply(syncedManifest("dockerhub/nginx", "m1", "v1"))); err != nil {
		t.Fatalf("the cache's own write: %v", err)
	}
	// Outside the namespace pushes go on.
	if err := ResultError(f.apply(putManifest("other/nginx", "m1", "v1"))); err != nil {
		t.Fatalf("push elsewhere: %v", err)
	}
}

// A snapshot keeps the cache and its remote's index: restored, the cache
// is there and still holds its remote.
func TestPullThroughCacheSnapshot(t *testing.T) {
	src := openTest(t)
	src.mustApply(append(cacheSetup(), createCache(goodCache()))...)
	data := persist(t, src.FSM)
	dst := openTest(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	dst.index = src.index
	c, err := dst.PullThroughCache("dockerhub")
	if err != nil || c.GetRemote() != "hub" || c.GetUpstreamPrefix() != "library" || CacheTagTTL(c) != time.Hour {
		t.Fatalf("restored cache = %v, %v", c, err)
	}
	if res := dst.apply(NewCommand(&fsmpb.DeleteRemote{Name: "hub"})); res.GetCode() != codePrecond {
		t.Fatalf("delete the cache's remote after restore = %v", res)
	}
	if res := dst.apply(putManifest("dockerhub/nginx", "m1", "v1")); res.GetCode() != codeMirrored {
		t.Fatalf("push after restore = %v", res)
	}
}
