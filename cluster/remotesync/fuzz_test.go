package remotesync

import (
	"strings"
	"testing"
	"time"
)

// Retry-After comes from the upstream: any value parses to a wait that is
// not negative (the transport caps it), or to none, and never panics.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"1", "0", "-5", "120", "Wed, 21 Oct 2015 07:28:00 GMT", "", "1e9", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := parseRetryAfter(s, now)
		if ok && d < 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, a negative wait", s, d)
		}
	})
}

// Tag filters come from users: NewFilter refuses or accepts any list, and
// a filter never keeps a *-source tag.
func FuzzFilter(f *testing.F) {
	f.Add("v*", "*-rc?", "v1.2-source")
	f.Add("", "", "latest")
	f.Add("sha256:"+strings.Repeat("a", 64), "[", "x")
	f.Fuzz(func(t *testing.T, include, exclude, tag string) {
		flt, err := NewFilter(splitNonEmpty(include), splitNonEmpty(exclude))
		if err != nil {
			return
		}
		if strings.HasSuffix(tag, "-source") && flt.Keep(tag) {
			t.Fatalf("filter %q/%q keeps %q", include, exclude, tag)
		}
	})
}

func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
