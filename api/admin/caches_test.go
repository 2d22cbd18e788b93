package admin

import (
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// The FSM's refusals of a cache name the API's field, as invalid_argument:
// tag_ttl is tag_ttl_seconds.
func TestCacheFieldError(t *testing.T) {
	for _, tc := range []struct {
		name  string
		c     *fsmpb.PullThroughCache
		field string
	}{
		{"bad namespace", &fsmpb.PullThroughCache{Namespace: "Hub", Remote: "hub"}, "namespace: "},
		{"bad remote", &fsmpb.PullThroughCache{Namespace: "hub", Remote: "Hub!"}, "remote: "},
		{"bad prefix", &fsmpb.PullThroughCache{Namespace: "hub", Remote: "hub", UpstreamPrefix: "UP"}, "upstream_prefix: "},
		{"short ttl", &fsmpb.PullThroughCache{Namespace: "hub", Remote: "hub", TagTtlNanos: int64(time.Millisecond)}, "tag_ttl_seconds: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := cacheFieldError(fsm.CheckPullThroughCache(tc.c))
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.HasPrefix(err.(*connect.Error).Message(), tc.field) {
				t.Errorf("got %v, want invalid_argument on %s", err, tc.field)
			}
		})
	}
}

// tag_ttl_seconds becomes nanoseconds; a negative or too long one is
// refused on its field, before it could overflow.
func TestCacheTagTTLNanos(t *testing.T) {
	for _, tc := range []struct {
		seconds, want int64
		ok            bool
	}{
		{0, 0, true}, {1, int64(time.Second), true}, {600, int64(10 * time.Minute), true},
		{maxCacheTagTTLSeconds, int64(fsm.MaxCacheTagTTL), true},
		{-1, 0, false}, {maxCacheTagTTLSeconds + 1, 0, false}, {1 << 62, 0, false},
	} {
		got, err := cacheTagTTLNanos(tc.seconds)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("cacheTagTTLNanos(%d) = %d, %v", tc.seconds, got, err)
		}
		if err != nil && (connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.HasPrefix(err.(*connect.Error).Message(), "tag_ttl_seconds: ")) {
			t.Errorf("cacheTagTTLNanos(%d): %v, want invalid_argument on tag_ttl_seconds", tc.seconds, err)
		}
	}
}

// An update changes only what it sets, and shows the effective TTL.
func TestApplyCacheUpdate(t *testing.T) {
	old := &fsmpb.PullThroughCache{Namespace: "hub", Remote: "hub", UpstreamPrefix: "library", TagTtlNanos: int64(time.Hour)}
	str := func(s string) *string { return &s }
	zero := int64(0)
	got := applyCacheUpdate(old, &fsmpb.UpdatePullThroughCache{UpstreamPrefix: str(""), TagTtlNanos: &zero})
	if got.GetRemote() != "hub" || got.GetUpstreamPrefix() != "" || got.GetTagTtlNanos() != 0 {
		t.Errorf("got %v", got)
	}
	if old.GetUpstreamPrefix() != "library" || old.GetTagTtlNanos() != int64(time.Hour) {
		t.Errorf("the old record changed: %v", old)
	}
	if m := cacheMessage(got); m.TagTtlSeconds != 600 {
		t.Errorf("effective TTL %d, want the default 600", m.TagTtlSeconds)
	}
	if m := cacheMessage(old); m.TagTtlSeconds != 3600 {
		t.Errorf("TTL %d, want 3600", m.TagTtlSeconds)
	}
}
