package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
)

// Regression tests for the findings of a security probe (issue 11): what
// an API token's confinement and a revocation must stop.

// withAuth sends a request with an Authorization header (empty: none).
func withAuth(t *testing.T, method, u, authorization string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	return accDo(t, req)
}

func basicHeader(user, password string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, password)
	return req.Header.Get("Authorization")
}

// createToken creates an API token for user and returns its ID and
// secret.
func createToken(t *testing.T, n *accNode, user, password string, namespaces, actions []string) (string, string) {
	t.Helper()
	resp, err := accAccess(n, user, password).CreateToken(context.Background(), connect.NewRequest(&wharfv1.CreateTokenRequest{
		Description: "confined", Namespaces: namespaces, Actions: actions,
	}))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Msg.Token.Id, resp.Msg.Secret
}

// TestConfinedTokenStaysInItsNamespaces: an API token limited to one
// namespace neither mounts (with or without ?from=) nor lists content of
// another one that its owner may read, whether it is presented directly
// or traded for a registry token, and whoever owns it, a superuser
// included.
func TestConfinedTokenStaysInItsNamespaces(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	ctx := context.Background()
	admin := accAccess(n, "admin", accAdminPassword)
	if _, err := admin.CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{Name: "dev", Password: "dev-password"})); err != nil {
		t.Fatal(err)
	}
	secret := accImage(t)
	for _, ref := range []string{"secret/app:v1", "teama/app:v1"} {
		if err := remote.Write(accRef(t, n, ref), secret, keychainOf("admin", accAdminPassword)); err != nil {
			t.Fatal(err)
		}
	}
	// The layer to steal: pushed to secret/app only.
	layer := []byte("the secret layer of another namespace")
	layerDigest := digestOf(layer)
	if status, _, body := withAuth(t, http.MethodPost, n.url+"/v2/secret/app/blobs/uploads/?digest="+layerDigest,
		basicHeader("admin", accAdminPassword), layer); status != http.StatusCreated {
		t.Fatalf("push the secret layer: HTTP %d %s", status, body)
	}
	for _, ns := range []string{"secret", "teama"} {
		if _, err := admin.GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{
			Grant: &wharfv1.RoleGrant{Role: "collaborator", Namespace: ns, User: "dev"},
		})); err != nil {
			t.Fatal(err)
		}
	}

	type caller struct{ user, password string }
	for _, owner := range []caller{{"admin", accAdminPassword}, {"dev", "dev-password"}} {
		_, tokSecret := createToken(t, n, owner.user, owner.password, []string{"teama"}, []string{"pull", "push"})
		bearer := "Bearer " + fetchToken(t, n, owner.user, tokSecret,
			"repository:teama/app:pull,push", "repository:secret/app:pull", "registry:catalog:*")
		for what, authorization := range map[string]string{
			"bearer token":      bearer,
			"API token (Basic)": basicHeader(owner.user, tokSecret),
		} {
			name := owner.user + "'s " + what
			for _, mount := range []string{"?mount=" + layerDigest + "&from=secret/app", "?mount=" + layerDigest} {
				status, hdr, body := withAuth(t, http.MethodPost, n.url+"/v2/teama/app/blobs/uploads/"+mount, authorization, nil)
				if status != http.StatusAccepted || hdr.Get("Location") == "" {
					t.Errorf("%s: POST %s: HTTP %d %s, want 202 and an upload session", name, mount, status, body)
				}
			}
			if status, _, _ := withAuth(t, http.MethodGet, n.url+"/v2/teama/app/blobs/"+layerDigest, authorization, nil); status != http.StatusNotFound {
				t.Errorf("%s: GET the secret layer through teama/app: HTTP %d, want 404", name, status)
			}
			if status, _, _ := withAuth(t, http.MethodGet, n.url+"/v2/secret/app/blobs/"+layerDigest, authorization, nil); status/100 != 4 {
				t.Errorf("%s: GET the secret layer in secret/app: HTTP %d, want a refusal", name, status)
			}
			status, _, body := withAuth(t, http.MethodGet, n.url+"/v2/_catalog", authorization, nil)
			var catalog struct{ Repositories []string }
			if err := json.Unmarshal(body, &catalog); status != http.StatusOK || err != nil {
				t.Fatalf("%s: catalog: HTTP %d %s", name, status, body)
			}
			if !slices.Equal(catalog.Repositories, []string{"teama/app"}) {
				t.Errorf("%s: catalog = %v, want only teama/app", name, catalog.Repositories)
			}
		}
	}

	// The admin API through dev's token: its namespaces only, and no
	// token management.
	_, devSecret := createToken(t, n, "dev", "dev-password", []string{"teama"}, []string{"pull"})
	viaToken := accAccess(n, "dev", devSecret)
	perms, err := viaToken.MyPermissions(ctx, connect.NewRequest(&wharfv1.MyPermissionsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(perms.Msg.Namespaces) != 1 || perms.Msg.Namespaces[0].Namespace != "teama" ||
		!slices.Equal(perms.Msg.Namespaces[0].Permissions, []string{"pull"}) || len(perms.Msg.Global) != 0 {
		t.Errorf("MyPermissions through a pull token for teama: %v", perms.Msg)
	}
	if _, err := viaToken.ListTokens(ctx, connect.NewRequest(&wharfv1.ListTokensRequest{})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("ListTokens through an API token: %v, want permission_denied", err)
	}

	// The same mounts succeed for the unconfined login of the same user:
	// the refusals above are the confinement's.
	for _, mount := range []string{"?mount=" + layerDigest + "&from=secret/app", "?mount=" + layerDigest} {
		status, _, body := withAuth(t, http.MethodPost, n.url+"/v2/teama/app/blobs/uploads/"+mount, basicHeader("dev", "dev-password"), nil)
		if status != http.StatusCreated {
			t.Errorf("dev's password: POST %s: HTTP %d %s, want 201", mount, status, body)
		}
	}
	// A mount by digest alone needs a repository the caller may pull that
	// holds the blob: a user without a role on secret/ gets a session.
	if _, err := admin.CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{Name: "outsider", Password: "outsider-password"})); err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(accRef(t, n, "teamb/app:v1"), accImage(t), keychainOf("admin", accAdminPassword)); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{
		Grant: &wharfv1.RoleGrant{Role: "collaborator", Namespace: "teamb", User: "outsider"},
	})); err != nil {
		t.Fatal(err)
	}
	status, _, body := withAuth(t, http.MethodPost, n.url+"/v2/teamb/app/blobs/uploads/?mount="+layerDigest, basicHeader("outsider", "outsider-password"), nil)
	if status != http.StatusAccepted {
		t.Errorf("outsider: POST ?mount= by digest alone: HTTP %d %s, want 202", status, body)
	}
}

// TestRevocationEndsIssuedTokens: a registry token stops working on every
// node as soon as that node has applied the revocation of what it was
// issued for: the API token, the role, the password, the account. A token
// that names no login at all is refused.
func TestRevocationEndsIssuedTokens(t *testing.T) {
	nodes := startAccessNodes(t, 3)
	a := nodes[0]
	ctx := context.Background()
	admin := accAccess(a, "admin", accAdminPassword)
	if err := remote.Write(accRef(t, a, "acme/app:v1"), accImage(t), keychainOf("admin", accAdminPassword)); err != nil {
		t.Fatal(err)
	}
	grant := &wharfv1.RoleGrant{Role: "collaborator", Namespace: "acme", User: "dev"}
	const scope = "repository:acme/app:pull,push"
	push := func(n *accNode, token string) (int, http.Header) {
		status, hdr, _ := withAuth(t, http.MethodPost, n.url+"/v2/acme/app/blobs/uploads/", "Bearer "+token, nil)
		return status, hdr
	}
	applied := func() {
		for _, n := range nodes {
			if err := n.reg.node.Sync(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// refusedEverywhere checks that token no longer pushes through any
	// node, with a challenge saying why.
	refusedEverywhere := func(what, token, wantError string) {
		t.Helper()
		applied()
		for _, n := range nodes {
			status, hdr := push(n, token)
			if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="`+wantError+`"`) {
				t.Errorf("%s: push through %s: HTTP %d, challenge %q; want 401 %s", what, n.host(), status, hdr.Get("WWW-Authenticate"), wantError)
			}
		}
	}
	// working checks that token pushes through every node.
	working := func(what, token string) {
		t.Helper()
		applied()
		for _, n := range nodes {
			if status, _ := push(n, token); status != http.StatusAccepted {
				t.Fatalf("%s: push through %s before the revocation: HTTP %d", what, n.host(), status)
			}
		}
	}
	newDev := func() {
		if _, err := admin.CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{Name: "dev", Password: "dev-password"})); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{Grant: grant})); err != nil {
			t.Fatal(err)
		}
	}
	newDev()

	// An API token revoked.
	id, secret := createToken(t, a, "dev", "dev-password", nil, []string{"pull", "push"})
	token := fetchToken(t, a, "dev", secret, scope)
	working("API token", token)
	if _, err := accAccess(a, "dev", "dev-password").RevokeToken(ctx, connect.NewRequest(&wharfv1.RevokeTokenRequest{Id: id})); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere("revoked API token", token, auth.ErrorInvalidToken)

	// A role revoked: the token's scopes no longer hold.
	token = fetchToken(t, a, "dev", "dev-password", scope)
	working("password", token)
	if _, err := admin.RevokeRole(ctx, connect.NewRequest(&wharfv1.RevokeRoleRequest{Grant: grant})); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere("revoked role", token, auth.ErrorInsufficientScope)
	if _, err := admin.GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{Grant: grant})); err != nil {
		t.Fatal(err)
	}
	working("role granted again", token)

	// A manifest, which publishes a push, is refused at once through every
	// node, before the node applied the revocation.
	desc, err := remote.Get(accRef(t, a, "acme/app:v1"), keychainOf("admin", accAdminPassword))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RevokeRole(ctx, connect.NewRequest(&wharfv1.RevokeRoleRequest{Grant: grant})); err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v2/acme/app/manifests/after-revoke-%d", n.url, i), bytes.NewReader(desc.Manifest))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", string(desc.MediaType))
		if status, _, body := accDo(t, req); status != http.StatusUnauthorized {
			t.Errorf("manifest PUT just after the revocation, through %s: HTTP %d %s, want 401", n.host(), status, body)
		}
	}
	if _, err := admin.GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{Grant: grant})); err != nil {
		t.Fatal(err)
	}
	working("role granted once more", token)

	// The password changed.
	if _, err := admin.SetPassword(ctx, connect.NewRequest(&wharfv1.SetPasswordRequest{Name: "dev", Password: "dev-password-2"})); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere("changed password", token, auth.ErrorInvalidToken)

	// The account deleted, and created again under the same name.
	token = fetchToken(t, a, "dev", "dev-password-2", scope)
	working("new password", token)
	if _, err := admin.DeleteUser(ctx, connect.NewRequest(&wharfv1.DeleteUserRequest{Name: "dev"})); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere("deleted user", token, auth.ErrorInvalidToken)
	newDev()
	refusedEverywhere("user created again", token, auth.ErrorInvalidToken)

	// A token signed with the cluster's key that names no login.
	unbound, _, err := auth.NewTokens(auth.TokensConfig{Keys: a.reg.node.SigningKeys, Issuer: tokenIssuer, Service: "wharf"}).
		Issue(ctx, auth.Caller{User: "admin"}, []auth.Scope{auth.RepositoryScope("acme/app", "pull", "push")})
	if err != nil {
		t.Fatal(err)
	}
	refusedEverywhere("token without a login", unbound, auth.ErrorInvalidToken)
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// zeros is an endless reader of '0' bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '0'
	}
	return len(p), nil
}

// jsonBody is a Connect JSON request of about size bytes.
func jsonBody(size int64) io.Reader {
	return io.MultiReader(strings.NewReader(`{"namespace":"`), io.LimitReader(zeros{}, size), strings.NewReader(`"}`))
}

// gzipBomb is jsonBody(inflated) compressed.
func gzipBomb(t *testing.T, inflated int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := io.Copy(zw, jsonBody(inflated)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRequestBodiesAreBounded: no request body is read whole before its
// caller is authenticated, and none beyond its limit, compressed or
// inflated; each refusal is in the protocol's own format. The node's
// allocations during each request show what it read.
func TestRequestBodiesAreBounded(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	const huge = 64 << 20
	bomb := gzipBomb(t, 256<<20)
	if len(bomb) > 1<<20 {
		t.Fatalf("the gzip bomb is %d bytes; it should be far smaller than what it inflates to", len(bomb))
	}
	// Anonymous callers may make the reads (ListRepositories among them)
	// with a small body; every other RPC refuses them before reading any.
	connectURL := n.url + "/wharf.v1.RepositoryService/SetRepositoryInfo"
	readURL := n.url + "/wharf.v1.RepositoryService/ListRepositories"
	tests := []struct {
		name, method, url, authorization, contentType, encoding string
		body                                                    func() io.Reader
		status                                                  int
		want                                                    string // in the answer
	}{
		{"anonymous 64 MiB Connect request", http.MethodPost, connectURL, "", "application/json", "",
			func() io.Reader { return jsonBody(huge) }, http.StatusUnauthorized, `"code":"unauthenticated"`},
		{"64 MiB Connect request", http.MethodPost, connectURL, basicHeader("admin", accAdminPassword), "application/json", "",
			func() io.Reader { return jsonBody(huge) }, http.StatusTooManyRequests, `"code":"resource_exhausted"`},
		{"gzip bomb to the Connect API", http.MethodPost, connectURL, basicHeader("admin", accAdminPassword), "application/json", "gzip",
			func() io.Reader { return bytes.NewReader(bomb) }, http.StatusTooManyRequests, `"code":"resource_exhausted"`},
		{"anonymous gzip bomb to the Connect API", http.MethodPost, connectURL, "", "application/json", "gzip",
			func() io.Reader { return bytes.NewReader(bomb) }, http.StatusUnauthorized, `"code":"unauthenticated"`},
		{"anonymous 64 MiB to Identity, an anonymous RPC", http.MethodPost, n.url + "/wharf.v1.ClusterService/Identity", "", "application/json", "",
			func() io.Reader { return jsonBody(huge) }, http.StatusTooManyRequests, `"code":"resource_exhausted"`},
		{"anonymous 64 MiB to ListRepositories, an anonymous read", http.MethodPost, readURL, "", "application/json", "",
			func() io.Reader { return jsonBody(huge) }, http.StatusTooManyRequests, `"code":"resource_exhausted"`},
		{"anonymous gzip bomb to ListRepositories", http.MethodPost, readURL, "", "application/json", "gzip",
			func() io.Reader { return bytes.NewReader(bomb) }, http.StatusTooManyRequests, `"code":"resource_exhausted"`},
		{"64 MiB token form", http.MethodPost, n.url + "/token", "", "application/x-www-form-urlencoded", "",
			func() io.Reader { return io.LimitReader(zeros{}, huge) }, http.StatusBadRequest, `"error":"invalid_request"`},
		{"anonymous 64 MiB blob upload", http.MethodPost, n.url + "/v2/acme/app/blobs/uploads/?digest=" + digestOf(nil), "", "application/octet-stream", "",
			func() io.Reader { return io.LimitReader(zeros{}, huge) }, http.StatusUnauthorized, `"code":"UNAUTHORIZED"`},
		{"anonymous 64 MiB manifest", http.MethodPut, n.url + "/v2/acme/app/manifests/v1", "", "application/vnd.oci.image.manifest.v1+json", "",
			func() io.Reader { return io.LimitReader(zeros{}, huge) }, http.StatusUnauthorized, `"code":"UNAUTHORIZED"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := &countingReader{r: tt.body()}
			req, err := http.NewRequest(tt.method, tt.url, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tt.contentType)
			req.Header.Set("Connect-Protocol-Version", "1")
			if tt.encoding != "" {
				req.Header.Set("Content-Encoding", tt.encoding)
			}
			if tt.authorization != "" {
				req.Header.Set("Authorization", tt.authorization)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			// A fresh connection each time: the server closes one whose
			// body it did not read.
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("request: %v (after sending %d bytes)", err, body.n.Load())
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			runtime.ReadMemStats(&after)
			if resp.StatusCode != tt.status || !strings.Contains(string(answer), tt.want) {
				t.Errorf("HTTP %d %s; want %d with %s", resp.StatusCode, answer, tt.status, tt.want)
			}
			// The test itself allocates a few MiB (buffers, the answer);
			// reading the body whole would allocate at least 64 MiB.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 32<<20 {
				t.Errorf("the process allocated %d MiB during the request (%d bytes of the body sent)", alloc>>20, body.n.Load())
			}
		})
	}
}

// TestLoginThrottleIsClusterWide: failed logins of one (address, user) pair
// count on every node, so guesses spread over a cluster's nodes are
// throttled as through one; the right password from another address, and
// other users from the same address, are never refused.
func TestLoginThrottleIsClusterWide(t *testing.T) {
	nodes := startAccessNodes(t, 3)
	ctx := context.Background()
	if _, err := accAccess(nodes[0], "admin", accAdminPassword).CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{Name: "dev", Password: "dev-password"})); err != nil {
		t.Fatal(err)
	}
	login := func(n *accNode, from, user, password string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, n.url+"/v2/", nil)
		req.SetBasicAuth(user, password)
		if from != "" {
			req.Header.Set("X-Forwarded-For", from)
		}
		status, _, _ := accDo(t, req)
		return status
	}
	const attacker = "203.0.113.66"
	// Random users from the attacker's address lock out no one else.
	for i := range 30 {
		if status := login(nodes[i%3], attacker, fmt.Sprintf("random-%d", i), "guess"); status != http.StatusUnauthorized {
			t.Fatalf("random user %d: HTTP %d", i, status)
		}
	}
	// Six guesses at dev's password, two through each node: the sixth
	// failure locks the pair out on every node once the notices arrive.
	for i := range 6 {
		if status := login(nodes[i%3], attacker, "dev", "guess"); status != http.StatusUnauthorized {
			t.Fatalf("guess %d: HTTP %d", i, status)
		}
	}
	waitUntil(t, 10*time.Second, func() error {
		for _, n := range nodes {
			if status := login(n, attacker, "dev", "dev-password"); status != http.StatusTooManyRequests {
				return fmt.Errorf("dev's right password from the attacker's address through %s: HTTP %d, want 429", n.host(), status)
			}
		}
		return nil
	})
	for _, n := range nodes {
		if status := login(n, "198.51.100.7", "dev", "dev-password"); status != http.StatusOK {
			t.Errorf("dev from another address through %s: HTTP %d", n.host(), status)
		}
		if status := login(n, attacker, "admin", accAdminPassword); status != http.StatusOK {
			t.Errorf("admin from the attacker's address through %s: HTTP %d", n.host(), status)
		}
	}
}
