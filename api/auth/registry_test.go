package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// newTestRegistry is the registry authorizer over the token server's state,
// with claims recorded instead of proposed.
func newTestRegistry(t *testing.T) (*Registry, *tokenServer, *[]string) {
	t.Helper()
	s := newTokenServer(t)
	var claims []string
	reg := NewRegistry(RegistryConfig{
		Authenticator: s.h.authn, Tokens: s.tokens, Store: s.h.store, Service: service,
		Claim: func(_ context.Context, ns, user string) error {
			claims = append(claims, user+"@"+ns)
			return nil
		},
	})
	return reg, s, &claims
}

func basicHeader(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func authorize(reg *Registry, authz string, need ...Scope) (*Grant, *Refusal) {
	r := httptest.NewRequest(http.MethodGet, "http://registry.example/v2/", nil)
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	g, err := reg.Authorize(r, need)
	if err == nil {
		return g, nil
	}
	ref, ok := errors.AsType[*Refusal](err)
	if !ok {
		panic(err)
	}
	return nil, ref
}

func TestRegistryAuthorize(t *testing.T) {
	reg, s, claims := newTestRegistry(t)
	pullApp := RepositoryScope("acme/app", "pull")
	pushApp := RepositoryScope("acme/app", "pull", "push")

	_, ref := authorize(reg, "")
	if ref == nil || ref.Status != http.StatusUnauthorized ||
		ref.Challenge != `Bearer realm="http://registry.example/token",service="registry.example"` {
		t.Fatalf("anonymous /v2/: %+v", ref)
	}
	_, ref = authorize(reg, "", pullApp)
	if ref == nil || ref.Status != http.StatusUnauthorized || !strings.HasSuffix(ref.Challenge, `scope="repository:acme/app:pull"`) {
		t.Fatalf("anonymous pull of a private repository: %+v", ref)
	}
	if _, ref = authorize(reg, "", RepositoryScope("acme/pub", "pull")); ref != nil {
		t.Fatalf("anonymous pull of a public repository: %+v", ref)
	}
	if _, ref = authorize(reg, basicHeader("collab", "pw-collab"), pushApp); ref != nil {
		t.Fatalf("collaborator push with Basic credentials: %+v", ref)
	}
	_, ref = authorize(reg, basicHeader("nobody", "pw-nobody"), pullApp)
	if ref == nil || ref.Status != http.StatusForbidden || ref.Code != "DENIED" {
		t.Fatalf("pull without a role, Basic credentials: %+v", ref)
	}
	_, ref = authorize(reg, basicHeader("collab", "wrong"), pullApp)
	if ref == nil || ref.Status != http.StatusUnauthorized || ref.Message != ErrBadCredentials.Error() {
		t.Fatalf("wrong password: %+v", ref)
	}
	// The pull-only API token of collab, on acme.
	if _, ref = authorize(reg, basicHeader("collab", s.apiTok), pullApp); ref != nil {
		t.Fatalf("API token pull: %+v", ref)
	}
	if _, ref = authorize(reg, basicHeader("collab", s.apiTok), pushApp); ref == nil || ref.Status != http.StatusForbidden {
		t.Fatalf("API token push beyond its actions: %+v", ref)
	}

	// A token from the token service carries what it was granted.
	w := s.get(t, basicHeader("collab", "pw-collab"), "repository:acme/app:pull")
	if got := s.access(t, w); len(got) != 1 || got[0] != "repository:acme/app:pull" {
		t.Fatalf("token access: %v", got)
	}
	raw := tokenOf(t, w)
	if _, ref = authorize(reg, "Bearer "+raw, pullApp); ref != nil {
		t.Fatalf("bearer pull: %+v", ref)
	}
	_, ref = authorize(reg, "Bearer "+raw, pushApp)
	if ref == nil || ref.Status != http.StatusUnauthorized || !strings.Contains(ref.Challenge, `error="insufficient_scope"`) {
		t.Fatalf("bearer push with a pull token: %+v", ref)
	}
	_, ref = authorize(reg, "Bearer "+raw[:len(raw)-4]+"AAAA", pullApp)
	if ref == nil || ref.Status != http.StatusUnauthorized || !strings.Contains(ref.Challenge, `error="invalid_token"`) {
		t.Fatalf("tampered bearer token: %+v", ref)
	}

	// A publisher's first push into a new namespace claims it.
	g, ref := authorize(reg, basicHeader("pub", "pw-pub"), RepositoryScope("newns/app", "pull", "push"))
	if ref != nil {
		t.Fatalf("publisher push to a new namespace: %+v", ref)
	}
	if err := g.PrepareWrite(context.Background(), "newns/app"); err != nil || len(*claims) != 1 || (*claims)[0] != "pub@newns" {
		t.Fatalf("claim: %v %v", err, *claims)
	}
	if err := g.PrepareWrite(context.Background(), "acme/app"); err != nil || len(*claims) != 1 {
		t.Fatalf("a push into an existing namespace claimed it: %v %v", err, *claims)
	}
}

func tokenOf(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	body := w.Body.String()
	i := strings.Index(body, `"token":"`)
	if i < 0 {
		t.Fatalf("no token in %s", body)
	}
	rest := body[i+len(`"token":"`):]
	return rest[:strings.IndexByte(rest, '"')]
}
