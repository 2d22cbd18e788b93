package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
)

// runJSON runs a command line with -o json and decodes what it prints.
func (e cliEnv) runJSON(v any, args ...string) {
	e.t.Helper()
	out := e.must("", append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatalf("wharf %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// exitOf runs a command line that must fail, and returns the exit status
// main would give and the message.
func (e cliEnv) exitOf(args ...string) (int, string) {
	e.t.Helper()
	out, err := e.run("", args...)
	if err == nil {
		e.t.Fatalf("wharf %s succeeded:\n%s", strings.Join(args, " "), out)
	}
	return exitCode(err), err.Error()
}

// The management commands against a real node: tables, -o json that
// scripts can parse, and exit codes by kind of failure.
func TestManagementCLI(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	if err := remote.Write(accRef(t, n, "acme/app:v1"), accImage(t), keychainOf("admin", accAdminPassword)); err != nil {
		t.Fatal(err)
	}
	if _, err := accAccess(n, "admin", accAdminPassword).CreateUser(context.Background(), connect.NewRequest(&wharfv1.CreateUserRequest{Name: "bob", Password: "bob-password"})); err != nil {
		t.Fatal(err)
	}
	cli := newCLIEnv(t)
	if out, err := cli.run(accAdminPassword+"\n", "login", n.url, "-u", adminUser); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}

	var repos struct {
		Repositories []struct {
			Name     string
			TagCount string // protojson writes int64 as a string
		}
	}
	cli.runJSON(&repos, "repo", "ls")
	if len(repos.Repositories) != 1 || repos.Repositories[0].Name != "acme/app" || repos.Repositories[0].TagCount != "1" {
		t.Fatalf("repo ls -o json: %+v", repos)
	}
	cli.must("acme/app", "repo", "ls")
	cli.must("stable", "tag", "add", "acme/app:v1", "stable")
	var images struct {
		Images []struct {
			Digest string
			Tags   []string
		}
	}
	cli.runJSON(&images, "image", "ls", "acme/app")
	if len(images.Images) != 1 || !slices.Equal(images.Images[0].Tags, []string{"stable", "v1"}) {
		t.Fatalf("image ls -o json: %+v", images)
	}
	cli.must("", "repo", "describe", "acme/app", "The app, built nightly")
	readme := "# acme/app\n\nNightly builds — ünïcode and `code`.\n"
	if out, err := cli.run(readme, "repo", "readme", "set", "acme/app", "-"); err != nil {
		t.Fatalf("readme set: %v\n%s", err, out)
	}
	if got := cli.must("", "repo", "readme", "get", "acme/app"); got != readme {
		t.Fatalf("readme get = %q, want %q", got, readme)
	}
	show := cli.must("The app, built nightly", "repo", "show", "acme/app")
	if !strings.Contains(show, "KiB") && !strings.Contains(show, " B") {
		t.Errorf("repo show gives no human-readable size:\n%s", show)
	}
	cli.must("", "tag", "rm", "acme/app:stable")
	cli.must(images.Images[0].Digest, "image", "show", "acme/app@"+images.Images[0].Digest)

	var activity struct {
		Activity []struct{ Kind, Tag, Actor string }
	}
	cli.runJSON(&activity, "activity", "acme/app")
	var kinds []string
	for _, a := range activity.Activity {
		if a.Actor != adminUser {
			t.Errorf("activity %+v: actor %q, want %q", a, a.Actor, adminUser)
		}
		kinds = append(kinds, strings.TrimPrefix(a.Kind, "ACTIVITY_KIND_")+" "+a.Tag)
	}
	want := []string{"TAG_REMOVED stable", "README_SET ", "DESCRIPTION_SET ", "TAG_ADDED stable", "TAG_ADDED v1", "MANIFEST_ADDED "}
	if !slices.Equal(kinds, want) {
		t.Errorf("activity, newest first: %q\nwant %q", kinds, want)
	}

	failures := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown tag", []string{"image", "show", "acme/app:stable"}, exitNotFound, "stable"},
		{"unknown repository", []string{"repo", "show", "acme/none"}, exitNotFound, "acme/none"},
		{"tag breaking the rule", []string{"tag", "add", "acme/app:v1", "v2!"}, exitUsage, "tag: "},
		{"not empty", []string{"ns", "rm", "acme"}, exitConflict, "acme"},
		{"not an admin", []string{"repo", "rm", "acme/app", "-u", "bob"}, exitDenied, "may not"},
		{"wrong password", []string{"repo", "ls", "-u", adminUser}, exitDenied, "unauthenticated"},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			switch tt.name {
			case "not an admin":
				t.Setenv("WHARF_PASSWORD", "bob-password")
			case "wrong password":
				t.Setenv("WHARF_PASSWORD", "not-the-password")
			}
			code, msg := cliEnv{t}.exitOf(tt.args...)
			if code != tt.code || !strings.Contains(msg, tt.want) {
				t.Errorf("exit %d (%s), want %d saying %q", code, msg, tt.code, tt.want)
			}
		})
	}
	cli.must("acme/app", "repo", "show", "acme/app") // nothing above changed it
}
