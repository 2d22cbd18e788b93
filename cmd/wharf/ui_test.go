package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
)

// browser is a cookie-keeping client of the web UI.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, base: base, c: &http.Client{Jar: jar}}
}

// get fetches a page and returns its status and body.
func (b *browser) get(path string) (int, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of a page's forms.
func (b *browser) csrf(page string) string {
	b.t.Helper()
	_, body := b.get(page)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no CSRF token on %s", page)
	}
	return m[1]
}

// post submits a form and returns the final status and body (after the
// redirect, if any).
func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.base+path, form)
	if err != nil {
		b.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *browser) signIn(user, password string) {
	b.t.Helper()
	status, body := b.post("/ui/login", url.Values{"csrf": {b.csrf("/ui/login")}, "username": {user}, "password": {password}, "next": {"/ui/"}})
	if status != http.StatusOK || !strings.Contains(body, ">Sign out<") {
		b.t.Fatalf("sign in as %s: HTTP %d\n%s", user, status, body)
	}
}

func mustContain(t *testing.T, what, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: %q not on the page", what, w)
		}
	}
}

func mustNotContain(t *testing.T, what, body string, never ...string) {
	t.Helper()
	for _, n := range never {
		if strings.Contains(body, n) {
			t.Errorf("%s: %q is on the page", what, n)
		}
	}
}

// The web UI on a real node: sign-in with sessions of the API, the
// listing for anonymous and signed-in visitors, a readme rendered inert,
// tags added and removed, an image deleted after a confirmation naming
// it, and a user without rights who sees no controls and whose forged
// forms the API refuses.
func TestWebUI(t *testing.T) {
	logs := &syncBuffer{}
	n := startAccessNodesWith(t, harnessOpts{nodes: 1, replicas: 1, writeQuorum: 1,
		deadNodeTimeout: time.Hour, repairInterval: time.Hour, gcInterval: time.Hour, logs: logs})[0]
	defer func() {
		if t.Failed() {
			t.Logf("logins:\n%s", grepLines(strings.Join(logs.lines(), "\n"), "login"))
		}
	}()
	ctx := context.Background()
	admin := keychainOf("admin", accAdminPassword)
	img := accImage(t)
	for _, ref := range []string{"team/app:v1", "team/app:v2", "open/tool:latest"} {
		if err := remote.Write(accRef(t, n, ref), img, admin); err != nil {
			t.Fatal(err)
		}
	}
	other := accImage(t)
	if err := remote.Write(accRef(t, n, "team/app:old"), other, admin); err != nil {
		t.Fatal(err)
	}
	otherDigest, _ := other.Digest()
	acc := accAccess(n, "admin", accAdminPassword)
	if _, err := acc.SetVisibility(ctx, req(&wharfv1.SetVisibilityRequest{Namespace: "open", Public: true})); err != nil {
		t.Fatal(err)
	}
	if _, err := acc.CreateUser(ctx, req(&wharfv1.CreateUserRequest{Name: "carol", Password: "carol-Password-1"})); err != nil {
		t.Fatal(err)
	}

	anon := newBrowser(t, n.url)
	if status, body := anon.get("/"); status != http.StatusOK || !strings.Contains(body, "Execution environments") {
		t.Fatalf("GET / did not lead to the UI: HTTP %d", status)
	}
	status, body := anon.get("/ui/")
	if status != http.StatusOK {
		t.Fatalf("anonymous /ui/: HTTP %d", status)
	}
	mustContain(t, "anonymous listing", body, "open/tool", "Sign in")
	mustNotContain(t, "anonymous listing", body, "team/app")
	if status, _ := anon.get("/ui/repositories/team/app"); status != http.StatusUnauthorized {
		t.Errorf("anonymous view of a private repository: HTTP %d, want 401", status)
	}

	// Sign-in needs the form's token.
	if status, _ := anon.post("/ui/login", url.Values{"username": {"admin"}, "password": {accAdminPassword}}); status != http.StatusForbidden {
		t.Errorf("sign-in without a CSRF token: HTTP %d, want 403", status)
	}
	ab := newBrowser(t, n.url)
	ab.signIn("admin", accAdminPassword)
	u, _ := url.Parse(n.url + "/ui/")
	for _, c := range ab.c.Jar.Cookies(u) {
		if c.Name == "wharf_session" && strings.Contains(c.Value, accAdminPassword) {
			t.Error("the session cookie holds the password")
		}
	}
	_, body = ab.get("/ui/")
	mustContain(t, "admin's listing", body, "team/app", "open/tool", "admin")

	// A readme with script and raw HTML renders inert.
	page := "/ui/repositories/team/app"
	tok := ab.csrf(page)
	status, body = ab.post("/ui/actions/readme", url.Values{"csrf": {tok}, "repository": {"team/app"},
		"description": {"the app <b>image</b>"}, "readme": {"# App\n\n**bold** <script>alert('x')</script> <img src=x onerror=alert(1)>\n\n[bad](javascript:alert(1))"}})
	if status != http.StatusOK {
		t.Fatalf("save the readme: HTTP %d\n%s", status, body)
	}
	mustContain(t, "readme", body, "<h1>App</h1>", "<strong>bold</strong>", "the app &lt;b&gt;image&lt;/b&gt;", "podman pull "+n.host()+"/team/app")
	mustNotContain(t, "readme", body, "<script>alert", "onerror", "javascript:alert")

	// Tags: add one, remove it; then delete an image after its confirmation.
	status, body = ab.post("/ui/actions/tag", url.Values{"csrf": {tok}, "repository": {"team/app"}, "reference": {otherDigest.String()}, "tag": {"added"}})
	if status != http.StatusOK || !strings.Contains(body, "tagged added") {
		t.Fatalf("add a tag: HTTP %d", status)
	}
	if d, err := remote.Head(accRef(t, n, "team/app:added"), admin); err != nil || d.Digest != otherDigest {
		t.Fatalf("the added tag: %v, %v", d, err)
	}
	status, body = ab.post("/ui/actions/untag", url.Values{"csrf": {tok}, "repository": {"team/app"}, "tag": {"added"}})
	if status != http.StatusOK || !strings.Contains(body, "removed tag added") {
		t.Fatalf("remove a tag: HTTP %d", status)
	}
	_, body = ab.get(page + "?tab=images&delete=" + otherDigest.String())
	mustContain(t, "delete confirmation", body, "Delete image", otherDigest.String(), "<strong>old</strong>")
	status, body = ab.post("/ui/actions/delete-image", url.Values{"csrf": {tok}, "repository": {"team/app"}, "reference": {otherDigest.String()}})
	if status != http.StatusOK || !strings.Contains(body, "deleted") {
		t.Fatalf("delete an image: HTTP %d", status)
	}
	if _, err := remote.Head(accRef(t, n, "team/app:old"), admin); err == nil {
		t.Error("the deleted image's tag still resolves")
	}

	// carol may not change team/app: no controls, and forged forms are
	// refused with the API's error.
	cb := newBrowser(t, n.url)
	cb.signIn("carol", "carol-Password-1")
	if status, _ := cb.get(page); status != http.StatusForbidden && status != http.StatusNotFound {
		t.Errorf("carol views team/app: HTTP %d, want 403 or 404", status)
	}
	_, body = cb.get("/ui/repositories/open/tool?tab=images")
	mustContain(t, "carol on open/tool", body, "open/tool")
	mustNotContain(t, "carol on open/tool", body, "Edit description", "Delete…", "Add tag", "Remove tag")
	ctok := cb.csrf("/ui/")
	status, body = cb.post("/ui/actions/tag", url.Values{"csrf": {ctok}, "repository": {"team/app"}, "reference": {"v1"}, "tag": {"forged"}})
	if status != http.StatusForbidden || !strings.Contains(body, "permission_denied") {
		t.Errorf("carol's forged tag form: HTTP %d\n%s", status, body)
	}
	if _, err := remote.Head(accRef(t, n, "team/app:forged"), admin); err == nil {
		t.Error("carol's forged form tagged team/app")
	}
	// A token of another browser's session does not pass.
	if status, _ := cb.post("/ui/actions/untag", url.Values{"csrf": {tok}, "repository": {"team/app"}, "tag": {"v1"}}); status != http.StatusForbidden {
		t.Errorf("another session's CSRF token: HTTP %d, want 403", status)
	}

	// Sign-out ends carol's session, a password change her other one.
	// (Each refused credential counts towards the API's throttling of an
	// address and user, and the admin's count already holds the harness's
	// tries before the account existed: carol's is fresh.)
	cb2 := newBrowser(t, n.url)
	cb2.signIn("carol", "carol-Password-1")
	old := cb.c.Jar.Cookies(u)
	if status, body := cb.post("/ui/logout", url.Values{"csrf": {ctok}}); status != http.StatusOK || !strings.Contains(body, "signed out") {
		t.Errorf("sign out: HTTP %d", status)
	}
	replay := newBrowser(t, n.url)
	replay.c.Jar.SetCookies(u, old)
	if status, body := replay.get("/ui/"); !strings.Contains(body, "Your session ended") {
		t.Errorf("the session cookie still works after sign-out: HTTP %d\n%s", status, body[strings.Index(body, "<main"):])
	}
	if _, err := acc.SetPassword(ctx, req(&wharfv1.SetPasswordRequest{Name: "carol", Password: "carol-Password-2"})); err != nil {
		t.Fatal(err)
	}
	if _, body := cb2.get("/ui/"); !strings.Contains(body, "Your session ended") {
		t.Error("carol's session survived her password change")
	}
	// Her old password no longer signs in.
	status, body = anon.post("/ui/login", url.Values{"csrf": {anon.csrf("/ui/login")}, "username": {"carol"}, "password": {"carol-Password-1"}})
	if status != http.StatusUnauthorized || !strings.Contains(body, "wrong username or password") {
		t.Errorf("wrong password: HTTP %d", status)
	}
}
