package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// accAdminPassword is the admin's password on the nodes of
// startAccessNodes.
const accAdminPassword = harnessAdminPassword

// accNode is one node of an access-control test.
type accNode struct {
	reg *registryNode
	url string // of its public listener
}

func (n *accNode) host() string { return strings.TrimPrefix(n.url, "http://") }

// startAccessNodes starts count nodes forming one cluster (the harness,
// with every node an owner of every blob), and waits until the admin can
// log in through each.
func startAccessNodes(t testing.TB, count int) []*accNode {
	t.Helper()
	return startAccessNodesWith(t, harnessOpts{nodes: count, replicas: count, writeQuorum: 1,
		deadNodeTimeout: time.Hour, repairInterval: time.Hour, gcInterval: time.Hour})
}

// startAccessNodesWith is startAccessNodes with the harness options given.
func startAccessNodesWith(t testing.TB, opts harnessOpts) []*accNode {
	t.Helper()
	return accNodesOf(t, startHarness(t, opts))
}

// accNodesOf waits until the admin can log in through every node of h.
func accNodesOf(t testing.TB, h *harness) []*accNode {
	t.Helper()
	nodes := make([]*accNode, len(h.nodes))
	deadline := time.Now().Add(30 * time.Second)
	for i, hn := range h.nodes {
		n := &accNode{reg: hn.registry(), url: hn.baseURL}
		for {
			_, err := accAccess(n, "admin", accAdminPassword).WhoAmI(context.Background(), connect.NewRequest(&wharfv1.WhoAmIRequest{}))
			_, kerr := n.reg.node.FSM().SigningKeys()
			if err == nil && kerr == nil && n.reg.node.Status().Ready() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node not ready for logins: %v %v", err, kerr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		nodes[i] = n
	}
	return nodes
}

type basicTransport struct{ user, password string }

func (b basicTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if b.user != "" {
		r.SetBasicAuth(b.user, b.password)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func accAccess(n *accNode, user, password string) wharfv1connect.AccessServiceClient {
	return wharfv1connect.NewAccessServiceClient(&http.Client{Transport: basicTransport{user, password}}, n.url)
}

func accRef(t testing.TB, n *accNode, repoTag string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(n.host()+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func accImage(t testing.TB) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func keychainOf(user, password string) remote.Option {
	if user == "" {
		return remote.WithAuth(authn.Anonymous)
	}
	return remote.WithAuth(&authn.Basic{Username: user, Password: password})
}

// refusal reports whether err is a registry refusal (401 or 403), and
// fails the test on any other error.
func refused(t *testing.T, what string, err error) bool {
	t.Helper()
	if err == nil {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden) {
		return true
	}
	t.Fatalf("%s: want success or a 401/403 refusal, got %v", what, err)
	return false
}

// TestPermissionMatrix checks, through the HTTP APIs of a real node, what
// each role may do: the registry API with the Docker token flow (as
// podman uses it) and the AccessService for role management.
func TestPermissionMatrix(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	ctx := context.Background()
	admin := accAccess(n, "admin", accAdminPassword)
	users := map[string]string{"none": "", "collaborator": "", "owner": "", "publisher": "", "admin": ""}
	for role := range users {
		user := "u-" + role
		users[role] = user
		if _, err := admin.CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{Name: user, Password: user + "-password"})); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{Name: "target", Password: "target-password"})); err != nil {
		t.Fatal(err)
	}
	// The superuser creates namespace acme with one private repository.
	adminAuth := keychainOf("admin", accAdminPassword)
	base := accImage(t)
	if err := remote.Write(accRef(t, n, "acme/app:v1"), base, adminAuth); err != nil {
		t.Fatal(err)
	}
	grants := []*wharfv1.RoleGrant{
		{Role: "collaborator", Namespace: "acme", User: users["collaborator"]},
		{Role: "owner", Namespace: "acme", User: users["owner"]},
		{Role: "publisher", User: users["publisher"]},
		{Role: "admin", User: users["admin"]},
	}
	for _, g := range grants {
		if _, err := admin.GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{Grant: g})); err != nil {
			t.Fatal(err)
		}
	}

	type outcome struct{ pull, pushNewNamespace, pushNewRepo, pushExisting, tag, del, manageRoles, catalog bool }
	want := map[string]outcome{
		"anonymous":    {},
		"none":         {},
		"collaborator": {pull: true, pushExisting: true, tag: true, catalog: true},
		"owner":        {pull: true, pushNewRepo: true, pushExisting: true, tag: true, manageRoles: true, catalog: true},
		"publisher":    {pull: true, pushNewNamespace: true, pushNewRepo: true, pushExisting: true, tag: true, manageRoles: true, catalog: true},
		"admin":        {pull: true, pushNewNamespace: true, pushNewRepo: true, pushExisting: true, tag: true, del: true, manageRoles: true, catalog: true},
	}
	baseDigest, err := base.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"anonymous", "none", "collaborator", "owner", "publisher", "admin"} {
		t.Run(role, func(t *testing.T) {
			user, password := users[role], users[role]+"-password"
			if role == "anonymous" {
				password = ""
			}
			opt := keychainOf(user, password)
			var got outcome

			_, err := remote.Image(accRef(t, n, "acme/app:v1"), opt)
			got.pull = !refused(t, "pull", err)

			err = remote.Write(accRef(t, n, "ns-"+role+"/app:v1"), accImage(t), opt)
			got.pushNewNamespace = !refused(t, "push to a new namespace", err)

			err = remote.Write(accRef(t, n, "acme/new-"+role+":v1"), accImage(t), opt)
			got.pushNewRepo = !refused(t, "push a new repository", err)

			err = remote.Write(accRef(t, n, "acme/app:"+role), accImage(t), opt)
			got.pushExisting = !refused(t, "push to an existing repository", err)

			err = remote.Tag(accRef(t, n, "acme/app:tag-"+role).(name.Tag), base, opt)
			got.tag = !refused(t, "tag", err)

			// Each role deletes its own copy, pushed by the superuser.
			victim := accRef(t, n, "acme/del-"+role+":v1")
			if err := remote.Write(victim, base, adminAuth); err != nil {
				t.Fatal(err)
			}
			err = remote.Delete(victim.Context().Digest(baseDigest.String()), opt)
			got.del = !refused(t, "delete", err)

			_, err = accAccess(n, user, password).GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{
				Grant: &wharfv1.RoleGrant{Role: "collaborator", Namespace: "acme", User: "target"},
			}))
			switch code := connect.CodeOf(err); {
			case err == nil:
				got.manageRoles = true
			case code != connect.CodePermissionDenied && code != connect.CodeUnauthenticated:
				t.Fatalf("manage roles: want success or a refusal, got %v", err)
			}

			got.catalog = catalogHas(t, n, user, password, "acme/app")
			if got != want[role] {
				t.Errorf("role %s:\n got %+v\nwant %+v", role, got, want[role])
			}
		})
	}

	// The creator of a namespace owns it for good.
	pub := users["publisher"]
	roles, err := accAccess(n, pub, pub+"-password").ListRoles(ctx, connect.NewRequest(&wharfv1.ListRolesRequest{Namespace: "ns-publisher"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(roles.Msg.Grants) != 1 || !roles.Msg.Grants[0].Creator || roles.Msg.Grants[0].User != pub {
		t.Fatalf("grants on ns-publisher: %v", roles.Msg.Grants)
	}
	_, err = admin.RevokeRole(ctx, connect.NewRequest(&wharfv1.RevokeRoleRequest{Grant: &wharfv1.RoleGrant{Role: "owner", Namespace: "ns-publisher", User: pub}}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("revoking the creator's ownership: %v", err)
	}
}

// catalogHas lists the catalog as user with Basic credentials on /v2/
// and reports whether repo is in it; anonymous callers see the public
// repositories.
func catalogHas(t *testing.T, n *accNode, user, password, repo string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, n.url+"/v2/_catalog", nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Repositories []string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("catalog as %s: HTTP %d, %v", user, resp.StatusCode, err)
	}
	return slices.Contains(body.Repositories, repo)
}

// TestChallengesAndPublicPulls checks the challenges of /v2/ and of a
// repository, direct Basic credentials, and anonymous pulls of a public
// repository.
func TestChallengesAndPublicPulls(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	ctx := context.Background()
	status, hdr, _ := accGet(t, n.url+"/v2/", "", "")
	if status != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != fmt.Sprintf(`Bearer realm="%s/token",service="wharf"`, n.url) {
		t.Fatalf("GET /v2/: HTTP %d, challenge %q", status, hdr.Get("WWW-Authenticate"))
	}
	status, _, _ = accGet(t, n.url+"/v2/", "admin", accAdminPassword)
	if status != http.StatusOK {
		t.Fatalf("GET /v2/ with Basic credentials: HTTP %d", status)
	}
	status, _, body := accGet(t, n.url+"/v2/", "admin", "wrong")
	if status != http.StatusUnauthorized || !strings.Contains(string(body), "UNAUTHORIZED") {
		t.Fatalf("GET /v2/ with a wrong password: HTTP %d %s", status, body)
	}
	img := accImage(t)
	if err := remote.Write(accRef(t, n, "pub/app:v1"), img, keychainOf("admin", accAdminPassword)); err != nil {
		t.Fatal(err)
	}
	status, hdr, _ = accGet(t, n.url+"/v2/pub/app/manifests/v1", "", "")
	wantChallenge := fmt.Sprintf(`Bearer realm="%s/token",service="wharf",scope="repository:pub/app:pull"`, n.url)
	if status != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != wantChallenge {
		t.Fatalf("anonymous GET of a private manifest: HTTP %d, challenge %q", status, hdr.Get("WWW-Authenticate"))
	}
	// Behind a proxy, the realm follows X-Forwarded-Proto and -Host.
	req, _ := http.NewRequest(http.MethodGet, n.url+"/v2/", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-Host", "registry.example.com")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); !strings.Contains(got, `realm="https://registry.example.com/token"`) {
		t.Fatalf("challenge behind a proxy: %q", got)
	}
	if _, err := accAccess(n, "admin", accAdminPassword).SetVisibility(ctx, connect.NewRequest(&wharfv1.SetVisibilityRequest{Repository: "pub/app", Public: true})); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(accRef(t, n, "pub/app:v1"), keychainOf("", "")); err != nil {
		t.Fatalf("anonymous pull of a public repository: %v", err)
	}
	status, _, _ = accGet(t, n.url+"/v2/pub/app/manifests/v1", "", "")
	if status != http.StatusOK {
		t.Fatalf("anonymous GET of a public manifest without a token: HTTP %d", status)
	}
	// A public repository still refuses anonymous pushes.
	if err := remote.Write(accRef(t, n, "pub/app:v2"), accImage(t), keychainOf("", "")); !refused(t, "anonymous push", err) {
		t.Fatal("an anonymous push to a public repository succeeded")
	}
}

func accGet(t *testing.T, u, user, password string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	return accDo(t, req)
}

func accDo(t *testing.T, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

// fetchToken asks node n's token endpoint for a token with scopes, logging
// in with Basic credentials.
func fetchToken(t *testing.T, n *accNode, user, password string, scopes ...string) string {
	t.Helper()
	q := url.Values{"service": {"wharf"}, "scope": scopes}
	status, _, body := accGet(t, n.url+"/token?"+q.Encode(), user, password)
	if status != http.StatusOK {
		t.Fatalf("token from %s: HTTP %d %s", n.host(), status, body)
	}
	var tok struct{ Token string }
	if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

func bearerGet(t *testing.T, u, token string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	status, hdr, _ := accDo(t, req)
	return status, hdr
}

// TestTokensAcrossNodes checks that a token one node issues works on
// another, and that tampered, expired and foreign tokens are refused.
func TestTokensAcrossNodes(t *testing.T) {
	nodes := startAccessNodes(t, 2)
	a, b := nodes[0], nodes[1]
	if err := remote.Write(accRef(t, a, "acme/app:v1"), accImage(t), keychainOf("admin", accAdminPassword)); err != nil {
		t.Fatal(err)
	}
	token := fetchToken(t, a, "admin", accAdminPassword, "repository:acme/app:pull")
	tags := "/v2/acme/app/tags/list"
	for _, n := range nodes {
		if status, _ := bearerGet(t, n.url+tags, token); status != http.StatusOK {
			t.Fatalf("token of node %s on node %s: HTTP %d", a.host(), n.host(), status)
		}
	}
	// The token carries pull only: a push through the other node asks
	// for more.
	req, _ := http.NewRequest(http.MethodPost, b.url+"/v2/acme/app/blobs/uploads/", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	status, hdr, _ := accDo(t, req)
	if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="insufficient_scope"`) ||
		!strings.Contains(hdr.Get("WWW-Authenticate"), `scope="repository:acme/app:pull,push"`) {
		t.Fatalf("push with a pull token: HTTP %d, challenge %q", status, hdr.Get("WWW-Authenticate"))
	}

	// Tampered: one character of the signature changed.
	sig := []byte(token)
	i := len(sig) - 5
	sig[i] = map[bool]byte{true: 'A', false: 'B'}[sig[i] != 'A']
	// Expired, and for another service, signed with the cluster's own key.
	keys := b.reg.node.SigningKeys
	expired, _, err := auth.NewTokens(auth.TokensConfig{Keys: keys, Issuer: tokenIssuer, Service: "wharf",
		Now: func() time.Time { return time.Now().Add(-time.Hour) }}).
		Issue(context.Background(), auth.Caller{User: "admin"}, []auth.Scope{auth.RepositoryScope("acme/app", "pull")})
	if err != nil {
		t.Fatal(err)
	}
	foreign, _, err := auth.NewTokens(auth.TokensConfig{Keys: keys, Issuer: tokenIssuer, Service: "elsewhere"}).
		Issue(context.Background(), auth.Caller{User: "admin"}, []auth.Scope{auth.RepositoryScope("acme/app", "pull")})
	if err != nil {
		t.Fatal(err)
	}
	for what, bad := range map[string]string{"tampered": string(sig), "expired": expired, "wrong-audience": foreign} {
		for _, n := range nodes {
			status, hdr := bearerGet(t, n.url+tags, bad)
			if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("%s token on %s: HTTP %d, challenge %q", what, n.host(), status, hdr.Get("WWW-Authenticate"))
			}
		}
	}
}

// TestSigningKeyRotation: a token signed before a rotation keeps working
// on every node, until a second rotation drops its key; only superusers
// rotate.
func TestSigningKeyRotation(t *testing.T) {
	nodes := startAccessNodes(t, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	if err := remote.Write(accRef(t, a, "acme/app:v1"), accImage(t), keychainOf("admin", accAdminPassword)); err != nil {
		t.Fatal(err)
	}
	if _, err := accAccess(a, "admin", accAdminPassword).CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{
		Name: "bob", Password: "bob-password-1",
	})); err != nil {
		t.Fatal(err)
	}
	_, err := accAccess(a, "bob", "bob-password-1").RotateSigningKey(ctx, connect.NewRequest(&wharfv1.RotateSigningKeyRequest{}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("rotation by a user without rights: %v, want PermissionDenied", err)
	}

	tags := "/v2/acme/app/tags/list"
	old := fetchToken(t, a, "admin", accAdminPassword, "repository:acme/app:pull")
	rotate := func() *wharfv1.RotateSigningKeyResponse {
		t.Helper()
		resp, err := accAccess(b, "admin", accAdminPassword).RotateSigningKey(ctx, connect.NewRequest(&wharfv1.RotateSigningKeyRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Msg
	}
	first := rotate()
	if first.KeyId == "" || first.KeyId == first.PreviousKeyId {
		t.Fatalf("rotation answered %+v", first)
	}
	fresh := fetchToken(t, a, "admin", accAdminPassword, "repository:acme/app:pull")
	for _, n := range nodes {
		for what, tok := range map[string]string{"pre-rotation": old, "post-rotation": fresh} {
			if status, _ := bearerGet(t, n.url+tags, tok); status != http.StatusOK {
				t.Errorf("%s token on %s after one rotation: HTTP %d", what, n.host(), status)
			}
		}
	}
	second := rotate()
	if second.PreviousKeyId != first.KeyId {
		t.Fatalf("second rotation's previous key %q, want %q", second.PreviousKeyId, first.KeyId)
	}
	for _, n := range nodes {
		// A node verifies with the keys it has applied: it refuses the
		// dropped key once the rotation reaches it, within moments.
		deadline := time.Now().Add(5 * time.Second)
		for {
			status, hdr := bearerGet(t, n.url+tags, old)
			if status == http.StatusUnauthorized && strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("token of a dropped key on %s: HTTP %d, challenge %q", n.host(), status, hdr.Get("WWW-Authenticate"))
			}
			time.Sleep(10 * time.Millisecond)
		}
		if status, _ := bearerGet(t, n.url+tags, fresh); status != http.StatusOK {
			t.Errorf("token of the previous key on %s: HTTP %d", n.host(), status)
		}
	}
}

// TestRoleChangesReachUploadsThroughEveryNode: blob uploads are authorized
// on the serving node's applied state first (oci's authorize), so a role
// granted through one node must still let its holder start uploads through
// another node at once, however far that node lags; and once a role is
// revoked, nothing pushed through any node is published.
func TestRoleChangesReachUploadsThroughEveryNode(t *testing.T) {
	nodes := startAccessNodes(t, 3)
	a := nodes[0]
	ctx := context.Background()
	admin := accAccess(a, "admin", accAdminPassword)
	if _, err := admin.CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{Name: "dev", Password: "dev-password"})); err != nil {
		t.Fatal(err)
	}
	ref := accRef(t, a, "acme/app:v1")
	if err := remote.Write(ref, accImage(t), keychainOf("admin", accAdminPassword)); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, keychainOf("admin", accAdminPassword))
	if err != nil {
		t.Fatal(err)
	}
	grant := &wharfv1.RoleGrant{Role: "collaborator", Namespace: "acme", User: "dev"}
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	configDigest := digestOf(config)

	as := func(method, u string, body []byte, header ...string) (int, []byte) {
		req, _ := http.NewRequest(method, u, bytes.NewReader(body))
		req.SetBasicAuth("dev", "dev-password")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		status, _, respBody := accDo(t, req)
		return status, respBody
	}
	for round, n := range nodes[1:] {
		if _, err := admin.GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{Grant: grant})); err != nil {
			t.Fatal(err)
		}
		// At once, through another node: a session, and a monolithic upload.
		if status, body := as(http.MethodPost, n.url+"/v2/acme/app/blobs/uploads/", nil); status != http.StatusAccepted {
			t.Fatalf("round %d: POST just after the grant, through %s: HTTP %d %s", round, n.host(), status, body)
		}
		if status, body := as(http.MethodPost, n.url+"/v2/acme/app/blobs/uploads/?digest="+configDigest, config,
			"Content-Type", "application/octet-stream"); status != http.StatusCreated {
			t.Fatalf("round %d: monolithic POST just after the grant, through %s: HTTP %d %s", round, n.host(), status, body)
		}

		if _, err := admin.RevokeRole(ctx, connect.NewRequest(&wharfv1.RevokeRoleRequest{Grant: grant})); err != nil {
			t.Fatal(err)
		}
		// At once: the manifest that would publish a push is refused.
		tag := fmt.Sprintf("/v2/acme/app/manifests/after-revoke-%d", round)
		if status, body := as(http.MethodPut, n.url+tag, desc.Manifest, "Content-Type", string(desc.MediaType)); status != http.StatusForbidden {
			t.Fatalf("round %d: manifest PUT just after the revocation, through %s: HTTP %d %s, want 403", round, n.host(), status, body)
		}
		// And once the node has applied the revocation, so are uploads.
		if err := n.reg.node.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if status, body := as(http.MethodPost, n.url+"/v2/acme/app/blobs/uploads/", nil); status != http.StatusForbidden {
			t.Fatalf("round %d: POST after the revocation applied on %s: HTTP %d %s, want 403", round, n.host(), status, body)
		}
	}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
