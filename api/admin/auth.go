package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/api/auth"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

// AccessStore is the access-control state the services read; a
// cluster.Node serves it with linearizable reads.
type AccessStore interface {
	auth.Store
	// Principal returns what fsm.FSM.Principal returns.
	Principal(ctx context.Context, user string) (fsm.Principal, error)
	// AccessState returns the FSM for listings, current as of the call.
	AccessState(ctx context.Context) (*fsm.FSM, error)
}

// Auth is the services' access control: callers present the registry's
// credentials, HTTP Basic with a password or an API token.
type Auth struct {
	Authenticator *auth.Authenticator
	Store         AccessStore
}

type callerKey struct{}

// anonymousProcedures are the only RPCs that anonymous callers may make,
// with a body of at most maxAnonymousBytes: Identity, which tells the CLI
// which cluster a node belongs to before it has a credential for it, and
// the reads of what the registry holds, which show anonymous callers only
// public repositories, as pulls through the OCI API do (requirePull; the
// web UI renders its pages for visitors through them).
var anonymousProcedures = map[string]bool{
	wharfv1connect.ClusterServiceIdentityProcedure:            true,
	wharfv1connect.RepositoryServiceListRepositoriesProcedure: true,
	wharfv1connect.RepositoryServiceGetRepositoryProcedure:    true,
	wharfv1connect.ImageServiceListImagesProcedure:            true,
	wharfv1connect.ImageServiceGetImageProcedure:              true,
	wharfv1connect.ActivityServiceListActivityProcedure:       true,
}

// maxAnonymousBytes bounds the body of an anonymous call: room for any
// request of anonymousProcedures with names, filters and a page token.
const maxAnonymousBytes = 4 << 10

// wrap authenticates each request and passes the caller to the services
// in its context. Every service but anonymousProcedures needs a login, so
// anonymous callers and bad credentials are refused before any of the
// body is read.
func (a *Auth) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" && anonymousProcedures[r.URL.Path] {
			r.Body = http.MaxBytesReader(w, r.Body, maxAnonymousBytes)
			h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, auth.Caller{})))
			return
		}
		c, code, err := a.authenticate(r)
		if err != nil {
			if code == connect.CodeUnauthenticated {
				w.Header().Set("WWW-Authenticate", `Basic realm="wharf"`)
			}
			_ = connect.NewErrorWriter().Write(w, r, connect.NewError(code, err))
			return
		}
		ctx := cluster.WithActor(context.WithValue(r.Context(), callerKey{}, c), c.User)
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// authenticate returns the caller of r, or the code and cause of a
// refusal.
func (a *Auth) authenticate(r *http.Request) (auth.Caller, connect.Code, error) {
	creds, err := auth.ParseAuthorization(r.Header.Get("Authorization"))
	switch {
	case err != nil:
		return auth.Caller{}, connect.CodeUnauthenticated, err
	case creds.Scheme == auth.SchemeNone:
		return auth.Caller{}, connect.CodeUnauthenticated, errLogin.Unwrap()
	case creds.Scheme == auth.SchemeBearer:
		return auth.Caller{}, connect.CodeUnauthenticated, errors.New("the admin API takes Basic credentials (a password or an API token)")
	}
	c, err := a.Authenticator.Authenticate(r, creds)
	switch {
	case err == nil:
		return c, 0, nil
	case errors.Is(err, auth.ErrBadCredentials):
		return c, connect.CodeUnauthenticated, err
	case errors.Is(err, auth.ErrThrottled):
		return c, connect.CodeResourceExhausted, err
	}
	return c, connect.CodeUnavailable, fmt.Errorf("cannot check credentials now: %w", err)
}

// caller returns the authenticated caller and whether access control is
// on; it is off for the handlers on the cluster port, whose peers are
// authenticated by mutual TLS.
func caller(ctx context.Context) (auth.Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(auth.Caller)
	return c, ok
}

var errLogin = connect.NewError(connect.CodeUnauthenticated, errors.New("log in first: give --username and a password (or an API token), or run 'wharf login'"))

// requireLogin refuses anonymous callers.
func requireLogin(ctx context.Context) (auth.Caller, error) {
	c, on := caller(ctx)
	if on && c.Anonymous() {
		return c, errLogin
	}
	return c, nil
}

// requireGlobal refuses callers without permission p on every namespace.
func (cfg Config) requireGlobal(ctx context.Context, p auth.Permission) (auth.Caller, error) {
	c, err := requireLogin(ctx)
	if _, on := caller(ctx); err != nil || !on {
		return c, err
	}
	pr, err := cfg.Auth.Store.Principal(ctx, c.User)
	if err != nil {
		return c, stateError(err)
	}
	if !auth.HasPermission(c, p, pr) {
		return c, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("user %q lacks the %s permission%s", c.User, p, viaToken(c)))
	}
	return c, nil
}

// requireAdmin refuses callers that are neither superusers nor hold the
// global admin role: cluster operations.
func (cfg Config) requireAdmin(ctx context.Context) error {
	c, err := requireLogin(ctx)
	if _, on := caller(ctx); err != nil || !on {
		return err
	}
	pr, err := cfg.Auth.Store.Principal(ctx, c.User)
	if err != nil {
		return stateError(err)
	}
	if c.Token != nil || pr.User == nil || !(pr.User.GetSuperuser() || slices.Contains(pr.Global, fsmpb.Role_ROLE_ADMIN)) {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("cluster operations need the admin role; user %q does not hold it%s", c.User, viaToken(c)))
	}
	return nil
}

// requirePull refuses callers that may not pull repository name. A
// caller who logged in gets what requireOn gives; an anonymous one may
// pull a public repository (or one in a public namespace), as through
// the OCI API (auth.Decide), and is told to log in, unauthenticated, for
// any other, whether it exists or not, so that nothing of what is
// private leaks and a browser is asked to sign in.
func (cfg Config) requirePull(ctx context.Context, name string) (auth.Caller, error) {
	c, on := caller(ctx)
	if !on || !c.Anonymous() {
		return cfg.requireOn(ctx, auth.ActionPull, name)
	}
	st, err := cfg.Auth.Store.Access(ctx, "", name)
	if err != nil {
		return c, stateError(err)
	}
	if !auth.Decide(c, auth.ActionPull, name, st) {
		return c, errLogin
	}
	return c, nil
}

// requireOn refuses callers that may not do a on repository (or
// namespace) name.
func (cfg Config) requireOn(ctx context.Context, a auth.Action, name string) (auth.Caller, error) {
	c, err := requireLogin(ctx)
	if _, on := caller(ctx); err != nil || !on {
		return c, err
	}
	st, err := cfg.Auth.Store.Access(ctx, c.User, name)
	if err != nil {
		return c, stateError(err)
	}
	if !auth.Decide(c, a, name, st) {
		return c, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("user %q may not %s on %q%s", c.User, a, name, viaToken(c)))
	}
	return c, nil
}

func viaToken(c auth.Caller) string {
	if c.Token != nil {
		return " with API token " + c.Token.GetId() + " (tokens only pull, push and delete)"
	}
	return ""
}

// stateError reports a failure to read or change the state.
func stateError(err error) error {
	var code connect.Code
	switch {
	case errors.Is(err, fsm.ErrNotFound):
		code = connect.CodeNotFound
	case errors.Is(err, fsm.ErrAlreadyExists):
		code = connect.CodeAlreadyExists
	case errors.Is(err, fsm.ErrFailedPrecondition):
		code = connect.CodeFailedPrecondition
	case errors.Is(err, fsm.ErrInvalid):
		code = connect.CodeInvalidArgument
	case errors.Is(err, cluster.ErrNoQuorum):
		code = connect.CodeUnavailable
	case diskspace.IsFull(err):
		code = connect.CodeResourceExhausted
	default:
		code = connect.CodeInternal
	}
	return connect.NewError(code, err)
}
