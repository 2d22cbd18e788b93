package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// RefreshTokenTTL is how long a refresh token of the OAuth2 flow lasts (at
// most: one issued for an API token ends with it).
const RefreshTokenTTL = 30 * 24 * time.Hour

// refreshUse is the token_use claim of every refresh token.
const refreshUse = "refresh"

// refreshAudience is the audience of refresh tokens for service. It never
// equals a service name, so a refresh token is never an access token, and
// an access token (audience service) never a refresh token.
func refreshAudience(service string) string { return "wharf-refresh:" + service }

// RefreshClaims are the claims of a refresh token: a login, bound to the
// user account and to what it logged in with, that the OAuth2 flow of the
// token endpoint trades for access tokens. Signed with the cluster's keys
// like access tokens, any node verifies it.
type RefreshClaims struct {
	jwt.RegisteredClaims
	// Use is "refresh".
	Use string `json:"token_use"`
	Login
}

// IssueRefresh signs a refresh token for c, a caller that logged in with a
// password or an API token. One issued for an API token ends with it.
func (t *Tokens) IssueRefresh(ctx context.Context, c Caller) (string, error) {
	if c.User == "" || !c.login.bound() {
		return "", errors.New("issue refresh token: no login")
	}
	now := t.now().Truncate(time.Second)
	exp := now.Add(RefreshTokenTTL)
	if c.Token != nil {
		if end := time.Unix(0, c.Token.GetExpiresUnixNanos()); end.Before(exp) {
			exp = end
		}
	}
	claims := RefreshClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   c.User,
			Audience:  jwt.ClaimStrings{refreshAudience(t.service)},
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
			ID:        rand.Text(),
		},
		Use:   refreshUse,
		Login: c.login,
	}
	return t.sign(ctx, claims)
}

// VerifyRefresh checks a refresh token like Verify checks an access token,
// and that it is a refresh token. It refuses with an error wrapping
// ErrInvalidToken; other errors mean the keys cannot be read. Whether the
// login it stands for still holds is Authenticator.AuthenticateRefresh's
// business.
func (t *Tokens) VerifyRefresh(ctx context.Context, raw string) (*RefreshClaims, error) {
	var claims RefreshClaims
	if err := t.parse(ctx, raw, &claims, refreshAudience(t.service)); err != nil {
		return nil, err
	}
	if claims.Use != refreshUse || claims.Subject == "" || !claims.bound() {
		return nil, fmt.Errorf("%w: not a refresh token", ErrInvalidToken)
	}
	return &claims, nil
}

// AuthenticateRefresh returns the caller a refresh token stands for,
// checked against the state now: the account still exists (the same one),
// can still log in with the password the token was issued for (unchanged),
// or the API token it was issued for is still valid, whose restrictions
// the caller carries. It refuses with an error wrapping ErrBadCredentials
// or ErrThrottled; other errors are faults of the store or the keys.
// Refused refresh tokens count as failures of the source address, apart
// from its password logins.
func (a *Authenticator) AuthenticateRefresh(r *http.Request, tokens *Tokens, raw string) (Caller, error) {
	const method = "refresh_token"
	now, src := a.now(), a.addr(r)
	pair := newThrottleKey(src, "") // refused refresh tokens, by address
	if err := a.throttled(pair, now); err != nil {
		Audit(a.log, "login_throttled", "", "registry", "source", src, "method", method)
		return Caller{}, err
	}
	claims, err := tokens.VerifyRefresh(r.Context(), raw)
	var c Caller
	if err == nil {
		c, err = a.checkRefresh(r.Context(), claims, now)
	} else if errors.Is(err, ErrInvalidToken) {
		err = fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	if errors.Is(err, ErrBadCredentials) {
		a.failed(pair, now)
		Audit(a.log, "login_failed", claims.subject(), "registry", "source", src, "method", method)
		return Caller{}, err
	}
	if err != nil {
		return Caller{}, err
	}
	attrs := []any{"source", src, "method", method, "refresh_id", claims.ID}
	if c.Token != nil {
		attrs = append(attrs, "token_id", c.Token.GetId())
	}
	Audit(a.log, "login", c.User, "registry", attrs...)
	return c, nil
}

// subject returns the subject of c, nil included.
func (c *RefreshClaims) subject() string {
	if c == nil {
		return ""
	}
	return c.Subject
}

func (a *Authenticator) checkRefresh(ctx context.Context, claims *RefreshClaims, now time.Time) (Caller, error) {
	c, err := claims.check(ctx, a.store, claims.Subject, now)
	if errors.Is(err, errRevoked) {
		return Caller{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	return c, err
}
