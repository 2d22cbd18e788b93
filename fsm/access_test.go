package fsm

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"io"
	"maps"
	"slices"
	"testing"

	fsmv1 "github.com/wharf-registry/wharf/api/gen/wharf/fsm/v1"
)

const (
	codeExists       = fsmv1.ResultCode_RESULT_CODE_ALREADY_EXISTS
	codePrecondition = fsmv1.ResultCode_RESULT_CODE_FAILED_PRECONDITION

	collaborator = fsmv1.Role_ROLE_COLLABORATOR
	owner        = fsmv1.Role_ROLE_OWNER
	publisher    = fsmv1.Role_ROLE_PUBLISHER
	admin        = fsmv1.Role_ROLE_ADMIN

	testHash = "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"
)

func createUser(name string, superuser bool) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_CreateUser{CreateUser: &fsmv1.CreateUser{
		Name: name, PasswordHash: testHash, Superuser: superuser,
	}}}
}

func deleteUser(name string) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_DeleteUser{DeleteUser: &fsmv1.DeleteUser{Name: name}}}
}

func setSuperuser(name string, on bool) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_SetUserSuperuser{SetUserSuperuser: &fsmv1.SetUserSuperuser{Name: name, Superuser: on}}}
}

func setPassword(name, hash string) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_SetUserPassword{SetUserPassword: &fsmv1.SetUserPassword{Name: name, PasswordHash: hash}}}
}

func createGroup(name string) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_CreateGroup{CreateGroup: &fsmv1.CreateGroup{Name: name}}}
}

func deleteGroup(name string) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_DeleteGroup{DeleteGroup: &fsmv1.DeleteGroup{Name: name}}}
}

func addMember(group, user string) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_AddGroupMember{AddGroupMember: &fsmv1.AddGroupMember{Group: group, User: user}}}
}

func removeMember(group, user string) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_RemoveGroupMember{RemoveGroupMember: &fsmv1.RemoveGroupMember{Group: group, User: user}}}
}

func userGrant(role fsmv1.Role, ns, user string) *fsmv1.Grant {
	return &fsmv1.Grant{Role: role, Namespace: ns, Subject: &fsmv1.Subject{Kind: fsmv1.SubjectKind_SUBJECT_KIND_USER, Name: user}}
}

func groupGrant(role fsmv1.Role, ns, group string) *fsmv1.Grant {
	return &fsmv1.Grant{Role: role, Namespace: ns, Subject: &fsmv1.Subject{Kind: fsmv1.SubjectKind_SUBJECT_KIND_GROUP, Name: group}}
}

func grant(g *fsmv1.Grant) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_GrantRole{GrantRole: &fsmv1.GrantRole{Grant: g}}}
}

func revoke(g *fsmv1.Grant) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_RevokeRole{RevokeRole: &fsmv1.RevokeRole{Grant: g}}}
}

func claim(ns, user string) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_ClaimNamespace{ClaimNamespace: &fsmv1.ClaimNamespace{Namespace: ns, User: user}}}
}

func setPublic(ns, repo string, public bool) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_SetVisibility{SetVisibility: &fsmv1.SetVisibility{Namespace: ns, Repository: repo, Public: public}}}
}

func apiToken(id, owner string, expires int64, namespaces ...string) *fsmv1.ApiToken {
	sum := sha256.Sum256([]byte("secret-" + id))
	return &fsmv1.ApiToken{Id: id, Owner: owner, Namespaces: namespaces, Actions: []string{"push", "pull"}, ExpiresUnixNanos: expires, SecretSha256: sum[:]}
}

func createToken(t *fsmv1.ApiToken) *fsmv1.Command {
	return &fsmv1.Command{UnixNanos: 100, Op: &fsmv1.Command_CreateApiToken{CreateApiToken: &fsmv1.CreateApiToken{Token: t}}}
}

func deleteToken(id string) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_DeleteApiToken{DeleteApiToken: &fsmv1.DeleteApiToken{Id: id}}}
}

func rotateKey(k *fsmv1.SigningKey, expect string) *fsmv1.Command {
	return &fsmv1.Command{Op: &fsmv1.Command_RotateSigningKey{RotateSigningKey: &fsmv1.RotateSigningKey{Key: k, ExpectCurrentId: expect}}}
}

func newSigningKey(t *testing.T, id string) *fsmv1.SigningKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &fsmv1.SigningKey{Id: id, Pkcs8: der}
}

// baseAccess is a state most access tests start from: users alice
// (superuser), bob and carol, group devs holding bob, and namespace acme
// created by alice with repository acme/app.
func baseAccess() []*fsmv1.Command {
	return []*fsmv1.Command{
		createUser("alice", true), createUser("bob", false), createUser("carol", false),
		createGroup("devs"), addMember("devs", "bob"),
		claim("acme", "alice"), putManifest("acme/app", "m1", "v1"),
	}
}

func TestAccessCommands(t *testing.T) {
	tests := []struct {
		name     string
		setup    []*fsmv1.Command
		cmd      *fsmv1.Command
		want     fsmv1.ResultCode
		contains string
		check    func(t *testing.T, f *FSM)
	}{
		{name: "create user", cmd: createUser("dave", false), want: codeOK, check: func(t *testing.T, f *FSM) {
			u, err := f.User("dave")
			if err != nil || u.GetId() != 4 || u.GetPasswordHash() != testHash {
				t.Fatalf("User = %v, %v", u, err)
			}
		}},
		{name: "create existing user", cmd: createUser("bob", false), want: codeExists},
		{name: "user name upper case", cmd: createUser("Bob", false), want: codeInvalid, contains: "lower-case"},
		{name: "user name with separator", cmd: createUser("b"+sep, false), want: codeInvalid},
		{name: "clear-text password refused", cmd: &fsmv1.Command{Op: &fsmv1.Command_CreateUser{CreateUser: &fsmv1.CreateUser{Name: "dave", PasswordHash: "hunter2"}}}, want: codeInvalid, contains: "argon2id"},
		{name: "bcrypt hash accepted", cmd: setPassword("bob", "$2a$10$abcdefghijklmnopqrstuv"), want: codeOK},
		{name: "set password of unknown user", cmd: setPassword("zed", testHash), want: codeNotFound},
		{name: "make superuser", cmd: setSuperuser("bob", true), want: codeOK, check: func(t *testing.T, f *FSM) {
			if u, _ := f.User("bob"); !u.GetSuperuser() {
				t.Fatal("bob is not a superuser")
			}
		}},
		{name: "last superuser stays", cmd: setSuperuser("alice", false), want: codePrecondition, contains: "last superuser"},
		{name: "superuser demoted when another exists", setup: []*fsmv1.Command{setSuperuser("bob", true)}, cmd: setSuperuser("alice", false), want: codeOK},
		{name: "last superuser cannot be deleted", cmd: deleteUser("alice"), want: codePrecondition},
		{name: "delete unknown user", cmd: deleteUser("zed"), want: codeNotFound},
		{
			name:  "delete user removes memberships, grants and tokens",
			setup: []*fsmv1.Command{grant(userGrant(collaborator, "acme", "bob")), grant(userGrant(publisher, "", "bob")), createToken(apiToken("t1", "bob", 1000))},
			cmd:   deleteUser("bob"), want: codeOK,
			check: func(t *testing.T, f *FSM) {
				if m, _ := f.GroupMembers("devs"); len(m) != 0 {
					t.Errorf("devs members = %v", m)
				}
				if g, _ := f.Grants(); len(g) != 0 {
					t.Errorf("grants = %v", g)
				}
				if _, err := f.APIToken("t1"); !errors.Is(err, ErrNotFound) {
					t.Errorf("APIToken = %v, want ErrNotFound", err)
				}
				wantNoKeys(t, f, prefixMemberOf, prefixSubjectGrant, prefixUserToken)
			},
		},
		{name: "create existing group", cmd: createGroup("devs"), want: codeExists},
		{name: "add member twice", cmd: addMember("devs", "bob"), want: codeOK},
		{name: "add unknown user", cmd: addMember("devs", "zed"), want: codeNotFound},
		{name: "add to unknown group", cmd: addMember("ops", "bob"), want: codeNotFound},
		{name: "remove member", cmd: removeMember("devs", "bob"), want: codeOK, check: func(t *testing.T, f *FSM) {
			wantNoKeys(t, f, prefixMember, prefixMemberOf)
		}},
		{name: "remove non-member", cmd: removeMember("devs", "carol"), want: codeNotFound},
		{
			name:  "delete group removes memberships and grants",
			setup: []*fsmv1.Command{grant(groupGrant(owner, "acme", "devs"))},
			cmd:   deleteGroup("devs"), want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantNoKeys(t, f, prefixMember, prefixMemberOf, prefixGrant, prefixSubjectGrant)
			},
		},
		{name: "grant on namespace", cmd: grant(userGrant(collaborator, "acme", "carol")), want: codeOK, check: func(t *testing.T, f *FSM) {
			g, err := f.GrantsOn("acme")
			if err != nil || len(g) != 1 || g[0].GetSubject().GetName() != "carol" {
				t.Fatalf("GrantsOn = %v, %v", g, err)
			}
		}},
		{name: "grant twice", setup: []*fsmv1.Command{grant(userGrant(owner, "acme", "carol"))}, cmd: grant(userGrant(owner, "acme", "carol")), want: codeOK},
		{name: "grant on unknown namespace", cmd: grant(userGrant(owner, "other", "carol")), want: codeNotFound},
		{name: "grant claimed namespace without repositories", setup: []*fsmv1.Command{claim("fresh", "bob")}, cmd: grant(userGrant(owner, "fresh", "carol")), want: codeOK},
		{name: "grant to unknown user", cmd: grant(userGrant(owner, "acme", "zed")), want: codeNotFound},
		{name: "grant to unknown group", cmd: grant(groupGrant(owner, "acme", "ops")), want: codeNotFound},
		{name: "namespace role without namespace", cmd: grant(userGrant(owner, "", "carol")), want: codeInvalid},
		{name: "global role on namespace", cmd: grant(userGrant(admin, "acme", "carol")), want: codeInvalid, contains: "global"},
		{name: "unknown role", cmd: grant(userGrant(fsmv1.Role_ROLE_UNSPECIFIED, "acme", "carol")), want: codeInvalid},
		{name: "grant without subject", cmd: grant(&fsmv1.Grant{Role: owner, Namespace: "acme"}), want: codeInvalid},
		{name: "revoke", setup: []*fsmv1.Command{grant(userGrant(owner, "acme", "carol"))}, cmd: revoke(userGrant(owner, "acme", "carol")), want: codeOK, check: func(t *testing.T, f *FSM) {
			wantNoKeys(t, f, prefixGrant, prefixSubjectGrant)
		}},
		{name: "revoke missing grant", cmd: revoke(userGrant(owner, "acme", "carol")), want: codeNotFound},
		{name: "creator ownership cannot be revoked", cmd: revoke(userGrant(owner, "acme", "alice")), want: codePrecondition, contains: "cannot be revoked"},
		{name: "claim again by creator", cmd: claim("acme", "alice"), want: codeOK},
		{name: "claim taken namespace", cmd: claim("acme", "bob"), want: codeExists, contains: `created by "alice"`},
		{name: "claim unclaimed existing namespace", setup: []*fsmv1.Command{putManifest("legacy/app", "m2")}, cmd: claim("legacy", "bob"), want: codeExists},
		{name: "claim by unknown user", cmd: claim("new", "zed"), want: codeNotFound},
		{name: "claim invalid namespace", cmd: claim("a/b", "bob"), want: codeInvalid},
		{
			name:  "recreated user does not inherit ownership",
			setup: []*fsmv1.Command{claim("bobs", "bob"), deleteUser("bob"), createUser("bob", false)},
			cmd:   claim("bobs", "bob"), want: codeExists,
			check: func(t *testing.T, f *FSM) {
				if a, _ := f.Access("bob", "bobs/x"); a.Creator || len(a.Roles) != 0 {
					t.Fatalf("Access = %+v", a)
				}
			},
		},
		{name: "public namespace", cmd: setPublic("acme", "", true), want: codeOK, check: func(t *testing.T, f *FSM) {
			if p, _ := f.Public("acme/anything"); !p {
				t.Fatal("acme/anything is not public")
			}
		}},
		{name: "public repository", cmd: setPublic("", "acme/app", true), want: codeOK, check: func(t *testing.T, f *FSM) {
			if p, _ := f.Public("acme/app"); !p {
				t.Fatal("acme/app is not public")
			}
			if p, _ := f.Public("acme/other"); p {
				t.Fatal("acme/other is public")
			}
		}},
		{name: "private again", setup: []*fsmv1.Command{setPublic("", "acme/app", true)}, cmd: setPublic("", "acme/app", false), want: codeOK, check: func(t *testing.T, f *FSM) {
			wantNoKeys(t, f, prefixRepositoryPub)
		}},
		{name: "visibility of unknown repository", cmd: setPublic("", "acme/nope", true), want: codeNotFound},
		{name: "visibility of unknown namespace", cmd: setPublic("nope", "", true), want: codeNotFound},
		{name: "visibility of both", cmd: setPublic("acme", "acme/app", true), want: codeInvalid},
		{name: "create token", cmd: createToken(apiToken("t1", "bob", 1000, "acme", "acme")), want: codeOK, check: func(t *testing.T, f *FSM) {
			tok, err := f.APIToken("t1")
			if err != nil || tok.GetCreatedUnixNanos() != 100 || !slices.Equal(tok.GetNamespaces(), []string{"acme"}) || !slices.Equal(tok.GetActions(), []string{"pull", "push"}) {
				t.Fatalf("APIToken = %v, %v", tok, err)
			}
		}},
		{name: "token id taken", setup: []*fsmv1.Command{createToken(apiToken("t1", "bob", 1000))}, cmd: createToken(apiToken("t1", "carol", 1000)), want: codeExists},
		{name: "token already expired", cmd: createToken(apiToken("t1", "bob", 100)), want: codeInvalid, contains: "expires"},
		{name: "token of unknown user", cmd: createToken(apiToken("t1", "zed", 1000)), want: codeNotFound},
		{name: "token with bad hash", cmd: createToken(&fsmv1.ApiToken{Id: "t1", Owner: "bob", Actions: []string{"pull"}, ExpiresUnixNanos: 1000, SecretSha256: []byte("short")}), want: codeInvalid},
		{name: "token with unknown action", cmd: createToken(func() *fsmv1.ApiToken { t := apiToken("t1", "bob", 1000); t.Actions = []string{"admin"}; return t }()), want: codeInvalid},
		{name: "token without actions", cmd: createToken(func() *fsmv1.ApiToken { t := apiToken("t1", "bob", 1000); t.Actions = nil; return t }()), want: codeInvalid},
		{name: "token with bad id", cmd: createToken(apiToken("t-1", "bob", 1000)), want: codeInvalid},
		{name: "revoke token", setup: []*fsmv1.Command{createToken(apiToken("t1", "bob", 1000))}, cmd: deleteToken("t1"), want: codeOK, check: func(t *testing.T, f *FSM) {
			wantNoKeys(t, f, prefixToken, prefixUserToken)
		}},
		{name: "revoke unknown token", cmd: deleteToken("t1"), want: codeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := openTest(t)
			tf.mustApply(baseAccess()...)
			tf.mustApply(tt.setup...)
			res := tf.apply(tt.cmd)
			if res.GetCode() != tt.want || !bytes.Contains([]byte(res.GetMessage()), []byte(tt.contains)) {
				t.Fatalf("result = %v, want %v containing %q", res, tt.want, tt.contains)
			}
			if tt.check != nil {
				tt.check(t, tf.FSM)
			}
		})
	}
}

// wantNoKeys fails if any key starts with one of prefixes.
func wantNoKeys(t *testing.T, f *FSM, prefixes ...string) {
	t.Helper()
	for k := range dump(t, f) {
		for _, p := range prefixes {
			if len(k) >= len(p) && k[:len(p)] == p {
				t.Errorf("key %q remains", k)
			}
		}
	}
}

func TestAccess(t *testing.T) {
	tf := openTest(t)
	tf.mustApply(baseAccess()...)
	tf.mustApply(
		createUser("dave", false), createUser("erin", false),
		grant(groupGrant(collaborator, "acme", "devs")),
		grant(userGrant(owner, "acme", "bob")),
		grant(userGrant(publisher, "", "carol")),
		grant(groupGrant(admin, "", "devs")),
		setPublic("", "acme/app", true),
		claim("erins", "erin"),
	)
	tests := []struct {
		user, repo string
		want       Access
	}{
		{"", "acme/app", Access{Namespace: "acme", NamespaceExists: true, RepositoryExists: true, Public: true}},
		{"", "acme/new", Access{Namespace: "acme", NamespaceExists: true}},
		{"nobody", "acme/app", Access{Namespace: "acme", NamespaceExists: true, RepositoryExists: true, Public: true}},
		{"alice", "acme/app", Access{Namespace: "acme", NamespaceExists: true, RepositoryExists: true, Public: true, Creator: true, Roles: []fsmv1.Role{owner}}},
		{"bob", "acme/x", Access{Namespace: "acme", NamespaceExists: true, Roles: []fsmv1.Role{collaborator, owner, admin}}},
		{"bob", "other/x", Access{Namespace: "other", Roles: []fsmv1.Role{admin}}},
		{"carol", "acme/app", Access{Namespace: "acme", NamespaceExists: true, RepositoryExists: true, Public: true, Roles: []fsmv1.Role{publisher}}},
		{"dave", "acme/app", Access{Namespace: "acme", NamespaceExists: true, RepositoryExists: true, Public: true}},
		{"erin", "erins/first", Access{Namespace: "erins", NamespaceExists: true, Creator: true, Roles: []fsmv1.Role{owner}}},
		{"erin", "solo", Access{Namespace: "solo"}},
	}
	for _, tt := range tests {
		got, err := tf.Access(tt.user, tt.repo)
		if err != nil {
			t.Fatal(err)
		}
		if tt.user != "" && tt.user != "nobody" {
			if got.User.GetName() != tt.user {
				t.Errorf("Access(%q, %q).User = %v", tt.user, tt.repo, got.User)
			}
		} else if got.User != nil {
			t.Errorf("Access(%q, %q).User = %v, want nil", tt.user, tt.repo, got.User)
		}
		got.User = nil
		if !accessEqual(got, tt.want) {
			t.Errorf("Access(%q, %q) = %+v, want %+v", tt.user, tt.repo, got, tt.want)
		}
	}
}

func accessEqual(a, b Access) bool {
	return a.Namespace == b.Namespace && a.NamespaceExists == b.NamespaceExists &&
		a.RepositoryExists == b.RepositoryExists && a.Public == b.Public &&
		a.Creator == b.Creator && slices.Equal(a.Roles, b.Roles)
}

func TestPrincipal(t *testing.T) {
	tf := openTest(t)
	tf.mustApply(baseAccess()...)
	tf.mustApply(
		putManifest("beta/app", "m2"),
		grant(groupGrant(collaborator, "acme", "devs")),
		grant(userGrant(collaborator, "beta", "bob")),
		grant(groupGrant(publisher, "", "devs")),
		claim("bobs", "bob"),
	)
	p, err := tf.Principal("bob")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]fsmv1.Role{"acme": {collaborator}, "beta": {collaborator}, "bobs": {owner}}
	if p.User.GetName() != "bob" || !slices.Equal(p.Groups, []string{"devs"}) || !slices.Equal(p.Global, []fsmv1.Role{publisher}) ||
		!maps.EqualFunc(p.Namespaces, want, slices.Equal) {
		t.Fatalf("Principal = %+v", p)
	}
	if p, err := tf.Principal("zed"); err != nil || p.User != nil || len(p.Namespaces) != 0 {
		t.Fatalf("Principal(zed) = %+v, %v", p, err)
	}
}

func TestAccessLists(t *testing.T) {
	tf := openTest(t)
	tf.mustApply(baseAccess()...)
	tf.mustApply(
		createGroup("ops"), grant(userGrant(publisher, "", "carol")), grant(groupGrant(owner, "acme", "ops")),
		createToken(apiToken("t2", "bob", 1000)), createToken(apiToken("t1", "bob", 1000)), createToken(apiToken("t3", "carol", 1000)),
		setPublic("acme", "", true), setPublic("", "acme/app", true),
	)
	users, _ := tf.Users()
	groups, _ := tf.Groups()
	global, _ := tf.GrantsOn("")
	all, _ := tf.Grants()
	bobs, _ := tf.APITokens("bob")
	tokens, _ := tf.APITokens("")
	nsPub, _ := tf.PublicNamespaces()
	repoPub, _ := tf.PublicRepositories()
	own, err := tf.NamespaceOwner("acme")
	if err != nil || own.GetUser() != "alice" {
		t.Fatalf("NamespaceOwner = %v, %v", own, err)
	}
	checks := []struct {
		what      string
		got, want []string
	}{
		{"users", names(users, (*fsmv1.User).GetName), []string{"alice", "bob", "carol"}},
		{"groups", names(groups, (*fsmv1.Group).GetName), []string{"devs", "ops"}},
		{"global grants", names(global, func(g *fsmv1.Grant) string { return g.GetSubject().GetName() }), []string{"carol"}},
		{"all grants", names(all, func(g *fsmv1.Grant) string { return g.GetNamespace() + ":" + g.GetSubject().GetName() }), []string{":carol", "acme:ops"}},
		{"bob's tokens", names(bobs, (*fsmv1.ApiToken).GetId), []string{"t1", "t2"}},
		{"tokens", names(tokens, (*fsmv1.ApiToken).GetId), []string{"t1", "t2", "t3"}},
		{"public namespaces", nsPub, []string{"acme"}},
		{"public repositories", repoPub, []string{"acme/app"}},
	}
	for _, c := range checks {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if _, err := tf.GroupMembers("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GroupMembers(nope) = %v, want ErrNotFound", err)
	}
	if _, err := tf.NamespaceOwner("beta"); !errors.Is(err, ErrNotFound) {
		t.Errorf("NamespaceOwner(beta) = %v, want ErrNotFound", err)
	}
}

func names[T any](items []T, name func(T) string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		out = append(out, name(it))
	}
	return out
}

func TestSigningKeyRotation(t *testing.T) {
	tf := openTest(t)
	if _, err := tf.SigningKeys(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SigningKeys before the first key = %v, want ErrNotFound", err)
	}
	k1, k2, k3 := newSigningKey(t, "k1"), newSigningKey(t, "k2"), newSigningKey(t, "k3")
	steps := []struct {
		cmd  *fsmv1.Command
		want fsmv1.ResultCode
		keys []string // current first
	}{
		{rotateKey(k1, "k0"), codePrecondition, nil},
		{rotateKey(k1, ""), codeOK, []string{"k1"}},
		{rotateKey(k2, ""), codePrecondition, []string{"k1"}}, // a racing first key loses
		{rotateKey(k2, "k1"), codeOK, []string{"k2", "k1"}},
		{rotateKey(k1, "k2"), codeInvalid, []string{"k2", "k1"}}, // no reuse
		{rotateKey(k3, "k2"), codeOK, []string{"k3", "k2"}},      // k1 is dropped
		{rotateKey(&fsmv1.SigningKey{Id: "k4", Pkcs8: []byte("junk")}, "k3"), codeInvalid, []string{"k3", "k2"}},
		{rotateKey(&fsmv1.SigningKey{Id: "bad id", Pkcs8: k1.GetPkcs8()}, "k3"), codeInvalid, []string{"k3", "k2"}},
	}
	for i, s := range steps {
		if res := tf.apply(s.cmd); res.GetCode() != s.want {
			t.Fatalf("step %d: result %v, want %v", i, res, s.want)
		}
		set, err := tf.SigningKeys()
		if s.keys == nil {
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("step %d: SigningKeys = %v, %v", i, set, err)
			}
			continue
		}
		if err != nil || set.GetCurrentId() != s.keys[0] || !slices.Equal(names(set.GetKeys(), (*fsmv1.SigningKey).GetId), s.keys) {
			t.Fatalf("step %d: SigningKeys = %v, %v; want %v", i, set, err, s.keys)
		}
	}
}

func TestNonP256SigningKeyRefused(t *testing.T) {
	tf := openTest(t)
	ec, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(ec)
	if res := tf.apply(rotateKey(&fsmv1.SigningKey{Id: "p384", Pkcs8: der}, "")); res.GetCode() != codeInvalid {
		t.Fatalf("P-384 key: %v, want invalid", res)
	}
}

func TestAccessSnapshotRoundTrip(t *testing.T) {
	src := openTest(t)
	src.mustApply(baseAccess()...)
	src.mustApply(
		grant(groupGrant(collaborator, "acme", "devs")), grant(userGrant(publisher, "", "carol")),
		setPublic("", "acme/app", true), createToken(apiToken("t1", "bob", 1000, "acme")),
		rotateKey(newSigningKey(t, "k1"), ""),
	)
	want := dump(t, src.FSM)
	data := persist(t, src.FSM)

	dst := openTest(t)
	if err := dst.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, dst.FSM); !mapsEqual(got, want) {
		t.Fatalf("restored state differs:\n got %v\nwant %v", got, want)
	}
	a, err := dst.Access("bob", "acme/app")
	if err != nil || !a.Public || !slices.Equal(a.Roles, []fsmv1.Role{collaborator}) {
		t.Fatalf("Access after restore = %+v, %v", a, err)
	}
	// The user counter survives too: a new user gets a fresh ID.
	dst.index = src.index
	dst.mustApply(createUser("dave", false))
	if u, _ := dst.User("dave"); u.GetId() != 4 {
		t.Fatalf("dave's ID after restore = %d, want 4", u.GetId())
	}
	if set, err := dst.SigningKeys(); err != nil || set.GetCurrentId() != "k1" {
		t.Fatalf("SigningKeys after restore = %v, %v", set, err)
	}
}
