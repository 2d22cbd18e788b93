package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/api/auth"
	"github.com/wharf-registry/wharf/cluster"
)

// Authorizer decides who may use the API. A nil Authorizer leaves the
// registry open to anyone, which only tests use.
type Authorizer interface {
	// Authorize authenticates r and checks that the caller holds every
	// action of need (nil for /v2/ itself); optional scopes are asked for
	// in challenges but not required. A refusal is an *auth.Refusal.
	Authorize(r *http.Request, need []auth.Scope, optional ...auth.Scope) (Grant, error)
}

// Grant is an authorized caller.
type Grant interface {
	// User names the caller; empty when anonymous.
	User() string
	// Superuser reports whether the caller passes every check.
	Superuser() bool
	// Allowed reports whether the caller may do action on resource
	// typ/name (as in a token scope).
	Allowed(ctx context.Context, typ, name, action string) (bool, error)
	// MayPull reports whether the caller may pull repo, for listings.
	MayPull(ctx context.Context, repo string) (bool, error)
	// PrepareWrite runs before a push writes into repo: it claims the
	// namespace for the caller if the push creates it.
	PrepareWrite(ctx context.Context, repo string) error
}

// RegistryAuthorizer adapts the auth package's registry authorizer.
func RegistryAuthorizer(reg *auth.Registry) Authorizer { return registryAuthorizer{reg} }

type registryAuthorizer struct{ reg *auth.Registry }

func (a registryAuthorizer) Authorize(r *http.Request, need []auth.Scope, optional ...auth.Scope) (Grant, error) {
	g, err := a.reg.Authorize(r, need, optional...)
	if err != nil {
		return nil, err
	}
	return g, nil
}

// AppliedState is this node's applied state, read without a read index
// (in a cluster, the *fsm.FSM): what the checks of an upload authorized on
// it read too.
type AppliedState interface {
	// CheckRepositoryName is Metadata.CheckRepositoryName.
	CheckRepositoryName(repo string) error
	// CheckPushable is Metadata.CheckPushable.
	CheckPushable(repo string) error
}

type grantKey struct{}

// authorized is the caller of a request, and whether it was authorized on
// this node's applied state (Config.AppliedAuthorizer).
type authorized struct {
	grant   Grant
	applied bool
}

// grantOf returns the caller's Grant, or nil in an open registry.
func grantOf(ctx context.Context) Grant {
	a, _ := ctx.Value(grantKey{}).(authorized)
	return a.grant
}

// onApplied reports whether the request of ctx was authorized on this
// node's applied state.
func onApplied(ctx context.Context) bool {
	a, _ := ctx.Value(grantKey{}).(authorized)
	return a.applied
}

// actor names the caller in audit lines.
func actor(ctx context.Context) string {
	if g := grantOf(ctx); g != nil {
		return g.User()
	}
	return ""
}

// authorize checks r against the Authorizer and returns r with the Grant
// in its context.
//
// The requests of a blob upload (see localFirst) are first authorized
// with the AppliedAuthorizer, on this node's applied state, which saves
// them a read index: a round trip to the leader on a follower. Only when
// that state does not grant a request is it checked again on
// linearizable state, so a lagging node never refuses what the cluster
// allows. What it may allow late is bounded:
//   - a permission revoked a moment ago still lets its holder upload, and
//     link, blobs through this node until it has applied the revocation,
//     which trails the leader by its replication delay (a node cut off
//     from the leader can link nothing: that is a Raft write);
//   - a blob linked so is published by nothing: the manifest PUT that
//     makes a push visible is always checked linearizably, and a blob no
//     manifest references is garbage-collected;
//   - a session ID cannot be guessed and serves one repository.
func (h *Handler) authorize(r *http.Request, rt route) (*http.Request, error) {
	if h.authz == nil {
		return r, nil
	}
	need, optional := requiredScopes(r, rt)
	if h.appliedAuthz != nil && localFirst(r, rt) {
		if g, err := h.appliedAuthz.Authorize(r, need, optional...); err == nil {
			return withGrant(r, g, true), nil
		}
	}
	return h.authorizeLinearizably(r, rt)
}

// authorizeLinearizably checks r against the Authorizer, on linearizable
// state.
func (h *Handler) authorizeLinearizably(r *http.Request, rt route) (*http.Request, error) {
	need, optional := requiredScopes(r, rt)
	g, err := h.authz.Authorize(r, need, optional...)
	if err != nil {
		return nil, refusalError(err)
	}
	return withGrant(r, g, false), nil
}

// localFirst reports whether r is authorized on local state first: a
// request on an open upload session (its PATCH, PUT, GET or DELETE), or
// the POST that starts an upload, unless it mounts a blob from another
// repository, whose content it would reveal.
func localFirst(r *http.Request, rt route) bool {
	switch rt.kind {
	case routeUploadSession:
		return true
	case routeUploadStart:
		return !r.URL.Query().Has("mount")
	}
	return false
}

// withGrant returns r with g in its context, and g's user as the actor of
// the commands r proposes; applied says whether g was granted on this
// node's applied state.
func withGrant(r *http.Request, g Grant, applied bool) *http.Request {
	ctx := cluster.WithActor(r.Context(), g.User())
	return r.WithContext(context.WithValue(ctx, grantKey{}, authorized{g, applied}))
}

// requiredScopes returns the token scopes r needs, and those it can use.
func requiredScopes(r *http.Request, rt route) (need, optional []auth.Scope) {
	switch rt.kind {
	case routeBase:
		return nil, nil
	case routeCatalog:
		return []auth.Scope{auth.CatalogScope()}, nil
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if rt.kind != routeUploadSession {
			return []auth.Scope{auth.RepositoryScope(rt.name, "pull")}, nil
		}
	case http.MethodDelete:
		if rt.kind == routeManifest || rt.kind == routeBlob {
			return []auth.Scope{auth.RepositoryScope(rt.name, "delete")}, nil
		}
	}
	need = []auth.Scope{auth.RepositoryScope(rt.name, "pull", "push")}
	if from := r.URL.Query().Get("from"); rt.kind == routeUploadStart && from != "" && from != rt.name && validateName(from) == nil {
		optional = []auth.Scope{auth.RepositoryScope(from, "pull")}
	}
	return need, optional
}

// refusalError turns an authorization failure into the API error.
func refusalError(err error) error {
	ref, ok := errors.AsType[*auth.Refusal](err)
	if !ok {
		return err
	}
	e := newError(ref.Status, ErrorCode(ref.Code), "%s", ref.Message).withCause(ref.Err)
	e.challenge = ref.Challenge
	if ref.RetryAfter > 0 {
		e.retryAfter = strconv.Itoa(int((ref.RetryAfter + time.Second - 1) / time.Second))
	}
	return e
}

// prepareWrite lets the Grant claim a new namespace before a push writes.
func (h *Handler) prepareWrite(ctx context.Context, repo string) error {
	g := grantOf(ctx)
	if g == nil {
		return nil
	}
	return refusalError(g.PrepareWrite(ctx, repo))
}

// maxMountSources bounds how many repositories holding a blob a mount by
// digest alone looks at for one the caller may pull.
const maxMountSources = 1000

// mayMount reports whether the caller may mount blob d from repository
// from, or, with from empty, from wherever it is stored: the caller must
// be allowed to pull from (or, by digest alone, one of the repositories
// the blob is linked into) with its own permissions now, under its API
// token's confinement, so that a digest never opens content the caller
// could not read. A superuser logged in with its password may mount any
// stored blob.
func (h *Handler) mayMount(ctx context.Context, d digest.Digest, from string) (bool, error) {
	g := grantOf(ctx)
	switch {
	case g == nil:
		return true, nil
	case from != "":
		// The caller's own permission on the source, not only its token's
		// scopes: clients reuse a push token for mounts.
		ok, err := g.MayPull(ctx, from)
		return ok, refusalError(err)
	case g.Superuser():
		return true, nil
	}
	last := ""
	for seen := 0; seen < maxMountSources; {
		repos, err := h.meta.RepositoriesLinking(ctx, d, last, min(100, maxMountSources-seen))
		if err != nil {
			return false, fmt.Errorf("look up repositories holding blob %s: %w", d, err)
		}
		for _, repo := range repos {
			if ok, err := g.MayPull(ctx, repo); err != nil || ok {
				return ok, refusalError(err)
			}
		}
		if len(repos) == 0 {
			break
		}
		seen, last = seen+len(repos), repos[len(repos)-1]
	}
	return false, nil
}

// visible filters repository names to those the caller may pull.
func (h *Handler) visible(ctx context.Context, names []string) ([]string, error) {
	g := grantOf(ctx)
	if g == nil || g.Superuser() {
		return names, nil
	}
	out := names[:0]
	for _, name := range names {
		ok, err := g.MayPull(ctx, name)
		if err != nil {
			return nil, refusalError(err)
		}
		if ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// audit writes an audit line for a change made through the API.
func (h *Handler) audit(ctx context.Context, event, target string, args ...any) {
	if h.authz != nil {
		auth.Audit(h.log, event, actor(ctx), target, args...)
	}
}
