package auth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Store is the access-control state authentication and the token service
// read. FSMStore serves it from a local FSM; a cluster node serves it
// through its read path.
type Store interface {
	// User returns a user's record, or an error wrapping fsm.ErrNotFound.
	User(ctx context.Context, name string) (*fsmpb.User, error)
	// APIToken returns a token's record, or an error wrapping
	// fsm.ErrNotFound.
	APIToken(ctx context.Context, id string) (*fsmpb.ApiToken, error)
	// Access returns what fsm.FSM.Access returns.
	Access(ctx context.Context, user, repo string) (fsm.Access, error)
}

// FSMStore serves a Store from a local FSM, without a read index.
func FSMStore(f *fsm.FSM) Store { return fsmStore{f} }

type fsmStore struct{ f *fsm.FSM }

func (s fsmStore) User(_ context.Context, name string) (*fsmpb.User, error) { return s.f.User(name) }
func (s fsmStore) APIToken(_ context.Context, id string) (*fsmpb.ApiToken, error) {
	return s.f.APIToken(id)
}
func (s fsmStore) Access(_ context.Context, user, repo string) (fsm.Access, error) {
	return s.f.Access(user, repo)
}

// Authentication errors.
var (
	// ErrBadCredentials: unknown user, wrong password, or an unknown,
	// expired or foreign API token. Clients are told no more than that.
	ErrBadCredentials = errors.New("invalid username or password")
	// ErrThrottled: too many failed logins for the user or the source
	// address; wrapped by a *ThrottledError.
	ErrThrottled = errors.New("too many failed logins")
)

// ThrottledError says how long to wait before trying again.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v; try again in %v", ErrThrottled, e.RetryAfter.Round(time.Second))
}

func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// Authenticator checks Basic credentials: a user's password, or an API
// token given as the password of its owner.
type Authenticator struct {
	store Store
	log   *slog.Logger
	now   func() time.Time
	addr  func(*http.Request) string
	// throttle counts failed logins per source address and user name;
	// share tells the other nodes of each one.
	throttle *throttle
	share    func(key string, notice []byte)
	// verified remembers recent successful password checks, so that a
	// client sending Basic credentials with every request does not pay
	// for argon2id each time.
	verified *verifiedCache
}

// AuthenticatorConfig configures NewAuthenticator.
type AuthenticatorConfig struct {
	Store Store
	// Logger receives audit lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ClientAddress returns the source address of a request for
	// throttling (default: the host of RemoteAddr; behind a trusted load
	// balancer, the client address it forwards: ClientAddress).
	ClientAddress func(*http.Request) string
	// Node names this node in the failure counts it shares.
	Node string
	// ShareFailure, if set, sends a notice of each failed login to the
	// other nodes, which pass it to their TakeFailureNotice. A newer notice
	// of the same key makes an older one obsolete.
	ShareFailure func(key string, notice []byte)
}

// NewAuthenticator returns an Authenticator.
func NewAuthenticator(cfg AuthenticatorConfig) *Authenticator {
	a := &Authenticator{
		store:    cfg.Store,
		log:      cfg.Logger,
		now:      cfg.Now,
		addr:     cfg.ClientAddress,
		throttle: newThrottle(cmp.Or(cfg.Node, "local")),
		share:    cfg.ShareFailure,
		verified: newVerifiedCache(verifiedTTL, maxVerified),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.addr == nil {
		a.addr = remoteHost
	}
	return a
}

// Authenticate returns the caller creds name: anonymous for SchemeNone,
// else the user of valid Basic credentials. It refuses with an error
// wrapping ErrBadCredentials or ErrThrottled; other errors are faults of
// the store. Bearer credentials are not its business.
func (a *Authenticator) Authenticate(r *http.Request, creds Credentials) (Caller, error) {
	if basic, err := isBasic(creds); !basic {
		return Caller{}, err
	}
	now, src := a.now(), a.addr(r)
	pair := newThrottleKey(src, creds.Username)
	if err := a.throttled(pair, now); err != nil {
		Audit(a.log, "login_throttled", creds.Username, "registry", "source", src)
		return Caller{}, err
	}
	c, method, err := a.check(r.Context(), creds, now)
	if errors.Is(err, ErrBadCredentials) {
		a.failed(pair, now)
		Audit(a.log, "login_failed", creds.Username, "registry", "source", src, "method", method)
		return Caller{}, err
	}
	if err != nil {
		return Caller{}, err
	}
	attrs := []any{"source", src, "method", method}
	if c.Token != nil {
		attrs = append(attrs, "token_id", c.Token.GetId())
	}
	Audit(a.log, "login", c.User, "registry", attrs...)
	return c, nil
}

// Verify is Authenticate for a first try that the caller repeats with
// Authenticate when it fails (against fresher state): a pair locked out
// is refused alike, so that no request can test a password past the
// throttle, but a failure neither counts towards the throttle nor writes
// an audit line; the repeat does.
func (a *Authenticator) Verify(r *http.Request, creds Credentials) (Caller, error) {
	if basic, err := isBasic(creds); !basic {
		return Caller{}, err
	}
	now := a.now()
	if err := a.throttled(newThrottleKey(a.addr(r), creds.Username), now); err != nil {
		return Caller{}, err
	}
	c, _, err := a.check(r.Context(), creds, now)
	return c, err
}

// isBasic reports whether creds are Basic credentials to check; if not,
// err is nil for an anonymous caller and a refusal for any other scheme.
func isBasic(creds Credentials) (bool, error) {
	switch creds.Scheme {
	case SchemeBasic:
		return true, nil
	case SchemeNone:
		return false, nil
	}
	return false, fmt.Errorf("%w: use Basic credentials", ErrBadCredentials)
}

// throttled refuses pair while it is locked out.
func (a *Authenticator) throttled(pair throttleKey, now time.Time) error {
	if ok, wait := a.throttle.allow(pair, now); !ok {
		return &ThrottledError{RetryAfter: max(wait, time.Second)}
	}
	return nil
}

// failed counts a failed login of pair, here and on the other nodes.
func (a *Authenticator) failed(pair throttleKey, now time.Time) {
	notice := a.throttle.fail(pair, now)
	if a.share != nil {
		a.share(string(notice.key[:]), notice.marshal())
	}
}

// TakeFailureNotice counts a failed login another node saw, from the
// notice its ShareFailure sent.
func (a *Authenticator) TakeFailureNotice(notice []byte) error {
	n, err := unmarshalFailureNotice(notice)
	if err != nil {
		return err
	}
	a.throttle.merge(n, a.now())
	return nil
}

// check verifies creds and names the method used ("password" or
// "api_token").
func (a *Authenticator) check(ctx context.Context, creds Credentials, now time.Time) (Caller, string, error) {
	if id, secret, ok := ParseAPIToken(creds.Password); ok {
		c, err := a.checkAPIToken(ctx, creds.Username, id, secret, now)
		return c, "api_token", err
	}
	c, err := a.checkPassword(ctx, creds.Username, creds.Password)
	return c, "password", err
}

func (a *Authenticator) checkPassword(ctx context.Context, name, password string) (Caller, error) {
	u, err := a.store.User(ctx, name)
	if err != nil && !errors.Is(err, fsm.ErrNotFound) {
		return Caller{}, err
	}
	hash := u.GetPasswordHash()
	if hash == "" {
		hash = dummyHash // unknown user or no password: take as long, then refuse
	}
	if u.GetPasswordHash() != "" && a.verified.hit(hash, password, a.now()) {
		return Caller{User: u.GetName(), login: passwordLogin(u)}, nil
	}
	ok, err := CheckPassword(hash, password)
	if err != nil {
		a.log.Error("stored password hash is unusable", "user", name, "error", err)
	}
	if !ok || u.GetPasswordHash() == "" {
		return Caller{}, ErrBadCredentials
	}
	a.verified.add(hash, password, a.now())
	return Caller{User: u.GetName(), login: passwordLogin(u)}, nil
}

func (a *Authenticator) checkAPIToken(ctx context.Context, user, id, secret string, now time.Time) (Caller, error) {
	t, err := a.store.APIToken(ctx, id)
	if errors.Is(err, fsm.ErrNotFound) {
		return Caller{}, ErrBadCredentials
	}
	if err != nil {
		return Caller{}, err
	}
	valid := CheckAPITokenSecret(t.GetSecretSha256(), secret)
	if !valid || t.GetOwner() != user || now.UnixNano() >= t.GetExpiresUnixNanos() {
		return Caller{}, ErrBadCredentials
	}
	u, err := a.store.User(ctx, user)
	if errors.Is(err, fsm.ErrNotFound) {
		return Caller{}, ErrBadCredentials // deleted with its tokens a moment ago
	}
	if err != nil {
		return Caller{}, err
	}
	if checkSession(u, t) != nil {
		return Caller{}, ErrBadCredentials
	}
	return tokenCaller(u, t, tokenLogin(u, t)), nil
}

// Audit writes an audit log line: what happened, who did it (actor, empty
// for anonymous) and to what (target). Never pass a secret in args.
func Audit(l *slog.Logger, event, actor, target string, args ...any) {
	l.LogAttrs(context.Background(), slog.LevelInfo, "audit",
		slog.String("event", event), slog.String("actor", actor), slog.String("target", target),
		slog.Group("details", args...))
}
