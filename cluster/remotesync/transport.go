package remotesync

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/time/rate"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// TransportFor builds the HTTP transport to remote r: its TLS verification,
// extra CA roots, client certificate, proxy and timeouts. Its errors never
// quote a secret.
func TransportFor(r *fsmpb.Remote, password, clientKeyPEM, proxyPassword string) (*http.Transport, error) {
	_ = password // the registry's password is applied by the sync's authenticator, not the transport
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: r.GetInsecureSkipTlsVerify()}
	if pemCA := r.GetCaCertificatePem(); pemCA != "" {
		roots, err := x509.SystemCertPool()
		if err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM([]byte(pemCA)) {
			return nil, errors.New("remote transport: ca_certificate_pem holds no certificate")
		}
		cfg.RootCAs = roots
	}
	if certPEM := r.GetClientCertificatePem(); certPEM != "" {
		pair, err := tls.X509KeyPair([]byte(certPEM), []byte(clientKeyPEM))
		if err != nil {
			// The parser's message may quote the key: say only what failed.
			return nil, errors.New("remote transport: the client certificate and key do not load")
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	timeout := time.Duration(r.GetTimeoutNanos())
	if timeout <= 0 {
		timeout = fsm.DefaultRemoteTimeout
	}
	t := &http.Transport{
		TLSClientConfig:       cfg,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   int(max(r.GetConcurrency(), 1)),
		ForceAttemptHTTP2:     true,
	}
	if p := r.GetProxyUrl(); p != "" {
		u, err := url.Parse(p)
		if err != nil {
			return nil, errors.New("remote transport: proxy_url does not parse")
		}
		if r.GetProxyUsername() != "" || r.GetProxyPassword() != nil {
			u.User = url.UserPassword(r.GetProxyUsername(), proxyPassword)
		}
		t.Proxy = http.ProxyURL(u)
	}
	return t, nil
}

// UpstreamFor describes remote r as a sync's upstream over transport t. The
// remote's rate limit is shared by nodesSharing nodes (at least 1), so this
// node takes its share.
func UpstreamFor(r *fsmpb.Remote, password string, t http.RoundTripper, nodesSharing int) Upstream {
	nodesSharing = max(nodesSharing, 1)
	timeout := time.Duration(r.GetTimeoutNanos())
	if timeout <= 0 {
		timeout = fsm.DefaultRemoteTimeout
	}
	return Upstream{
		URL:         r.GetUrl(),
		Username:    r.GetUsername(),
		Password:    password,
		Transport:   t,
		RateLimit:   r.GetRateLimit() / float64(nodesSharing),
		Concurrency: int(r.GetConcurrency()),
		Timeout:     timeout,
	}
}

// retryPolicy bounds the retries of the resilient transport.
type retryPolicy struct {
	attempts      int           // at most this many tries of a request
	base, ceiling time.Duration // backoff starts at base and doubles up to ceiling
	maxRetryAfter time.Duration // a 429's Retry-After is capped at this
}

var defaultRetry = retryPolicy{attempts: 6, base: 500 * time.Millisecond, ceiling: 30 * time.Second, maxRetryAfter: 60 * time.Second}

// resilientTransport rate-limits, counts and retries the requests of a sync.
type resilientTransport struct {
	inner   http.RoundTripper
	limiter *rate.Limiter // nil: unlimited
	policy  retryPolicy
	timeout time.Duration // until response headers; 0: none
	sent    atomic.Int64
}

func newResilientTransport(inner http.RoundTripper, rps float64, timeout time.Duration, policy retryPolicy) *resilientTransport {
	t := &resilientTransport{inner: inner, policy: policy, timeout: timeout}
	if rps > 0 {
		burst := max(int(rps), 1)
		t.limiter = rate.NewLimiter(rate.Limit(rps), burst)
	}
	return t
}

// RoundTrip sends req, retrying a GET or HEAD that met a transient failure.
func (t *resilientTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	idempotent := (req.Method == http.MethodGet || req.Method == http.MethodHead) && (req.Body == nil || req.Body == http.NoBody)
	for attempt := 1; ; attempt++ {
		resp, err := t.once(req)
		last := !idempotent || attempt >= t.policy.attempts
		wait, retry := t.shouldRetry(resp, err, attempt)
		if !retry || last {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), ctx.Err())
		case <-timer.C:
		}
	}
}

// once sends req one time, after the rate limiter lets it through.
func (t *resilientTransport) once(req *http.Request) (*http.Response, error) {
	if t.limiter != nil {
		if err := t.limiter.Wait(req.Context()); err != nil {
			return nil, fmt.Errorf("rate limit: %w", err)
		}
	}
	t.sent.Add(1)
	if t.timeout <= 0 {
		return t.inner.RoundTrip(req)
	}
	// The timeout bounds the wait for headers, not the body of a large blob.
	ctx, cancel := context.WithCancel(req.Context())
	timer := time.AfterFunc(t.timeout, cancel)
	resp, err := t.inner.RoundTrip(req.WithContext(ctx))
	timer.Stop()
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// shouldRetry says whether a try's outcome is transient, and how long to
// wait before the next.
func (t *resilientTransport) shouldRetry(resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return 0, false
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
			errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
			return t.backoff(attempt), true
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return t.backoff(attempt), true
		}
		return 0, false
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(d, t.policy.maxRetryAfter), true
		}
		return t.backoff(attempt), true
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return t.backoff(attempt), true
	}
	return 0, false
}

// backoff is the wait after try attempt: base doubling up to the ceiling,
// with jitter of up to half of it.
func (t *resilientTransport) backoff(attempt int) time.Duration {
	d := t.policy.base
	for i := 1; i < attempt && d < t.policy.ceiling; i++ {
		d *= 2
	}
	d = min(d, t.policy.ceiling)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		// A huge value would overflow into a negative wait: a day is
		// more than any cap.
		return time.Duration(min(s, 86400)) * time.Second, true
	}
	when, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(when.Sub(now), 0), true
}
