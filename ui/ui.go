// Package ui serves wharf's web UI: templates and static files embedded in
// the binary. For now it is a single page that tells a visitor what this
// node is and how to push to it; the full UI is a later milestone.
package ui

import (
	"embed"
	"html/template"
	"net/http"
)

//go:embed templates/*.html
var templates embed.FS

// Info is what the home page shows.
type Info struct {
	Version string
	// Host is how clients name this registry, e.g. "registry.example.com"
	// or "localhost:5001".
	Host string
}

// Handler returns the UI's HTTP handler. hostFor picks the registry host
// shown in examples for a request.
func Handler(version string, hostFor func(*http.Request) string) http.Handler {
	page := template.Must(template.ParseFS(templates, "templates/index.html"))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = page.Execute(w, Info{Version: version, Host: hostFor(r)})
	})
}
