package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wharf-registry/wharf/api/auth"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Access control wiring.
const (
	// tokenIssuer is the "iss" of every registry token, the same on every
	// node so that any node verifies any other's tokens.
	tokenIssuer = "wharf-token-service"
	// adminUser is the superuser created on first start.
	adminUser = "admin"
	// adminPasswordFile, in the data dir, keeps a generated admin
	// password.
	adminPasswordFile = "admin-password"
	// adminPasswordEnv gives the first admin password.
	adminPasswordEnv = "WHARF_ADMIN_PASSWORD"
)

// accessControl is a node's authentication and authorization: the
// Basic-credentials checker, the token issuer and verifier, the /token
// endpoint and the registry API's authorizer.
type accessControl struct {
	authn    *auth.Authenticator
	tokens   *auth.Tokens
	token    *auth.Handler
	registry *auth.Registry
	// appliedRegistry authorizes on this node's applied state, as a first
	// try: the OCI handler's first check of the requests of an upload.
	appliedRegistry *auth.Registry
}

// tokenService is the registry's token service name: --token-service,
// else the host of --public-url, else "wharf".
func (o serveOptions) tokenServiceName() string {
	if o.tokenService != "" {
		return o.tokenService
	}
	if u, err := url.Parse(o.publicURL); err == nil && o.publicURL != "" && u.Host != "" {
		return u.Host
	}
	return "wharf"
}

func newAccessControl(node *cluster.Node, o serveOptions, logger *slog.Logger) *accessControl {
	log := logger.With("component", "auth")
	service := o.tokenServiceName()
	proxies, _ := auth.ParseTrustedProxies(o.trustedProxies) // validated by serve
	authn := auth.NewAuthenticator(auth.AuthenticatorConfig{
		Store: node, Logger: log, ClientAddress: auth.ClientAddress(proxies), Node: node.ID(),
		// Every node counts every failed login, so guessing through
		// several nodes gains nothing.
		ShareFailure: func(key string, notice []byte) {
			node.Notify(cluster.NoticeLoginFailure, key, notice)
		},
	})
	node.OnNotice(cluster.NoticeLoginFailure, func(notice []byte) {
		if err := authn.TakeFailureNotice(notice); err != nil {
			log.Debug("dropped a login failure notice", "error", err)
		}
	})
	tokens := auth.NewTokens(auth.TokensConfig{
		Keys:      node.SigningKeys,
		LocalKeys: func(context.Context) (*fsmpb.SigningKeySet, error) { return node.FSM().SigningKeys() },
		Issuer:    tokenIssuer, Service: service, TTL: o.tokenTTL,
	})
	claim := func(ctx context.Context, ns, user string) error {
		_, err := node.Apply(ctx, fsm.NewCommand(&fsmpb.ClaimNamespace{Namespace: ns, User: user}))
		return err
	}
	applied := auth.FSMStore(node.FSM())
	return &accessControl{
		authn:  authn,
		tokens: tokens,
		token:  auth.NewHandler(auth.HandlerConfig{Authenticator: authn, Store: node, Tokens: tokens, Service: service, Logger: log}),
		registry: auth.NewRegistry(auth.RegistryConfig{
			Authenticator: authn, Tokens: tokens, Store: node, Local: applied,
			Service: service, PublicURL: o.publicURL, Logger: log, Claim: claim,
		}),
		appliedRegistry: auth.NewRegistry(auth.RegistryConfig{
			Authenticator: authn, Tokens: tokens, Store: applied, FirstTry: true,
			Service: service, PublicURL: o.publicURL, Logger: log, Claim: claim,
		}),
	}
}

// accessBootstrap is the leader task that creates the admin user when
// there is no user at all, and the first token signing key. It returns
// once both exist.
func accessBootstrap(node *cluster.Node, o serveOptions, banner io.Writer, logger *slog.Logger) cluster.LeaderTask {
	return func(ctx context.Context) {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		reported := false
		for {
			done, err := ensureAccess(ctx, node, o, banner, logger)
			if done {
				return
			}
			if err != nil && ctx.Err() == nil && !reported {
				logger.Warn("access control bootstrap", "err", err)
				reported = true
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
}

func hasUsers(f *fsm.FSM) bool {
	users, err := f.Users()
	return err == nil && len(users) > 0
}

func hasKeys(f *fsm.FSM) bool {
	_, err := f.SigningKeys()
	return err == nil
}

// ensureAccess creates what is missing; done reports that nothing is.
func ensureAccess(ctx context.Context, node *cluster.Node, o serveOptions, banner io.Writer, logger *slog.Logger) (bool, error) {
	f, err := node.AccessState(ctx)
	if err != nil {
		return false, err
	}
	if !hasKeys(f) {
		key, err := auth.NewSigningKey()
		if err != nil {
			return false, err
		}
		_, err = node.Apply(ctx, fsm.NewCommand(&fsmpb.RotateSigningKey{Key: key}))
		if err != nil && !errors.Is(err, fsm.ErrFailedPrecondition) {
			return false, fmt.Errorf("create the token signing key: %w", err)
		}
		if err == nil {
			logger.Info("created the registry token signing key", "kid", key.GetId())
		}
	}
	if !hasUsers(f) {
		if err := createAdmin(ctx, node, o, banner, logger); err != nil {
			return false, err
		}
	}
	return true, nil
}

// createAdmin creates the superuser admin, with the password from
// WHARF_ADMIN_PASSWORD or a generated one, printed once and kept in the
// data dir.
func createAdmin(ctx context.Context, node *cluster.Node, o serveOptions, banner io.Writer, logger *slog.Logger) error {
	password, generated := o.adminPassword, false
	if password == "" {
		password, generated = rand.Text(), true
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		return err
	}
	file := filepath.Join(o.dataDir, adminPasswordFile)
	if generated {
		if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
			return fmt.Errorf("write the admin password: %w", err)
		}
	}
	_, err = node.Apply(ctx, fsm.NewCommand(&fsmpb.CreateUser{Name: adminUser, PasswordHash: hash, Superuser: true}))
	if errors.Is(err, fsm.ErrAlreadyExists) {
		if generated {
			_ = os.Remove(file)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("create the admin user: %w", err)
	}
	auth.Audit(logger, "user_created", "", adminUser, "superuser", true, "bootstrap", true)
	if generated {
		printBanner(banner, o, password, file)
	} else {
		logger.Info("created the superuser admin with the password from " + adminPasswordEnv)
	}
	return nil
}

// printBanner tells the operator, once, how to log in as admin, and who
// can reach the listener.
func printBanner(w io.Writer, o serveOptions, password, file string) {
	server := o.publicURL
	if server == "" {
		server = "http://" + clientHost(o.listen)
	}
	host := server
	if u, err := url.Parse(server); err == nil && u.Host != "" {
		host = u.Host
	}
	tls := ""
	if strings.HasPrefix(server, "http://") {
		tls = " --tls-verify=false"
	}
	fmt.Fprintf(w, `
================================================================================
 wharf created the superuser "admin" with this password (shown only once,
 also saved in %s):

     %s

 Log in with:

     podman login%s -u admin %s
     %s login %s -u admin --password-stdin < %s

 Set %s before the first start to choose the password instead.

 Listening on %s: %s.
================================================================================

`, file, password, tls, host, cliCommand(), server, file, adminPasswordEnv, o.listen, exposure(o.listen))
}

// clientHost is the host:port a client on this machine uses for listen
// address addr: localhost for a wildcard or loopback IP.
func clientHost(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && (ip.IsUnspecified() || ip.IsLoopback())) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// exposure says who can reach a listener on addr.
func exposure(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "unknown exposure"
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || (ip != nil && ip.IsUnspecified()):
		return "every network interface, so other machines can reach it"
	case host == "localhost" || (ip != nil && ip.IsLoopback()):
		return "loopback only, so other machines cannot reach it"
	}
	return "the interface of " + host + " only"
}

// cliCommand is how to run this binary's CLI: its path when it was started
// by one (relative to the working directory when under it), else "wharf".
func cliCommand() string {
	arg0 := os.Args[0]
	if !strings.ContainsRune(arg0, filepath.Separator) || strings.Contains(arg0, "go-build") {
		return "wharf" // found on $PATH, or a temporary build of 'go run'
	}
	abs, err := filepath.Abs(arg0)
	if err != nil {
		return arg0
	}
	wd, err := os.Getwd()
	if err != nil {
		return abs
	}
	rel, err := filepath.Rel(wd, abs)
	if err != nil || strings.HasPrefix(rel, "..") {
		return abs
	}
	if !strings.ContainsRune(rel, filepath.Separator) {
		rel = "." + string(filepath.Separator) + rel
	}
	return rel
}
