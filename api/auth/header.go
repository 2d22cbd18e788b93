package auth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Scheme is the kind of credentials an Authorization header carries.
type Scheme int

// Schemes.
const (
	// SchemeNone: no header, or Basic with an empty user and password,
	// which docker clients send for anonymous access.
	SchemeNone Scheme = iota
	SchemeBasic
	SchemeBearer
)

// Credentials are the parsed Authorization header. Never log them.
type Credentials struct {
	Scheme   Scheme
	Username string
	Password string
	// Token is a Bearer token.
	Token string
}

// maxAuthorizationLength bounds the header; tokens are far smaller.
const maxAuthorizationLength = 8 << 10

var errAuthorization = errors.New("invalid Authorization header")

// ParseAuthorization parses an Authorization header value: "Basic
// base64(user:password)" or "Bearer token"; the scheme is
// case-insensitive. An empty value is SchemeNone.
func ParseAuthorization(h string) (Credentials, error) {
	if h == "" {
		return Credentials{}, nil
	}
	if len(h) > maxAuthorizationLength {
		return Credentials{}, fmt.Errorf("%w: longer than %d bytes", errAuthorization, maxAuthorizationLength)
	}
	scheme, param, _ := strings.Cut(h, " ")
	param = strings.TrimLeft(param, " ")
	switch {
	case strings.EqualFold(scheme, "Basic"):
		return parseBasic(param)
	case strings.EqualFold(scheme, "Bearer"):
		if !isToken68(param) {
			return Credentials{}, fmt.Errorf("%w: malformed bearer token", errAuthorization)
		}
		return Credentials{Scheme: SchemeBearer, Token: param}, nil
	}
	return Credentials{}, fmt.Errorf("%w: unsupported scheme; use Basic or Bearer", errAuthorization)
}

func parseBasic(param string) (Credentials, error) {
	raw, err := base64.StdEncoding.DecodeString(param)
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: Basic credentials are not base64", errAuthorization)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return Credentials{}, fmt.Errorf("%w: Basic credentials lack a colon", errAuthorization)
	}
	if strings.ContainsAny(user, "\x00\r\n") || strings.ContainsRune(pass, 0) {
		return Credentials{}, fmt.Errorf("%w: control characters in Basic credentials", errAuthorization)
	}
	if user == "" && pass == "" {
		return Credentials{}, nil
	}
	return Credentials{Scheme: SchemeBasic, Username: user, Password: pass}, nil
}

// isToken68 reports whether s is an RFC 7235 token68.
func isToken68(s string) bool {
	if s == "" {
		return false
	}
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, c := range body {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("-._~+/", c):
		default:
			return false
		}
	}
	return true
}
