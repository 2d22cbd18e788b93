package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
)

// A signed-in browser holds a login session of the API: the sign-in
// creates one with the user's password (AccessService.CreateToken with
// session set, as 'wharf login' does), and the cookie keeps the user and
// the session's secret. The API checks it on every call, so a session
// ends wherever the API ends it: sign-out revokes it, and a password
// change or a revocation of the token makes its next page sign the
// browser out.
const (
	sessionCookie = "wharf_session"
	// preSessionCookie carries the CSRF secret of a browser that is not
	// signed in: the sign-in form's.
	preSessionCookie = "wharf_presession"
	// sessionLifetime is the API session's, and the cookie's, lifetime.
	sessionLifetime = 12 * time.Hour
	csrfField       = "csrf"
)

// session is a signed-in browser's: its user, and the ID and secret of
// its API session.
type session struct {
	user, id, secret string
	raw              string // the cookie's value
}

// readSession returns the browser's session, if its cookie holds one.
func readSession(r *http.Request) (session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return session{}, false
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return session{}, false
	}
	return session{user: parts[0], id: parts[1], secret: parts[2], raw: c.Value}, true
}

// secure reports whether the browser reached this node over HTTPS,
// directly or through a proxy that says so.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/ui/",
		MaxAge: int(maxAge / time.Second), HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: secure(r),
	})
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Path: "/ui/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: secure(r)})
}

// csrfToken is the token every form of a page carries: a hash of the
// browser's session (or pre-session) secret, which only that browser
// holds, so another site cannot forge a form that passes.
func csrfToken(secret string) string {
	sum := sha256.Sum256([]byte("wharf-ui-csrf\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}

// preSession returns the browser's pre-session secret, setting a new one
// when it has none.
func preSession(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(preSessionCookie); err == nil && len(c.Value) >= 16 {
		return c.Value
	}
	v := rand.Text()
	setCookie(w, r, preSessionCookie, v, time.Hour)
	return v
}

// errCSRF refuses a form whose token is not the browser's.
var errCSRF = errors.New("the form expired or came from another site: reload the page and try again")

// checkCSRF verifies a form's token against the browser's session, or its
// pre-session for the sign-in form.
func checkCSRF(r *http.Request) error {
	got := r.PostFormValue(csrfField)
	var secret string
	if s, ok := readSession(r); ok {
		secret = s.raw
	} else if c, err := r.Cookie(preSessionCookie); err == nil {
		secret = c.Value
	}
	if secret == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(secret))) != 1 {
		return errCSRF
	}
	return nil
}

// signIn checks the user's password by creating an API session with it,
// and stores the session in the browser.
func (u *UI) signIn(w http.ResponseWriter, r *http.Request, user, password string) error {
	c := clientAddr(r)
	c.user, c.secret = user, password
	res, err := u.svc.access.CreateToken(withCaller(r.Context(), c), connect.NewRequest(&wharfv1.CreateTokenRequest{
		Description:      "web UI session",
		Session:          true,
		ExpiresInSeconds: int64(sessionLifetime / time.Second),
	}))
	if err != nil {
		return err
	}
	value := base64.RawURLEncoding.EncodeToString([]byte(user + "\x00" + res.Msg.GetToken().GetId() + "\x00" + res.Msg.GetSecret()))
	setCookie(w, r, sessionCookie, value, sessionLifetime)
	clearCookie(w, r, preSessionCookie)
	return nil
}

// signOut revokes the browser's API session and forgets it.
func (u *UI) signOut(w http.ResponseWriter, r *http.Request) {
	if s, ok := readSession(r); ok {
		c := clientAddr(r)
		c.user, c.secret = s.user, s.secret
		_, err := u.svc.access.RevokeToken(withCaller(r.Context(), c), connect.NewRequest(&wharfv1.RevokeTokenRequest{Id: s.id}))
		if err != nil && connect.CodeOf(err) != connect.CodeUnauthenticated { // already ended: nothing to do
			u.log.WarnContext(r.Context(), "ui: revoke the session at sign-out", "user", s.user, "session", s.id, "err", err)
		}
	}
	clearCookie(w, r, sessionCookie)
}
