package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/wharf-registry/wharf/fsm"
)

// Registry authenticates and authorizes requests to the registry API
// (/v2/): Bearer tokens from the token service, verified with the
// cluster's keys, or Basic credentials (a password or an API token) given
// directly, for simple clients.
type Registry struct {
	authn     *Authenticator
	tokens    *Tokens
	store     Store
	local     Store
	firstTry  bool
	now       func() time.Time
	service   string
	publicURL string
	claim     func(ctx context.Context, namespace, user string) error
	log       *slog.Logger
}

// RegistryConfig configures NewRegistry.
type RegistryConfig struct {
	Authenticator *Authenticator
	Tokens        *Tokens
	// Store serves the state that decisions read; on a cluster node, with
	// linearizable reads.
	Store Store
	// Local, if set, serves this node's applied state without a read
	// index. A Bearer token's reads are first checked against it, and
	// against Store only when Local refuses them: a revocation applied here
	// takes effect at once, and a grant this node has not applied yet costs
	// one read index.
	Local Store
	// FirstTry makes every refusal a first try that the caller repeats
	// with another Registry, on fresher state: failed logins are then
	// neither counted by the throttle nor audited (Authenticator.Verify).
	// A node authorizes uploads so on its applied state first.
	FirstTry bool
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Service is the token service name, in challenges.
	Service string
	// PublicURL, if set, makes the realm of challenges PublicURL/token.
	PublicURL string
	// Claim records user as the creator of namespace (the ClaimNamespace
	// command); it returns an error wrapping fsm.ErrAlreadyExists when the
	// namespace exists or another user claimed it.
	Claim  func(ctx context.Context, namespace, user string) error
	Logger *slog.Logger
}

// NewRegistry returns the registry API's authorizer.
func NewRegistry(cfg RegistryConfig) *Registry {
	r := &Registry{
		authn: cfg.Authenticator, tokens: cfg.Tokens, store: cfg.Store, local: cfg.Local, firstTry: cfg.FirstTry, now: cfg.Now,
		service: cfg.Service, publicURL: cfg.PublicURL, claim: cfg.Claim, log: cfg.Logger,
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.local == nil {
		r.local = r.store
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r
}

// Refusal is a request the registry refuses for want of authorization.
type Refusal struct {
	// Status is 401, 403, 429 or 503.
	Status int
	// Code is the OCI error code: UNAUTHORIZED, DENIED, TOOMANYREQUESTS or
	// UNAVAILABLE.
	Code    string
	Message string
	// Challenge is the WWW-Authenticate value of a 401.
	Challenge string
	// RetryAfter is set for 429.
	RetryAfter time.Duration
	// Err is the cause, for the log.
	Err error
}

func (e *Refusal) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Refusal) Unwrap() error { return e.Err }

// Grant is an authorized caller of the registry API.
type Grant struct {
	reg    *Registry
	caller Caller
	// claims is set for a Bearer caller: what its token allows.
	claims    *Claims
	superuser bool
}

// User is the caller's user name; empty for an anonymous caller.
func (g *Grant) User() string { return g.caller.User }

// Superuser reports whether the caller is a superuser acting with its
// full rights: logged in with its password, not an API token, whose
// confinement holds for superusers too.
func (g *Grant) Superuser() bool { return g.superuser && g.caller.Token == nil }

// Authorize authenticates r and checks that the caller holds every action
// of every scope in need (push implies pull; none for /v2/ itself). The
// challenge of a refusal asks for need and optional, scopes the request
// can use but does without (the source of a blob mount). It returns the
// Grant, or a *Refusal, or another error when the state cannot be read.
func (reg *Registry) Authorize(r *http.Request, need []Scope, optional ...Scope) (*Grant, error) {
	creds, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return nil, reg.unauthorized(r, need, optional, "", err.Error())
	}
	switch creds.Scheme {
	case SchemeBearer:
		return reg.bearer(r, creds.Token, need, optional)
	case SchemeBasic:
		return reg.basic(r, creds, need, optional)
	}
	g := &Grant{reg: reg}
	if len(need) == 0 {
		return nil, reg.unauthorized(r, need, optional, "", "authentication required; log in to this registry")
	}
	ok, err := g.holds(r.Context(), need)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, reg.unauthorized(r, need, optional, "", "authentication required; log in to this registry")
	}
	return g, nil
}

// bearer authorizes a Bearer token: its scopes bound what it allows, and
// the login it stands for and the caller's roles now decide within them.
// A read is checked on this node's applied state first, and on
// linearizable state only if that refuses it; a write is checked on
// linearizable state (Store), so that nothing is published a moment after
// a revocation through a node that has not applied it yet.
func (reg *Registry) bearer(r *http.Request, raw string, need, optional []Scope) (*Grant, error) {
	claims, err := reg.tokens.Verify(r.Context(), raw)
	if errors.Is(err, ErrInvalidToken) {
		return nil, reg.unauthorized(r, need, optional, ErrorInvalidToken, "the token is invalid or expired; log in again")
	}
	if err != nil {
		return nil, unavailable(err)
	}
	if readOnly(need) {
		if g, err := reg.bearerGrant(r.Context(), reg.local, claims); err == nil {
			if ok, err := g.holdsIn(r.Context(), reg.local, need); err == nil && ok {
				return g, nil
			}
		}
	}
	g, err := reg.bearerGrant(r.Context(), reg.store, claims)
	if errors.Is(err, errRevoked) {
		if !reg.firstTry {
			Audit(reg.log, "revoked_token_refused", claims.Subject, "registry", "reason", err.Error())
		}
		return nil, reg.unauthorized(r, need, optional, ErrorInvalidToken, err.Error()+"; log in again")
	}
	if err != nil {
		return nil, unavailable(err)
	}
	ok, err := g.holds(r.Context(), need)
	if err != nil {
		return nil, err
	}
	if !ok {
		msg := fmt.Sprintf("the token of user %q does not grant %s: the user lacks the permission, or the client must ask for a token with this scope", g.caller.User, scopeList(need))
		if g.caller.Anonymous() {
			msg = "authentication required to " + scopeList(need) + "; log in to this registry (anonymous clients pull only public repositories)"
		}
		return nil, reg.unauthorized(r, need, optional, ErrorInsufficientScope, msg)
	}
	return g, nil
}

// readOnly reports whether scopes ask only to read: pulls and the catalog.
func readOnly(scopes []Scope) bool {
	for _, sc := range scopes {
		for _, a := range sc.Actions {
			if a != "pull" && !(sc.Type == TypeRegistry && a == "*") {
				return false
			}
		}
	}
	return true
}

// bearerGrant returns the Grant of a token's claims as store sees the
// login they stand for, or an error wrapping errRevoked if it no longer
// holds there.
func (reg *Registry) bearerGrant(ctx context.Context, store Store, claims *Claims) (*Grant, error) {
	g := &Grant{reg: reg, claims: claims}
	if claims.Subject == "" {
		return g, nil
	}
	c, err := claims.check(ctx, store, claims.Subject, reg.now())
	if err != nil {
		return nil, err
	}
	u, err := store.User(ctx, c.User)
	if err != nil {
		return nil, err
	}
	g.caller, g.superuser = c, u.GetSuperuser()
	return g, nil
}

func (reg *Registry) basic(r *http.Request, creds Credentials, need, optional []Scope) (*Grant, error) {
	authenticate := reg.authn.Authenticate
	if reg.firstTry {
		authenticate = reg.authn.Verify
	}
	c, err := authenticate(r, creds)
	var throttled *ThrottledError
	switch {
	case errors.As(err, &throttled):
		return nil, &Refusal{Status: http.StatusTooManyRequests, Code: "TOOMANYREQUESTS", Message: throttled.Error(), RetryAfter: throttled.RetryAfter}
	case errors.Is(err, ErrBadCredentials):
		return nil, reg.unauthorized(r, need, optional, "", ErrBadCredentials.Error())
	case err != nil:
		return nil, unavailable(err)
	}
	g := &Grant{reg: reg, caller: c}
	if c.Token == nil {
		u, err := reg.store.User(r.Context(), c.User)
		if err != nil {
			return nil, unavailable(err)
		}
		g.superuser = u.GetSuperuser()
	}
	ok, err := g.holds(r.Context(), need)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &Refusal{Status: http.StatusForbidden, Code: "DENIED",
			Message: fmt.Sprintf("user %q may not %s", c.User, scopeList(need))}
	}
	return g, nil
}

// holds reports whether g holds every action of every scope.
func (g *Grant) holds(ctx context.Context, scopes []Scope) (bool, error) {
	return g.holdsIn(ctx, g.reg.store, scopes)
}

// holdsIn is holds on the state store serves.
func (g *Grant) holdsIn(ctx context.Context, store Store, scopes []Scope) (bool, error) {
	for _, sc := range scopes {
		for _, a := range sc.Actions {
			ok, err := g.allowedIn(ctx, store, sc.Type, sc.Name, a)
			if err != nil || !ok {
				return false, err
			}
		}
	}
	return true, nil
}

// Allowed reports whether g may do action on resource typ/name: a
// repository ("pull", "push", "delete") or the catalog ("*"). The caller's
// roles now decide, within a token's scopes: a public pull needs neither.
func (g *Grant) Allowed(ctx context.Context, typ, name, action string) (bool, error) {
	return g.allowedIn(ctx, g.reg.store, typ, name, action)
}

func (g *Grant) allowedIn(ctx context.Context, store Store, typ, name, action string) (bool, error) {
	repo, a := name, Action(action)
	if typ == TypeRegistry {
		repo, a = "", ActionCatalog
	}
	st, err := store.Access(ctx, g.caller.User, repo)
	if err != nil {
		return false, unavailable(err)
	}
	if a == ActionPull && st.Public {
		return true, nil
	}
	if g.claims != nil && !g.claims.Allows(typ, name, action) &&
		!(action == "pull" && g.claims.Allows(typ, name, "push")) {
		return false, nil
	}
	return Decide(g.caller, a, repo, st), nil
}

// MayPull reports whether g may pull repo, for listings filtered to what
// the caller can see: with its permissions now, not a token's scopes.
func (g *Grant) MayPull(ctx context.Context, repo string) (bool, error) {
	if g.Superuser() {
		return true, nil
	}
	st, err := g.reg.store.Access(ctx, g.caller.User, repo)
	if err != nil {
		return false, unavailable(err)
	}
	return Decide(g.caller, ActionPull, repo, st), nil
}

// PrepareWrite is called before a push writes into repo: if the
// namespace does not exist yet, the caller claims it and becomes its
// owner, which needs the permission to create namespaces.
func (g *Grant) PrepareWrite(ctx context.Context, repo string) error {
	st, err := g.reg.store.Access(ctx, g.caller.User, repo)
	if err != nil {
		return unavailable(err)
	}
	if st.NamespaceExists {
		return nil
	}
	if !Decide(g.caller, ActionPush, repo, st) {
		return &Refusal{Status: http.StatusForbidden, Code: "DENIED",
			Message: fmt.Sprintf("namespace %q does not exist and %q may not create namespaces; ask an administrator for the publisher role or a namespace", st.Namespace, g.caller.User)}
	}
	err = g.reg.claim(ctx, st.Namespace, g.caller.User)
	if errors.Is(err, fsm.ErrAlreadyExists) {
		return nil // another push created it first; its own permissions decide
	}
	if err != nil {
		return fmt.Errorf("claim namespace %q: %w", st.Namespace, err)
	}
	Audit(g.reg.log, "namespace_created", g.caller.User, st.Namespace)
	return nil
}

// unauthorized is a 401 with a Bearer challenge for need and optional.
func (reg *Registry) unauthorized(r *http.Request, need, optional []Scope, errCode, msg string) *Refusal {
	ch := Challenge{Realm: Realm(reg.publicURL, r), Service: reg.service, Error: errCode}
	for _, sc := range slices.Concat(need, optional) {
		ch.Scopes = mergeScope(ch.Scopes, Scope{Type: sc.Type, Name: sc.Name, Actions: slices.Clone(sc.Actions)})
	}
	return &Refusal{Status: http.StatusUnauthorized, Code: "UNAUTHORIZED", Message: msg, Challenge: ch.String()}
}

func unavailable(err error) error {
	if _, ok := errors.AsType[*Refusal](err); ok {
		return err
	}
	return &Refusal{Status: http.StatusServiceUnavailable, Code: "UNAVAILABLE",
		Message: "cannot check permissions now (the cluster may have no quorum); retry later", Err: err}
}

func scopeList(scopes []Scope) string {
	if len(scopes) == 0 {
		return "use this registry"
	}
	return fmt.Sprint(scopeStrings(scopes))
}
