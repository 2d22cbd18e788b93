package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// DefaultTokenTTL is how long a registry token lasts unless configured
// (Galaxy's default is the same).
const DefaultTokenTTL = 5 * time.Minute

// clockSkew is the leeway for exp and nbf between nodes' clocks.
const clockSkew = 30 * time.Second

// Claims are the claims of a registry token.
type Claims struct {
	jwt.RegisteredClaims
	// Access is what the token allows, one entry per resource, at most:
	// each use checks again what the caller may do now.
	Access []Scope `json:"access"`
	// Login is what the caller logged in with; zero for an anonymous
	// caller.
	Login
}

// Allows reports whether c grants action on resource typ/name.
func (c *Claims) Allows(typ, name, action string) bool {
	for _, sc := range c.Access {
		if sc.Type == typ && sc.Name == name && (slices.Contains(sc.Actions, action) || slices.Contains(sc.Actions, "*")) {
			return true
		}
	}
	return false
}

// KeySource returns the cluster's signing keys; fsm.FSM.SigningKeys
// through the node's read path.
type KeySource func(ctx context.Context) (*fsmpb.SigningKeySet, error)

// Tokens issues and verifies registry tokens with the cluster's keys.
type Tokens struct {
	keys    KeySource
	local   KeySource
	ring    *keyring
	issuer  string
	service string
	ttl     time.Duration
	now     func() time.Time
}

// TokensConfig configures NewTokens.
type TokensConfig struct {
	Keys KeySource
	// LocalKeys, if set, is tried first to verify a token: the keys as this
	// node has them, without asking the leader. Keys is asked only when
	// they lack the token's key (rotated a moment ago).
	LocalKeys KeySource
	// Issuer is the "iss" of every token; the same on every node.
	Issuer string
	// Service is the "aud" of every token: the registry's service name.
	Service string
	// TTL is the lifetime of a token (default DefaultTokenTTL).
	TTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// NewTokens returns a token issuer and verifier.
func NewTokens(cfg TokensConfig) *Tokens {
	t := &Tokens{keys: cfg.Keys, local: cfg.LocalKeys, ring: newKeyring(), issuer: cfg.Issuer, service: cfg.Service, ttl: cfg.TTL, now: cfg.Now}
	if t.ttl <= 0 {
		t.ttl = DefaultTokenTTL
	}
	if t.now == nil {
		t.now = time.Now
	}
	return t
}

// Issue signs a token for c (anonymous included) granting access. It
// returns the token and its issue time.
func (t *Tokens) Issue(ctx context.Context, c Caller, access []Scope) (string, time.Time, error) {
	now := t.now().Truncate(time.Second)
	if access == nil {
		access = []Scope{}
	}
	claims := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   c.User,
			Audience:  jwt.ClaimStrings{t.service},
			ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        rand.Text(),
		},
		Access: access,
		Login:  c.login,
	}
	signed, err := t.sign(ctx, claims)
	if err != nil {
		return "", time.Time{}, err
	}
	return signed, now, nil
}

// sign signs claims ES256 with the cluster's current key, named by "kid".
func (t *Tokens) sign(ctx context.Context, claims jwt.Claims) (string, error) {
	set, err := t.keys(ctx)
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	kid, priv, err := t.ring.current(set)
	if err != nil {
		return "", fmt.Errorf("issue token: %w", err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	signed, err := tok.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return signed, nil
}

// ErrInvalidToken wraps every reason Verify refuses a token.
var ErrInvalidToken = errors.New("invalid token")

// Verify checks a token's signature (with a key the cluster still holds),
// algorithm, issuer, audience, expiry and not-before, and returns its
// claims.
func (t *Tokens) Verify(ctx context.Context, raw string) (*Claims, error) {
	var claims Claims
	if err := t.parse(ctx, raw, &claims, t.service); err != nil {
		return nil, err
	}
	return &claims, nil
}

// parse verifies raw as Verify does, for tokens of audience, into claims.
// It returns an error wrapping ErrInvalidToken for a token to refuse, and
// another error when the keys cannot be read.
func (t *Tokens) parse(ctx context.Context, raw string, claims jwt.Claims, audience string) error {
	source := t.keys
	if t.local != nil {
		source = t.local
	}
	set, err := source(ctx)
	if err != nil && t.local == nil {
		return fmt.Errorf("verify token: %w", err)
	}
	var fault error
	_, err = jwt.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		priv, err := t.ring.find(set, kid)
		if err != nil && t.local != nil {
			fresh, ferr := t.keys(ctx)
			if ferr != nil {
				fault = ferr
				return nil, ferr
			}
			priv, err = t.ring.find(fresh, kid)
		}
		if err != nil {
			return nil, err
		}
		return &priv.PublicKey, nil
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(clockSkew),
		jwt.WithTimeFunc(t.now),
	)
	if fault != nil {
		return fmt.Errorf("verify token: %w", fault)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return nil
}
