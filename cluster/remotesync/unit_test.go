package remotesync

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

func TestFilterKeep(t *testing.T) {
	for _, tc := range []struct {
		name             string
		include, exclude []string
		tag              string
		want             bool
	}{
		{"empty keeps all", nil, nil, "latest", true},
		{"source always excluded", nil, nil, "1.0-source", false},
		{"source even when included", []string{"*"}, nil, "1.0-source", false},
		{"star", []string{"1.*"}, nil, "1.2.3", true},
		{"star misses", []string{"1.*"}, nil, "2.0", false},
		{"question mark", []string{"v?"}, nil, "v1", true},
		{"question mark is one char", []string{"v?"}, nil, "v10", false},
		{"exclude after include", []string{"*"}, []string{"*-rc*"}, "1.0-rc1", false},
		{"digest include only keeps no tag", []string{"sha256:" + strings.Repeat("a", 64)}, nil, "latest", false},
		{"digest exclude keeps tags", nil, []string{"sha256:" + strings.Repeat("a", 64)}, "latest", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := NewFilter(tc.include, tc.exclude)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Keep(tc.tag); got != tc.want {
				t.Errorf("Keep(%q) = %v, want %v", tc.tag, got, tc.want)
			}
		})
	}
}

func TestNewFilterRefuses(t *testing.T) {
	for _, bad := range []string{"[", "sha256:xyz"} {
		if _, err := NewFilter([]string{bad}, nil); err == nil {
			t.Errorf("NewFilter(%q) accepted", bad)
		}
	}
}

func TestPlatformFilter(t *testing.T) {
	for _, tc := range []struct {
		specs []string
		p     *v1.Platform
		want  bool
	}{
		{nil, nil, true},
		{[]string{"linux/amd64"}, &v1.Platform{OS: "linux", Architecture: "amd64"}, true},
		{[]string{"linux/amd64"}, &v1.Platform{OS: "linux", Architecture: "arm64"}, false},
		{[]string{"linux/arm/v7"}, &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, true},
		{[]string{"linux/arm/v7"}, &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, false},
		{[]string{"linux/arm"}, &v1.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, true},
		{[]string{"linux/amd64"}, nil, false},
	} {
		pf, err := parsePlatforms(tc.specs)
		if err != nil {
			t.Fatal(err)
		}
		if got := pf.keep(tc.p); got != tc.want {
			t.Errorf("%v keep %v = %v, want %v", tc.specs, tc.p, got, tc.want)
		}
	}
	if _, err := parsePlatforms([]string{"linux"}); err == nil {
		t.Error("parsePlatforms(linux) accepted")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{"-1", 0, false},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second, true},
		{now.Add(-10 * time.Second).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	} {
		got, ok := parseRetryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v %v, want %v %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

// scripted answers requests with a list of outcomes, then 200.
type scripted struct {
	outcomes []func() (*http.Response, error)
	calls    atomic.Int64
}

func (s *scripted) RoundTrip(*http.Request) (*http.Response, error) {
	i := int(s.calls.Add(1)) - 1
	if i < len(s.outcomes) {
		return s.outcomes[i]()
	}
	return status(http.StatusOK, nil)()
}

func status(code int, h http.Header) func() (*http.Response, error) {
	return func() (*http.Response, error) {
		if h == nil {
			h = http.Header{}
		}
		return &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader(""))}, nil
	}
}

func TestResilientTransport(t *testing.T) {
	fail := func(err error) func() (*http.Response, error) {
		return func() (*http.Response, error) { return nil, err }
	}
	short := retryPolicy{attempts: 6, base: time.Millisecond, ceiling: 4 * time.Millisecond, maxRetryAfter: 60 * time.Second}
	for _, tc := range []struct {
		name     string
		method   string
		outcomes []func() (*http.Response, error)
		want     int // final status, 0: error
		calls    int64
	}{
		{"ok", http.MethodGet, nil, 200, 1},
		{"503 then ok", http.MethodGet, []func() (*http.Response, error){status(503, nil), status(502, nil), status(504, nil)}, 200, 4},
		{"429 retry-after", http.MethodHead, []func() (*http.Response, error){status(429, http.Header{"Retry-After": {"0"}})}, 200, 2},
		{"reset then ok", http.MethodGet, []func() (*http.Response, error){fail(io.EOF), fail(io.ErrUnexpectedEOF)}, 200, 3},
		{"gives up after 6", http.MethodGet, []func() (*http.Response, error){status(503, nil), status(503, nil), status(503, nil), status(503, nil), status(503, nil), status(503, nil), status(503, nil)}, 503, 6},
		{"404 is final", http.MethodGet, []func() (*http.Response, error){status(404, nil)}, 404, 1},
		{"POST not retried", http.MethodPost, []func() (*http.Response, error){status(503, nil)}, 503, 1},
		{"other error final", http.MethodGet, []func() (*http.Response, error){fail(errors.New("no route"))}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner := &scripted{outcomes: tc.outcomes}
			rt := newResilientTransport(inner, 0, 0, short)
			req, _ := http.NewRequest(tc.method, "http://upstream.test/v2/", nil)
			resp, err := rt.RoundTrip(req)
			got := 0
			if err == nil {
				got = resp.StatusCode
				resp.Body.Close()
			}
			if got != tc.want || inner.calls.Load() != tc.calls || rt.sent.Load() != tc.calls {
				t.Errorf("status %d after %d calls (%d counted), want %d after %d", got, inner.calls.Load(), rt.sent.Load(), tc.want, tc.calls)
			}
		})
	}
}

func TestResilientTransportCapsRetryAfterAndStopsWithContext(t *testing.T) {
	inner := &scripted{outcomes: []func() (*http.Response, error){status(429, http.Header{"Retry-After": {"3600"}})}}
	rt := newResilientTransport(inner, 0, 0, defaultRetry)
	if d, ok := rt.shouldRetry(&http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"3600"}}}, nil, 1); !ok || d != 60*time.Second {
		t.Errorf("wait %v %v, want the 60 s cap", d, ok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://upstream.test/v2/", nil)
	start := time.Now()
	if _, err := rt.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the context's end", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Error("retry wait outlived the context")
	}
}

func TestBackoffGrows(t *testing.T) {
	rt := newResilientTransport(http.DefaultTransport, 0, 0, defaultRetry)
	for attempt, max := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second} {
		d := rt.backoff(attempt + 1)
		if d < max/2 || d > max {
			t.Errorf("backoff(%d) = %v, want in [%v, %v]", attempt+1, d, max/2, max)
		}
	}
	if d := rt.backoff(20); d > 30*time.Second {
		t.Errorf("backoff(20) = %v, above the ceiling", d)
	}
}

func TestUpstreamFor(t *testing.T) {
	r := &fsmpb.Remote{Url: "https://r.example", Username: "u", RateLimit: 30, Concurrency: 8, TimeoutNanos: int64(time.Minute)}
	for _, tc := range []struct {
		nodes int
		want  float64
	}{{0, 30}, {1, 30}, {3, 10}} {
		up := UpstreamFor(r, "pw", nil, tc.nodes)
		if up.RateLimit != tc.want || up.Concurrency != 8 || up.Password != "pw" || up.Timeout != time.Minute || up.URL != r.Url {
			t.Errorf("nodes %d: %+v", tc.nodes, up)
		}
	}
}

func TestTransportForRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *fsmpb.Remote
		key  string
	}{
		{"bad CA", &fsmpb.Remote{CaCertificatePem: "not a cert"}, ""},
		{"bad client pair", &fsmpb.Remote{ClientCertificatePem: "junk"}, "SECRET-KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := TransportFor(tc.r, "", tc.key, "")
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.key != "" && strings.Contains(err.Error(), tc.key) {
				t.Errorf("error %q quotes the key", err)
			}
		})
	}
	tr, err := TransportFor(&fsmpb.Remote{ProxyUrl: "http://proxy.test:3128", ProxyUsername: "p"}, "", "", "proxy-secret")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "https://r.example/v2/", nil)
	u, err := tr.Proxy(req)
	if err != nil || u.Host != "proxy.test:3128" {
		t.Fatalf("proxy %v %v", u, err)
	}
	if pw, _ := u.User.Password(); pw != "proxy-secret" {
		t.Error("proxy credentials not applied")
	}
}
