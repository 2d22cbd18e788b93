package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Login is what a signed token stands for: the account, by its ID, which is
// never reused, and what it logged in with, an API token or a password.
// Access and refresh tokens carry it, and each use of one checks it against
// the state (Login.check), so that deleting the account, revoking the API
// token or changing the password ends every token issued for it, on every
// node, as soon as that node has applied the change.
type Login struct {
	// UserID is the account's ID: a later account of the same name does
	// not inherit the token.
	UserID uint64 `json:"uid,omitempty"`
	// APIToken is the ID of the API token the login used; its
	// restrictions, expiry and revocation hold for every use.
	APIToken string `json:"api_token,omitempty"`
	// Password, for a password login, fingerprints the password hash the
	// login matched: changing or removing the password revokes the token.
	Password string `json:"pwd,omitempty"`
}

// passwordLogin is the Login of user, who gave its password.
func passwordLogin(u *fsmpb.User) Login {
	return Login{UserID: u.GetId(), Password: passwordFingerprint(u.GetPasswordHash())}
}

// tokenLogin is the Login of user, who gave API token t.
func tokenLogin(u *fsmpb.User, t *fsmpb.ApiToken) Login {
	return Login{UserID: u.GetId(), APIToken: t.GetId()}
}

// bound reports whether l names what it stands for: exactly one of an API
// token or a password, of a known account.
func (l Login) bound() bool {
	return l.UserID != 0 && (l.APIToken == "") != (l.Password == "")
}

// passwordFingerprint names a stored password hash without revealing
// anything about the password: the hash carries a random salt the token
// holder does not know.
func passwordFingerprint(hash string) string {
	sum := sha256.Sum256([]byte("wharf refresh token\x00" + hash))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// errRevoked wraps every reason a token's Login no longer holds.
var errRevoked = errors.New("the login this token stands for no longer holds")

// check returns the caller that l, a login of user subject, stands for now
// in store: the account still exists (the same one), its password is
// unchanged, or the API token is still valid, whose restrictions the
// caller then carries. It refuses with an error wrapping errRevoked; other
// errors are faults of the store.
func (l Login) check(ctx context.Context, store Store, subject string, now time.Time) (Caller, error) {
	if !l.bound() {
		return Caller{}, fmt.Errorf("%w: the token names no login (issued before an upgrade?)", errRevoked)
	}
	u, err := store.User(ctx, subject)
	if errors.Is(err, fsm.ErrNotFound) {
		return Caller{}, fmt.Errorf("%w: user %q no longer exists", errRevoked, subject)
	}
	if err != nil {
		return Caller{}, err
	}
	if u.GetId() != l.UserID {
		return Caller{}, fmt.Errorf("%w: user %q was deleted and created again", errRevoked, subject)
	}
	c := Caller{User: u.GetName(), login: l}
	if l.APIToken != "" {
		t, err := liveAPIToken(ctx, store, u.GetName(), l.APIToken, now)
		if err != nil {
			return Caller{}, err
		}
		if err := checkSession(u, t); err != nil {
			return Caller{}, fmt.Errorf("%w: %v", errRevoked, err)
		}
		return tokenCaller(u, t, l), nil
	}
	fp := passwordFingerprint(u.GetPasswordHash())
	if u.GetPasswordHash() == "" || subtle.ConstantTimeCompare([]byte(fp), []byte(l.Password)) != 1 {
		return Caller{}, fmt.Errorf("%w: the password of %q changed", errRevoked, subject)
	}
	return c, nil
}

// tokenCaller is the caller that API token t of user u, logged in as l,
// stands for: restricted by the token, unless it is a login session,
// which acts as its owner's password does.
func tokenCaller(u *fsmpb.User, t *fsmpb.ApiToken, l Login) Caller {
	if t.GetSession() {
		return Caller{User: u.GetName(), Session: t.GetId(), login: l}
	}
	return Caller{User: u.GetName(), Token: t, login: l}
}

// checkSession refuses a login session of u created with a password u no
// longer has; other tokens pass.
func checkSession(u *fsmpb.User, t *fsmpb.ApiToken) error {
	if !t.GetSession() {
		return nil
	}
	fp := passwordFingerprint(u.GetPasswordHash())
	if u.GetPasswordHash() == "" || subtle.ConstantTimeCompare([]byte(fp), []byte(t.GetPasswordFingerprint())) != 1 {
		return fmt.Errorf("the password of %q changed since login session %s was created", u.GetName(), t.GetId())
	}
	return nil
}

// SessionFingerprint is what a login session of u records of its
// password, so that it stops working once the password changes.
func SessionFingerprint(u *fsmpb.User) string { return passwordFingerprint(u.GetPasswordHash()) }

// liveAPIToken returns API token id of owner if it is neither revoked nor
// expired, else an error wrapping errRevoked.
func liveAPIToken(ctx context.Context, store Store, owner, id string, now time.Time) (*fsmpb.ApiToken, error) {
	t, err := store.APIToken(ctx, id)
	if errors.Is(err, fsm.ErrNotFound) {
		return nil, fmt.Errorf("%w: API token %s was revoked", errRevoked, id)
	}
	if err != nil {
		return nil, err
	}
	if t.GetOwner() != owner || now.UnixNano() >= t.GetExpiresUnixNanos() {
		return nil, fmt.Errorf("%w: API token %s expired", errRevoked, id)
	}
	return t, nil
}
