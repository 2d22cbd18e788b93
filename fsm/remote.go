package fsm

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cockroachdb/pebble"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Remote registries: the upstreams syncs will read from (issue 14).
//
//	remote/<name>                            fsmpb.Remote
//
// Their secrets arrive sealed (fsmpb.SealedSecret): the FSM checks their
// shape and stores them, and never holds a key.

const prefixRemote = "remote/"

func remoteKey(name string) []byte { return key(prefixRemote, name) }

// Bounds and defaults of a remote registry's settings.
const (
	DefaultRemoteConcurrency = 4
	MaxRemoteConcurrency     = 64
	DefaultRemoteTimeout     = 60 * time.Second
	MinRemoteTimeout         = time.Second
	MaxRemoteTimeout         = 10 * time.Minute
	// MaxRemoteRateLimit bounds the requests per second of a remote.
	MaxRemoteRateLimit = 1e6
	// MaxRemotePEMBytes bounds each certificate field.
	MaxRemotePEMBytes = 64 << 10
	// MaxSealedSecretBytes bounds a sealed secret.
	MaxSealedSecretBytes = 16 << 10
	maxRemoteTextBytes   = 1 << 10
)

var remoteNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// FieldError is a refusal of one field of a command, saying which rule it
// broke.
type FieldError struct {
	Field string
	Rule  string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Rule }

func fieldError(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Rule: fmt.Sprintf(format, args...)}
}

// ValidateRemoteName checks a remote registry's name.
func ValidateRemoteName(name string) error {
	if name == "" {
		return fieldError("name", "is required")
	}
	if !remoteNameRE.MatchString(name) {
		return fieldError("name", "must be 1 to 63 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit, got %q", name)
	}
	return nil
}

// ValidateRemoteURL checks a remote registry's base URL: http or https, a
// host, no credentials, path, query or fragment.
func ValidateRemoteURL(field, s string) error {
	if s == "" {
		return fieldError(field, "is required: the registry's base URL, such as https://registry.example.com")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fieldError(field, "is not a URL: %v", urlCause(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fieldError(field, "must use http or https, got %q", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return fieldError(field, "must name a host")
	case u.User != nil:
		return fieldError(field, "must not hold credentials: give the username and password apart")
	case u.Path != "" && u.Path != "/":
		return fieldError(field, "must not have a path: a registry is served at /v2/ of its host, got %q", u.Path)
	case u.RawQuery != "" || u.ForceQuery:
		return fieldError(field, "must not have a query")
	case u.Fragment != "":
		return fieldError(field, "must not have a fragment")
	}
	return nil
}

// ValidateProxyURL checks a proxy URL, credentials apart: http, https or
// socks5, a host, nothing else.
func ValidateProxyURL(field, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fieldError(field, "is not a URL: %v", urlCause(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5":
		return fieldError(field, "must use http, https or socks5, got %q", u.Scheme)
	case u.Hostname() == "":
		return fieldError(field, "must name a host")
	case u.User != nil:
		return fieldError(field, "must not hold credentials in the record: they are stored apart")
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return fieldError(field, "must be only a scheme, a host and a port")
	}
	return nil
}

// urlCause is why url.Parse refused a URL, without the URL: it may hold
// credentials.
func urlCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return errors.New("malformed")
}

func validateRemoteText(field, s string) error {
	if len(s) > maxRemoteTextBytes {
		return fieldError(field, "must be at most %d bytes", maxRemoteTextBytes)
	}
	if !utf8.ValidString(s) {
		return fieldError(field, "must be UTF-8")
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return fieldError(field, "must not hold control characters")
	}
	return nil
}

// validateSealed checks the shape of a sealed secret; nil is none.
func validateSealed(field string, s *fsmpb.SealedSecret) error {
	if s == nil {
		return nil
	}
	if n := len(s.GetCiphertext()); n == 0 || n > MaxSealedSecretBytes {
		return fieldError(field, "must be a sealed secret of 1 to %d bytes, got %d", MaxSealedSecretBytes, n)
	}
	if fp := s.GetKeyFingerprint(); len(fp) != 16 || !isHex(fp) {
		return fieldError(field, "must name its key by a fingerprint of 16 hex digits, got %q", fp)
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// ValidateCertificatesPEM checks that s, if not empty, holds only PEM
// CERTIFICATE blocks, at least one. It checks the PEM structure only, the
// same in every Go release, as apply must; the API parses the certificates
// (ParseCertificatesPEM) before it proposes them.
func ValidateCertificatesPEM(field, s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxRemotePEMBytes {
		return fieldError(field, "must be at most %d bytes", MaxRemotePEMBytes)
	}
	rest, n := []byte(s), 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fieldError(field, "must hold only CERTIFICATE PEM blocks, found %q", block.Type)
		}
		n++
	}
	if n == 0 || strings.TrimSpace(string(rest)) != "" {
		return fieldError(field, "must be PEM certificates (-----BEGIN CERTIFICATE-----)")
	}
	return nil
}

// ParseCertificatesPEM is ValidateCertificatesPEM that also parses each
// certificate: for the proposer, not for apply, whose outcome must not
// depend on the Go release's X.509 parser.
func ParseCertificatesPEM(field, s string) error {
	if err := ValidateCertificatesPEM(field, s); err != nil {
		return err
	}
	for rest := []byte(s); ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return nil
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fieldError(field, "holds a certificate that does not parse: %v", err)
		}
	}
}

// CheckRemote checks a remote registry's record as it would be stored,
// defaults applied; the error is a *FieldError.
func CheckRemote(r *fsmpb.Remote) error {
	if err := ValidateRemoteName(r.GetName()); err != nil {
		return err
	}
	if err := ValidateRemoteURL("url", r.GetUrl()); err != nil {
		return err
	}
	if err := validateRemoteText("username", r.GetUsername()); err != nil {
		return err
	}
	if err := validateSealed("password", r.GetPassword()); err != nil {
		return err
	}
	if err := ValidateCertificatesPEM("ca_certificate_pem", r.GetCaCertificatePem()); err != nil {
		return err
	}
	if err := ValidateCertificatesPEM("client_certificate_pem", r.GetClientCertificatePem()); err != nil {
		return err
	}
	if err := validateSealed("client_key", r.GetClientKey()); err != nil {
		return err
	}
	if (r.GetClientCertificatePem() == "") != (r.GetClientKey() == nil) {
		return fieldError("client_key", "a client certificate and its key go together: give both or neither")
	}
	if p := r.GetProxyUrl(); p != "" {
		if err := ValidateProxyURL("proxy_url", p); err != nil {
			return err
		}
	} else if r.GetProxyUsername() != "" || r.GetProxyPassword() != nil {
		return fieldError("proxy_url", "is required with proxy credentials")
	}
	if err := validateRemoteText("proxy_username", r.GetProxyUsername()); err != nil {
		return err
	}
	if err := validateSealed("proxy_password", r.GetProxyPassword()); err != nil {
		return err
	}
	if rl := r.GetRateLimit(); math.IsNaN(rl) || rl < 0 || rl > MaxRemoteRateLimit {
		return fieldError("rate_limit", "must be 0 (no limit) to %g requests per second, got %g", float64(MaxRemoteRateLimit), rl)
	}
	if c := r.GetConcurrency(); c < 1 || c > MaxRemoteConcurrency {
		return fieldError("concurrency", "must be 1 to %d parallel downloads, got %d", MaxRemoteConcurrency, c)
	}
	if t := time.Duration(r.GetTimeoutNanos()); t < MinRemoteTimeout || t > MaxRemoteTimeout {
		return fieldError("timeout", "must be %v to %v, got %v", MinRemoteTimeout, MaxRemoteTimeout, t)
	}
	return nil
}

// remoteDefaults fills the settings a new remote leaves at zero.
func remoteDefaults(r *fsmpb.Remote) {
	if r.Concurrency == 0 {
		r.Concurrency = DefaultRemoteConcurrency
	}
	if r.TimeoutNanos == 0 {
		r.TimeoutNanos = int64(DefaultRemoteTimeout)
	}
}

// NewRemote returns the record CreateRemote would store of r: a copy with
// the defaults filled in.
func NewRemote(r *fsmpb.Remote) *fsmpb.Remote {
	rec := proto.Clone(r).(*fsmpb.Remote)
	remoteDefaults(rec)
	return rec
}

func applyCreateRemote(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	if cmd.GetCreateRemote().GetRemote() == nil {
		return invalid("remote: is required"), nil
	}
	rec := NewRemote(cmd.GetCreateRemote().GetRemote())
	rec.CreatedUnixNanos, rec.UpdatedUnixNanos = cmd.GetUnixNanos(), cmd.GetUnixNanos()
	rec.CreatedBy, rec.UpdatedBy = cmd.GetActor(), cmd.GetActor()
	if err := CheckRemote(rec); err != nil {
		return invalid("%v", err), nil
	}
	exists, err := has(b, remoteKey(rec.GetName()))
	if err != nil {
		return nil, err
	}
	if exists {
		return alreadyExists("remote registry %q already exists", rec.GetName()), nil
	}
	return success(), setProto(b, remoteKey(rec.GetName()), rec)
}

// ApplyRemoteUpdate returns old changed by op, without its times: what
// UpdateRemote would store.
func ApplyRemoteUpdate(old *fsmpb.Remote, op *fsmpb.UpdateRemote) *fsmpb.Remote {
	rec := proto.Clone(old).(*fsmpb.Remote)
	if op.Url != nil {
		rec.Url = op.GetUrl()
	}
	if op.Username != nil {
		rec.Username = op.GetUsername()
	}
	rec.Password = changeSecret(rec.Password, op.GetPassword())
	if op.InsecureSkipTlsVerify != nil {
		rec.InsecureSkipTlsVerify = op.GetInsecureSkipTlsVerify()
	}
	if op.CaCertificatePem != nil {
		rec.CaCertificatePem = op.GetCaCertificatePem()
	}
	if op.ClientCertificatePem != nil {
		rec.ClientCertificatePem = op.GetClientCertificatePem()
	}
	rec.ClientKey = changeSecret(rec.ClientKey, op.GetClientKey())
	if op.ProxyUrl != nil {
		rec.ProxyUrl = op.GetProxyUrl()
	}
	if op.ProxyUsername != nil {
		rec.ProxyUsername = op.GetProxyUsername()
	}
	rec.ProxyPassword = changeSecret(rec.ProxyPassword, op.GetProxyPassword())
	if op.RateLimit != nil {
		rec.RateLimit = op.GetRateLimit()
	}
	if op.Concurrency != nil {
		rec.Concurrency = op.GetConcurrency()
	}
	if op.TimeoutNanos != nil {
		rec.TimeoutNanos = op.GetTimeoutNanos()
	}
	return rec
}

// changeSecret applies c to s: nil (or no change) keeps it.
func changeSecret(s *fsmpb.SealedSecret, c *fsmpb.SecretChange) *fsmpb.SealedSecret {
	switch ch := c.GetChange().(type) {
	case *fsmpb.SecretChange_Replace:
		return ch.Replace
	case *fsmpb.SecretChange_Clear:
		if ch.Clear {
			return nil
		}
	}
	return s
}

func applyUpdateRemote(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetUpdateRemote()
	if err := ValidateRemoteName(op.GetName()); err != nil {
		return invalid("%v", err), nil
	}
	// In a fixed order: the refusal is part of the replicated state.
	for _, sc := range []struct {
		field string
		c     *fsmpb.SecretChange
	}{{"password", op.GetPassword()}, {"client_key", op.GetClientKey()}, {"proxy_password", op.GetProxyPassword()}} {
		if r, ok := sc.c.GetChange().(*fsmpb.SecretChange_Replace); ok && r.Replace == nil {
			return invalid("%s: a replacement needs a sealed secret", sc.field), nil
		}
	}
	var old fsmpb.Remote
	found, err := getProto(b, remoteKey(op.GetName()), &old)
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("remote registry %q not found", op.GetName()), nil
	}
	rec := ApplyRemoteUpdate(&old, op)
	rec.UpdatedUnixNanos, rec.UpdatedBy = max(cmd.GetUnixNanos(), old.GetUpdatedUnixNanos()), cmd.GetActor()
	if err := CheckRemote(rec); err != nil {
		return invalid("%v", err), nil
	}
	return success(), setProto(b, remoteKey(rec.GetName()), rec)
}

func applyDeleteRemote(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	name := cmd.GetDeleteRemote().GetName()
	if err := ValidateRemoteName(name); err != nil {
		return invalid("%v", err), nil
	}
	users, err := suffixes(b, mirrorRemotePrefix(name))
	if err != nil {
		return nil, err
	}
	if len(users) > 0 {
		return failedPrecondition("remote registry %q is used by %d mirror(s), such as %q: delete or move them first", name, len(users), users[0]), nil
	}
	caches, err := suffixes(b, cacheRemotePrefix(name))
	if err != nil {
		return nil, err
	}
	if len(caches) > 0 {
		return failedPrecondition("remote registry %q is used by %d pull-through cache(s), such as namespace %q: delete or move them first", name, len(caches), caches[0]), nil
	}
	return deleteIfExists(b, remoteKey(name), func() *fsmpb.Result {
		return notFound("remote registry %q not found", name)
	})
}

// Remote returns the remote registry name.
func (f *FSM) Remote(name string) (*fsmpb.Remote, error) {
	if err := ValidateRemoteName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var rec fsmpb.Remote
	if err := f.getRecord(remoteKey(name), &rec, "remote registry %q", name); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Remotes returns up to n remote registries in name order, starting after
// the name last ("" from the first).
func (f *FSM) Remotes(last string, n int) ([]*fsmpb.Remote, error) {
	lower := []byte(prefixRemote)
	if last != "" {
		lower = after(remoteKey(last))
	}
	var out []*fsmpb.Remote
	err := f.view(func(r pebble.Reader) error {
		return scan(r, lower, prefixEnd([]byte(prefixRemote)), func(k, v []byte) (bool, error) {
			if len(out) >= n {
				return false, nil
			}
			var rec fsmpb.Remote
			if err := proto.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode %q: %w", k, err)
			}
			out = append(out, &rec)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list remote registries: %w", err)
	}
	return out, nil
}

// AsFieldError reports the field and rule of a refusal of CheckRemote.
func AsFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}
