// Package api composes wharf's public HTTP surface: the OCI distribution API
// under /v2/, the Connect admin services, the web UI, health checks and
// Prometheus metrics, all served on --listen.
//
// The protocol handlers live in sub-packages (api/oci, api/admin); this
// package only routes between them and instruments every request.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Config is what NewHandler routes between.
type Config struct {
	// OCI serves everything under /v2/.
	OCI http.Handler
	// Token serves the Docker token endpoint, /token; nil mounts none.
	Token http.Handler
	// Route names an OCI request for the metrics' route label.
	Route func(*http.Request) string
	// Connect maps Connect service path prefixes (from the generated
	// New*Handler functions) to their handlers.
	Connect map[string]http.Handler
	// UI serves everything no other handler claims.
	UI http.Handler
	// Ready reports whether the node can serve consistent reads and writes.
	Ready func() bool
	// ReadyDetail, if set, returns lines (each ending in a newline) that
	// /readyz adds after its verdict, such as the disk's free space.
	ReadyDetail func() string
	// Registry receives the HTTP metrics and is exposed on /metrics.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// RequestContext, if set, derives each request's context; the node
	// uses it to give every request its own read scope.
	RequestContext func(context.Context) context.Context
}

// NewHandler returns the handler for the public listener.
func NewHandler(cfg Config) http.Handler {
	m := newHTTPMetrics(cfg.Registry)
	mux := http.NewServeMux()
	oci := m.instrument(cfg.Route, cfg.OCI)
	mux.Handle("/v2/", oci)
	if cfg.Token != nil {
		mux.Handle("/token", m.instrument(staticRoute("token"), cfg.Token))
	}
	for prefix, h := range cfg.Connect {
		mux.Handle(prefix, m.instrument(connectRoute(prefix), h))
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writePlain(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		status, body := http.StatusOK, "ready\n"
		if cfg.Ready != nil && !cfg.Ready() {
			status, body = http.StatusServiceUnavailable, "not ready: no leader, or the log is not applied up to the commit index\n"
		}
		if cfg.ReadyDetail != nil {
			body += cfg.ReadyDetail()
		}
		writePlain(w, status, body)
	})
	if cfg.UI != nil {
		mux.Handle("/", m.instrument(staticRoute("ui"), cfg.UI))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if cfg.RequestContext != nil {
			r = r.WithContext(cfg.RequestContext(r.Context()))
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/v2/"):
			// Not through the mux, which would redirect a path with dot
			// segments to its cleaned form: the OCI handler refuses it.
			oci.ServeHTTP(w, r)
		case !canonical(r.URL.Path):
			writePlain(w, http.StatusBadRequest, "bad request path: empty, \".\" or \"..\" segments are not allowed\n")
		default:
			mux.ServeHTTP(w, r)
		}
	})
}

// canonical reports whether p has no empty, "." or ".." segment (a
// trailing slash aside), so that http.ServeMux would not redirect it.
func canonical(p string) bool {
	c := path.Clean(p)
	return p == c || p == c+"/"
}

func writePlain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// connectRoute labels Connect requests by procedure, e.g.
// "/wharf.v1.ClusterService/Status".
func connectRoute(prefix string) func(*http.Request) string {
	return func(r *http.Request) string {
		if len(r.URL.Path) > len(prefix) && r.URL.Path[:len(prefix)] == prefix {
			return r.URL.Path
		}
		return prefix
	}
}

func staticRoute(name string) func(*http.Request) string {
	return func(*http.Request) string { return name }
}
