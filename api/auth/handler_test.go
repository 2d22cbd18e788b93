package auth

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const service = "registry.example"

type tokenServer struct {
	h      *Handler
	tokens *Tokens
	clk    *clock
	logs   *bytes.Buffer
	apiTok string // collab's API token: pull only, on acme
	a      *applier
	keys   *memKeys
	// addr is the source address of requests ("": 192.0.2.1).
	addr string
}

// newTokenServer serves the matrix state with real passwords: every user's
// password is "pw-<name>". collab also holds a pull-only API token for
// acme, expiring in an hour.
func newTokenServer(t *testing.T) *tokenServer {
	t.Helper()
	f := matrixState(t)
	a := &applier{t: t, f: f, index: f.AppliedIndex()}
	for _, u := range []string{"collab", "pub", "nobody"} {
		h, err := HashPassword("pw-" + u)
		if err != nil {
			t.Fatal(err)
		}
		a.apply(fsm.NewCommand(&fsmpb.SetUserPassword{Name: u, PasswordHash: h}))
	}
	tokens, keys, clk := newTestTokens(t, service)
	id, secret, sum := NewAPIToken()
	a.apply(&fsmpb.Command{UnixNanos: clk.Now().UnixNano(), Op: &fsmpb.Command_CreateApiToken{CreateApiToken: &fsmpb.CreateApiToken{Token: &fsmpb.ApiToken{
		Id: id, Owner: "collab", Namespaces: []string{"acme"}, Actions: []string{"pull"},
		ExpiresUnixNanos: clk.Now().Add(time.Hour).UnixNano(), SecretSha256: sum,
	}}}})
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	store := FSMStore(f)
	authn := NewAuthenticator(AuthenticatorConfig{Store: store, Logger: logger, Now: clk.Now})
	h := NewHandler(HandlerConfig{Authenticator: authn, Store: store, Tokens: tokens, Service: service, Logger: logger})
	return &tokenServer{h: h, tokens: tokens, clk: clk, logs: logs, apiTok: secret, a: a, keys: keys}
}

// get requests a token with the given Authorization header and scopes.
func (s *tokenServer) get(t *testing.T, authz string, scopes ...string) *httptest.ResponseRecorder {
	t.Helper()
	q := url.Values{"service": {service}, "scope": scopes}
	r := httptest.NewRequest(http.MethodGet, "/token?"+q.Encode(), nil)
	r.RemoteAddr = cmp.Or(s.addr, "192.0.2.1") + ":40000"
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w
}

// access decodes a token answer and returns its access claims as strings.
func (s *tokenServer) access(t *testing.T, w *httptest.ResponseRecorder) []string {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp tokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Token == "" || resp.Token != resp.AccessToken || resp.ExpiresIn != 300 || resp.IssuedAt == "" {
		t.Fatalf("response = %+v", resp)
	}
	c, err := s.tokens.Verify(context.Background(), resp.Token)
	if err != nil {
		t.Fatal(err)
	}
	return scopeStrings(c.Access)
}

func TestTokenGrants(t *testing.T) {
	s := newTokenServer(t)
	collab := basic("collab", "pw-collab")
	tests := []struct {
		name   string
		authz  string
		scopes []string
		want   []string
	}{
		{"anonymous pulls public", "", []string{"repository:acme/pub:pull"}, []string{"repository:acme/pub:pull"}},
		{"anonymous empty basic", "Basic Og==", []string{"repository:acme/pub:pull"}, []string{"repository:acme/pub:pull"}},
		{"anonymous gets nothing private", "", []string{"repository:acme/app:pull,push"}, []string{}},
		{"anonymous login probe", "", nil, []string{}},
		{"login without scope", collab, nil, []string{}},
		{"push implies pull", collab, []string{"repository:acme/app:push"}, []string{"repository:acme/app:pull,push"}},
		{"collaborator cannot create a repository", collab, []string{"repository:acme/new:pull,push"}, []string{"repository:acme/new:pull"}},
		{"collaborator cannot delete", collab, []string{"repository:acme/app:delete,pull"}, []string{"repository:acme/app:pull"}},
		{"star asks for everything", collab, []string{"repository:acme/app:*"}, []string{"repository:acme/app:pull,push"}},
		{"mount adds pull on from", collab, []string{"repository:acme/app:pull,push", "repository:acme/pub:pull"}, []string{"repository:acme/app:pull,push", "repository:acme/pub:pull"}},
		{"catalog", collab, []string{"registry:catalog:*"}, []string{"registry:catalog:*"}},
		{"anonymous catalog (then filtered to public repositories)", "", []string{"registry:catalog:*"}, []string{"registry:catalog:*"}},
		{"publisher creates a namespace", basic("pub", "pw-pub"), []string{"repository:newns/app:pull,push"}, []string{"repository:newns/app:pull,push"}},
		{"no role", basic("nobody", "pw-nobody"), []string{"repository:acme/app:pull,push"}, []string{}},
		{"api token limits actions", basic("collab", s.apiTok), []string{"repository:acme/app:pull,push"}, []string{"repository:acme/app:pull"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.access(t, s.get(t, tt.authz, tt.scopes...)); !slices.Equal(got, tt.want) {
				t.Fatalf("access = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTokenRefusals(t *testing.T) {
	s := newTokenServer(t)
	expired := newTokenServer(t)
	expired.clk.advance(time.Hour)
	tests := []struct {
		name   string
		s      *tokenServer
		authz  string
		status int
	}{
		{"wrong password", s, basic("collab", "nope"), http.StatusUnauthorized},
		{"unknown user", s, basic("ghost", "pw-ghost"), http.StatusUnauthorized},
		{"unusable stored hash", s, basic("adm", "x"), http.StatusUnauthorized},
		{"api token of another user", s, basic("pub", s.apiTok), http.StatusUnauthorized},
		{"api token with a wrong secret", s, basic("collab", s.apiTok[:len(s.apiTok)-2]+"xx"), http.StatusUnauthorized},
		{"expired api token", expired, basic("collab", expired.apiTok), http.StatusUnauthorized},
		{"bearer", s, "Bearer abc", http.StatusUnauthorized},
		{"malformed header", s, "Basic !!!", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.s.get(t, tt.authz, "repository:acme/app:pull")
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if !strings.Contains(w.Body.String(), `"UNAUTHORIZED"`) || w.Header().Get("WWW-Authenticate") == "" {
				t.Fatalf("answer = %v %s", w.Header(), w.Body)
			}
		})
	}
}

func TestTokenBadRequests(t *testing.T) {
	s := newTokenServer(t)
	for name, target := range map[string]string{
		"no service":    "/token?scope=repository:a/b:pull",
		"other service": "/token?service=other&scope=repository:a/b:pull",
		"bad scope":     "/token?service=" + service + "&scope=repository:A:pull",
	} {
		w := httptest.NewRecorder()
		s.h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d: %s", name, w.Code, w.Body)
		}
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, httptest.NewRequest(http.MethodPut, "/token?service="+service, nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("PUT: status %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}

func TestFailedLoginsThrottled(t *testing.T) {
	s := newTokenServer(t)
	fail := func(n int) {
		t.Helper()
		for i := range n {
			if w := s.get(t, basic("collab", "guess"), "repository:acme/app:pull"); w.Code != http.StatusUnauthorized {
				t.Fatalf("guess %d: status %d", i, w.Code)
			}
		}
	}
	status := func(addr, user, password string) int {
		t.Helper()
		s.addr = addr
		defer func() { s.addr = "" }()
		return s.get(t, basic(user, password)).Code
	}
	fail(freeFailures)
	if code := status("", "collab", "pw-collab"); code != http.StatusOK {
		t.Fatalf("after %d free failures: status %d", freeFailures, code)
	}
	// Each failure beyond the free ones locks (address, user) out for
	// twice as long as the one before: 1s, 2s, 4s.
	for i, lock := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		fail(1)
		w := s.get(t, basic("collab", "pw-collab"))
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != strconv.Itoa(int(lock/time.Second)) {
			t.Fatalf("failure %d beyond the free ones: status %d, Retry-After %q; want 429 after %v", i+1, w.Code, w.Header().Get("Retry-After"), lock)
		}
		// The right password from another address, and another user
		// from this one, are never refused.
		if code := status("198.51.100.7", "collab", "pw-collab"); code != http.StatusOK {
			t.Fatalf("collab from another address: status %d", code)
		}
		if code := status("", "pub", "pw-pub"); code != http.StatusOK {
			t.Fatalf("another user from the same address: status %d", code)
		}
		s.clk.advance(lock - time.Millisecond)
		if code := status("", "collab", "pw-collab"); code != http.StatusTooManyRequests {
			t.Fatalf("just before the %v lockout ends: status %d", lock, code)
		}
		s.clk.advance(time.Millisecond)
		if code := status("", "collab", "pw-collab"); code != http.StatusOK {
			t.Fatalf("once the %v lockout ended: status %d", lock, code)
		}
	}
	// The counts fade after a quiet hour.
	s.clk.advance(forgetFailures + sweepEvery + time.Second)
	fail(1) // sweeps, then counts one
	if code := status("", "collab", "pw-collab"); code != http.StatusOK {
		t.Fatalf("a failure after a quiet hour: status %d, want the count restarted", code)
	}
}

func TestAuditLogNamesActorsNotSecrets(t *testing.T) {
	s := newTokenServer(t)
	s.get(t, basic("collab", "pw-collab"), "repository:acme/app:push")
	s.get(t, basic("collab", "wrong-secret"))
	s.get(t, basic("collab", s.apiTok), "repository:acme/app:pull")
	logs := s.logs.String()
	for _, want := range []string{`"event":"login"`, `"event":"login_failed"`, `"event":"token_issued"`, `"actor":"collab"`, `"method":"api_token"`, `"granted":["repository:acme/app:pull,push"]`} {
		if !strings.Contains(logs, want) {
			t.Errorf("audit log lacks %s:\n%s", want, logs)
		}
	}
	_, secret, _ := ParseAPIToken(s.apiTok)
	for _, secret := range []string{"pw-collab", "wrong-secret", secret} {
		if strings.Contains(logs, secret) {
			t.Errorf("audit log holds a secret:\n%s", logs)
		}
	}
}

// A first try (Verify) that fails neither counts towards the throttle nor
// writes an audit line; Authenticate does both. A pair locked out is
// refused by Verify too, so that no first try tests a password past the
// throttle.
func TestFirstTriesLeaveNoTrace(t *testing.T) {
	s := newTokenServer(t)
	request := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		r.RemoteAddr = "192.0.2.1:40000"
		return r
	}
	creds := func(password string) Credentials {
		return Credentials{Scheme: SchemeBasic, Username: "collab", Password: password}
	}
	for i := range 3 * freeFailures {
		if _, err := s.h.authn.Verify(request(), creds("guess")); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("first try %d: %v, want bad credentials", i, err)
		}
	}
	if logs := s.logs.String(); strings.Contains(logs, "login_failed") {
		t.Errorf("first tries were audited:\n%s", logs)
	}
	if _, err := s.h.authn.Authenticate(request(), creds("pw-collab")); err != nil {
		t.Fatalf("the right password after failed first tries: %v, want no throttle", err)
	}
	for range freeFailures + 1 {
		if _, err := s.h.authn.Authenticate(request(), creds("guess")); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("a real failure: %v", err)
		}
	}
	if logs := s.logs.String(); !strings.Contains(logs, `"event":"login_failed"`) {
		t.Errorf("a real failure was not audited:\n%s", logs)
	}
	if _, err := s.h.authn.Verify(request(), creds("pw-collab")); !errors.Is(err, ErrThrottled) {
		t.Fatalf("a first try of a locked-out pair: %v, want throttled", err)
	}
}
