package auth

import (
	"slices"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const testHash = "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"

// applier applies commands to an FSM as consecutive log entries.
type applier struct {
	t     testing.TB
	f     *fsm.FSM
	index uint64
}

func openFSM(t testing.TB) *applier {
	t.Helper()
	f, err := fsm.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &applier{t: t, f: f}
}

func (a *applier) apply(cmds ...*fsmpb.Command) {
	a.t.Helper()
	for _, cmd := range cmds {
		data, err := proto.Marshal(cmd)
		if err != nil {
			a.t.Fatal(err)
		}
		a.index++
		res, _ := a.f.Apply(&raft.Log{Index: a.index, Type: raft.LogCommand, Data: data}).(*fsmpb.Result)
		if res.GetCode() != fsmpb.ResultCode_RESULT_CODE_OK {
			a.t.Fatalf("apply %v: %v", cmd, res)
		}
	}
}

func cmdCreateUser(name string, superuser bool) *fsmpb.Command {
	return fsm.NewCommand(&fsmpb.CreateUser{Name: name, PasswordHash: testHash, Superuser: superuser})
}

func cmdGrant(role fsmpb.Role, ns string, kind fsmpb.SubjectKind, name string) *fsmpb.Command {
	return fsm.NewCommand(&fsmpb.GrantRole{Grant: &fsmpb.Grant{
		Role: role, Namespace: ns, Subject: &fsmpb.Subject{Kind: kind, Name: name},
	}})
}

func cmdPut(repo string) *fsmpb.Command {
	return fsm.NewCommand(&fsmpb.LinkBlob{
		Repository: repo, Digest: "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Size: 1,
	})
}

const (
	user  = fsmpb.SubjectKind_SUBJECT_KIND_USER
	group = fsmpb.SubjectKind_SUBJECT_KIND_GROUP
)

// matrixState is a registry with one user per role: namespace acme
// (created by root) holds the private acme/app and the public acme/pub.
func matrixState(t testing.TB) *fsm.FSM {
	a := openFSM(t)
	a.apply(
		cmdCreateUser("root", true),
		cmdCreateUser("nobody", false), cmdCreateUser("collab", false), cmdCreateUser("member", false),
		cmdCreateUser("own", false), cmdCreateUser("pub", false), cmdCreateUser("adm", false),
		fsm.NewCommand(&fsmpb.CreateGroup{Name: "devs"}),
		fsm.NewCommand(&fsmpb.AddGroupMember{Group: "devs", User: "member"}),
		fsm.NewCommand(&fsmpb.ClaimNamespace{Namespace: "acme", User: "root"}),
		cmdPut("acme/app"), cmdPut("acme/pub"),
		fsm.NewCommand(&fsmpb.SetVisibility{Repository: "acme/pub", Public: true}),
		cmdGrant(fsmpb.Role_ROLE_COLLABORATOR, "acme", user, "collab"),
		cmdGrant(fsmpb.Role_ROLE_COLLABORATOR, "acme", group, "devs"),
		cmdGrant(fsmpb.Role_ROLE_OWNER, "acme", user, "own"),
		cmdGrant(fsmpb.Role_ROLE_PUBLISHER, "", user, "pub"),
		cmdGrant(fsmpb.Role_ROLE_ADMIN, "", user, "adm"),
	)
	return a.f
}

func TestPermissionMatrix(t *testing.T) {
	f := matrixState(t)
	type request struct {
		name   string
		action Action
		repo   string
	}
	requests := []request{
		{"pull private", ActionPull, "acme/app"},
		{"pull public", ActionPull, "acme/pub"},
		{"push to a new namespace", ActionPush, "newns/app"},
		{"push a new repository", ActionPush, "acme/new"},
		{"push to an existing one", ActionPush, "acme/app"},
		{"delete", ActionDelete, "acme/app"},
		{"tag", ActionTag, "acme/app"},
		{"manage roles", ActionManageRoles, "acme/app"},
		{"catalog", ActionCatalog, ""},
	}
	const T, F = true, false
	callers := []struct {
		name   string
		caller Caller
		want   []bool // in the order of requests
	}{
		{"anonymous", Caller{}, []bool{F, T, F, F, F, F, F, F, T}}, // the catalog then lists public repositories
		{"no role", Caller{User: "nobody"}, []bool{F, T, F, F, F, F, F, F, T}},
		{"unknown user", Caller{User: "ghost"}, []bool{F, T, F, F, F, F, F, F, F}},
		{"collaborator", Caller{User: "collab"}, []bool{T, T, F, F, T, F, T, F, T}},
		{"collaborator through a group", Caller{User: "member"}, []bool{T, T, F, F, T, F, T, F, T}},
		{"owner", Caller{User: "own"}, []bool{T, T, F, T, T, F, T, T, T}},
		{"publisher", Caller{User: "pub"}, []bool{T, T, T, T, T, F, T, T, T}},
		{"admin", Caller{User: "adm"}, []bool{T, T, T, T, T, T, T, T, T}},
		{"superuser", Caller{User: "root"}, []bool{T, T, T, T, T, T, T, T, T}},
		{"admin's pull-only token", Caller{User: "adm", Token: &fsmpb.ApiToken{Actions: []string{"pull"}}}, []bool{T, T, F, F, F, F, F, F, T}},
		{"admin's token for other namespaces", Caller{User: "adm", Token: &fsmpb.ApiToken{Actions: []string{"pull", "push", "delete"}, Namespaces: []string{"newns"}}}, []bool{F, T, T, F, F, F, F, F, T}},
	}
	for _, c := range callers {
		for i, r := range requests {
			st, err := f.Access(c.caller.User, r.repo)
			if err != nil {
				t.Fatal(err)
			}
			if got := Decide(c.caller, r.action, r.repo, st); got != c.want[i] {
				t.Errorf("%s: %s %s = %v, want %v", c.name, r.name, r.repo, got, c.want[i])
			}
		}
	}
}

func TestPermissions(t *testing.T) {
	tests := []struct {
		role fsmpb.Role
		want []Permission
	}{
		{fsmpb.Role_ROLE_UNSPECIFIED, nil},
		{fsmpb.Role_ROLE_COLLABORATOR, []Permission{PermPull, PermPush, PermChangeTags, PermEditMetadata}},
		{fsmpb.Role_ROLE_OWNER, []Permission{PermPull, PermPush, PermChangeTags, PermEditMetadata, PermCreateRepository, PermManageRoles, PermSetVisibility}},
		{fsmpb.Role_ROLE_PUBLISHER, []Permission{PermPull, PermPush, PermChangeTags, PermEditMetadata, PermCreateRepository, PermManageRoles, PermSetVisibility, PermCreateNamespace}},
		{fsmpb.Role_ROLE_ADMIN, []Permission{PermPull, PermPush, PermChangeTags, PermEditMetadata, PermCreateRepository, PermManageRoles, PermSetVisibility, PermCreateNamespace, PermDeleteRepository, PermManageRemotes}},
	}
	for _, tt := range tests {
		if got := Permissions(tt.role); !slices.Equal(got, tt.want) {
			t.Errorf("Permissions(%v) = %v, want %v", tt.role, got, tt.want)
		}
	}
	if got := SuperuserPermissions(); got[len(got)-1] != PermManageAccounts || len(got) != 11 {
		t.Errorf("SuperuserPermissions = %v", got)
	}
	got := PermissionsOf([]fsmpb.Role{fsmpb.Role_ROLE_PUBLISHER, fsmpb.Role_ROLE_COLLABORATOR}, false)
	if !slices.Equal(got, Permissions(fsmpb.Role_ROLE_PUBLISHER)) {
		t.Errorf("PermissionsOf(publisher, collaborator) = %v", got)
	}
}

func TestCreatorBecomesOwner(t *testing.T) {
	f := matrixState(t)
	st, _ := f.Access("pub", "fresh/app")
	if !Decide(Caller{User: "pub"}, ActionPush, "fresh/app", st) || st.NamespaceExists {
		t.Fatal("publisher may not create namespace fresh")
	}
	a := &applier{t: t, f: f, index: f.AppliedIndex()}
	a.apply(
		fsm.NewCommand(&fsmpb.ClaimNamespace{Namespace: "fresh", User: "pub"}),
		cmdPut("fresh/app"),
		cmdGrant(fsmpb.Role_ROLE_PUBLISHER, "", user, "nobody"), // another publisher
	)
	st, _ = f.Access("pub", "fresh/app")
	if !st.Creator || !slices.Contains(st.Roles, fsmpb.Role_ROLE_OWNER) || !st.NamespaceExists {
		t.Fatalf("after the first push: %+v", st)
	}
	// The creator's ownership outlives its global role.
	a.apply(fsm.NewCommand(&fsmpb.RevokeRole{Grant: &fsmpb.Grant{
		Role: fsmpb.Role_ROLE_PUBLISHER, Subject: &fsmpb.Subject{Kind: user, Name: "pub"},
	}}))
	st, _ = f.Access("pub", "fresh/other")
	if !Decide(Caller{User: "pub"}, ActionPush, "fresh/other", st) || !Decide(Caller{User: "pub"}, ActionManageRoles, "fresh/other", st) {
		t.Fatalf("creator lost ownership: %+v", st)
	}
	// Other publishers own it too (globally), but collaborators of other
	// namespaces do not.
	st, _ = f.Access("collab", "fresh/app")
	if Decide(Caller{User: "collab"}, ActionPull, "fresh/app", st) {
		t.Fatal("collaborator of acme pulls fresh/app")
	}
}

func TestHasPermission(t *testing.T) {
	f := matrixState(t)
	tests := []struct {
		caller Caller
		perm   Permission
		want   bool
	}{
		{Caller{User: "root"}, PermManageAccounts, true},
		{Caller{User: "adm"}, PermManageAccounts, false},
		{Caller{User: "adm"}, PermManageRemotes, true},
		{Caller{User: "pub"}, PermManageRemotes, false},
		{Caller{User: "pub"}, PermCreateNamespace, true},
		{Caller{User: "own"}, PermCreateNamespace, false},
		{Caller{User: "root", Token: &fsmpb.ApiToken{Actions: []string{"push"}}}, PermManageAccounts, false},
		{Caller{}, PermCreateNamespace, false},
	}
	for _, tt := range tests {
		pr, err := f.Principal(tt.caller.User)
		if err != nil {
			t.Fatal(err)
		}
		if got := HasPermission(tt.caller, tt.perm, pr); got != tt.want {
			t.Errorf("HasPermission(%+v, %s) = %v, want %v", tt.caller, tt.perm, got, tt.want)
		}
	}
}

func TestConfine(t *testing.T) {
	all := SuperuserPermissions()
	tests := []struct {
		name  string
		token *fsmpb.ApiToken
		ns    string
		want  []Permission
	}{
		{"no token", nil, "acme", all},
		{"pull anywhere", &fsmpb.ApiToken{Actions: []string{"pull"}}, "acme", []Permission{PermPull}},
		{"push in its namespace", &fsmpb.ApiToken{Actions: []string{"push"}, Namespaces: []string{"acme"}}, "acme",
			[]Permission{PermPush, PermChangeTags, PermEditMetadata, PermCreateRepository, PermCreateNamespace}},
		{"outside its namespaces", &fsmpb.ApiToken{Actions: []string{"pull", "push", "delete"}, Namespaces: []string{"acme"}}, "other", nil},
		{"global, for a confined token", &fsmpb.ApiToken{Actions: []string{"pull"}, Namespaces: []string{"acme"}}, "", nil},
		{"delete", &fsmpb.ApiToken{Actions: []string{"delete"}}, "", []Permission{PermDeleteRepository}},
	}
	for _, tt := range tests {
		if got := Confine(tt.token, tt.ns, all); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
