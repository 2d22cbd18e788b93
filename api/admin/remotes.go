package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/cluster/remotesync"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
	"github.com/wharf-registry/wharf/internal/secretbox"
)

// remoteService implements wharf.v1.RemoteService: remote registries,
// admin only. Secrets are sealed with cfg.Secrets before they are
// proposed, opened only to talk to the registry, and never answered,
// logged or audited.
type remoteService struct {
	wharfv1connect.UnimplementedRemoteServiceHandler
	cfg Config
}

// The secret fields of a remote, as named in the FSM record and in the
// sealed secrets' additional data.
const (
	secretPassword      = "password"
	secretClientKey     = "client_key"
	secretProxyPassword = "proxy_password"
)

// seal seals a secret of remote name's field.
func (s *remoteService) seal(name, field, value string) (*fsmpb.SealedSecret, error) {
	ct, err := s.cfg.Secrets.Seal([]byte(value), "remote", name, field)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("seal %s: %w", field, err))
	}
	return &fsmpb.SealedSecret{Ciphertext: ct, KeyFingerprint: s.cfg.Secrets.Fingerprint()}, nil
}

// open opens a stored secret of remote name's field; nil is "".
func openSecret(box *secretbox.Box, name, field string, sealed *fsmpb.SealedSecret) (string, error) {
	if sealed == nil {
		return "", nil
	}
	pt, err := box.Open(sealed.GetCiphertext(), sealed.GetKeyFingerprint(), "remote", name, field)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

// remoteFieldError turns a refusal of fsm.CheckRemote into
// invalid_argument naming the API's field.
func remoteFieldError(err error) error {
	fe, ok := fsm.AsFieldError(err)
	if !ok {
		return stateError(err)
	}
	field := fe.Field
	switch field {
	case "timeout":
		field = "timeout_nanos"
	case "client_key":
		field = "client_key_pem"
	case secretProxyPassword, "proxy_username":
		field = "proxy_url"
	}
	return invalidArgument(field, errors.New(fe.Rule))
}

// normalizeURL trims a trailing slash from a registry URL.
func normalizeURL(s string) string { return strings.TrimSuffix(s, "/") }

// splitProxy separates the credentials of a proxy URL from the rest.
func splitProxy(field, s string) (bare, user, password string, hasPassword bool, err error) {
	if s == "" {
		return "", "", "", false, nil
	}
	u, perr := url.Parse(s)
	if perr != nil {
		// url's errors quote the URL, credentials included.
		return "", "", "", false, invalidArgument(field, errors.New("is not a URL"))
	}
	if u.User != nil {
		user = u.User.Username()
		password, hasPassword = u.User.Password()
		u.User = nil
	}
	bare = normalizeURL(u.String())
	if err := fsm.ValidateProxyURL(field, bare); err != nil {
		return "", "", "", false, remoteFieldError(err)
	}
	return bare, user, password, hasPassword, nil
}

// parseCertificates refuses CA or client certificates that do not parse,
// which apply does not check.
func parseCertificates(caPEM, clientPEM string) error {
	if err := fsm.ParseCertificatesPEM("ca_certificate_pem", caPEM); err != nil {
		return remoteFieldError(err)
	}
	if err := fsm.ParseCertificatesPEM("client_certificate_pem", clientPEM); err != nil {
		return remoteFieldError(err)
	}
	return nil
}

// checkClientPair refuses a client certificate and key that do not go
// together; the error never quotes the key.
func checkClientPair(certPEM, keyPEM string) error {
	if _, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM)); err != nil {
		return invalidArgument("client_key_pem", errors.New("must be the PEM private key of client_certificate_pem"))
	}
	return nil
}

// CreateRemote stores a new remote registry, its secrets sealed.
func (s *remoteService) CreateRemote(ctx context.Context, req *connect.Request[wharfv1.CreateRemoteRequest]) (*connect.Response[wharfv1.CreateRemoteResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	m := req.Msg
	if err := fsm.ValidateRemoteName(m.Name); err != nil {
		return nil, remoteFieldError(err)
	}
	rec := &fsmpb.Remote{
		Name: m.Name, Url: normalizeURL(m.Url), Username: m.Username,
		InsecureSkipTlsVerify: m.InsecureSkipTlsVerify, CaCertificatePem: m.CaCertificatePem,
		ClientCertificatePem: m.ClientCertificatePem,
		RateLimit:            m.RateLimit, Concurrency: m.Concurrency, TimeoutNanos: m.TimeoutNanos,
	}
	proxy, proxyUser, proxyPassword, hasProxyPassword, err := splitProxy("proxy_url", m.ProxyUrl)
	if err != nil {
		return nil, err
	}
	rec.ProxyUrl, rec.ProxyUsername = proxy, proxyUser
	if err := parseCertificates(m.CaCertificatePem, m.ClientCertificatePem); err != nil {
		return nil, err
	}
	if m.ClientKeyPem != "" && m.ClientCertificatePem != "" {
		if err := checkClientPair(m.ClientCertificatePem, m.ClientKeyPem); err != nil {
			return nil, err
		}
	}
	for _, sec := range []struct {
		field, value string
		set          bool
		dst          **fsmpb.SealedSecret
	}{
		{secretPassword, m.Password, m.Password != "", &rec.Password},
		{secretClientKey, m.ClientKeyPem, m.ClientKeyPem != "", &rec.ClientKey},
		{secretProxyPassword, proxyPassword, hasProxyPassword, &rec.ProxyPassword},
	} {
		if !sec.set {
			continue
		}
		if *sec.dst, err = s.seal(m.Name, sec.field, sec.value); err != nil {
			return nil, err
		}
	}
	if err := fsm.CheckRemote(fsm.NewRemote(rec)); err != nil {
		return nil, remoteFieldError(err)
	}
	c, _ := caller(ctx)
	cmd := fsm.NewCommand(&fsmpb.CreateRemote{Remote: rec})
	if err := s.cfg.apply(ctx, c, "remote.create", rec.Name, cmd,
		"url", rec.Url, "username", rec.Username, "password_set", rec.Password != nil,
		"client_key_set", rec.ClientKey != nil, "proxy", rec.ProxyUrl); err != nil {
		return nil, err
	}
	out, err := s.describe(ctx, rec.Name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.CreateRemoteResponse{Remote: out}), nil
}

// describe reads remote name as the API shows it.
func (s *remoteService) describe(ctx context.Context, name string) (*wharfv1.Remote, error) {
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := f.Remote(name)
	if err != nil {
		return nil, stateError(err)
	}
	return remoteMessage(rec, s.cfg.Secrets), nil
}

// remoteMessage shows a record: its secrets only as flags.
func remoteMessage(r *fsmpb.Remote, box *secretbox.Box) *wharfv1.Remote {
	out := &wharfv1.Remote{
		Name: r.GetName(), Url: r.GetUrl(), Username: r.GetUsername(),
		PasswordSet:           r.GetPassword() != nil,
		InsecureSkipTlsVerify: r.GetInsecureSkipTlsVerify(),
		CaCertificatePem:      r.GetCaCertificatePem(),
		ClientCertificatePem:  r.GetClientCertificatePem(),
		ClientKeySet:          r.GetClientKey() != nil,
		ProxyUrl:              r.GetProxyUrl(), ProxyUsername: r.GetProxyUsername(),
		ProxyPasswordSet: r.GetProxyPassword() != nil,
		RateLimit:        r.GetRateLimit(), Concurrency: r.GetConcurrency(), TimeoutNanos: r.GetTimeoutNanos(),
		CreatedUnixNanos: r.GetCreatedUnixNanos(), UpdatedUnixNanos: r.GetUpdatedUnixNanos(),
		CreatedBy: r.GetCreatedBy(), UpdatedBy: r.GetUpdatedBy(),
	}
	for _, s := range []struct {
		field  string
		sealed *fsmpb.SealedSecret
	}{{secretPassword, r.GetPassword()}, {secretClientKey, r.GetClientKey()}, {secretProxyPassword, r.GetProxyPassword()}} {
		if s.sealed != nil && s.sealed.GetKeyFingerprint() != box.Fingerprint() {
			out.KeyMismatch = append(out.KeyMismatch, s.field)
		}
	}
	return out
}

// GetRemote describes one remote registry.
func (s *remoteService) GetRemote(ctx context.Context, req *connect.Request[wharfv1.GetRemoteRequest]) (*connect.Response[wharfv1.GetRemoteResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := fsm.ValidateRemoteName(req.Msg.Name); err != nil {
		return nil, remoteFieldError(err)
	}
	out, err := s.describe(ctx, req.Msg.Name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.GetRemoteResponse{Remote: out}), nil
}

// ListRemotes lists remote registries in name order.
func (s *remoteService) ListRemotes(ctx context.Context, req *connect.Request[wharfv1.ListRemotesRequest]) (*connect.Response[wharfv1.ListRemotesResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	n, err := pageSize(req.Msg.PageSize)
	if err != nil {
		return nil, err
	}
	last := req.Msg.PageToken
	if last != "" {
		if err := fsm.ValidateRemoteName(last); err != nil {
			return nil, invalidArgument("page_token", errors.New("is not a token of this listing"))
		}
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := f.Remotes(last, n+1)
	if err != nil {
		return nil, stateError(err)
	}
	out := &wharfv1.ListRemotesResponse{}
	if len(recs) > n {
		recs = recs[:n]
		out.NextPageToken = recs[n-1].GetName()
	}
	for _, r := range recs {
		out.Remotes = append(out.Remotes, remoteMessage(r, s.cfg.Secrets))
	}
	return connect.NewResponse(out), nil
}

// secretChange turns the API's change of a secret into the FSM's, sealed.
func (s *remoteService) secretChange(name, field, apiField string, u *wharfv1.SecretUpdate) (*fsmpb.SecretChange, error) {
	switch ch := u.GetChange().(type) {
	case *wharfv1.SecretUpdate_Value:
		if ch.Value == "" {
			return nil, invalidArgument(apiField, errors.New("an empty value: set clear to remove the secret"))
		}
		sealed, err := s.seal(name, field, ch.Value)
		if err != nil {
			return nil, err
		}
		return &fsmpb.SecretChange{Change: &fsmpb.SecretChange_Replace{Replace: sealed}}, nil
	case *wharfv1.SecretUpdate_Clear:
		if ch.Clear {
			return &fsmpb.SecretChange{Change: &fsmpb.SecretChange_Clear{Clear: true}}, nil
		}
	}
	return nil, nil
}

// UpdateRemote changes the fields a request sets.
func (s *remoteService) UpdateRemote(ctx context.Context, req *connect.Request[wharfv1.UpdateRemoteRequest]) (*connect.Response[wharfv1.UpdateRemoteResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	m := req.Msg
	if err := fsm.ValidateRemoteName(m.Name); err != nil {
		return nil, remoteFieldError(err)
	}
	op := &fsmpb.UpdateRemote{
		Name: m.Name, Username: m.Username, InsecureSkipTlsVerify: m.InsecureSkipTlsVerify,
		CaCertificatePem: m.CaCertificatePem, ClientCertificatePem: m.ClientCertificatePem,
		RateLimit: m.RateLimit, Concurrency: m.Concurrency, TimeoutNanos: m.TimeoutNanos,
	}
	var changed []string
	if m.Url != nil {
		u := normalizeURL(m.GetUrl())
		op.Url = &u
	}
	var err error
	if op.Password, err = s.secretChange(m.Name, secretPassword, "password", m.Password); err != nil {
		return nil, err
	}
	if op.ClientKey, err = s.secretChange(m.Name, secretClientKey, "client_key_pem", m.ClientKeyPem); err != nil {
		return nil, err
	}
	if m.ProxyUrl != nil {
		proxy, user, password, hasPassword, err := splitProxy("proxy_url", m.GetProxyUrl())
		if err != nil {
			return nil, err
		}
		op.ProxyUrl, op.ProxyUsername = &proxy, &user
		op.ProxyPassword = &fsmpb.SecretChange{Change: &fsmpb.SecretChange_Clear{Clear: true}}
		if hasPassword {
			sealed, err := s.seal(m.Name, secretProxyPassword, password)
			if err != nil {
				return nil, err
			}
			op.ProxyPassword = &fsmpb.SecretChange{Change: &fsmpb.SecretChange_Replace{Replace: sealed}}
		}
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	old, err := f.Remote(m.Name)
	if err != nil {
		return nil, stateError(err)
	}
	if err := parseCertificates(m.GetCaCertificatePem(), m.GetClientCertificatePem()); err != nil {
		return nil, err
	}
	next := fsm.ApplyRemoteUpdate(old, op)
	if err := fsm.CheckRemote(next); err != nil {
		return nil, remoteFieldError(err)
	}
	if v, ok := m.ClientKeyPem.GetChange().(*wharfv1.SecretUpdate_Value); ok {
		if err := checkClientPair(next.GetClientCertificatePem(), v.Value); err != nil {
			return nil, err
		}
	}
	// Audit the names of what changed, never a value of a secret.
	op.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		if fd.Name() != "name" {
			changed = append(changed, string(fd.Name()))
		}
		return true
	})
	slices.Sort(changed)
	c, _ := caller(ctx)
	if err := s.cfg.apply(ctx, c, "remote.update", m.Name, fsm.NewCommand(op), "fields", strings.Join(changed, ",")); err != nil {
		return nil, err
	}
	out, err := s.describe(ctx, m.Name)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.UpdateRemoteResponse{Remote: out}), nil
}

// DeleteRemote removes a remote registry.
func (s *remoteService) DeleteRemote(ctx context.Context, req *connect.Request[wharfv1.DeleteRemoteRequest]) (*connect.Response[wharfv1.DeleteRemoteResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := fsm.ValidateRemoteName(req.Msg.Name); err != nil {
		return nil, remoteFieldError(err)
	}
	c, _ := caller(ctx)
	if err := s.cfg.apply(ctx, c, "remote.delete", req.Msg.Name, fsm.NewCommand(&fsmpb.DeleteRemote{Name: req.Msg.Name})); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.DeleteRemoteResponse{}), nil
}

// TestRemote pings the registry with the stored settings and credentials.
func (s *remoteService) TestRemote(ctx context.Context, req *connect.Request[wharfv1.TestRemoteRequest]) (*connect.Response[wharfv1.TestRemoteResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	if err := fsm.ValidateRemoteName(req.Msg.Name); err != nil {
		return nil, remoteFieldError(err)
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := f.Remote(req.Msg.Name)
	if err != nil {
		return nil, stateError(err)
	}
	out := ProbeRemote(ctx, rec, s.cfg.Secrets)
	c, _ := caller(ctx)
	auth.Audit(s.cfg.log(), "remote.test", c.User, rec.GetName(), "authenticated", out.Authenticated, "status", out.HttpStatus)
	return connect.NewResponse(out), nil
}

// RemoteCredentials are a remote's secrets, opened.
type RemoteCredentials struct {
	Password, ClientKeyPEM, ProxyPassword string
}

// OpenRemoteSecrets opens a remote's secrets with box.
func OpenRemoteSecrets(r *fsmpb.Remote, box *secretbox.Box) (RemoteCredentials, error) {
	var c RemoteCredentials
	var err error
	if c.Password, err = openSecret(box, r.GetName(), secretPassword, r.GetPassword()); err != nil {
		return c, err
	}
	if c.ClientKeyPEM, err = openSecret(box, r.GetName(), secretClientKey, r.GetClientKey()); err != nil {
		return c, err
	}
	if c.ProxyPassword, err = openSecret(box, r.GetName(), secretProxyPassword, r.GetProxyPassword()); err != nil {
		return c, err
	}
	return c, nil
}

// ProbeRemote pings r's /v2/ anonymously, then with its credentials, and
// reports what it found. Errors are part of the answer, secrets never.
func ProbeRemote(ctx context.Context, r *fsmpb.Remote, box *secretbox.Box) *wharfv1.TestRemoteResponse {
	start := time.Now()
	out := &wharfv1.TestRemoteResponse{}
	defer func() { out.ElapsedNanos = int64(time.Since(start)) }()
	creds, err := OpenRemoteSecrets(r, box)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	scrub := func(err error) string {
		msg := err.Error()
		for _, s := range []string{creds.Password, creds.ProxyPassword, creds.ClientKeyPEM} {
			if s != "" {
				msg = strings.ReplaceAll(msg, s, "[redacted]")
			}
		}
		return msg
	}
	base, err := remotesync.TransportFor(r, creds.Password, creds.ClientKeyPEM, creds.ProxyPassword)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	defer base.CloseIdleConnections()
	timeout := time.Duration(r.GetTimeoutNanos())
	if timeout <= 0 {
		timeout = fsm.DefaultRemoteTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	u, err := url.Parse(r.GetUrl())
	if err != nil {
		out.Error = "url does not parse"
		return out
	}
	endpoint := r.GetUrl() + "/v2/"
	status, err := getStatus(ctx, base, endpoint)
	if err != nil {
		out.Error = "GET " + endpoint + ": " + scrub(err)
		return out
	}
	out.Reachable, out.HttpStatus = true, int32(status)

	var opts []name.Option
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, opts...)
	if err != nil {
		out.Error = "registry name: " + err.Error()
		return out
	}
	ch, err := transport.Ping(ctx, reg, base)
	if err != nil {
		out.Error = "ping: " + scrub(err)
		return out
	}
	if u.Scheme == "https" && ch.Insecure {
		out.Error = "the registry answered only over plain http, though its URL says https"
		return out
	}
	switch out.AuthScheme = strings.ToLower(ch.Scheme); out.AuthScheme {
	case "":
		out.AuthScheme = "none"
	case "bearer":
		out.Realm, out.Service = ch.Parameters["realm"], ch.Parameters["service"]
	}

	var authenticator authn.Authenticator = authn.Anonymous
	if r.GetUsername() != "" || creds.Password != "" {
		out.CredentialsUsed = true
		authenticator = authn.FromConfig(authn.AuthConfig{Username: r.GetUsername(), Password: creds.Password})
	}
	rt, err := transport.NewWithContext(ctx, reg, authenticator, base, nil)
	if err != nil {
		out.Error = "login: " + scrub(err)
		return out
	}
	status, err = getStatus(ctx, rt, endpoint)
	if err != nil {
		out.Error = "GET " + endpoint + " with credentials: " + scrub(err)
		return out
	}
	out.AuthenticatedStatus = int32(status)
	out.Authenticated = status == http.StatusOK
	if !out.Authenticated {
		out.Error = fmt.Sprintf("GET %s with credentials answered %d %s", endpoint, status, http.StatusText(status))
	}
	return out
}

// getStatus GETs url through rt and returns the status.
func getStatus(ctx context.Context, rt http.RoundTripper, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}
