package fsm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"maps"
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// testCertPEM is a self-signed certificate, made once.
var testCertPEM = func() string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(4e9, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}()

func sealed(s string) *fsmpb.SealedSecret {
	return &fsmpb.SealedSecret{Ciphertext: []byte("sealed:" + s), KeyFingerprint: "0123456789abcdef"}
}

func goodRemote() *fsmpb.Remote {
	return &fsmpb.Remote{Name: "hub", Url: "https://registry-1.docker.io", Username: "bob", Password: sealed("pw")}
}

func createRemote(nanos int64, r *fsmpb.Remote) *fsmpb.Command {
	cmd := at(nanos, NewCommand(&fsmpb.CreateRemote{Remote: r}))
	cmd.Actor = "admin"
	return cmd
}

func updateRemote(nanos int64, op *fsmpb.UpdateRemote) *fsmpb.Command {
	cmd := at(nanos, NewCommand(op))
	cmd.Actor = "alice"
	return cmd
}

func remoteWith(edit func(r *fsmpb.Remote)) *fsmpb.Remote {
	r := goodRemote()
	edit(r)
	return r
}

func TestCreateRemote(t *testing.T) {
	tests := []struct {
		name  string
		r     *fsmpb.Remote
		want  fsmpb.ResultCode
		field string // named by the refusal
	}{
		{"minimal", &fsmpb.Remote{Name: "a", Url: "http://localhost:5000"}, codeOK, ""},
		{"everything", remoteWith(func(r *fsmpb.Remote) {
			r.CaCertificatePem, r.ClientCertificatePem, r.ClientKey = testCertPEM, testCertPEM, sealed("key")
			r.ProxyUrl, r.ProxyUsername, r.ProxyPassword = "http://proxy:3128", "p", sealed("pp")
			r.RateLimit, r.Concurrency, r.TimeoutNanos, r.InsecureSkipTlsVerify = 2.5, 64, int64(10*time.Minute), true
		}), codeOK, ""},
		{"trailing slash", remoteWith(func(r *fsmpb.Remote) { r.Url = "https://quay.io/" }), codeOK, ""},
		{"no name", remoteWith(func(r *fsmpb.Remote) { r.Name = "" }), codeInvalid, "name"},
		{"upper case name", remoteWith(func(r *fsmpb.Remote) { r.Name = "Hub" }), codeInvalid, "name"},
		{"name starting with a dot", remoteWith(func(r *fsmpb.Remote) { r.Name = ".hub" }), codeInvalid, "name"},
		{"name of 64", remoteWith(func(r *fsmpb.Remote) { r.Name = strings.Repeat("a", 64) }), codeInvalid, "name"},
		{"name with a slash", remoteWith(func(r *fsmpb.Remote) { r.Name = "a/b" }), codeInvalid, "name"},
		{"no url", remoteWith(func(r *fsmpb.Remote) { r.Url = "" }), codeInvalid, "url"},
		{"ftp", remoteWith(func(r *fsmpb.Remote) { r.Url = "ftp://host" }), codeInvalid, "url"},
		{"no host", remoteWith(func(r *fsmpb.Remote) { r.Url = "https://" }), codeInvalid, "url"},
		{"userinfo", remoteWith(func(r *fsmpb.Remote) { r.Url = "https://u:p@host" }), codeInvalid, "url"},
		{"query", remoteWith(func(r *fsmpb.Remote) { r.Url = "https://host?x=1" }), codeInvalid, "url"},
		{"fragment", remoteWith(func(r *fsmpb.Remote) { r.Url = "https://host#x" }), codeInvalid, "url"},
		{"path", remoteWith(func(r *fsmpb.Remote) { r.Url = "https://host/v2/" }), codeInvalid, "url"},
		{"control in username", remoteWith(func(r *fsmpb.Remote) { r.Username = "a\nb" }), codeInvalid, "username"},
		{"empty sealed password", remoteWith(func(r *fsmpb.Remote) { r.Password = &fsmpb.SealedSecret{KeyFingerprint: "0123456789abcdef"} }), codeInvalid, "password"},
		{"bad fingerprint", remoteWith(func(r *fsmpb.Remote) { r.Password.KeyFingerprint = "xyz" }), codeInvalid, "password"},
		{"bad CA", remoteWith(func(r *fsmpb.Remote) { r.CaCertificatePem = "not pem" }), codeInvalid, "ca_certificate_pem"},
		{"CA with a key block", remoteWith(func(r *fsmpb.Remote) {
			r.CaCertificatePem = testCertPEM + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
		}), codeInvalid, "ca_certificate_pem"},
		{"CA with trailing junk", remoteWith(func(r *fsmpb.Remote) { r.CaCertificatePem = testCertPEM + "junk" }), codeInvalid, "ca_certificate_pem"},
		{"key without certificate", remoteWith(func(r *fsmpb.Remote) { r.ClientKey = sealed("k") }), codeInvalid, "client_key"},
		{"certificate without key", remoteWith(func(r *fsmpb.Remote) { r.ClientCertificatePem = testCertPEM }), codeInvalid, "client_key"},
		{"proxy scheme", remoteWith(func(r *fsmpb.Remote) { r.ProxyUrl = "ftp://p" }), codeInvalid, "proxy_url"},
		{"proxy with userinfo", remoteWith(func(r *fsmpb.Remote) { r.ProxyUrl = "http://u:p@p" }), codeInvalid, "proxy_url"},
		{"proxy password without proxy", remoteWith(func(r *fsmpb.Remote) { r.ProxyPassword = sealed("pp") }), codeInvalid, "proxy_url"},
		{"negative rate", remoteWith(func(r *fsmpb.Remote) { r.RateLimit = -1 }), codeInvalid, "rate_limit"},
		{"NaN rate", remoteWith(func(r *fsmpb.Remote) { r.RateLimit = math.NaN() }), codeInvalid, "rate_limit"},
		{"concurrency 65", remoteWith(func(r *fsmpb.Remote) { r.Concurrency = 65 }), codeInvalid, "concurrency"},
		{"negative concurrency", remoteWith(func(r *fsmpb.Remote) { r.Concurrency = -1 }), codeInvalid, "concurrency"},
		{"timeout too short", remoteWith(func(r *fsmpb.Remote) { r.TimeoutNanos = int64(time.Millisecond) }), codeInvalid, "timeout"},
		{"timeout too long", remoteWith(func(r *fsmpb.Remote) { r.TimeoutNanos = int64(11 * time.Minute) }), codeInvalid, "timeout"},
		{"duplicate", remoteWith(func(r *fsmpb.Remote) { r.Name = "existing" }), codeExists, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := openTest(t)
			tf.mustApply(createRemote(1, &fsmpb.Remote{Name: "existing", Url: "https://e"}))
			before := dump(t, tf.FSM)
			res := tf.apply(createRemote(5, tt.r))
			if res.GetCode() != tt.want {
				t.Fatalf("apply = %v, want %v", res, tt.want)
			}
			if tt.field != "" && !strings.HasPrefix(res.GetMessage(), tt.field+": ") {
				t.Errorf("message %q does not name field %s", res.GetMessage(), tt.field)
			}
			if tt.want != codeOK {
				after := dump(t, tf.FSM)
				delete(before, string(keyApplied))
				delete(after, string(keyApplied))
				if !maps.Equal(before, after) {
					t.Error("a refused command changed the state")
				}
				return
			}
			got, err := tf.Remote(tt.r.GetName())
			if err != nil {
				t.Fatal(err)
			}
			want := NewRemote(tt.r)
			want.CreatedUnixNanos, want.UpdatedUnixNanos, want.CreatedBy, want.UpdatedBy = 5, 5, "admin", "admin"
			if !proto.Equal(got, want) {
				t.Errorf("stored %v, want %v", got, want)
			}
		})
	}
}

// Apply checks the PEM structure only; the proposer parses certificates.
func TestParseCertificatesPEM(t *testing.T) {
	garbage := "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
	if err := ValidateCertificatesPEM("ca_certificate_pem", garbage); err != nil {
		t.Errorf("structure check refused a well-formed PEM block: %v", err)
	}
	if err := ParseCertificatesPEM("ca_certificate_pem", garbage); err == nil || !strings.HasPrefix(err.Error(), "ca_certificate_pem: ") {
		t.Errorf("parse accepted a certificate of garbage: %v", err)
	}
	if err := ParseCertificatesPEM("ca_certificate_pem", testCertPEM+testCertPEM); err != nil {
		t.Errorf("parse of two certificates: %v", err)
	}
}

// A URL that does not parse is refused without being quoted: it may hold
// a password.
func TestRemoteURLRefusalQuotesNoCredentials(t *testing.T) {
	err := ValidateRemoteURL("url", "https://u:pass-word@ho st")
	if err == nil || strings.Contains(err.Error(), "pass-word") {
		t.Errorf("refusal %v", err)
	}
}

func TestCreateRemoteDefaults(t *testing.T) {
	tf := openTest(t)
	tf.mustApply(createRemote(1, goodRemote()))
	got, err := tf.Remote("hub")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetConcurrency() != 4 || time.Duration(got.GetTimeoutNanos()) != time.Minute || got.GetRateLimit() != 0 {
		t.Errorf("defaults: concurrency %d, timeout %v, rate %g", got.GetConcurrency(), time.Duration(got.GetTimeoutNanos()), got.GetRateLimit())
	}
}

func TestUpdateRemote(t *testing.T) {
	str := func(s string) *string { return &s }
	i32 := func(v int32) *int32 { return &v }
	tests := []struct {
		name  string
		op    *fsmpb.UpdateRemote
		want  fsmpb.ResultCode
		field string
		check func(t *testing.T, r *fsmpb.Remote)
	}{
		{"nothing keeps everything", &fsmpb.UpdateRemote{Name: "hub"}, codeOK, "", func(t *testing.T, r *fsmpb.Remote) {
			if !proto.Equal(r.GetPassword(), sealed("pw")) || r.GetUsername() != "bob" {
				t.Errorf("record changed: %v", r)
			}
		}},
		{"url and username", &fsmpb.UpdateRemote{Name: "hub", Url: str("https://quay.io"), Username: str("")}, codeOK, "", func(t *testing.T, r *fsmpb.Remote) {
			if r.GetUrl() != "https://quay.io" || r.GetUsername() != "" || r.GetPassword() == nil {
				t.Errorf("got %v", r)
			}
		}},
		{"replace password", &fsmpb.UpdateRemote{Name: "hub", Password: &fsmpb.SecretChange{Change: &fsmpb.SecretChange_Replace{Replace: sealed("new")}}}, codeOK, "", func(t *testing.T, r *fsmpb.Remote) {
			if !proto.Equal(r.GetPassword(), sealed("new")) {
				t.Errorf("password %v", r.GetPassword())
			}
		}},
		{"clear password", &fsmpb.UpdateRemote{Name: "hub", Password: &fsmpb.SecretChange{Change: &fsmpb.SecretChange_Clear{Clear: true}}}, codeOK, "", func(t *testing.T, r *fsmpb.Remote) {
			if r.GetPassword() != nil {
				t.Errorf("password %v", r.GetPassword())
			}
		}},
		{"client certificate and key", &fsmpb.UpdateRemote{Name: "hub", ClientCertificatePem: str(testCertPEM), ClientKey: &fsmpb.SecretChange{Change: &fsmpb.SecretChange_Replace{Replace: sealed("k")}}}, codeOK, "", nil},
		{"concurrency", &fsmpb.UpdateRemote{Name: "hub", Concurrency: i32(8)}, codeOK, "", func(t *testing.T, r *fsmpb.Remote) {
			if r.GetConcurrency() != 8 || r.GetUpdatedBy() != "alice" || r.GetUpdatedUnixNanos() != 9 || r.GetCreatedUnixNanos() != 1 {
				t.Errorf("got %v", r)
			}
		}},
		{"bad url", &fsmpb.UpdateRemote{Name: "hub", Url: str("gopher://x")}, codeInvalid, "url", nil},
		{"concurrency 0", &fsmpb.UpdateRemote{Name: "hub", Concurrency: i32(0)}, codeInvalid, "concurrency", nil},
		{"certificate alone", &fsmpb.UpdateRemote{Name: "hub", ClientCertificatePem: str(testCertPEM)}, codeInvalid, "client_key", nil},
		{"empty replacement", &fsmpb.UpdateRemote{Name: "hub", Password: &fsmpb.SecretChange{Change: &fsmpb.SecretChange_Replace{}}}, codeInvalid, "password", nil},
		{"bad name", &fsmpb.UpdateRemote{Name: "HUB"}, codeInvalid, "name", nil},
		{"unknown", &fsmpb.UpdateRemote{Name: "nope"}, codeNotFound, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := openTest(t)
			tf.mustApply(createRemote(1, goodRemote()))
			before := dump(t, tf.FSM)
			res := tf.apply(updateRemote(9, tt.op))
			if res.GetCode() != tt.want {
				t.Fatalf("apply = %v, want %v", res, tt.want)
			}
			if tt.field != "" && !strings.HasPrefix(res.GetMessage(), tt.field+": ") {
				t.Errorf("message %q does not name field %s", res.GetMessage(), tt.field)
			}
			if tt.want != codeOK {
				after := dump(t, tf.FSM)
				delete(before, string(keyApplied))
				delete(after, string(keyApplied))
				if !maps.Equal(before, after) {
					t.Error("a refused command changed the state")
				}
				return
			}
			got, err := tf.Remote("hub")
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestDeleteAndListRemotes(t *testing.T) {
	tf := openTest(t)
	for _, n := range []string{"c", "a", "b"} {
		tf.mustApply(createRemote(1, &fsmpb.Remote{Name: n, Url: "https://" + n}))
	}
	page, err := tf.Remotes("", 2)
	if err != nil || len(page) != 2 || page[0].GetName() != "a" || page[1].GetName() != "b" {
		t.Fatalf("first page %v, %v", page, err)
	}
	page, err = tf.Remotes("b", 2)
	if err != nil || len(page) != 1 || page[0].GetName() != "c" {
		t.Fatalf("second page %v, %v", page, err)
	}
	tf.mustApply(NewCommand(&fsmpb.DeleteRemote{Name: "b"}))
	if res := tf.apply(NewCommand(&fsmpb.DeleteRemote{Name: "b"})); res.GetCode() != codeNotFound {
		t.Errorf("second delete = %v", res)
	}
	if res := tf.apply(NewCommand(&fsmpb.DeleteRemote{Name: "B!"})); res.GetCode() != codeInvalid || !strings.HasPrefix(res.GetMessage(), "name: ") {
		t.Errorf("bad name = %v", res)
	}
	if _, err := tf.Remote("b"); !errorsIsNotFound(err) {
		t.Errorf("deleted remote: %v", err)
	}
	all, _ := tf.Remotes("", 10)
	if len(all) != 2 {
		t.Errorf("after delete: %v", all)
	}
}

func errorsIsNotFound(err error) bool {
	return err != nil && strings.Contains(err.Error(), ErrNotFound.Error())
}

// The generic snapshot carries the remote records.
func TestRemotesSurviveSnapshot(t *testing.T) {
	src := openTest(t)
	src.mustApply(createRemote(1, goodRemote()))
	data := persist(t, src.FSM)
	dst := openTest(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	got, err := dst.Remote("hub")
	want, _ := src.Remote("hub")
	if err != nil || !proto.Equal(got, want) {
		t.Fatalf("restored %v, %v; want %v", got, err, want)
	}
}
