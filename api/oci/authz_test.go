package oci

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/api/auth"
	"github.com/wharf-registry/wharf/cluster"
)

// staleAuthorizer records, for each authorization and each write its
// grants prepare, whether it read this node's applied state ("local") or
// linearizable state. Linearizable state grants everything; applied state
// grants only while grantLocal is set, and refuses to prepare writes into
// a namespace while refuseLocalWrite is set.
type staleAuthorizer struct {
	mu               sync.Mutex
	grantLocal       bool
	refuseLocalWrite bool
	calls            []string // "local" or "linearizable", in order
}

// on returns the Authorizer of applied (local) or linearizable state.
func (a *staleAuthorizer) on(local bool) Authorizer { return stateAuthorizer{a, local} }

type stateAuthorizer struct {
	a     *staleAuthorizer
	local bool
}

func where(local bool) string {
	if local {
		return "local"
	}
	return "linearizable"
}

func (s stateAuthorizer) Authorize(*http.Request, []auth.Scope, ...auth.Scope) (Grant, error) {
	s.a.mu.Lock()
	defer s.a.mu.Unlock()
	s.a.calls = append(s.a.calls, where(s.local))
	if s.local && !s.a.grantLocal {
		return nil, &auth.Refusal{Status: http.StatusForbidden, Code: "DENIED", Message: "not granted by this node's state"}
	}
	return testGrant(s), nil
}

func (a *staleAuthorizer) take(grantLocal bool) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	calls := a.calls
	a.calls, a.grantLocal = nil, grantLocal
	return calls
}

type testGrant struct {
	a     *staleAuthorizer
	local bool
}

func (testGrant) User() string                                                  { return "tester" }
func (testGrant) Superuser() bool                                               { return true }
func (testGrant) Allowed(context.Context, string, string, string) (bool, error) { return true, nil }
func (testGrant) MayPull(context.Context, string) (bool, error)                 { return true, nil }

func (g testGrant) PrepareWrite(context.Context, string) error {
	g.a.mu.Lock()
	defer g.a.mu.Unlock()
	g.a.calls = append(g.a.calls, "prepare "+where(g.local))
	if g.local && g.a.refuseLocalWrite {
		return &auth.Refusal{Status: http.StatusForbidden, Code: "DENIED", Message: "namespace unknown to this node"}
	}
	return nil
}

// withStaleAuthorizer makes a test server authorize with az, on applied
// state first for uploads.
func withStaleAuthorizer(az *staleAuthorizer) func(*Config) {
	return func(c *Config) {
		c.Authorizer, c.AppliedAuthorizer = az.on(false), az.on(true)
		c.Applied = c.Metadata.(*cluster.Node).FSM()
	}
}

// The requests of a blob upload are authorized against local state
// first, and against linearizable state only when local state does not
// grant them; every other request is authorized linearizably.
func TestUploadRequestsAuthorizeOnLocalStateFirst(t *testing.T) {
	az := &staleAuthorizer{grantLocal: true}
	ts := newTestServer(t, withStaleAuthorizer(az))
	// Local state grants the POST, and its own checks read it too.
	loc := ts.startUpload("acme/app")
	if got := az.take(true); !slices.Equal(got, []string{"local", "prepare local"}) {
		t.Errorf("POST granted locally authorized with %v, want local state only", got)
	}

	// Local state grants the PATCH: no linearizable check.
	resp := ts.do(request{method: http.MethodPatch, path: loc, body: []byte("some bytes")})
	wantStatus(t, resp, http.StatusAccepted)
	if got := az.take(false); !slices.Equal(got, []string{"local"}) {
		t.Errorf("PATCH granted locally authorized with %v, want local state only", got)
	}

	// Local state does not grant the GET: checked again linearizably,
	// which grants it, so a lagging node refuses nothing.
	resp = ts.get(loc)
	wantStatus(t, resp, http.StatusNoContent)
	if got := az.take(false); !slices.Equal(got, []string{"local", "linearizable"}) {
		t.Errorf("GET refused locally authorized with %v, want local, then linearizable", got)
	}

	// Nor the POST: authorized again, and its own checks made,
	// linearizably.
	ts.startUpload("acme/app")
	if got := az.take(true); !slices.Equal(got, []string{"local", "linearizable", "prepare linearizable"}) {
		t.Errorf("POST refused locally authorized with %v, want local, then linearizable", got)
	}

	// A mount reveals another repository's content: never authorized on
	// local state.
	d := digest.FromString("not stored")
	resp = ts.do(request{method: http.MethodPost, path: "/v2/acme/app/blobs/uploads/?mount=" + d.String() + "&from=acme/other"})
	wantStatus(t, resp, http.StatusAccepted)
	if got := az.take(true); !slices.Equal(got, []string{"linearizable", "prepare linearizable"}) {
		t.Errorf("mount POST authorized with %v, want linearizable state only", got)
	}

	// A manifest is never authorized on local state.
	ts.get("/v2/acme/app/manifests/latest")
	if got := az.take(true); !slices.Equal(got, []string{"linearizable"}) {
		t.Errorf("manifest GET authorized with %v, want linearizable state only", got)
	}
}

// A POST authorized on local state whose own checks fail there (here, a
// namespace this node does not know yet) is checked again on
// linearizable state, so a lagging node refuses nothing the cluster
// allows; the same refusal on linearizable state is final.
func TestUploadStartRechecksLinearizablyWhatLocalStateRefuses(t *testing.T) {
	az := &staleAuthorizer{grantLocal: true, refuseLocalWrite: true}
	ts := newTestServer(t, withStaleAuthorizer(az))
	ts.startUpload("acme/app")
	want := []string{"local", "prepare local", "linearizable", "prepare linearizable"}
	if got := az.take(true); !slices.Equal(got, want) {
		t.Errorf("POST refused by local checks made %v, want %v", got, want)
	}

	// Without an authorizer of applied state there is no second chance
	// to give.
	strict := &staleAuthorizer{grantLocal: true, refuseLocalWrite: true}
	ts = newTestServer(t, func(c *Config) { c.Authorizer = strict.on(false) })
	ts.startUpload("acme/app")
	if got := strict.take(true); !slices.Equal(got, []string{"linearizable", "prepare linearizable"}) {
		t.Errorf("POST without an authorizer of applied state made %v, want linearizable checks only", got)
	}
}
