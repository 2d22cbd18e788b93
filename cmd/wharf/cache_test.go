package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

func cachesAs(n *accNode, user, password string) wharfv1connect.CacheServiceClient {
	return wharfv1connect.NewCacheServiceClient(&http.Client{Transport: basicTransport{user, password}}, n.url)
}

// The CacheService through a real node: superusers only change caches (a
// global admin is no superuser), logins read them, the listing shows the
// caches of the namespaces the caller may pull, refusals name the field,
// and a remote in use stays.
func TestCacheServiceRoles(t *testing.T) {
	logs := &syncBuffer{}
	n := startAccessNodesWith(t, harnessOpts{nodes: 1, replicas: 1, writeQuorum: 1,
		deadNodeTimeout: time.Hour, repairInterval: time.Hour, gcInterval: time.Hour, logs: logs})[0]
	ctx := context.Background()
	access := accAccess(n, "admin", accAdminPassword)
	for _, u := range []string{"root2", "u-admin", "bob", "carol"} {
		if _, err := access.CreateUser(ctx, req(&wharfv1.CreateUserRequest{Name: u, Password: u + "-password", Superuser: u == "root2"})); err != nil {
			t.Fatal(err)
		}
	}
	// u-admin holds the global admin role; bob may pull the namespace quay
	// (a collaborator there); carol holds no role.
	for _, g := range []*wharfv1.RoleGrant{{Role: "admin", User: "u-admin"}} {
		if _, err := access.GrantRole(ctx, req(&wharfv1.GrantRoleRequest{Grant: g})); err != nil {
			t.Fatal(err)
		}
	}
	remotes := remotesAs(n, "admin", accAdminPassword)
	for name, url := range map[string]string{"hub": "https://registry-1.docker.io", "quayio": "https://quay.io"} {
		if _, err := remotes.CreateRemote(ctx, req(&wharfv1.CreateRemoteRequest{Name: name, Url: url})); err != nil {
			t.Fatal(err)
		}
	}
	// The namespace held holds a repository: a mirror.
	adminMirrors, _ := mirrorsAs(n, "admin", accAdminPassword)
	if _, err := adminMirrors.CreateMirror(ctx, req(&wharfv1.CreateMirrorRequest{Repository: "held/app", Remote: "hub", Upstream: "app"})); err != nil {
		t.Fatal(err)
	}

	admin := cachesAs(n, "admin", accAdminPassword)
	root2 := cachesAs(n, "root2", "root2-password")
	uAdmin := cachesAs(n, "u-admin", "u-admin-password")
	bob := cachesAs(n, "bob", "bob-password")
	carol := cachesAs(n, "carol", "carol-password")
	anon := cachesAs(n, "", "")

	created, err := admin.CreateCache(ctx, req(&wharfv1.CreateCacheRequest{Namespace: "dockerhub", Remote: "hub"}))
	if err != nil {
		t.Fatal(err)
	}
	if c := created.Msg.Cache; c.Namespace != "dockerhub" || c.Remote != "hub" || c.UpstreamPrefix != "" || c.TagTtlSeconds != 600 ||
		c.CreatedBy != "admin" || c.UpdatedBy != "admin" || c.CreatedUnixNanos == 0 {
		t.Errorf("created %v", c)
	}
	if own, err := n.reg.node.FSM().NamespaceOwner("dockerhub"); err != nil || own.GetUser() != "admin" {
		t.Errorf("namespace dockerhub: owner %v, %v", own, err)
	}
	quay, err := root2.CreateCache(ctx, req(&wharfv1.CreateCacheRequest{Namespace: "quay", Remote: "quayio", UpstreamPrefix: "org", TagTtlSeconds: 3600}))
	if err != nil {
		t.Fatal(err)
	}
	if c := quay.Msg.Cache; c.UpstreamPrefix != "org" || c.TagTtlSeconds != 3600 || c.CreatedBy != "root2" {
		t.Errorf("created %v", c)
	}
	if _, err := access.GrantRole(ctx, req(&wharfv1.GrantRoleRequest{Grant: &wharfv1.RoleGrant{Role: "collaborator", Namespace: "quay", User: "bob"}})); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		c    wharfv1connect.CacheServiceClient
		m    *wharfv1.CreateCacheRequest
		code connect.Code
		want string
	}{
		{"a global admin", uAdmin, &wharfv1.CreateCacheRequest{Namespace: "ghcr", Remote: "hub"}, connect.CodePermissionDenied, "needs a superuser"},
		{"no role", carol, &wharfv1.CreateCacheRequest{Namespace: "ghcr", Remote: "hub"}, connect.CodePermissionDenied, "needs a superuser"},
		{"anonymous", anon, &wharfv1.CreateCacheRequest{Namespace: "ghcr", Remote: "hub"}, connect.CodeUnauthenticated, ""},
		{"no namespace", admin, &wharfv1.CreateCacheRequest{Remote: "hub"}, connect.CodeInvalidArgument, "namespace: "},
		{"bad namespace", admin, &wharfv1.CreateCacheRequest{Namespace: "Ghcr", Remote: "hub"}, connect.CodeInvalidArgument, "namespace: "},
		{"nested namespace", admin, &wharfv1.CreateCacheRequest{Namespace: "a/b", Remote: "hub"}, connect.CodeInvalidArgument, "namespace: "},
		{"no remote", admin, &wharfv1.CreateCacheRequest{Namespace: "ghcr"}, connect.CodeInvalidArgument, "remote: "},
		{"bad prefix", admin, &wharfv1.CreateCacheRequest{Namespace: "ghcr", Remote: "hub", UpstreamPrefix: "Org"}, connect.CodeInvalidArgument, "upstream_prefix: "},
		{"negative ttl", admin, &wharfv1.CreateCacheRequest{Namespace: "ghcr", Remote: "hub", TagTtlSeconds: -1}, connect.CodeInvalidArgument, "tag_ttl_seconds: "},
		{"huge ttl", admin, &wharfv1.CreateCacheRequest{Namespace: "ghcr", Remote: "hub", TagTtlSeconds: 1 << 62}, connect.CodeInvalidArgument, "tag_ttl_seconds: "},
		{"unknown remote", admin, &wharfv1.CreateCacheRequest{Namespace: "ghcr", Remote: "nosuch"}, connect.CodeNotFound, `"nosuch"`},
		{"namespace with a repository", admin, &wharfv1.CreateCacheRequest{Namespace: "held", Remote: "hub"}, connect.CodeFailedPrecondition, "held/app"},
		{"twice", admin, &wharfv1.CreateCacheRequest{Namespace: "dockerhub", Remote: "hub"}, connect.CodeAlreadyExists, "dockerhub"},
	} {
		t.Run("create/"+tt.name, func(t *testing.T) {
			_, err := tt.c.CreateCache(ctx, req(tt.m))
			if codeOf(err) != tt.code || !strings.Contains(errString(err), tt.want) {
				t.Errorf("%v, want %v saying %q", err, tt.code, tt.want)
			}
		})
	}
	if _, err := admin.GetCache(ctx, req(&wharfv1.GetCacheRequest{Namespace: "ghcr"})); codeOf(err) != connect.CodeNotFound {
		t.Errorf("a refused create stored a cache: %v", err)
	}

	// Reads: pull on the namespace, which carol lacks on the private quay
	// until it is made public.
	if _, err := carol.GetCache(ctx, req(&wharfv1.GetCacheRequest{Namespace: "quay"})); codeOf(err) != connect.CodePermissionDenied {
		t.Errorf("carol gets the private quay: %v, want permission_denied", err)
	}
	got, err := admin.GetCache(ctx, req(&wharfv1.GetCacheRequest{Namespace: "quay"}))
	if err != nil || got.Msg.Cache.Remote != "quayio" || got.Msg.Cache.TagTtlSeconds != 3600 {
		t.Errorf("admin gets quay: %v, %v", got, err)
	}
	if _, err := anon.GetCache(ctx, req(&wharfv1.GetCacheRequest{Namespace: "quay"})); codeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("anonymous get: %v", err)
	}
	if _, err := admin.GetCache(ctx, req(&wharfv1.GetCacheRequest{Namespace: "nosuch"})); codeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "not a pull-through cache") {
		t.Errorf("get unknown: %v", err)
	}
	if _, err := carol.GetCache(ctx, req(&wharfv1.GetCacheRequest{Namespace: "A"})); codeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("get bad namespace: %v", err)
	}
	for _, tt := range []struct {
		who  string
		c    wharfv1connect.CacheServiceClient
		want []string
	}{
		{"admin", admin, []string{"dockerhub", "quay"}},
		{"another superuser", root2, []string{"dockerhub", "quay"}},
		{"a collaborator of quay", bob, []string{"quay"}},
		{"no role", carol, nil},
	} {
		t.Run("list/"+tt.who, func(t *testing.T) {
			resp, err := tt.c.ListCaches(ctx, req(&wharfv1.ListCachesRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range resp.Msg.Caches {
				names = append(names, c.Namespace)
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Errorf("listed %v, want %v", names, tt.want)
			}
		})
	}
	if _, err := anon.ListCaches(ctx, req(&wharfv1.ListCachesRequest{})); codeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("anonymous list: %v", err)
	}

	// Updates change only what they set.
	ttl, neg, empty, nosuch := int64(60), int64(-5), "", "nosuch"
	up, err := admin.UpdateCache(ctx, req(&wharfv1.UpdateCacheRequest{Namespace: "quay", TagTtlSeconds: &ttl, UpstreamPrefix: &empty}))
	if c := up.Msg.GetCache(); err != nil || c.TagTtlSeconds != 60 || c.UpstreamPrefix != "" || c.Remote != "quayio" || c.UpdatedBy != "admin" || c.CreatedBy != "root2" {
		t.Errorf("update: %v, %v", up, err)
	}
	for _, tt := range []struct {
		name string
		c    wharfv1connect.CacheServiceClient
		m    *wharfv1.UpdateCacheRequest
		code connect.Code
		want string
	}{
		{"a global admin", uAdmin, &wharfv1.UpdateCacheRequest{Namespace: "quay", TagTtlSeconds: &ttl}, connect.CodePermissionDenied, "needs a superuser"},
		{"a collaborator", bob, &wharfv1.UpdateCacheRequest{Namespace: "quay", TagTtlSeconds: &ttl}, connect.CodePermissionDenied, "needs a superuser"},
		{"nothing", admin, &wharfv1.UpdateCacheRequest{Namespace: "quay"}, connect.CodeInvalidArgument, "changes nothing"},
		{"negative ttl", admin, &wharfv1.UpdateCacheRequest{Namespace: "quay", TagTtlSeconds: &neg}, connect.CodeInvalidArgument, "tag_ttl_seconds: "},
		{"unknown remote", admin, &wharfv1.UpdateCacheRequest{Namespace: "quay", Remote: &nosuch}, connect.CodeNotFound, `"nosuch"`},
		{"unknown cache", admin, &wharfv1.UpdateCacheRequest{Namespace: "nosuch", TagTtlSeconds: &ttl}, connect.CodeNotFound, "not a pull-through cache"},
	} {
		t.Run("update/"+tt.name, func(t *testing.T) {
			_, err := tt.c.UpdateCache(ctx, req(tt.m))
			if codeOf(err) != tt.code || !strings.Contains(errString(err), tt.want) {
				t.Errorf("%v, want %v saying %q", err, tt.code, tt.want)
			}
		})
	}

	// A remote in use stays; deletes need a superuser.
	if _, err := remotes.DeleteRemote(ctx, req(&wharfv1.DeleteRemoteRequest{Name: "quayio"})); codeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "pull-through cache") {
		t.Errorf("delete a remote a cache uses: %v", err)
	}
	if _, err := uAdmin.DeleteCache(ctx, req(&wharfv1.DeleteCacheRequest{Namespace: "quay"})); codeOf(err) != connect.CodePermissionDenied {
		t.Errorf("a global admin deletes: %v", err)
	}
	if _, err := admin.DeleteCache(ctx, req(&wharfv1.DeleteCacheRequest{Namespace: "quay"})); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteCache(ctx, req(&wharfv1.DeleteCacheRequest{Namespace: "quay"})); codeOf(err) != connect.CodeNotFound {
		t.Errorf("delete twice: %v", err)
	}
	if _, err := bob.GetCache(ctx, req(&wharfv1.GetCacheRequest{Namespace: "quay"})); codeOf(err) != connect.CodeNotFound {
		t.Errorf("get after delete: %v", err)
	}
	if _, err := remotes.DeleteRemote(ctx, req(&wharfv1.DeleteRemoteRequest{Name: "quayio"})); err != nil {
		t.Errorf("delete the remote no cache uses: %v", err)
	}

	if len(logs.lines("msg=audit", "event=cache.create", "target=dockerhub")) != 1 || len(logs.lines("msg=audit", "event=cache.create", "target=quay")) != 1 ||
		len(logs.lines("event=cache.update", "target=quay")) != 1 || len(logs.lines("event=cache.delete", "target=quay")) != 1 {
		t.Errorf("audit lines missing:\n%s", strings.Join(logs.lines("msg=audit"), "\n"))
	}
}

// wharf cache against a real node.
func TestCacheCLI(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	cli := newCLIEnv(t)
	if out, err := cli.run(accAdminPassword+"\n", "login", n.url, "-u", adminUser); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	cli.must("added remote hub", "remote", "add", "hub", "https://registry-1.docker.io")
	cli.must("added mirror held/app", "mirror", "add", "held/app", "--remote", "hub", "--upstream", "app")
	cli.must("created cache dockerhub of remote hub (tag TTL 10m)", "cache", "create", "dockerhub", "--remote", "hub")
	out := cli.must("", "cache", "create", "quay", "--remote", "hub", "--upstream-prefix", "org", "--tag-ttl", "90m", "-o", "json")
	var created struct {
		Namespace      string `json:"namespace"`
		UpstreamPrefix string `json:"upstreamPrefix"`
		TagTTL         string `json:"tagTtlSeconds"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Namespace != "quay" || created.UpstreamPrefix != "org" || created.TagTTL != "5400" {
		t.Fatalf("cache create -o json: %+v, %v\n%s", created, err, out)
	}
	ls := cli.must("NAMESPACE", "cache", "list")
	for _, want := range []string{"REMOTE", "UPSTREAM-PREFIX", "TAG-TTL", "dockerhub", "quay", "org", "1h30m", "10m"} {
		if !strings.Contains(ls, want) {
			t.Errorf("cache list lacks %q:\n%s", want, ls)
		}
	}
	if show := cli.must("Namespace:", "cache", "get", "quay"); !strings.Contains(show, "Upstream prefix:  org") || !strings.Contains(show, "1h30m") {
		t.Errorf("cache get:\n%s", show)
	}
	cli.must("updated cache quay", "cache", "update", "quay", "--tag-ttl", "45s")
	if show := cli.must("Tag TTL:", "cache", "get", "quay"); !strings.Contains(show, "45s") || !strings.Contains(show, "org") {
		t.Errorf("after update --tag-ttl, the prefix should stay:\n%s", show)
	}
	cli.must("updated cache quay", "cache", "update", "quay", "--upstream-prefix", "")
	if show := cli.must("Tag TTL:", "cache", "get", "quay"); !strings.Contains(show, "45s") || strings.Contains(show, "org") {
		t.Errorf("after update --upstream-prefix '':\n%s", show)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"cache", "create", "ghcr"}, exitUsage, "--remote"},
		{[]string{"cache", "create", "Ghcr", "--remote", "hub"}, exitUsage, "namespace: "},
		{[]string{"cache", "create", "ghcr", "--remote", "hub", "--tag-ttl", "-1s"}, exitUsage, "tag_ttl_seconds: "},
		{[]string{"cache", "create", "ghcr", "--remote", "hub", "--tag-ttl", "1500ms"}, exitUsage, "whole seconds"},
		{[]string{"cache", "create", "ghcr", "--remote", "hub", "--tag-ttl", "1000h"}, exitUsage, "tag_ttl_seconds: "},
		{[]string{"cache", "create", "ghcr", "--remote", "nosuch"}, exitNotFound, "nosuch"},
		{[]string{"cache", "create", "held", "--remote", "hub"}, exitConflict, "held/app"},
		{[]string{"cache", "create", "dockerhub", "--remote", "hub"}, exitConflict, "already"},
		{[]string{"cache", "update", "quay"}, exitUsage, "nothing to change"},
		{[]string{"cache", "update", "quay", "--remote", "nosuch"}, exitNotFound, "nosuch"},
		{[]string{"cache", "update", "nosuch", "--tag-ttl", "1m"}, exitNotFound, "not a pull-through cache"},
		{[]string{"cache", "get", "nosuch"}, exitNotFound, "not a pull-through cache"},
		{[]string{"cache", "delete", "nosuch"}, exitNotFound, "not a pull-through cache"},
		{[]string{"remote", "rm", "hub"}, exitConflict, ""},
	} {
		if code, msg := cli.exitOf(tt.args...); code != tt.code || !strings.Contains(msg, tt.want) {
			t.Errorf("wharf %s: exit %d, %s; want %d saying %q", strings.Join(tt.args, " "), code, msg, tt.code, tt.want)
		}
	}
	cli.must("deleted cache quay", "cache", "delete", "quay")
	cli.must("deleted cache dockerhub", "cache", "rm", "dockerhub")
	if ls := cli.must("NAMESPACE", "cache", "ls"); strings.Contains(ls, "quay") || strings.Contains(ls, "dockerhub") {
		t.Errorf("cache list after delete:\n%s", ls)
	}
	cli.must("removed mirror held/app", "mirror", "rm", "held/app")
	cli.must("removed remote hub", "remote", "rm", "hub")
}
