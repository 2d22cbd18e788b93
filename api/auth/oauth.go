package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// This file is the OAuth2 flow of the token endpoint (Docker's "OAuth2
// token" spec), which containerd, buildkit and newer docker clients try
// before GET: POST /token with a form naming a grant, a password or a
// refresh token.

// Grant types of the OAuth2 flow.
const (
	grantPassword = "password"
	grantRefresh  = "refresh_token"
)

// OAuth2 error codes (RFC 6749 section 5.2), and temporarily_unavailable
// for throttling and faults.
const (
	oauthInvalidRequest       = "invalid_request"
	oauthInvalidGrant         = "invalid_grant"
	oauthInvalidScope         = "invalid_scope"
	oauthUnsupportedGrantType = "unsupported_grant_type"
	oauthUnavailable          = "temporarily_unavailable"
)

// Bounds of a token form: scopes are a few hundred bytes each, user names
// at most 64 (longer ones cannot exist, and would only fill the throttle's
// memory), passwords at most maxPasswordLength, refresh tokens a few
// hundred bytes.
const (
	maxTokenFormLength    = 64 << 10
	maxFormUsernameLength = 256
	maxRefreshTokenLength = maxAuthorizationLength
)

// oauthError is an OAuth2 error answer. Its description never holds a
// secret.
type oauthError struct {
	status      int
	code        string
	description string
}

func (e *oauthError) Error() string { return e.code + ": " + e.description }

func badRequest(code, format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: code, description: fmt.Sprintf(format, args...)}
}

// tokenForm is a parsed OAuth2 token request. It holds secrets: never log
// it.
type tokenForm struct {
	GrantType string
	Service   string
	ClientID  string
	// Username and Password are set for the password grant.
	Username, Password string
	// RefreshToken is set for the refresh_token grant.
	RefreshToken string
	Scopes       []Scope
	// Offline asks for a refresh token (access_type=offline).
	Offline bool
}

// singleFormParams may appear at most once (RFC 6749 section 3.2); scope
// may repeat.
var singleFormParams = []string{"grant_type", "service", "client_id", "access_type", "username", "password", "refresh_token"}

// parseTokenForm parses the body of an OAuth2 token request, of media type
// contentType. It checks the form alone, not the credentials or the
// service; its errors are *oauthError.
func parseTokenForm(contentType string, body []byte) (tokenForm, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return tokenForm{}, badRequest(oauthInvalidRequest, "the token request must be a form, Content-Type application/x-www-form-urlencoded")
	}
	if len(body) > maxTokenFormLength {
		return tokenForm{}, badRequest(oauthInvalidRequest, "the token request is longer than %d bytes", maxTokenFormLength)
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return tokenForm{}, badRequest(oauthInvalidRequest, "malformed form")
	}
	for _, p := range singleFormParams {
		if len(v[p]) > 1 {
			return tokenForm{}, badRequest(oauthInvalidRequest, "parameter %s is repeated", p)
		}
	}
	f := tokenForm{GrantType: v.Get("grant_type"), Service: v.Get("service"), ClientID: v.Get("client_id")}
	switch f.GrantType {
	case grantPassword, grantRefresh:
	case "":
		return tokenForm{}, badRequest(oauthInvalidRequest, "grant_type is missing")
	default:
		return tokenForm{}, badRequest(oauthUnsupportedGrantType, "grant_type must be password or refresh_token")
	}
	if f.ClientID == "" {
		return tokenForm{}, badRequest(oauthInvalidRequest, "client_id is missing")
	}
	switch v.Get("access_type") {
	case "", "online":
	case "offline":
		f.Offline = true
	default:
		return tokenForm{}, badRequest(oauthInvalidRequest, "access_type must be online or offline")
	}
	if f.Scopes, err = ParseScopes(v["scope"]); err != nil {
		return tokenForm{}, badRequest(oauthInvalidScope, "%v", err)
	}
	if f.GrantType == grantRefresh {
		f.RefreshToken = v.Get("refresh_token")
		switch {
		case f.RefreshToken == "":
			return tokenForm{}, badRequest(oauthInvalidRequest, "refresh_token is missing")
		case len(f.RefreshToken) > maxRefreshTokenLength:
			return tokenForm{}, badRequest(oauthInvalidRequest, "refresh_token is longer than %d bytes", maxRefreshTokenLength)
		}
		return f, nil
	}
	f.Username, f.Password = v.Get("username"), v.Get("password")
	switch {
	case f.Username == "" || f.Password == "":
		return tokenForm{}, badRequest(oauthInvalidRequest, "the password grant needs username and password")
	case len(f.Username) > maxFormUsernameLength:
		return tokenForm{}, badRequest(oauthInvalidRequest, "username is longer than %d bytes", maxFormUsernameLength)
	case strings.ContainsAny(f.Username, "\x00\r\n") || strings.ContainsRune(f.Password, 0):
		return tokenForm{}, badRequest(oauthInvalidRequest, "control characters in username or password")
	}
	return f, nil
}

// oauthTokenResponse is the body of an OAuth2 token answer.
type oauthTokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	// Scope is the granted scopes, separated by spaces.
	Scope        string `json:"scope"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// serveOAuth answers POST /token.
func (h *Handler) serveOAuth(w http.ResponseWriter, r *http.Request) {
	body := []byte{}
	if r.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(r.Body, maxTokenFormLength+1))
		if err != nil {
			writeOAuthError(w, badRequest(oauthInvalidRequest, "cannot read the request body"))
			return
		}
	}
	f, err := parseTokenForm(r.Header.Get("Content-Type"), body)
	if err != nil {
		writeOAuthError(w, err)
		return
	}
	if f.Service != h.service {
		writeOAuthError(w, badRequest(oauthInvalidRequest, "unknown service %q; this registry is %q", f.Service, h.service))
		return
	}
	var c Caller
	if f.GrantType == grantPassword {
		c, err = h.authn.Authenticate(r, Credentials{Scheme: SchemeBasic, Username: f.Username, Password: f.Password})
	} else {
		c, err = h.authn.AuthenticateRefresh(r, h.tokens, f.RefreshToken)
	}
	if err != nil {
		h.refuseOAuth(w, f.GrantType, err)
		return
	}
	token, granted, issued, err := h.mint(r, c, f.Scopes)
	if err != nil {
		writeOAuthError(w, &oauthError{status: http.StatusServiceUnavailable, code: oauthUnavailable, description: err.Error()})
		return
	}
	resp := oauthTokenResponse{
		AccessToken: token, TokenType: "Bearer", Scope: strings.Join(scopeStrings(granted), " "),
		ExpiresIn: int(h.tokens.ttl / time.Second), IssuedAt: issued.UTC().Format(time.RFC3339),
	}
	if f.Offline && f.GrantType == grantPassword {
		if resp.RefreshToken, err = h.refreshToken(r, c); err != nil {
			h.log.Error("token request failed", "user", c.User, "error", err)
			writeOAuthError(w, &oauthError{status: http.StatusServiceUnavailable, code: oauthUnavailable, description: errSignFault.Error()})
			return
		}
	}
	body, _ = json.Marshal(resp)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// refreshToken issues a refresh token for c.
func (h *Handler) refreshToken(r *http.Request, c Caller) (string, error) {
	tok, err := h.tokens.IssueRefresh(r.Context(), c)
	if err != nil {
		return "", err
	}
	attrs := []any{}
	if c.Token != nil {
		attrs = append(attrs, "token_id", c.Token.GetId())
	}
	Audit(h.log, "refresh_token_issued", c.User, h.service, attrs...)
	return tok, nil
}

// refuseOAuth answers a failed authentication of the grant.
func (h *Handler) refuseOAuth(w http.ResponseWriter, grant string, err error) {
	var throttled *ThrottledError
	switch {
	case errors.As(err, &throttled):
		w.Header().Set("Retry-After", strconv.Itoa(int(throttled.RetryAfter.Round(time.Second)/time.Second)))
		writeOAuthError(w, &oauthError{status: http.StatusTooManyRequests, code: oauthUnavailable, description: throttled.Error()})
	case errors.Is(err, ErrBadCredentials):
		msg := ErrBadCredentials.Error()
		if grant == grantRefresh {
			msg = "the refresh token is invalid, expired or revoked; log in again"
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="`+h.service+`"`)
		writeOAuthError(w, &oauthError{status: http.StatusUnauthorized, code: oauthInvalidGrant, description: msg})
	default:
		h.log.Error("authentication failed", "grant_type", grant, "error", err)
		writeOAuthError(w, &oauthError{status: http.StatusServiceUnavailable, code: oauthUnavailable, description: "cannot check credentials now; try again"})
	}
}

// writeOAuthError answers with an OAuth2 error: err's if it is an
// *oauthError, else a 400 invalid_request.
func writeOAuthError(w http.ResponseWriter, err error) {
	e, ok := errors.AsType[*oauthError](err)
	if !ok {
		e = badRequest(oauthInvalidRequest, "%v", err)
	}
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{e.code, e.description})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}
