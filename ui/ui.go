// Package ui serves wharf's web UI at /ui/: server-rendered html/template
// pages, embedded in the binary, that read and change the registry
// through the same Connect services as the CLI, called in-process with
// the browser's session. Every page works without JavaScript; a small
// embedded script only adds conveniences (copy buttons).
//
// The server is the authority: a page hides the controls its user may not
// use, and a form posted anyway is refused by the API, whose error the
// page shows.
package ui

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Config configures the UI.
type Config struct {
	// Version is wharf's, shown in the footer.
	Version string
	// HostFor names the registry as clients reach it, for the podman
	// lines the pages show (e.g. "registry.example.com").
	HostFor func(*http.Request) string
	// Connect maps Connect service path prefixes to the admin API's
	// handlers (admin.Handlers), which the pages call in-process.
	Connect map[string]http.Handler
	// Logger receives failures; nil discards them.
	Logger *slog.Logger
}

// UI is the web UI's handler.
type UI struct {
	cfg   Config
	svc   *services
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New returns the UI for cfg.
func New(cfg Config) (*UI, error) {
	u := &UI{cfg: cfg, svc: newServices(cfg.Connect), log: cfg.Logger}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	if u.cfg.HostFor == nil {
		u.cfg.HostFor = func(r *http.Request) string { return r.Host }
	}
	var err error
	if u.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", cacheStatic(http.FileServerFS(static))))
	m.HandleFunc("GET /ui/{$}", u.page(u.repositories))
	m.HandleFunc("GET /ui/repositories/{name...}", u.page(u.repository))
	m.HandleFunc("GET /ui/login", u.page(u.loginForm))
	m.HandleFunc("POST /ui/login", u.login)
	m.HandleFunc("POST /ui/logout", u.logout)
	m.HandleFunc("POST /ui/actions/{action}", u.action)
	u.mux = m
	return u, nil
}

// ServeHTTP implements http.Handler.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	u.mux.ServeHTTP(w, r)
}

func cacheStatic(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// view is what every page's template gets.
type view struct {
	Title     string
	Nav       string
	User      string // empty: anonymous
	Superuser bool
	CSRF      string
	Host      string
	Version   string
	Notice    string
	Data      any
}

// request is one page request: the browser's caller and view.
type request struct {
	w    http.ResponseWriter
	r    *http.Request
	c    caller
	v    *view
	perm permissions
}

// pageFunc renders one page into rq.v, returning the template name, or an
// error to show.
type pageFunc func(rq *request) (string, error)

// page wraps a pageFunc: it reads the session (signing out a browser
// whose session the API no longer accepts), runs the page and renders it.
func (u *UI) page(f pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rq, ok := u.begin(w, r)
		if !ok {
			return
		}
		name, err := f(rq)
		if err != nil {
			u.renderError(rq, err)
			return
		}
		if name == "" {
			return // the page redirected
		}
		u.render(rq, http.StatusOK, name)
	}
}

// begin reads the browser's session and prepares the request's view.
func (u *UI) begin(w http.ResponseWriter, r *http.Request) (*request, bool) {
	rq := &request{w: w, r: r, c: clientAddr(r), v: &view{
		Host: u.cfg.HostFor(r), Version: u.cfg.Version, Notice: r.URL.Query().Get("done"),
	}}
	s, ok := readSession(r)
	if !ok {
		rq.v.CSRF = csrfToken(preSession(w, r))
		return rq, true
	}
	rq.c.user, rq.c.secret = s.user, s.secret
	perm, who, err := u.permissionsOf(r.Context(), rq.c)
	if err != nil {
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			u.renderError(rq, err)
			return nil, false
		}
		// The session was revoked, its password changed, or it expired:
		// the page goes on for an anonymous visitor.
		clearCookie(w, r, sessionCookie)
		rq.c.user, rq.c.secret = "", ""
		rq.v.Notice = sessionEnded
		rq.v.CSRF = csrfToken(preSession(w, r))
		return rq, true
	}
	rq.perm = perm
	rq.v.User, rq.v.Superuser = who.GetUser(), who.GetSuperuser()
	rq.v.CSRF = csrfToken(s.raw)
	return rq, true
}

// sessionEnded tells a browser whose session the API no longer accepts.
const sessionEnded = "Your session ended (signed out elsewhere, password changed, or expired): sign in again."

// render writes template name with rq's view.
func (u *UI) render(rq *request, status int, name string) {
	t, ok := u.pages[name]
	if !ok {
		u.log.Error("ui: no such page template", "name", name)
		http.Error(rq.w, "internal error", http.StatusInternalServerError)
		return
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", rq.v); err != nil {
		u.log.ErrorContext(rq.r.Context(), "ui: render", "page", name, "err", err)
		http.Error(rq.w, "internal error", http.StatusInternalServerError)
		return
	}
	rq.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	rq.w.Header().Set("Cache-Control", "no-store")
	rq.w.WriteHeader(status)
	_, _ = rq.w.Write([]byte(b.String()))
}

// renderError shows err: the API's own message and code, with the HTTP
// status that matches it.
func (u *UI) renderError(rq *request, err error) {
	status := http.StatusInternalServerError
	msg := "something went wrong; the node's log says what"
	var ce *connect.Error
	switch {
	case errors.As(err, &ce):
		status = httpStatus(ce.Code())
		msg = ce.Message()
	case errors.Is(err, errCSRF):
		status, msg = http.StatusForbidden, err.Error()
	case errors.Is(err, errBadForm):
		status, msg = http.StatusBadRequest, err.Error()
	default:
		u.log.ErrorContext(rq.r.Context(), "ui: page failed", "path", rq.r.URL.Path, "err", err)
	}
	rq.v.Title = http.StatusText(status)
	rq.v.Data = errorView{Status: status, Code: codeName(err), Message: msg, SignIn: rq.v.User == "" && status == http.StatusUnauthorized}
	u.render(rq, status, "error")
}

type errorView struct {
	Status  int
	Code    string
	Message string
	SignIn  bool
}

var errBadForm = errors.New("the form is incomplete")

func codeName(err error) string {
	if c := connect.CodeOf(err); c != connect.CodeUnknown {
		return c.String()
	}
	return ""
}

// httpStatus is the HTTP status of a Connect code, as Connect maps it.
func httpStatus(c connect.Code) int {
	switch c {
	case connect.CodeInvalidArgument, connect.CodeOutOfRange:
		return http.StatusBadRequest
	case connect.CodeUnauthenticated:
		return http.StatusUnauthorized
	case connect.CodePermissionDenied:
		return http.StatusForbidden
	case connect.CodeNotFound:
		return http.StatusNotFound
	case connect.CodeAlreadyExists, connect.CodeAborted:
		return http.StatusConflict
	case connect.CodeFailedPrecondition:
		return http.StatusPreconditionFailed
	case connect.CodeResourceExhausted:
		return http.StatusTooManyRequests
	case connect.CodeUnavailable:
		return http.StatusServiceUnavailable
	case connect.CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// safeNext keeps a post-sign-in destination inside the UI.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/ui/"
	}
	return next
}

// parsePages parses each page template with the layout.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"ago":      ago,
		"bytes":    humanBytes,
		"short":    shortDigest,
		"when":     when,
		"has":      func(list []string, s string) bool { return contains(list, s) },
		"markdown": renderMarkdown,
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(templateFiles, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("ui: parse %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// ago says how long ago a time in Unix nanoseconds was; "never" for 0.
func ago(unixNanos int64) string {
	if unixNanos == 0 {
		return "never"
	}
	d := time.Since(time.Unix(0, unixNanos))
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}

// when formats a time in Unix nanoseconds, in UTC.
func when(unixNanos int64) string {
	if unixNanos == 0 {
		return ""
	}
	return time.Unix(0, unixNanos).UTC().Format("2006-01-02 15:04 UTC")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// shortDigest is a digest's algorithm and first 12 hex digits.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}
