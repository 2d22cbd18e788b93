package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler("v1.2.3", func(*http.Request) string { return "registry.example.com" })
	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string
	}{
		{http.MethodGet, "/", http.StatusOK, "podman push --tls-verify=false registry.example.com/myns/myimage:tag"},
		{http.MethodGet, "/", http.StatusOK, "wharf v1.2.3"},
		{http.MethodHead, "/", http.StatusOK, ""},
		{http.MethodGet, "/elsewhere", http.StatusNotFound, ""},
		{http.MethodPost, "/", http.StatusMethodNotAllowed, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		if rec.Code != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("%s %s: %d %q, want %d containing %q", tt.method, tt.path, rec.Code, body, tt.wantStatus, tt.wantBody)
		}
	}
}
