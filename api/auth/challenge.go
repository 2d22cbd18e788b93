package auth

import (
	"net/http"
	"regexp"
	"strings"
)

// Challenge errors, as in RFC 6750.
const (
	ErrorInvalidToken      = "invalid_token"
	ErrorInsufficientScope = "insufficient_scope"
)

// Challenge is a WWW-Authenticate Bearer challenge.
type Challenge struct {
	Realm   string
	Service string
	// Scopes the request needs; none for /v2/ itself.
	Scopes []Scope
	// Error is "", ErrorInvalidToken or ErrorInsufficientScope.
	Error string
}

// String formats c as a WWW-Authenticate value, e.g.
// Bearer realm="https://r.example/token",service="r.example",scope="repository:a/b:pull".
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString("Bearer ")
	writeParam(&b, "realm", c.Realm)
	b.WriteByte(',')
	writeParam(&b, "service", c.Service)
	if len(c.Scopes) > 0 {
		parts := make([]string, len(c.Scopes))
		for i, sc := range c.Scopes {
			parts[i] = sc.String()
		}
		b.WriteByte(',')
		writeParam(&b, "scope", strings.Join(parts, " "))
	}
	if c.Error != "" {
		b.WriteByte(',')
		writeParam(&b, "error", c.Error)
	}
	return b.String()
}

func writeParam(b *strings.Builder, name, value string) {
	b.WriteString(name)
	b.WriteString(`="`)
	for _, r := range value {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		if r < 0x20 || r == 0x7f {
			continue
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
}

// hostPattern matches what may stand in a Host or X-Forwarded-Host header:
// a name or address with an optional port.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// Realm returns the token endpoint clients should use: publicURL + "/token"
// when a public URL is configured, else the URL the client used, taken
// from X-Forwarded-Proto and X-Forwarded-Host (first values) when set.
func Realm(publicURL string, r *http.Request) string {
	if publicURL != "" {
		return strings.TrimSuffix(publicURL, "/") + "/token"
	}
	return requestScheme(r) + "://" + requestHost(r) + "/token"
}

func requestScheme(r *http.Request) string {
	proto := strings.ToLower(strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Proto"))))
	if proto == "http" || proto == "https" {
		return proto
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func requestHost(r *http.Request) string {
	if h := strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Host"))); hostPattern.MatchString(h) {
		return h
	}
	if hostPattern.MatchString(r.Host) {
		return r.Host
	}
	return "localhost"
}

// firstValue returns the first element of a comma-separated header value.
func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return first
}
