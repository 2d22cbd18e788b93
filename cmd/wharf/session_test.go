package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
)

// wharf login stores a login session, not the password: the session does
// what the password did (administration included), and ends with wharf
// logout or a new password.
func TestLoginStoresASessionNotThePassword(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	ctx := context.Background()
	admin := accAccess(n, adminUser, accAdminPassword)
	const carolPassword = "carol-first-password"
	if _, err := admin.CreateUser(ctx, connect.NewRequest(&wharfv1.CreateUserRequest{Name: "carol", Password: carolPassword})); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.GrantRole(ctx, connect.NewRequest(&wharfv1.GrantRoleRequest{Grant: &wharfv1.RoleGrant{Role: "admin", User: "carol"}})); err != nil {
		t.Fatal(err)
	}
	cli := newCLIEnv(t)
	if out, err := cli.run(carolPassword+"\n", "login", n.url, "-u", "carol", "--password-stdin"); err != nil || !strings.Contains(out, "login session") {
		t.Fatalf("login: %v\n%s", err, out)
	}
	path, err := credentialsPath()
	if err != nil {
		t.Fatal(err)
	}
	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored), carolPassword) || !strings.Contains(string(stored), `"password": "wharf_`) {
		t.Fatalf("the credentials file holds the password, or no session:\n%s", stored)
	}
	creds, err := loadCredentials()
	if err != nil {
		t.Fatal(err)
	}
	session := creds.Servers[normalizeServer(n.url)]

	// The session administers, as the password did.
	cli.must("NAME", "cluster", "members")
	cli.must("session", "token", "list")
	asSession := accAccess(n, "carol", session.Password)
	for _, tt := range []struct {
		name string
		req  *wharfv1.CreateTokenRequest
		code connect.Code
	}{
		{"a session from a session", &wharfv1.CreateTokenRequest{Session: true}, connect.CodePermissionDenied},
		{"a session with namespaces", &wharfv1.CreateTokenRequest{Session: true, Namespaces: []string{"acme"}}, connect.CodeInvalidArgument},
	} {
		client := asSession
		if tt.code == connect.CodeInvalidArgument {
			client = accAccess(n, "carol", carolPassword)
		}
		if _, err := client.CreateToken(ctx, connect.NewRequest(tt.req)); connect.CodeOf(err) != tt.code {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.code)
		}
	}

	// Logout revokes it on the server.
	cli.must("removed the login of carol", "logout")
	if _, err := asSession.WhoAmI(ctx, connect.NewRequest(&wharfv1.WhoAmIRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("the session after logout: %v, want unauthenticated", err)
	}

	// A new password ends a session made with the old one.
	cli = newCLIEnv(t)
	if out, err := cli.run(carolPassword+"\n", "login", n.url, "-u", "carol"); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	cli.must("NAME", "cluster", "members")
	if _, err := admin.SetPassword(ctx, connect.NewRequest(&wharfv1.SetPasswordRequest{Name: "carol", Password: "carol-second-password"})); err != nil {
		t.Fatal(err)
	}
	if code, msg := cli.exitOf("cluster", "members"); code != exitDenied {
		t.Fatalf("the session after a new password: exit %d (%s), want %d", code, msg, exitDenied)
	}
}
