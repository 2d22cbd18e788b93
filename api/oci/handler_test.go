package oci

import (
	"net/http"
	"testing"
)

func TestBase(t *testing.T) {
	ts := newTestServer(t)
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		resp := ts.do(request{method: method, path: "/v2/"})
		wantStatus(t, resp, http.StatusOK)
		wantHeader(t, resp, "Docker-Distribution-API-Version", "registry/2.0")
		if method == http.MethodGet && string(resp.body) != "{}" {
			t.Errorf("body %q, want {}", resp.body)
		}
	}
}

func TestDispatchErrors(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name   string
		req    request
		status int
		code   ErrorCode
		allow  string
	}{
		{"unknown endpoint", request{method: "GET", path: "/v2/foo"}, http.StatusNotFound, CodeUnsupported, ""},
		{"method not allowed", request{method: "POST", path: "/v2/foo/manifests/x"}, http.StatusMethodNotAllowed, CodeUnsupported, "DELETE, GET, HEAD, PUT"},
		{"bad name", request{method: "GET", path: "/v2/Foo/tags/list"}, http.StatusBadRequest, CodeNameInvalid, ""},
		{"empty name component", request{method: "GET", path: "/v2/a//b/tags/list"}, http.StatusBadRequest, CodeNameInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.do(tt.req)
			wantError(t, resp, tt.status, tt.code)
			wantHeader(t, resp, "Docker-Distribution-API-Version", "registry/2.0")
			if tt.allow != "" {
				wantHeader(t, resp, "Allow", tt.allow)
			}
		})
	}
}
