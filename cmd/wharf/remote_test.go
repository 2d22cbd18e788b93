package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// remoteSecret is the password of every remote the tests create: it must
// appear in no answer, no log line and no CLI output.
const remoteSecret = "upstream-Secret-9f3b2c"

func remotesAs(n *accNode, user, password string) wharfv1connect.RemoteServiceClient {
	return wharfv1connect.NewRemoteServiceClient(&http.Client{Transport: basicTransport{user, password}}, n.url)
}

// The RemoteService through a real node: admins only, refusals by kind,
// secrets only as flags, and no secret in the audit log.
func TestRemoteServiceRoles(t *testing.T) {
	logs := &syncBuffer{}
	n := startAccessNodesWith(t, harnessOpts{nodes: 1, replicas: 1, writeQuorum: 1,
		deadNodeTimeout: time.Hour, repairInterval: time.Hour, gcInterval: time.Hour, logs: logs})[0]
	ctx := context.Background()
	access := accAccess(n, "admin", accAdminPassword)
	for _, u := range []string{"u-admin", "u-publisher", "u-none"} {
		if _, err := access.CreateUser(ctx, req(&wharfv1.CreateUserRequest{Name: u, Password: u + "-password"})); err != nil {
			t.Fatal(err)
		}
	}
	for role, user := range map[string]string{"admin": "u-admin", "publisher": "u-publisher"} {
		if _, err := access.GrantRole(ctx, req(&wharfv1.GrantRoleRequest{Grant: &wharfv1.RoleGrant{Role: role, User: user}})); err != nil {
			t.Fatal(err)
		}
	}
	admin := remotesAs(n, "u-admin", "u-admin-password")
	created, err := admin.CreateRemote(ctx, req(&wharfv1.CreateRemoteRequest{
		Name: "hub", Url: "https://registry-1.docker.io/", Username: "bob", Password: remoteSecret,
		ProxyUrl: "http://proxyuser:" + remoteSecret + "@proxy.example:3128",
	}))
	if err != nil {
		t.Fatal(err)
	}
	r := created.Msg.Remote
	if r.Url != "https://registry-1.docker.io" || !r.PasswordSet || r.ClientKeySet || r.ProxyUrl != "http://proxy.example:3128" ||
		r.ProxyUsername != "proxyuser" || !r.ProxyPasswordSet || r.Concurrency != 4 || r.TimeoutNanos != int64(time.Minute) || r.CreatedBy != "u-admin" {
		t.Errorf("created %v", r)
	}
	if strings.Contains(r.String(), remoteSecret) {
		t.Error("the answer holds the secret")
	}
	// The record in the FSM holds only ciphertext.
	rec, err := n.reg.node.FSM().Remote("hub")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mustMarshal(t, rec)), remoteSecret) {
		t.Error("the FSM record holds the secret in clear")
	}

	callers := map[string]wharfv1connect.RemoteServiceClient{
		"anonymous": remotesAs(n, "", ""),
		"none":      remotesAs(n, "u-none", "u-none-password"),
		"publisher": remotesAs(n, "u-publisher", "u-publisher-password"),
	}
	want := map[string]connect.Code{"anonymous": connect.CodeUnauthenticated, "none": connect.CodePermissionDenied, "publisher": connect.CodePermissionDenied}
	for who, c := range callers {
		calls := map[string]func() error{
			"create": func() error {
				_, err := c.CreateRemote(ctx, req(&wharfv1.CreateRemoteRequest{Name: "x-" + who, Url: "https://x"}))
				return err
			},
			"get":  func() error { _, err := c.GetRemote(ctx, req(&wharfv1.GetRemoteRequest{Name: "hub"})); return err },
			"list": func() error { _, err := c.ListRemotes(ctx, req(&wharfv1.ListRemotesRequest{})); return err },
			"update": func() error {
				u := "https://evil"
				_, err := c.UpdateRemote(ctx, req(&wharfv1.UpdateRemoteRequest{Name: "hub", Url: &u}))
				return err
			},
			"delete": func() error {
				_, err := c.DeleteRemote(ctx, req(&wharfv1.DeleteRemoteRequest{Name: "hub"}))
				return err
			},
			"test": func() error { _, err := c.TestRemote(ctx, req(&wharfv1.TestRemoteRequest{Name: "hub"})); return err },
		}
		for op, call := range calls {
			if got := codeOf(call()); got != want[who] {
				t.Errorf("%s %s: %v, want %v", who, op, got, want[who])
			}
		}
	}
	got, err := admin.GetRemote(ctx, req(&wharfv1.GetRemoteRequest{Name: "hub"}))
	if err != nil || got.Msg.Remote.Url != "https://registry-1.docker.io" {
		t.Fatalf("after refused calls: %v, %v", got, err)
	}

	// Refusals name the field and the rule, and change nothing.
	for _, tt := range []struct {
		m     *wharfv1.CreateRemoteRequest
		code  connect.Code
		field string
	}{
		{&wharfv1.CreateRemoteRequest{Name: "Hub", Url: "https://x"}, connect.CodeInvalidArgument, "name: "},
		{&wharfv1.CreateRemoteRequest{Name: "a", Url: "ftp://x"}, connect.CodeInvalidArgument, "url: must use http or https"},
		{&wharfv1.CreateRemoteRequest{Name: "a", Url: "https://u:" + remoteSecret + "@x"}, connect.CodeInvalidArgument, "url: must not hold credentials"},
		{&wharfv1.CreateRemoteRequest{Name: "a", Url: "https://x", Concurrency: 65}, connect.CodeInvalidArgument, "concurrency: must be 1 to 64"},
		{&wharfv1.CreateRemoteRequest{Name: "a", Url: "https://x", TimeoutNanos: int64(time.Hour)}, connect.CodeInvalidArgument, "timeout_nanos: "},
		{&wharfv1.CreateRemoteRequest{Name: "a", Url: "https://x", RateLimit: -1}, connect.CodeInvalidArgument, "rate_limit: "},
		{&wharfv1.CreateRemoteRequest{Name: "a", Url: "https://x", CaCertificatePem: "junk"}, connect.CodeInvalidArgument, "ca_certificate_pem: "},
		{&wharfv1.CreateRemoteRequest{Name: "a", Url: "https://x", ClientKeyPem: remoteSecret}, connect.CodeInvalidArgument, "client_key_pem: "},
		{&wharfv1.CreateRemoteRequest{Name: "a", Url: "https://x", ProxyUrl: "ftp://p"}, connect.CodeInvalidArgument, "proxy_url: "},
		{&wharfv1.CreateRemoteRequest{Name: "hub", Url: "https://x"}, connect.CodeAlreadyExists, "already exists"},
	} {
		_, err := admin.CreateRemote(ctx, req(tt.m))
		if codeOf(err) != tt.code || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("create %v: %v, want %v naming %q", tt.m, err, tt.code, tt.field)
		}
		if err != nil && strings.Contains(err.Error(), remoteSecret) {
			t.Errorf("the refusal %q holds the secret", err)
		}
	}
	if _, err := admin.GetRemote(ctx, req(&wharfv1.GetRemoteRequest{Name: "nope"})); codeOf(err) != connect.CodeNotFound {
		t.Errorf("get unknown: %v", err)
	}
	if _, err := admin.DeleteRemote(ctx, req(&wharfv1.DeleteRemoteRequest{Name: "nope"})); codeOf(err) != connect.CodeNotFound {
		t.Errorf("delete unknown: %v", err)
	}
	if _, err := admin.TestRemote(ctx, req(&wharfv1.TestRemoteRequest{Name: "nope"})); codeOf(err) != connect.CodeNotFound {
		t.Errorf("test unknown: %v", err)
	}

	// Update: fields kept unless set; the password kept, replaced, cleared.
	rate := 2.5
	up, err := admin.UpdateRemote(ctx, req(&wharfv1.UpdateRemoteRequest{Name: "hub", RateLimit: &rate}))
	if err != nil || up.Msg.Remote.RateLimit != 2.5 || !up.Msg.Remote.PasswordSet || up.Msg.Remote.Username != "bob" || up.Msg.Remote.UpdatedBy != "u-admin" {
		t.Fatalf("update rate: %v, %v", up, err)
	}
	before, _ := n.reg.node.FSM().Remote("hub")
	up, err = admin.UpdateRemote(ctx, req(&wharfv1.UpdateRemoteRequest{Name: "hub", Password: &wharfv1.SecretUpdate{Change: &wharfv1.SecretUpdate_Value{Value: "another-" + remoteSecret}}}))
	after, _ := n.reg.node.FSM().Remote("hub")
	if err != nil || !up.Msg.Remote.PasswordSet || string(before.GetPassword().GetCiphertext()) == string(after.GetPassword().GetCiphertext()) {
		t.Fatalf("replace password: %v, %v", up, err)
	}
	up, err = admin.UpdateRemote(ctx, req(&wharfv1.UpdateRemoteRequest{Name: "hub", Password: &wharfv1.SecretUpdate{Change: &wharfv1.SecretUpdate_Clear{Clear: true}}}))
	if err != nil || up.Msg.Remote.PasswordSet {
		t.Fatalf("clear password: %v, %v", up, err)
	}
	zero := int32(0)
	if _, err := admin.UpdateRemote(ctx, req(&wharfv1.UpdateRemoteRequest{Name: "hub", Concurrency: &zero})); codeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "concurrency: ") {
		t.Errorf("update concurrency 0: %v", err)
	}
	if _, err := admin.UpdateRemote(ctx, req(&wharfv1.UpdateRemoteRequest{Name: "nope"})); codeOf(err) != connect.CodeNotFound {
		t.Errorf("update unknown: %v", err)
	}

	// Listing pages.
	for _, name := range []string{"a1", "a2", "a3"} {
		if _, err := admin.CreateRemote(ctx, req(&wharfv1.CreateRemoteRequest{Name: name, Url: "http://" + name + ":5000"})); err != nil {
			t.Fatal(err)
		}
	}
	page, err := admin.ListRemotes(ctx, req(&wharfv1.ListRemotesRequest{PageSize: 2}))
	if err != nil || len(page.Msg.Remotes) != 2 || page.Msg.Remotes[0].Name != "a1" || page.Msg.NextPageToken != "a2" {
		t.Fatalf("first page: %v, %v", page, err)
	}
	page, err = admin.ListRemotes(ctx, req(&wharfv1.ListRemotesRequest{PageSize: 2, PageToken: page.Msg.NextPageToken}))
	if err != nil || len(page.Msg.Remotes) != 2 || page.Msg.Remotes[1].Name != "hub" || page.Msg.NextPageToken != "" {
		t.Fatalf("second page: %v, %v", page, err)
	}
	if _, err := admin.DeleteRemote(ctx, req(&wharfv1.DeleteRemoteRequest{Name: "a1"})); err != nil {
		t.Fatal(err)
	}

	if len(logs.lines("msg=audit", "event=remote.create", "target=hub")) != 1 || len(logs.lines("event=remote.update", "target=hub")) == 0 ||
		len(logs.lines("event=remote.delete", "target=a1")) != 1 {
		t.Errorf("audit lines missing:\n%s", strings.Join(logs.lines("msg=audit"), "\n"))
	}
	if l := logs.lines(remoteSecret); len(l) != 0 {
		t.Errorf("the log holds the secret:\n%s", strings.Join(l, "\n"))
	}
}

func mustMarshal(t *testing.T, m interface{ String() string }) []byte {
	t.Helper()
	return []byte(m.String())
}

// TestRemote against real upstreams: another wharf (token auth), with good
// and bad credentials, and a TLS registry whose CA the test makes.
func TestTestRemoteAgainstUpstreams(t *testing.T) {
	up := startAccessNodes(t, 1)[0]
	n := startAccessNodes(t, 1)[0]
	ctx := context.Background()
	if _, err := accAccess(up, "admin", accAdminPassword).CreateUser(ctx, req(&wharfv1.CreateUserRequest{Name: "mirror", Password: remoteSecret})); err != nil {
		t.Fatal(err)
	}
	admin := remotesAs(n, "admin", accAdminPassword)
	create := func(m *wharfv1.CreateRemoteRequest) {
		t.Helper()
		if _, err := admin.CreateRemote(ctx, req(m)); err != nil {
			t.Fatal(err)
		}
	}
	test := func(name string) *wharfv1.TestRemoteResponse {
		t.Helper()
		resp, err := admin.TestRemote(ctx, req(&wharfv1.TestRemoteRequest{Name: name}))
		if err != nil {
			t.Fatalf("test %s: %v", name, err)
		}
		if strings.Contains(resp.Msg.String(), remoteSecret) {
			t.Errorf("test %s: the answer holds the secret: %v", name, resp.Msg)
		}
		return resp.Msg
	}
	create(&wharfv1.CreateRemoteRequest{Name: "good", Url: up.url, Username: "mirror", Password: remoteSecret, TimeoutNanos: int64(10 * time.Second)})
	create(&wharfv1.CreateRemoteRequest{Name: "bad", Url: up.url, Username: "mirror", Password: "wrong-" + remoteSecret, TimeoutNanos: int64(10 * time.Second)})
	create(&wharfv1.CreateRemoteRequest{Name: "anon", Url: up.url, TimeoutNanos: int64(10 * time.Second)})

	good := test("good")
	if !good.Reachable || good.HttpStatus != http.StatusUnauthorized || good.AuthScheme != "bearer" || good.Realm != up.url+"/token" ||
		good.Service == "" || !good.CredentialsUsed || !good.Authenticated || good.AuthenticatedStatus != http.StatusOK || good.Error != "" {
		t.Errorf("good credentials: %v", good)
	}
	bad := test("bad")
	t.Logf("bad credentials: %s", bad.Error)
	if !bad.Reachable || bad.AuthScheme != "bearer" || !bad.CredentialsUsed || bad.Authenticated || bad.Error == "" {
		t.Errorf("bad credentials: %v", bad)
	}
	// wharf hands anonymous clients a token that opens /v2/ (they pull
	// public repositories): the test says no credentials were used.
	if anon := test("anon"); anon.CredentialsUsed || !anon.Authenticated || anon.AuthScheme != "bearer" {
		t.Errorf("no credentials: %v", anon)
	}

	// Through a forward proxy that wants its own credentials: the test's
	// requests go through it, with the proxy password from the record.
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("pu:"+remoteSecret)) {
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		proxied.Add(1)
		out, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), nil)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		out.Header = r.Header.Clone()
		out.Header.Del("Proxy-Authorization")
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		maps.Copy(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	proxyURL := strings.Replace(proxy.URL, "http://", "http://pu:"+remoteSecret+"@", 1)
	create(&wharfv1.CreateRemoteRequest{Name: "via-proxy", Url: up.url, Username: "mirror", Password: remoteSecret, ProxyUrl: proxyURL, TimeoutNanos: int64(10 * time.Second)})
	if r := test("via-proxy"); !r.Authenticated || proxied.Load() < 3 {
		t.Errorf("through the proxy (%d requests proxied): %v", proxied.Load(), r)
	}
	create(&wharfv1.CreateRemoteRequest{Name: "proxy-refuses", Url: up.url, Username: "mirror", Password: remoteSecret, ProxyUrl: proxy.URL, TimeoutNanos: int64(10 * time.Second)})
	if r := test("proxy-refuses"); r.Authenticated || r.HttpStatus != http.StatusProxyAuthRequired {
		t.Errorf("a proxy without its credentials: %v", r)
	}

	// A TLS registry with basic auth, under a CA made here.
	caPEM, serverCert := testCA(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == "tls-user" && p == remoteSecret {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test registry"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	srv.StartTLS()
	defer srv.Close()
	create(&wharfv1.CreateRemoteRequest{Name: "tls-ca", Url: srv.URL, Username: "tls-user", Password: remoteSecret, CaCertificatePem: caPEM, TimeoutNanos: int64(5 * time.Second)})
	create(&wharfv1.CreateRemoteRequest{Name: "tls-noca", Url: srv.URL, Username: "tls-user", Password: remoteSecret, TimeoutNanos: int64(5 * time.Second)})
	create(&wharfv1.CreateRemoteRequest{Name: "tls-skip", Url: srv.URL, Username: "tls-user", Password: remoteSecret, InsecureSkipTlsVerify: true, TimeoutNanos: int64(5 * time.Second)})
	if r := test("tls-ca"); !r.Authenticated || r.AuthScheme != "basic" || r.HttpStatus != http.StatusUnauthorized || r.Realm != "" {
		t.Errorf("TLS with the CA: %v", r)
	}
	if r := test("tls-noca"); r.Authenticated || r.Reachable || !strings.Contains(r.Error, "certificate") {
		t.Errorf("TLS without the CA: %v", r)
	}
	if r := test("tls-skip"); !r.Authenticated {
		t.Errorf("TLS without verification: %v", r)
	}
}

// testCA makes a CA and a certificate it signs for 127.0.0.1.
func testCA(t testing.TB) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wharf test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// wharf remote add, ls, show, update, test and rm against a real node:
// -o json says password_set and never prints the password.
func TestRemoteCLI(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	cli := newCLIEnv(t)
	if out, err := cli.run(accAdminPassword+"\n", "login", n.url, "-u", adminUser); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	caPEM, _ := testCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := cli.run(remoteSecret+"\n", "remote", "add", "hub", "https://registry-1.docker.io", "--username", "bob", "--password-stdin",
		"--ca-file", caFile, "--rate-limit", "5", "--concurrency", "8", "--request-timeout", "2m", "-o", "json")
	if err != nil {
		t.Fatalf("remote add: %v\n%s", err, out)
	}
	var added struct {
		Name         string
		PasswordSet  bool   `json:"passwordSet"`
		Concurrency  int32  `json:"concurrency"`
		TimeoutNanos string `json:"timeoutNanos"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.Name != "hub" || !added.PasswordSet || added.Concurrency != 8 || added.TimeoutNanos != "120000000000" {
		t.Fatalf("remote add -o json: %+v, %v\n%s", added, err, out)
	}
	t.Setenv(remotePasswordEnv, "env-"+remoteSecret)
	cli.must("added remote quay", "remote", "add", "quay", "https://quay.io", "--username", "bot")
	t.Setenv(remotePasswordEnv, "")

	var list struct {
		Remotes []struct {
			Name        string
			PasswordSet bool `json:"passwordSet"`
		}
	}
	lsOut := cli.must("", "remote", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(lsOut), &list); err != nil || len(list.Remotes) != 2 || list.Remotes[0].Name != "hub" || !list.Remotes[1].PasswordSet {
		t.Fatalf("remote ls -o json: %+v, %v\n%s", list, err, lsOut)
	}
	table := cli.must("8", "remote", "ls")
	// protojson varies its spacing on purpose: decode, never match text.
	passwordSet := func(name string) (bool, string) {
		t.Helper()
		var r struct {
			PasswordSet bool `json:"passwordSet"`
		}
		o := cli.must("", "remote", "show", name, "-o", "json")
		if err := json.Unmarshal([]byte(o), &r); err != nil {
			t.Fatalf("remote show %s -o json: %v\n%s", name, err, o)
		}
		return r.PasswordSet, o
	}
	set, showJSON := passwordSet("hub")
	if !set {
		t.Errorf("remote show -o json: no password set\n%s", showJSON)
	}
	showTable := cli.must("Password:", "remote", "show", "hub")
	if !strings.Contains(showTable, "set") || !strings.Contains(showTable, "5/s") {
		t.Errorf("remote show:\n%s", showTable)
	}
	cli.must("updated remote hub", "remote", "update", "hub", "--clear-password")
	if set, _ := passwordSet("quay"); !set {
		t.Error("quay's password from the environment is not set")
	}
	if set, o := passwordSet("hub"); set {
		t.Errorf("the password is still set after --clear-password:\n%s", o)
	}
	for _, o := range []string{out, lsOut, table, showJSON, showTable} {
		if strings.Contains(o, remoteSecret) {
			t.Errorf("the output holds the password:\n%s", o)
		}
	}
	cli.must("removed remote hub", "remote", "rm", "hub")
	if code, msg := cli.exitOf("remote", "show", "hub"); code != exitNotFound {
		t.Errorf("show after rm: exit %d, %s", code, msg)
	}
	if code, msg := cli.exitOf("remote", "add", "Bad", "https://x"); code != exitUsage || !strings.Contains(msg, "name: ") {
		t.Errorf("add with a bad name: exit %d, %s", code, msg)
	}
	if code, msg := cli.exitOf("remote", "add", "quay", "https://x"); code != exitConflict {
		t.Errorf("add a duplicate: exit %d, %s", code, msg)
	}
	// Unreachable: the test reports, and exits 1.
	cli.must("", "remote", "add", "dead", "http://127.0.0.1:1", "--request-timeout", "2s")
	if code, msg := cli.exitOf("remote", "test", "dead"); code != exitError || !strings.Contains(msg, "the test failed") {
		t.Errorf("test of an unreachable remote: exit %d, %s", code, msg)
	}
}
