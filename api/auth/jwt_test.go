package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// memKeys is a KeySource that rotates like the FSM: the new key first,
// the previous one kept.
type memKeys struct {
	mu  sync.Mutex
	set *fsmpb.SigningKeySet
}

func (m *memKeys) source(context.Context) (*fsmpb.SigningKeySet, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.set == nil {
		return &fsmpb.SigningKeySet{}, nil
	}
	return m.set, nil
}

func (m *memKeys) rotate(t testing.TB) string {
	t.Helper()
	k, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next := &fsmpb.SigningKeySet{CurrentId: k.GetId(), Keys: []*fsmpb.SigningKey{k}}
	if m.set != nil {
		next.Keys = append(next.Keys, m.set.GetKeys()[0])
	}
	m.set = next
	return k.GetId()
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestTokens(t testing.TB, service string) (*Tokens, *memKeys, *clock) {
	keys := &memKeys{}
	keys.rotate(t)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	return NewTokens(TokensConfig{Keys: keys.source, Issuer: "wharf", Service: service, Now: clk.Now}), keys, clk
}

func TestTokenRoundTrip(t *testing.T) {
	tokens, keys, _ := newTestTokens(t, "registry.example")
	access := []Scope{RepositoryScope("acme/app", "pull", "push"), CatalogScope()}
	raw, _, err := tokens.Issue(context.Background(), Caller{User: "alice"}, access)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(raw, &Claims{})
	if err != nil || parsed.Header["kid"] != keys.set.GetCurrentId() || parsed.Header["alg"] != "ES256" {
		t.Fatalf("header = %v, %v", parsed.Header, err)
	}
	c, err := tokens.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.Issuer != "wharf" || c.ExpiresAt.Sub(c.IssuedAt.Time) != DefaultTokenTTL || c.NotBefore == nil {
		t.Fatalf("claims = %+v", c)
	}
	for _, tt := range []struct {
		typ, name, action string
		want              bool
	}{
		{"repository", "acme/app", "push", true},
		{"repository", "acme/app", "delete", false},
		{"repository", "acme/other", "pull", false},
		{"registry", "catalog", "*", true},
	} {
		if got := c.Allows(tt.typ, tt.name, tt.action); got != tt.want {
			t.Errorf("Allows(%s, %s, %s) = %v", tt.typ, tt.name, tt.action, got)
		}
	}
}

func TestTokensRefused(t *testing.T) {
	ctx := context.Background()
	tokens, keys, clk := newTestTokens(t, "registry.example")
	raw, _, err := tokens.Issue(ctx, Caller{User: "alice"}, []Scope{RepositoryScope("acme/app", "pull")})
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := newTestTokens(t, "other.example")
	wrongAudience, _, _ := other.Issue(ctx, Caller{User: "alice"}, nil)
	stranger, _, _ := newTestTokens(t, "registry.example") // same names, other key
	foreignKey, _, _ := stranger.Issue(ctx, Caller{User: "alice"}, nil)
	wrongIssuer := NewTokens(TokensConfig{Keys: keys.source, Issuer: "evil", Service: "registry.example", Now: clk.Now})
	badIssuer, _, _ := wrongIssuer.Issue(ctx, Caller{User: "alice"}, nil)

	parts := strings.Split(raw, ".")
	tamperedClaims := parts[0] + "." + strings.TrimRight(jwtSegment(t, `{"iss":"wharf","sub":"root","aud":["registry.example"],"exp":9999999999,"access":[]}`), "=") + "." + parts[2]
	sig := []byte(parts[2])
	sig[3] ^= 1
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)
	none := jwtSegment(t, `{"alg":"none","typ":"JWT"}`) + "." + parts[1] + "."
	hs256 := hmacToken(t, parts[1])

	tests := map[string]string{
		"tampered claims":  tamperedClaims,
		"tampered sig":     tamperedSig,
		"wrong audience":   wrongAudience,
		"wrong issuer":     badIssuer,
		"foreign key":      foreignKey,
		"alg none":         none,
		"HS256 with a key": hs256,
		"garbage":          "not.a.token",
	}
	for name, tok := range tests {
		if _, err := tokens.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: Verify = %v, want ErrInvalidToken", name, err)
		}
	}

	// Expired: beyond its lifetime and the clock skew allowance.
	clk.advance(DefaultTokenTTL + clockSkew - time.Second)
	if _, err := tokens.Verify(ctx, raw); err != nil {
		t.Fatalf("token within its lifetime and skew: %v", err)
	}
	clk.advance(2 * time.Second)
	if _, err := tokens.Verify(ctx, raw); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired token: Verify = %v", err)
	}
}

func TestNotYetValidTokenRefused(t *testing.T) {
	ctx := context.Background()
	tokens, _, clk := newTestTokens(t, "svc")
	clk.advance(time.Hour)
	raw, _, _ := tokens.Issue(ctx, Caller{User: "alice"}, nil)
	clk.advance(-time.Hour)
	if _, err := tokens.Verify(ctx, raw); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token from the future: Verify = %v", err)
	}
}

func TestRotatedKeyStillVerifies(t *testing.T) {
	ctx := context.Background()
	tokens, keys, _ := newTestTokens(t, "svc")
	first := keys.set.GetCurrentId()
	old, _, err := tokens.Issue(ctx, Caller{User: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	second := keys.rotate(t)
	if _, err := tokens.Verify(ctx, old); err != nil {
		t.Fatalf("token signed with the previous key: %v", err)
	}
	fresh, _, _ := tokens.Issue(ctx, Caller{User: "alice"}, nil)
	parsed, _, _ := jwt.NewParser().ParseUnverified(fresh, &Claims{})
	if kid := parsed.Header["kid"]; kid != second || kid == first {
		t.Fatalf("new token kid = %v, want %s", kid, second)
	}
	// A second rotation drops the first key: its tokens stop verifying.
	keys.rotate(t)
	if _, err := tokens.Verify(ctx, old); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("token of a dropped key: Verify = %v", err)
	}
	if _, err := tokens.Verify(ctx, fresh); err != nil {
		t.Fatalf("token of the previous key: %v", err)
	}
}

func TestIssueWithoutKey(t *testing.T) {
	tokens := NewTokens(TokensConfig{Keys: (&memKeys{}).source, Issuer: "wharf", Service: "svc"})
	if _, _, err := tokens.Issue(context.Background(), Caller{User: "alice"}, nil); !errors.Is(err, errNoSigningKey) {
		t.Fatalf("Issue without a key = %v", err)
	}
}

func TestKeyID(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, err := KeyID(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	// 12 groups of 4 base32 characters, like libtrust.
	if groups := strings.Split(id, ":"); len(groups) != 12 || len(groups[0]) != 4 {
		t.Fatalf("KeyID = %q", id)
	}
}

func jwtSegment(t testing.TB, s string) string {
	t.Helper()
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// hmacToken signs claims with HS256 keyed by nothing a verifier should
// accept.
func hmacToken(t testing.TB, claims string) string {
	t.Helper()
	head := jwtSegment(t, `{"alg":"HS256","typ":"JWT","kid":"x"}`)
	sig, err := jwt.SigningMethodHS256.Sign(head+"."+claims, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	return head + "." + claims + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestVerifyLocalKeysFallBack checks that a node whose local keys lag a
// rotation asks for the current ones, and that local keys alone verify
// otherwise.
func TestVerifyLocalKeysFallBack(t *testing.T) {
	fresh, stale := &memKeys{}, &memKeys{}
	stale.rotate(t)
	fresh.set = stale.set
	fresh.rotate(t) // the cluster rotated; this node has not applied it yet
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	issuer := NewTokens(TokensConfig{Keys: fresh.source, Issuer: "wharf", Service: "svc", Now: clk.Now})
	tok, _, err := issuer.Issue(context.Background(), Caller{User: "u"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	freshCalls := 0
	verifier := NewTokens(TokensConfig{
		Keys: func(ctx context.Context) (*fsmpb.SigningKeySet, error) {
			freshCalls++
			return fresh.source(ctx)
		},
		LocalKeys: stale.source, Issuer: "wharf", Service: "svc", Now: clk.Now,
	})
	if _, err := verifier.Verify(context.Background(), tok); err != nil || freshCalls != 1 {
		t.Fatalf("token of a key the node lacks: %v, %d fresh reads", err, freshCalls)
	}
	stale.set = fresh.set
	if _, err := verifier.Verify(context.Background(), tok); err != nil || freshCalls != 1 {
		t.Fatalf("token of a key the node has: %v, %d fresh reads", err, freshCalls)
	}
}
