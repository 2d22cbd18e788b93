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

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const (
	codeExists       = fsmpb.ResultCode_RESULT_CODE_ALREADY_EXISTS
	codePrecondition = fsmpb.ResultCode_RESULT_CODE_FAILED_PRECONDITION

	collaborator = fsmpb.Role_ROLE_COLLABORATOR
	owner        = fsmpb.Role_ROLE_OWNER
	publisher    = fsmpb.Role_ROLE_PUBLISHER
	admin        = fsmpb.Role_ROLE_ADMIN

	testHash = "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"
)

func createUser(name string, superuser bool) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_CreateUser{CreateUser: &fsmpb.CreateUser{
		Name: name, PasswordHash: testHash, Superuser: superuser,
	}}}
}

func deleteUser(name string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_DeleteUser{DeleteUser: &fsmpb.DeleteUser{Name: name}}}
}

func setSuperuser(name string, on bool) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_SetUserSuperuser{SetUserSuperuser: &fsmpb.SetUserSuperuser{Name: name, Superuser: on}}}
}

func setPassword(name, hash string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_SetUserPassword{SetUserPassword: &fsmpb.SetUserPassword{Name: name, PasswordHash: hash}}}
}

func createGroup(name string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_CreateGroup{CreateGroup: &fsmpb.CreateGroup{Name: name}}}
}

func deleteGroup(name string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_DeleteGroup{DeleteGroup: &fsmpb.DeleteGroup{Name: name}}}
}

func addMember(group, user string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_AddGroupMember{AddGroupMember: &fsmpb.AddGroupMember{Group: group, User: user}}}
}

func removeMember(group, user string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_RemoveGroupMember{RemoveGroupMember: &fsmpb.RemoveGroupMember{Group: group, User: user}}}
}

func userGrant(role fsmpb.Role, ns, user string) *fsmpb.Grant {
	return &fsmpb.Grant{Role: role, Namespace: ns, Subject: &fsmpb.Subject{Kind: fsmpb.SubjectKind_SUBJECT_KIND_USER, Name: user}}
}

func groupGrant(role fsmpb.Role, ns, group string) *fsmpb.Grant {
	return &fsmpb.Grant{Role: role, Namespace: ns, Subject: &fsmpb.Subject{Kind: fsmpb.SubjectKind_SUBJECT_KIND_GROUP, Name: group}}
}

func grant(g *fsmpb.Grant) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_GrantRole{GrantRole: &fsmpb.GrantRole{Grant: g}}}
}

func revoke(g *fsmpb.Grant) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_RevokeRole{RevokeRole: &fsmpb.RevokeRole{Grant: g}}}
}

func claim(ns, user string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_ClaimNamespace{ClaimNamespace: &fsmpb.ClaimNamespace{Namespace: ns, User: user}}}
}

func setPublic(ns, repo string, public bool) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_SetVisibility{SetVisibility: &fsmpb.SetVisibility{Namespace: ns, Repository: repo, Public: public}}}
}

func apiToken(id, owner string, expires int64, namespaces ...string) *fsmpb.ApiToken {
	sum := sha256.Sum256([]byte("secret-" + id))
	return &fsmpb.ApiToken{Id: id, Owner: owner, Namespaces: namespaces, Actions: []string{"push", "pull"}, ExpiresUnixNanos: expires, SecretSha256: sum[:]}
}

// session is a login session of owner, made with the password of
// fingerprint fp.
func session(id, owner, fp string) *fsmpb.ApiToken {
	t := apiToken(id, owner, 1000)
	t.Actions, t.Session, t.PasswordFingerprint = nil, true, fp
	return t
}

func createToken(t *fsmpb.ApiToken) *fsmpb.Command {
	return &fsmpb.Command{UnixNanos: 100, Op: &fsmpb.Command_CreateApiToken{CreateApiToken: &fsmpb.CreateApiToken{Token: t}}}
}

func deleteToken(id string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_DeleteApiToken{DeleteApiToken: &fsmpb.DeleteApiToken{Id: id}}}
}

func rotateKey(k *fsmpb.SigningKey, expect string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_RotateSigningKey{RotateSigningKey: &fsmpb.RotateSigningKey{Key: k, ExpectCurrentId: expect}}}
}

func newSigningKey(t *testing.T, id string) *fsmpb.SigningKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &fsmpb.SigningKey{Id: id, Pkcs8: der}
}

// baseAccess is a state most access tests start from: users alice
// (superuser), bob and carol, group devs holding bob, and namespace acme
// created by alice with repository acme/app.
func baseAccess() []*fsmpb.Command {
	return []*fsmpb.Command{
		createUser("alice", true), createUser("bob", false), createUser("carol", false),
		createGroup("devs"), addMember("devs", "bob"),
		claim("acme", "alice"), putManifest("acme/app", "m1", "v1"),
	}
}

func TestAccessCommands(t *testing.T) {
	tests := []struct {
		name     string
		setup    []*fsmpb.Command
		cmd      *fsmpb.Command
		want     fsmpb.ResultCode
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
		{name: "clear-text password refused", cmd: &fsmpb.Command{Op: &fsmpb.Command_CreateUser{CreateUser: &fsmpb.CreateUser{Name: "dave", PasswordHash: "hunter2"}}}, want: codeInvalid, contains: "argon2id"},
		{name: "bcrypt hash accepted", cmd: setPassword("bob", "$2a$10$abcdefghijklmnopqrstuv"), want: codeOK},
		{name: "set password of unknown user", cmd: setPassword("zed", testHash), want: codeNotFound},
		{name: "make superuser", cmd: setSuperuser("bob", true), want: codeOK, check: func(t *testing.T, f *FSM) {
			if u, _ := f.User("bob"); !u.GetSuperuser() {
				t.Fatal("bob is not a superuser")
			}
		}},
		{name: "last superuser stays", cmd: setSuperuser("alice", false), want: codePrecondition, contains: "last superuser"},
		{name: "superuser demoted when another exists", setup: []*fsmpb.Command{setSuperuser("bob", true)}, cmd: setSuperuser("alice", false), want: codeOK},
		{name: "last superuser cannot be deleted", cmd: deleteUser("alice"), want: codePrecondition},
		{name: "delete unknown user", cmd: deleteUser("zed"), want: codeNotFound},
		{
			name:  "delete user removes memberships, grants and tokens",
			setup: []*fsmpb.Command{grant(userGrant(collaborator, "acme", "bob")), grant(userGrant(publisher, "", "bob")), createToken(apiToken("t1", "bob", 1000))},
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
			setup: []*fsmpb.Command{grant(groupGrant(owner, "acme", "devs"))},
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
		{name: "grant twice", setup: []*fsmpb.Command{grant(userGrant(owner, "acme", "carol"))}, cmd: grant(userGrant(owner, "acme", "carol")), want: codeOK},
		{name: "grant on unknown namespace", cmd: grant(userGrant(owner, "other", "carol")), want: codeNotFound},
		{name: "grant claimed namespace without repositories", setup: []*fsmpb.Command{claim("fresh", "bob")}, cmd: grant(userGrant(owner, "fresh", "carol")), want: codeOK},
		{name: "grant to unknown user", cmd: grant(userGrant(owner, "acme", "zed")), want: codeNotFound},
		{name: "grant to unknown group", cmd: grant(groupGrant(owner, "acme", "ops")), want: codeNotFound},
		{name: "namespace role without namespace", cmd: grant(userGrant(owner, "", "carol")), want: codeInvalid},
		{name: "global role on namespace", cmd: grant(userGrant(admin, "acme", "carol")), want: codeInvalid, contains: "global"},
		{name: "unknown role", cmd: grant(userGrant(fsmpb.Role_ROLE_UNSPECIFIED, "acme", "carol")), want: codeInvalid},
		{name: "grant without subject", cmd: grant(&fsmpb.Grant{Role: owner, Namespace: "acme"}), want: codeInvalid},
		{name: "revoke", setup: []*fsmpb.Command{grant(userGrant(owner, "acme", "carol"))}, cmd: revoke(userGrant(owner, "acme", "carol")), want: codeOK, check: func(t *testing.T, f *FSM) {
			wantNoKeys(t, f, prefixGrant, prefixSubjectGrant)
		}},
		{name: "revoke missing grant", cmd: revoke(userGrant(owner, "acme", "carol")), want: codeNotFound},
		{name: "creator ownership cannot be revoked", cmd: revoke(userGrant(owner, "acme", "alice")), want: codePrecondition, contains: "cannot be revoked"},
		{name: "claim again by creator", cmd: claim("acme", "alice"), want: codeOK},
		{name: "claim taken namespace", cmd: claim("acme", "bob"), want: codeExists, contains: `created by "alice"`},
		{name: "claim unclaimed existing namespace", setup: []*fsmpb.Command{putManifest("legacy/app", "m2")}, cmd: claim("legacy", "bob"), want: codeExists},
		{name: "claim by unknown user", cmd: claim("new", "zed"), want: codeNotFound},
		{name: "claim invalid namespace", cmd: claim("a/b", "bob"), want: codeInvalid},
		{
			name:  "recreated user does not inherit ownership",
			setup: []*fsmpb.Command{claim("bobs", "bob"), deleteUser("bob"), createUser("bob", false)},
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
		{name: "private again", setup: []*fsmpb.Command{setPublic("", "acme/app", true)}, cmd: setPublic("", "acme/app", false), want: codeOK, check: func(t *testing.T, f *FSM) {
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
		{name: "token id taken", setup: []*fsmpb.Command{createToken(apiToken("t1", "bob", 1000))}, cmd: createToken(apiToken("t1", "carol", 1000)), want: codeExists},
		{name: "token already expired", cmd: createToken(apiToken("t1", "bob", 100)), want: codeInvalid, contains: "expires"},
		{name: "token of unknown user", cmd: createToken(apiToken("t1", "zed", 1000)), want: codeNotFound},
		{name: "token with bad hash", cmd: createToken(&fsmpb.ApiToken{Id: "t1", Owner: "bob", Actions: []string{"pull"}, ExpiresUnixNanos: 1000, SecretSha256: []byte("short")}), want: codeInvalid},
		{name: "token with unknown action", cmd: createToken(func() *fsmpb.ApiToken { t := apiToken("t1", "bob", 1000); t.Actions = []string{"admin"}; return t }()), want: codeInvalid},
		{name: "login session", cmd: createToken(session("s1", "bob", "fp")), want: codeOK, check: func(t *testing.T, f *FSM) {
			if tok, err := f.APIToken("s1"); err != nil || !tok.GetSession() || tok.GetPasswordFingerprint() != "fp" || len(tok.GetActions()) != 0 {
				t.Fatalf("session = %v, %v", tok, err)
			}
		}},
		{name: "login session with actions", cmd: createToken(func() *fsmpb.ApiToken { t := session("s1", "bob", "fp"); t.Actions = []string{"pull"}; return t }()), want: codeInvalid, contains: "every right"},
		{name: "login session with namespaces", cmd: createToken(func() *fsmpb.ApiToken { t := session("s1", "bob", "fp"); t.Namespaces = []string{"acme"}; return t }()), want: codeInvalid, contains: "every right"},
		{name: "login session without a password fingerprint", cmd: createToken(session("s1", "bob", "")), want: codeInvalid, contains: "fingerprint"},
		{name: "API token with a password fingerprint", cmd: createToken(func() *fsmpb.ApiToken { t := apiToken("t1", "bob", 1000); t.PasswordFingerprint = "fp"; return t }()), want: codeInvalid, contains: "only a login session"},
		{name: "token without actions", cmd: createToken(func() *fsmpb.ApiToken { t := apiToken("t1", "bob", 1000); t.Actions = nil; return t }()), want: codeInvalid},
		{name: "token with bad id", cmd: createToken(apiToken("t-1", "bob", 1000)), want: codeInvalid},
		{name: "revoke token", setup: []*fsmpb.Command{createToken(apiToken("t1", "bob", 1000))}, cmd: deleteToken("t1"), want: codeOK, check: func(t *testing.T, f *FSM) {
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
		{"alice", "acme/app", Access{Namespace: "acme", NamespaceExists: true, RepositoryExists: true, Public: true, Creator: true, Roles: []fsmpb.Role{owner}}},
		{"bob", "acme/x", Access{Namespace: "acme", NamespaceExists: true, Roles: []fsmpb.Role{collaborator, owner, admin}}},
		{"bob", "other/x", Access{Namespace: "other", Roles: []fsmpb.Role{admin}}},
		{"carol", "acme/app", Access{Namespace: "acme", NamespaceExists: true, RepositoryExists: true, Public: true, Roles: []fsmpb.Role{publisher}}},
		{"dave", "acme/app", Access{Namespace: "acme", NamespaceExists: true, RepositoryExists: true, Public: true}},
		{"erin", "erins/first", Access{Namespace: "erins", NamespaceExists: true, Creator: true, Roles: []fsmpb.Role{owner}}},
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
		// An Accessor, as listings use, answers the same, asked once or
		// after other repositories of the namespace.
		ac, err := tf.Accessor(tt.user)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			viaAccessor, err := ac.Access(tt.repo)
			if err != nil {
				t.Fatal(err)
			}
			wantUser := tt.user
			if tt.user == "nobody" {
				wantUser = ""
			}
			if viaAccessor.User.GetName() != wantUser {
				t.Errorf("Accessor(%q).Access(%q).User = %v", tt.user, tt.repo, viaAccessor.User)
			}
			if !accessEqual(viaAccessor, tt.want) {
				t.Errorf("Accessor(%q).Access(%q) = %+v, want %+v", tt.user, tt.repo, viaAccessor, tt.want)
			}
			if _, err := ac.Access("acme/app"); err != nil {
				t.Fatal(err)
			}
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
	want := map[string][]fsmpb.Role{"acme": {collaborator}, "beta": {collaborator}, "bobs": {owner}}
	if p.User.GetName() != "bob" || !slices.Equal(p.Groups, []string{"devs"}) || !slices.Equal(p.Global, []fsmpb.Role{publisher}) ||
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
	nsPub, _ := tf.keySuffixes([]byte(prefixNamespacePub), "public namespaces")
	repoPub, _ := tf.keySuffixes([]byte(prefixRepositoryPub), "public repositories")
	own, err := tf.NamespaceOwner("acme")
	if err != nil || own.GetUser() != "alice" {
		t.Fatalf("NamespaceOwner = %v, %v", own, err)
	}
	checks := []struct {
		what      string
		got, want []string
	}{
		{"users", names(users, (*fsmpb.User).GetName), []string{"alice", "bob", "carol"}},
		{"groups", names(groups, (*fsmpb.Group).GetName), []string{"devs", "ops"}},
		{"global grants", names(global, func(g *fsmpb.Grant) string { return g.GetSubject().GetName() }), []string{"carol"}},
		{"all grants", names(all, func(g *fsmpb.Grant) string { return g.GetNamespace() + ":" + g.GetSubject().GetName() }), []string{":carol", "acme:ops"}},
		{"bob's tokens", names(bobs, (*fsmpb.ApiToken).GetId), []string{"t1", "t2"}},
		{"tokens", names(tokens, (*fsmpb.ApiToken).GetId), []string{"t1", "t2", "t3"}},
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
		cmd  *fsmpb.Command
		want fsmpb.ResultCode
		keys []string // current first
	}{
		{rotateKey(k1, "k0"), codePrecondition, nil},
		{rotateKey(k1, ""), codeOK, []string{"k1"}},
		{rotateKey(k2, ""), codePrecondition, []string{"k1"}}, // a racing first key loses
		{rotateKey(k2, "k1"), codeOK, []string{"k2", "k1"}},
		{rotateKey(k1, "k2"), codeInvalid, []string{"k2", "k1"}}, // no reuse
		{rotateKey(k3, "k2"), codeOK, []string{"k3", "k2"}},      // k1 is dropped
		{rotateKey(&fsmpb.SigningKey{Id: "k4", Pkcs8: []byte("junk")}, "k3"), codeInvalid, []string{"k3", "k2"}},
		{rotateKey(&fsmpb.SigningKey{Id: "bad id", Pkcs8: k1.GetPkcs8()}, "k3"), codeInvalid, []string{"k3", "k2"}},
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
		if err != nil || set.GetCurrentId() != s.keys[0] || !slices.Equal(names(set.GetKeys(), (*fsmpb.SigningKey).GetId), s.keys) {
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
	if res := tf.apply(rotateKey(&fsmpb.SigningKey{Id: "p384", Pkcs8: der}, "")); res.GetCode() != codeInvalid {
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
	if err != nil || !a.Public || !slices.Equal(a.Roles, []fsmpb.Role{collaborator}) {
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
