package auth

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const formType = "application/x-www-form-urlencoded"

// post sends a token request with body form of the given content type.
func (s *tokenServer) post(t *testing.T, contentType, form string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form))
	r.RemoteAddr = cmp.Or(s.addr, "192.0.2.1") + ":40000"
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	return w
}

// passwordForm is a password grant of name and password for scopes.
func passwordForm(name, password string, scopes ...string) url.Values {
	return url.Values{"grant_type": {"password"}, "service": {service}, "client_id": {"wharf-test"},
		"username": {name}, "password": {password}, "scope": scopes}
}

// refreshForm is a refresh grant of token for scopes.
func refreshForm(token string, scopes ...string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "service": {service}, "client_id": {"wharf-test"},
		"refresh_token": {token}, "scope": scopes}
}

func offline(v url.Values) url.Values {
	v.Set("access_type", "offline")
	return v
}

// oauth decodes a successful OAuth2 answer, checks it, and returns it with
// its access token's grants as strings.
func (s *tokenServer) oauth(t *testing.T, w *httptest.ResponseRecorder) (oauthTokenResponse, []string) {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp oauthTokenResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.AccessToken == "" || resp.TokenType != "Bearer" || resp.ExpiresIn != 300 || resp.IssuedAt == "" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("response = %s", w.Body)
	}
	c, err := s.tokens.Verify(context.Background(), resp.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	access := scopeStrings(c.Access)
	if resp.Scope != strings.Join(access, " ") {
		t.Fatalf("scope %q, but the token grants %v", resp.Scope, access)
	}
	return resp, access
}

// oauthFailure checks an OAuth2 error answer and returns its error code.
func oauthFailure(t *testing.T, w *httptest.ResponseRecorder, status int) string {
	t.Helper()
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || w.Code != status || e.Error == "" || e.Description == "" ||
		w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %s, want an OAuth2 error with status %d", w.Code, w.Body, status)
	}
	return e.Error
}

// refreshToken logs in name with password, offline, and returns the
// refresh token.
func (s *tokenServer) refreshToken(t *testing.T, name, password string) string {
	t.Helper()
	resp, _ := s.oauth(t, s.post(t, formType, offline(passwordForm(name, password)).Encode()))
	if resp.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	return resp.RefreshToken
}

func TestOAuthPasswordGrant(t *testing.T) {
	s := newTokenServer(t)
	tests := []struct {
		name        string
		user, pw    string
		scopes      []string
		accessType  string
		want        []string
		wantRefresh bool
	}{
		{"push implies pull", "collab", "pw-collab", []string{"repository:acme/app:push"}, "", []string{"repository:acme/app:pull,push"}, false},
		{"filtered by the role", "collab", "pw-collab", []string{"repository:acme/new:pull,push repository:acme/app:delete,pull"}, "offline",
			[]string{"repository:acme/new:pull", "repository:acme/app:pull"}, true},
		{"repeated scopes merge", "collab", "pw-collab", []string{"repository:acme/app:pull", "repository:acme/app:push"}, "online", []string{"repository:acme/app:pull,push"}, false},
		{"lists and repeats", "collab", "pw-collab", []string{"repository:acme/app:pull registry:catalog:*", "repository:acme/pub:pull"}, "",
			[]string{"repository:acme/app:pull", "registry:catalog:*", "repository:acme/pub:pull"}, false},
		{"publisher creates a namespace", "pub", "pw-pub", []string{"repository:newns/app:pull,push"}, "offline", []string{"repository:newns/app:pull,push"}, true},
		{"no role", "nobody", "pw-nobody", []string{"repository:acme/app:pull,push"}, "", []string{}, false},
		{"login without scope", "collab", "pw-collab", nil, "offline", []string{}, true},
		{"api token limits actions", "collab", s.apiTok, []string{"repository:acme/app:pull,push"}, "", []string{"repository:acme/app:pull"}, false},
		{"api token offline", "collab", s.apiTok, []string{"repository:acme/app:*"}, "offline", []string{"repository:acme/app:pull"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := passwordForm(tt.user, tt.pw, tt.scopes...)
			if tt.accessType != "" {
				form.Set("access_type", tt.accessType)
			}
			resp, got := s.oauth(t, s.post(t, formType, form.Encode()))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("access = %v, want %v", got, tt.want)
			}
			if (resp.RefreshToken != "") != tt.wantRefresh {
				t.Fatalf("refresh token %q, want one: %v", resp.RefreshToken, tt.wantRefresh)
			}
			if tt.wantRefresh {
				c, err := s.tokens.VerifyRefresh(context.Background(), resp.RefreshToken)
				if err != nil || c.Subject != tt.user {
					t.Fatalf("refresh token: %+v, %v", c, err)
				}
			}
		})
	}
}

func TestOAuthRefreshGrant(t *testing.T) {
	s := newTokenServer(t)
	pw := s.refreshToken(t, "collab", "pw-collab")
	api := s.refreshToken(t, "collab", s.apiTok)
	tests := []struct {
		name    string
		refresh string
		scopes  []string
		want    []string
	}{
		{"password login", pw, []string{"repository:acme/app:push"}, []string{"repository:acme/app:pull,push"}},
		{"filtered by the role", pw, []string{"repository:acme/new:pull,push", "registry:catalog:*"}, []string{"repository:acme/new:pull", "registry:catalog:*"}},
		{"no scope", pw, nil, []string{}},
		{"api token login keeps its limits", api, []string{"repository:acme/app:pull,push"}, []string{"repository:acme/app:pull"}},
		{"api token login, public", api, []string{"repository:acme/pub:pull"}, []string{"repository:acme/pub:pull"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A refresh grants no new refresh token, offline or not.
			resp, got := s.oauth(t, s.post(t, formType, offline(refreshForm(tt.refresh, tt.scopes...)).Encode()))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("access = %v, want %v", got, tt.want)
			}
			if resp.RefreshToken != "" {
				t.Fatal("a refresh answered a refresh token")
			}
		})
	}
	// A refresh grants what the roles allow now.
	s.a.apply(fsm.NewCommand(&fsmpb.RevokeRole{Grant: &fsmpb.Grant{
		Role: fsmpb.Role_ROLE_COLLABORATOR, Namespace: "acme", Subject: &fsmpb.Subject{Kind: user, Name: "collab"},
	}}))
	if _, got := s.oauth(t, s.post(t, formType, refreshForm(pw, "repository:acme/app:pull,push").Encode())); len(got) != 0 {
		t.Fatalf("after the role was revoked: access = %v", got)
	}
}

func TestOAuthRefreshRefused(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// token returns the refresh token to present, after changing s.
		token  func(t *testing.T, s *tokenServer) string
		status int
	}{
		{"valid for 29 days", func(t *testing.T, s *tokenServer) string {
			tok := s.refreshToken(t, "collab", "pw-collab")
			s.clk.advance(29 * 24 * time.Hour)
			return tok
		}, http.StatusOK},
		{"expired", func(t *testing.T, s *tokenServer) string {
			tok := s.refreshToken(t, "collab", "pw-collab")
			s.clk.advance(RefreshTokenTTL + clockSkew + time.Second)
			return tok
		}, http.StatusUnauthorized},
		{"access token", func(t *testing.T, s *tokenServer) string {
			resp, _ := s.oauth(t, s.post(t, formType, passwordForm("collab", "pw-collab", "repository:acme/app:pull").Encode()))
			return resp.AccessToken
		}, http.StatusUnauthorized},
		{"tampered signature", func(t *testing.T, s *tokenServer) string {
			parts := strings.Split(s.refreshToken(t, "collab", "pw-collab"), ".")
			sig, err := base64.RawURLEncoding.DecodeString(parts[2])
			if err != nil {
				t.Fatal(err)
			}
			sig[10] ^= 1
			return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
		}, http.StatusUnauthorized},
		{"tampered claims", func(t *testing.T, s *tokenServer) string {
			parts := strings.Split(s.refreshToken(t, "pub", "pw-pub"), ".")
			c, err := s.tokens.VerifyRefresh(ctx, strings.Join(parts, "."))
			if err != nil {
				t.Fatal(err)
			}
			c.Subject = "root"
			body, _ := json.Marshal(c)
			return parts[0] + "." + jwtSegment(t, string(body)) + "." + parts[2]
		}, http.StatusUnauthorized},
		{"another service's", func(t *testing.T, s *tokenServer) string {
			other := NewTokens(TokensConfig{Keys: s.keys.source, Issuer: "wharf", Service: "other.example", Now: s.clk.Now})
			u, _ := s.h.store.User(ctx, "collab")
			tok, err := other.IssueRefresh(ctx, Caller{User: u.GetName(), login: passwordLogin(u)})
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, http.StatusUnauthorized},
		{"foreign key", func(t *testing.T, s *tokenServer) string {
			stranger, _, _ := newTestTokens(t, service)
			u, _ := s.h.store.User(ctx, "collab")
			tok, _ := stranger.IssueRefresh(ctx, Caller{User: u.GetName(), login: passwordLogin(u)})
			return tok
		}, http.StatusUnauthorized},
		{"not a refresh token", func(t *testing.T, s *tokenServer) string {
			c, _ := s.tokens.VerifyRefresh(ctx, s.refreshToken(t, "collab", "pw-collab"))
			c.Use = ""
			tok, err := s.tokens.sign(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, http.StatusUnauthorized},
		{"user deleted", func(t *testing.T, s *tokenServer) string {
			tok := s.refreshToken(t, "collab", "pw-collab")
			s.a.apply(fsm.NewCommand(&fsmpb.DeleteUser{Name: "collab"}))
			return tok
		}, http.StatusUnauthorized},
		{"user created again", func(t *testing.T, s *tokenServer) string {
			tok := s.refreshToken(t, "collab", "pw-collab")
			u, _ := s.h.store.User(ctx, "collab")
			s.a.apply(fsm.NewCommand(&fsmpb.DeleteUser{Name: "collab"}),
				fsm.NewCommand(&fsmpb.CreateUser{Name: "collab", PasswordHash: u.GetPasswordHash()}))
			return tok
		}, http.StatusUnauthorized},
		{"password changed", func(t *testing.T, s *tokenServer) string {
			tok := s.refreshToken(t, "collab", "pw-collab")
			h, _ := HashPassword("pw-collab") // the same password, a new hash
			s.a.apply(fsm.NewCommand(&fsmpb.SetUserPassword{Name: "collab", PasswordHash: h}))
			return tok
		}, http.StatusUnauthorized},
		{"password removed", func(t *testing.T, s *tokenServer) string {
			tok := s.refreshToken(t, "collab", "pw-collab")
			s.a.apply(fsm.NewCommand(&fsmpb.SetUserPassword{Name: "collab"}))
			return tok
		}, http.StatusUnauthorized},
		{"api token revoked", func(t *testing.T, s *tokenServer) string {
			tok := s.refreshToken(t, "collab", s.apiTok)
			id, _, _ := ParseAPIToken(s.apiTok)
			s.a.apply(fsm.NewCommand(&fsmpb.DeleteApiToken{Id: id}))
			return tok
		}, http.StatusUnauthorized},
		{"api token expired", func(t *testing.T, s *tokenServer) string {
			tok := s.refreshToken(t, "collab", s.apiTok)
			s.clk.advance(time.Hour + clockSkew + time.Second)
			return tok
		}, http.StatusUnauthorized},
		{"garbage", func(*testing.T, *tokenServer) string { return "not.a.token" }, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTokenServer(t)
			w := s.post(t, formType, refreshForm(tt.token(t, s), "repository:acme/pub:pull").Encode())
			if tt.status == http.StatusOK {
				s.oauth(t, w)
				return
			}
			if code := oauthFailure(t, w, tt.status); code != oauthInvalidGrant || w.Header().Get("WWW-Authenticate") == "" {
				t.Fatalf("error %q, WWW-Authenticate %q", code, w.Header().Get("WWW-Authenticate"))
			}
			if !strings.Contains(s.logs.String(), `"event":"login_failed"`) {
				t.Fatalf("no failed login in the audit log:\n%s", s.logs)
			}
		})
	}
}

func TestOAuthFailedLoginsThrottled(t *testing.T) {
	s := newTokenServer(t)
	// Failures of both flows count alike.
	for i := range freeFailures + 1 {
		if i%2 == 0 {
			if w := s.get(t, basic("collab", "guess"), "repository:acme/app:pull"); w.Code != http.StatusUnauthorized {
				t.Fatalf("attempt %d: status %d", i, w.Code)
			}
			continue
		}
		w := s.post(t, formType, passwordForm("collab", "guess", "repository:acme/app:pull").Encode())
		if code := oauthFailure(t, w, http.StatusUnauthorized); code != oauthInvalidGrant || w.Header().Get("WWW-Authenticate") == "" {
			t.Fatalf("attempt %d: error %q", i, code)
		}
	}
	w := s.post(t, formType, passwordForm("collab", "pw-collab").Encode())
	if code := oauthFailure(t, w, http.StatusTooManyRequests); code != oauthUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("after %d failures: error %q, Retry-After %q", freeFailures+1, code, w.Header().Get("Retry-After"))
	}
	if w := s.get(t, basic("collab", "pw-collab")); w.Code != http.StatusTooManyRequests {
		t.Fatalf("GET after %d failures: status %d", freeFailures+1, w.Code)
	}
	s.oauth(t, s.post(t, formType, passwordForm("pub", "pw-pub").Encode()))
	s.clk.advance(time.Second)
	s.oauth(t, s.post(t, formType, passwordForm("collab", "pw-collab").Encode()))

	// Refused refresh tokens count against the source address, apart from
	// its password logins.
	s = newTokenServer(t)
	good := s.refreshToken(t, "collab", "pw-collab")
	for i := range freeFailures + 1 {
		w := s.post(t, formType, refreshForm(good[:len(good)-4]+"AAAA").Encode())
		if code := oauthFailure(t, w, http.StatusUnauthorized); code != oauthInvalidGrant {
			t.Fatalf("attempt %d: error %q", i, code)
		}
	}
	if code := oauthFailure(t, s.post(t, formType, refreshForm(good).Encode()), http.StatusTooManyRequests); code != oauthUnavailable {
		t.Fatalf("refresh after %d failures: error %q", freeFailures+1, code)
	}
	if w := s.get(t, basic("pub", "pw-pub")); w.Code != http.StatusOK {
		t.Fatalf("a password login from the same address: status %d", w.Code)
	}
	s.addr = "198.51.100.7"
	s.oauth(t, s.post(t, formType, refreshForm(good).Encode()))
}

func TestOAuthBadRequests(t *testing.T) {
	s := newTokenServer(t)
	valid := passwordForm("collab", "pw-collab", "repository:acme/app:pull")
	with := func(key, value string) string {
		v := url.Values{}
		for k, vs := range valid {
			v[k] = slices.Clone(vs)
		}
		if value == "" {
			v.Del(key)
		} else {
			v.Set(key, value)
		}
		return v.Encode()
	}
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
	}{
		{"valid", formType, valid.Encode(), http.StatusOK, ""},
		{"charset parameter", formType + "; charset=UTF-8", valid.Encode(), http.StatusOK, ""},
		{"no client_id", formType, with("client_id", ""), http.StatusBadRequest, oauthInvalidRequest},
		{"empty client_id", formType, valid.Encode() + "&client_id=", http.StatusBadRequest, oauthInvalidRequest},
		{"unknown grant_type", formType, with("grant_type", "client_credentials"), http.StatusBadRequest, oauthUnsupportedGrantType},
		{"no grant_type", formType, with("grant_type", ""), http.StatusBadRequest, oauthInvalidRequest},
		{"repeated grant_type", formType, valid.Encode() + "&grant_type=password", http.StatusBadRequest, oauthInvalidRequest},
		{"json", "application/json", valid.Encode(), http.StatusBadRequest, oauthInvalidRequest},
		{"no content type", "", valid.Encode(), http.StatusBadRequest, oauthInvalidRequest},
		{"multipart", "multipart/form-data; boundary=x", valid.Encode(), http.StatusBadRequest, oauthInvalidRequest},
		{"malformed content type", "application/x-www-form-urlencoded; =", valid.Encode(), http.StatusBadRequest, oauthInvalidRequest},
		{"malformed form", formType, valid.Encode() + "&%zz=1", http.StatusBadRequest, oauthInvalidRequest},
		{"too long", formType, valid.Encode() + "&pad=" + strings.Repeat("a", maxTokenFormLength), http.StatusBadRequest, oauthInvalidRequest},
		{"no service", formType, with("service", ""), http.StatusBadRequest, oauthInvalidRequest},
		{"other service", formType, with("service", "other.example"), http.StatusBadRequest, oauthInvalidRequest},
		{"bad scope", formType, with("scope", "repository:ACME:pull"), http.StatusBadRequest, oauthInvalidScope},
		{"bad access_type", formType, with("access_type", "forever"), http.StatusBadRequest, oauthInvalidRequest},
		{"no username", formType, with("username", ""), http.StatusBadRequest, oauthInvalidRequest},
		{"no password", formType, with("password", ""), http.StatusBadRequest, oauthInvalidRequest},
		{"control character", formType, with("username", "collab\n"), http.StatusBadRequest, oauthInvalidRequest},
		{"no refresh_token", formType, with("grant_type", "refresh_token"), http.StatusBadRequest, oauthInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := s.post(t, tt.contentType, tt.body)
			if tt.status == http.StatusOK {
				s.oauth(t, w)
				return
			}
			if code := oauthFailure(t, w, tt.status); code != tt.code {
				t.Fatalf("error %q, want %q: %s", code, tt.code, w.Body)
			}
		})
	}
	// Malformed requests are no failed logins.
	if strings.Contains(s.logs.String(), "login_failed") {
		t.Fatalf("a malformed request counted as a failed login:\n%s", s.logs)
	}
}

func TestOAuthAuditLogNamesActorsNotSecrets(t *testing.T) {
	s := newTokenServer(t)
	resp, _ := s.oauth(t, s.post(t, formType, offline(passwordForm("collab", "pw-collab", "repository:acme/app:push")).Encode()))
	s.oauth(t, s.post(t, formType, refreshForm(resp.RefreshToken, "repository:acme/app:pull").Encode()))
	s.post(t, formType, passwordForm("collab", "wrong-secret").Encode())
	s.post(t, formType, refreshForm(resp.RefreshToken+"x").Encode())
	apiResp, _ := s.oauth(t, s.post(t, formType, offline(passwordForm("collab", s.apiTok, "repository:acme/app:pull")).Encode()))
	logs := s.logs.String()
	// Each line: event actor method.
	var events []string
	for line := range strings.Lines(logs) {
		var l struct {
			Event, Actor string
			Details      struct{ Method string }
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatal(err)
		}
		events = append(events, strings.TrimSpace(l.Event+" "+l.Actor+" "+l.Details.Method))
	}
	for _, want := range []string{"login collab password", "token_issued collab", "refresh_token_issued collab", "login collab refresh_token",
		"login_failed collab password", "login_failed  refresh_token", "login collab api_token"} {
		if !slices.Contains(events, want) {
			t.Errorf("audit log lacks %q: %q", want, events)
		}
	}
	if !strings.Contains(logs, `"granted":["repository:acme/app:pull,push"]`) {
		t.Errorf("audit log lacks the grant:\n%s", logs)
	}
	_, secret, _ := ParseAPIToken(s.apiTok)
	for _, tok := range []string{resp.AccessToken, resp.RefreshToken, apiResp.RefreshToken} {
		parts := strings.Split(tok, ".")
		for _, secret := range []string{parts[1], parts[2]} {
			if strings.Contains(logs, secret) {
				t.Errorf("audit log holds a token:\n%s", logs)
			}
		}
	}
	for _, secret := range []string{"pw-collab", "wrong-secret", secret} {
		if strings.Contains(logs, secret) {
			t.Errorf("audit log holds a secret:\n%s", logs)
		}
	}
}

// TestGETIgnoresOAuthFields checks that the GET flow is not the OAuth2
// one: form fields in the query change nothing.
func TestGETIgnoresOAuthFields(t *testing.T) {
	s := newTokenServer(t)
	refresh := s.refreshToken(t, "collab", "pw-collab")
	q := url.Values{"service": {service}, "scope": {"repository:acme/app:pull"}, "grant_type": {"refresh_token"},
		"refresh_token": {refresh}, "client_id": {"x"}, "access_type": {"offline"}}
	r := httptest.NewRequest(http.MethodGet, "/token?"+q.Encode(), nil)
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, r)
	if got := s.access(t, w); len(got) != 0 || strings.Contains(w.Body.String(), "refresh_token") {
		t.Fatalf("GET with OAuth2 fields: %s", w.Body)
	}
}

// TestRefreshTokenIsNoBearer checks that the registry takes the access
// token of the OAuth2 flow, and refuses its refresh token.
func TestRefreshTokenIsNoBearer(t *testing.T) {
	reg, s, _ := newTestRegistry(t)
	resp, _ := s.oauth(t, s.post(t, formType, offline(passwordForm("collab", "pw-collab", "repository:acme/app:pull")).Encode()))
	pull := RepositoryScope("acme/app", "pull")
	if _, ref := authorize(reg, "Bearer "+resp.AccessToken, pull); ref != nil {
		t.Fatalf("access token: %+v", ref)
	}
	if _, ref := authorize(reg, "Bearer "+resp.RefreshToken, pull); ref == nil || ref.Status != http.StatusUnauthorized ||
		!strings.Contains(ref.Challenge, `error="invalid_token"`) {
		t.Fatalf("refresh token as a Bearer token: %+v", ref)
	}
}

func TestRefreshTokenClaims(t *testing.T) {
	ctx := context.Background()
	tokens, _, clk := newTestTokens(t, service)
	u := &fsmpb.User{Name: "alice", Id: 7, PasswordHash: "$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA"}
	raw, err := tokens.IssueRefresh(ctx, Caller{User: u.GetName(), login: passwordLogin(u)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tokens.VerifyRefresh(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.UserID != 7 || c.APIToken != "" || c.Password != passwordFingerprint(u.GetPasswordHash()) ||
		c.ExpiresAt.Sub(c.IssuedAt.Time) != RefreshTokenTTL || !slices.Equal(c.Audience, []string{refreshAudience(service)}) {
		t.Fatalf("claims = %+v", c)
	}
	if strings.Contains(raw, "c2FsdA") || strings.Contains(raw, "aGFzaA") {
		t.Fatal("the refresh token holds the password hash")
	}
	// One issued for an API token ends with it.
	apiTok := &fsmpb.ApiToken{Id: "tok1", Owner: "alice", ExpiresUnixNanos: clk.Now().Add(time.Hour).UnixNano()}
	raw, _ = tokens.IssueRefresh(ctx, Caller{User: u.GetName(), Token: apiTok, login: tokenLogin(u, apiTok)})
	if c, err = tokens.VerifyRefresh(ctx, raw); err != nil || c.APIToken != "tok1" || c.Password != "" || !c.ExpiresAt.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("claims = %+v, %v", c, err)
	}

	// Access and refresh tokens are never taken for one another.
	access, _, _ := tokens.Issue(ctx, Caller{User: "alice"}, nil)
	if _, err := tokens.VerifyRefresh(ctx, access); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("VerifyRefresh(access token) = %v", err)
	}
	if _, err := tokens.Verify(ctx, raw); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify(refresh token) = %v", err)
	}
	// Not even one crafted with the access token's audience.
	forged := RefreshClaims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "wharf", Subject: "alice", Audience: jwt.ClaimStrings{service},
		ExpiresAt: jwt.NewNumericDate(clk.Now().Add(time.Hour))}, Use: refreshUse, Login: Login{UserID: 7, Password: "x"}}
	raw, _ = tokens.sign(ctx, forged)
	if _, err := tokens.VerifyRefresh(ctx, raw); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("VerifyRefresh(refresh claims for the access audience) = %v", err)
	}
	// Neither a password nor an API token: bound to nothing.
	forged.Audience, forged.Password = jwt.ClaimStrings{refreshAudience(service)}, ""
	raw, _ = tokens.sign(ctx, forged)
	if _, err := tokens.VerifyRefresh(ctx, raw); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("VerifyRefresh(unbound) = %v", err)
	}
}

func FuzzParseTokenForm(f *testing.F) {
	for _, s := range []string{
		passwordForm("alice", "pw", "repository:acme/app:pull,push registry:catalog:*").Encode() + "&access_type=offline",
		refreshForm("a.b.c", "repository:acme/app:pull", "repository:acme/app:push").Encode(),
		"grant_type=password&client_id=x&username=a&password=b",
		"grant_type=client_credentials&client_id=x",
		"grant_type=password&grant_type=password",
		"a=%zz;b",
		"",
	} {
		f.Add(formType, s)
	}
	f.Add("multipart/form-data", "grant_type=refresh_token&client_id=x&refresh_token=t")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		form, err := parseTokenForm(contentType, []byte(body))
		if err != nil {
			e, ok := errors.AsType[*oauthError](err)
			if !ok || e.status != http.StatusBadRequest || e.description == "" ||
				!slices.Contains([]string{oauthInvalidRequest, oauthInvalidScope, oauthUnsupportedGrantType}, e.code) {
				t.Fatalf("parseTokenForm(%q, %q) = %v", contentType, body, err)
			}
			if !reflect.DeepEqual(form, tokenForm{}) {
				t.Fatalf("parseTokenForm(%q, %q) failed but returned %+v", contentType, body, form)
			}
			return
		}
		if form.ClientID == "" {
			t.Fatalf("parseTokenForm(%q) accepted no client_id", body)
		}
		switch form.GrantType {
		case grantPassword:
			if form.Username == "" || form.Password == "" || form.RefreshToken != "" || len(form.Username) > maxFormUsernameLength ||
				strings.ContainsAny(form.Username, "\x00\r\n") || strings.ContainsRune(form.Password, 0) {
				t.Fatalf("parseTokenForm(%q) = bad password grant", body)
			}
		case grantRefresh:
			if form.RefreshToken == "" || form.Username != "" || form.Password != "" {
				t.Fatalf("parseTokenForm(%q) = bad refresh grant", body)
			}
		default:
			t.Fatalf("parseTokenForm(%q) accepted grant_type %q", body, form.GrantType)
		}
		// The form, written again, parses to itself.
		v := url.Values{"grant_type": {form.GrantType}, "client_id": {form.ClientID}}
		for k, s := range map[string]string{"service": form.Service, "username": form.Username, "password": form.Password, "refresh_token": form.RefreshToken} {
			if s != "" {
				v.Set(k, s)
			}
		}
		if form.Offline {
			v.Set("access_type", "offline")
		}
		if len(form.Scopes) > 0 {
			v["scope"] = scopeStrings(form.Scopes)
		}
		again, err := parseTokenForm(formType, []byte(v.Encode()))
		if err != nil || !reflect.DeepEqual(again, form) {
			t.Fatalf("round trip of %q: %+v, %v", body, again, err)
		}
	})
}
