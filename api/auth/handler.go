package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Handler serves the Docker token endpoint, GET /token?service=S&scope=…,
// for podman login, docker login and every pull and push after it, and its
// OAuth2 flow, POST /token with a form (serveOAuth).
type Handler struct {
	authn   *Authenticator
	store   Store
	tokens  *Tokens
	service string
	log     *slog.Logger
}

// HandlerConfig configures NewHandler.
type HandlerConfig struct {
	Authenticator *Authenticator
	Store         Store
	Tokens        *Tokens
	// Service is the registry's service name; requests must name it.
	Service string
	// Logger receives audit lines and failures; nil discards them.
	Logger *slog.Logger
}

// NewHandler returns the token endpoint.
func NewHandler(cfg HandlerConfig) *Handler {
	h := &Handler{authn: cfg.Authenticator, store: cfg.Store, tokens: cfg.Tokens, service: cfg.Service, log: cfg.Logger}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// tokenResponse is the body of a token answer, in both the Docker and the
// OAuth2 field names.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost {
		h.serveOAuth(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the token endpoint answers GET and POST")
		return
	}
	q := r.URL.Query()
	if svc := q.Get("service"); svc != h.service {
		writeError(w, http.StatusBadRequest, "DENIED", fmt.Sprintf("unknown service %q; this registry is %q", svc, h.service))
		return
	}
	scopes, err := ParseScopes(q["scope"])
	if err != nil {
		writeError(w, http.StatusBadRequest, "DENIED", err.Error())
		return
	}
	creds, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		h.unauthorized(w, err.Error())
		return
	}
	c, err := h.authn.Authenticate(r, creds)
	if err != nil {
		h.refuse(w, err)
		return
	}
	h.issue(w, r, c, scopes)
}

// Faults of mint, as told to the client.
var (
	errGrantFault = errors.New("cannot read permissions now; try again")
	errSignFault  = errors.New("cannot sign tokens now; try again")
)

// mint signs a token for c granting what Decide allows of scopes, and
// returns it with the scopes granted and its issue time. Its errors, after
// it logged the cause, are errGrantFault and errSignFault.
func (h *Handler) mint(r *http.Request, c Caller, scopes []Scope) (string, []Scope, time.Time, error) {
	granted := make([]Scope, 0, len(scopes))
	for _, sc := range scopes {
		g, err := h.grant(r, c, sc)
		if err != nil {
			h.log.Error("token request failed", "user", c.User, "scope", sc.String(), "error", err)
			return "", nil, time.Time{}, errGrantFault
		}
		if len(g.Actions) > 0 {
			granted = append(granted, g)
		}
	}
	token, issued, err := h.tokens.Issue(r.Context(), c, granted)
	if err != nil {
		h.log.Error("token request failed", "user", c.User, "error", err)
		return "", nil, time.Time{}, errSignFault
	}
	if len(scopes) > 0 && !c.Anonymous() {
		Audit(h.log, "token_issued", c.User, h.service, "requested", scopeStrings(scopes), "granted", scopeStrings(granted))
	}
	return token, granted, issued, nil
}

// issue answers with a token for c granting what Decide allows of scopes.
func (h *Handler) issue(w http.ResponseWriter, r *http.Request, c Caller, scopes []Scope) {
	token, _, issued, err := h.mint(r, c, scopes)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", err.Error())
		return
	}
	body, _ := json.Marshal(tokenResponse{
		Token: token, AccessToken: token,
		ExpiresIn: int(h.tokens.ttl / time.Second), IssuedAt: issued.UTC().Format(time.RFC3339),
	})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// grant returns the part of sc that c may do. Push implies pull; "*" on a
// repository asks for every action.
func (h *Handler) grant(r *http.Request, c Caller, sc Scope) (Scope, error) {
	out := Scope{Type: sc.Type, Name: sc.Name}
	if sc.Type == TypeRegistry {
		st, err := h.store.Access(r.Context(), c.User, "")
		if err != nil {
			return out, err
		}
		if slices.Contains(sc.Actions, "*") && Decide(c, ActionCatalog, "", st) {
			out.Actions = []string{"*"}
		}
		return out, nil
	}
	st, err := h.store.Access(r.Context(), c.User, sc.Name)
	if err != nil {
		return out, err
	}
	want := sc.Actions
	if slices.Contains(want, "*") {
		want = []string{"delete", "pull", "push"}
	}
	for _, a := range want {
		if (a == "pull" || a == "push" || a == "delete") && Decide(c, Action(a), sc.Name, st) {
			out.Actions = append(out.Actions, a)
		}
	}
	if slices.Contains(out.Actions, "push") && !slices.Contains(out.Actions, "pull") {
		out.Actions = append(out.Actions, "pull")
	}
	slices.Sort(out.Actions)
	return out, nil
}

func scopeStrings(scopes []Scope) []string {
	out := make([]string, len(scopes))
	for i, sc := range scopes {
		out[i] = sc.String()
	}
	return out
}

// refuse answers a failed authentication.
func (h *Handler) refuse(w http.ResponseWriter, err error) {
	var throttled *ThrottledError
	switch {
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(int(throttled.RetryAfter.Round(time.Second)/time.Second)))
		writeError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", throttled.Error())
	case errors.Is(err, ErrBadCredentials):
		h.unauthorized(w, ErrBadCredentials.Error())
	default:
		h.log.Error("authentication failed", "error", err)
		writeError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "cannot check credentials now; try again")
	}
}

// unauthorized answers 401, which podman reports as "invalid
// username/password".
func (h *Handler) unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+h.service+`"`)
	writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg)
}

// writeError answers with the OCI error envelope.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	type item struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	body, _ := json.Marshal(struct {
		Errors []item `json:"errors"`
	}{[]item{{code, msg}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
