package oci

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/wharf-registry/wharf/api/auth"
)

// localReadsKey marks the contexts the test's LocalReads derives.
type localReadsKey struct{}

func markLocal(ctx context.Context) context.Context {
	return context.WithValue(ctx, localReadsKey{}, true)
}

// staleAuthorizer grants everything against linearizable state, and
// against local state only while grantLocal is set; it records, for each
// call, whether it read local state.
type staleAuthorizer struct {
	mu         sync.Mutex
	grantLocal bool
	calls      []string // "local" or "linearizable", in order
}

func (a *staleAuthorizer) Authorize(r *http.Request, _ []auth.Scope, _ ...auth.Scope) (Grant, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	local := r.Context().Value(localReadsKey{}) != nil
	if local {
		a.calls = append(a.calls, "local")
		if !a.grantLocal {
			return nil, &auth.Refusal{Status: http.StatusForbidden, Code: "DENIED", Message: "not granted by this node's state"}
		}
	} else {
		a.calls = append(a.calls, "linearizable")
	}
	return testGrant{}, nil
}

func (a *staleAuthorizer) take(grantLocal bool) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	calls := a.calls
	a.calls, a.grantLocal = nil, grantLocal
	return calls
}

type testGrant struct{}

func (testGrant) User() string                                                  { return "tester" }
func (testGrant) Superuser() bool                                               { return true }
func (testGrant) Allowed(context.Context, string, string, string) (bool, error) { return true, nil }
func (testGrant) MayPull(context.Context, string) (bool, error)                 { return true, nil }
func (testGrant) PrepareWrite(context.Context, string) error                    { return nil }

// Requests on an open upload session are authorized against local state
// first, and against linearizable state only when local state does not
// grant them; every other request is authorized linearizably.
func TestUploadSessionRequestsAuthorizeOnLocalStateFirst(t *testing.T) {
	az := &staleAuthorizer{}
	ts := newTestServer(t, func(c *Config) {
		c.Authorizer = az
		c.LocalReads = markLocal
	})
	loc := ts.startUpload("acme/app")
	if got := az.take(true); !slices.Equal(got, []string{"linearizable"}) {
		t.Errorf("POST authorized with %v, want linearizable state only", got)
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

	// A manifest is never authorized on local state.
	ts.get("/v2/acme/app/manifests/latest")
	if got := az.take(true); !slices.Equal(got, []string{"linearizable"}) {
		t.Errorf("manifest GET authorized with %v, want linearizable state only", got)
	}
}
