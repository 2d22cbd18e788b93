package auth

import (
	"slices"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Permission is one thing a role allows.
type Permission string

// Permissions, in the order Permissions lists them. The namespace ones hold
// on the namespace of a grant, or on every namespace for a global role.
const (
	// PermPull pulls private repositories.
	PermPull Permission = "pull"
	// PermPush pushes to existing repositories.
	PermPush Permission = "push"
	// PermChangeTags moves and removes tags.
	PermChangeTags Permission = "change_tags"
	// PermEditMetadata edits readmes and descriptions.
	PermEditMetadata Permission = "edit_metadata"
	// PermCreateRepository pushes a new repository into an existing
	// namespace.
	PermCreateRepository Permission = "create_repository"
	// PermManageRoles grants and revokes roles on the namespace.
	PermManageRoles Permission = "manage_roles"
	// PermSetVisibility makes the namespace or its repositories public or
	// private. (Galaxy lets collaborators flip the private flag; exposing
	// a repository to anonymous users is an owner's decision here.)
	PermSetVisibility Permission = "set_visibility"
	// PermCreateNamespace pushes to a namespace that does not exist yet.
	PermCreateNamespace Permission = "create_namespace"
	// PermDeleteRepository deletes repositories, manifests, tags and blobs
	// through the registry API.
	PermDeleteRepository Permission = "delete_repository"
	// PermManageRemotes creates, changes and deletes remote registries.
	PermManageRemotes Permission = "manage_remotes"
	// PermManageAccounts manages users, groups and global roles; only
	// superusers hold it.
	PermManageAccounts Permission = "manage_accounts"
)

// rolePermissions lists what each role adds to the role below it.
var rolePermissions = []struct {
	role  fsmpb.Role
	perms []Permission
}{
	{fsmpb.Role_ROLE_COLLABORATOR, []Permission{PermPull, PermPush, PermChangeTags, PermEditMetadata}},
	{fsmpb.Role_ROLE_OWNER, []Permission{PermCreateRepository, PermManageRoles, PermSetVisibility}},
	{fsmpb.Role_ROLE_PUBLISHER, []Permission{PermCreateNamespace}},
	{fsmpb.Role_ROLE_ADMIN, []Permission{PermDeleteRepository, PermManageRemotes}},
}

// Permissions returns the permissions role grants, its inherited ones
// included, or nil for an unknown role.
func Permissions(role fsmpb.Role) []Permission {
	var perms []Permission
	for _, rp := range rolePermissions {
		perms = append(perms, rp.perms...)
		if rp.role == role {
			return perms
		}
	}
	return nil
}

// SuperuserPermissions returns every permission.
func SuperuserPermissions() []Permission {
	return append(Permissions(fsmpb.Role_ROLE_ADMIN), PermManageAccounts)
}

// PermissionsOf returns what a caller holds on a namespace given the roles
// it holds there (global ones included) and its superuser flag, in the
// order Permissions lists them.
func PermissionsOf(roles []fsmpb.Role, superuser bool) []Permission {
	if superuser {
		return SuperuserPermissions()
	}
	var perms []Permission
	for _, r := range roles {
		for _, p := range Permissions(r) {
			if !slices.Contains(perms, p) {
				perms = append(perms, p)
			}
		}
	}
	order := SuperuserPermissions()
	slices.SortFunc(perms, func(a, b Permission) int {
		return slices.Index(order, a) - slices.Index(order, b)
	})
	return perms
}

// Action is what a caller asks to do with a repository.
type Action string

// Actions Decide answers. The first three are the actions of registry
// token scopes.
const (
	ActionPull          Action = "pull"
	ActionPush          Action = "push"
	ActionDelete        Action = "delete"
	ActionTag           Action = "tag"
	ActionEditMetadata  Action = "edit_metadata"
	ActionSetVisibility Action = "set_visibility"
	ActionManageRoles   Action = "manage_roles"
	// ActionCatalog lists repositories; the list is then filtered to what
	// the caller may pull, so anyone may, anonymous callers included (they
	// see the public repositories).
	ActionCatalog Action = "catalog"
)

// Caller is who asks.
type Caller struct {
	// User is the user name; empty for an anonymous caller.
	User string
	// Token, if the caller authenticated with an API token, limits it to
	// the token's namespaces and actions.
	Token *fsmpb.ApiToken
	// Session, if the caller authenticated with a login session of the
	// CLI (an API token marked session), is its ID. A session carries no
	// restrictions: Token stays nil, as for a password.
	Session string
	// login is what the caller authenticated with, for the tokens issued
	// to it; zero for an anonymous caller.
	login Login
}

// Anonymous reports whether c presented no credentials.
func (c Caller) Anonymous() bool { return c.User == "" }

// Decide reports whether c may do a to repo, given st, the state read by
// fsm.FSM.Access for c.User and repo. For ActionCatalog repo is ignored.
func Decide(c Caller, a Action, repo string, st fsm.Access) bool {
	if a == ActionPull && st.Public {
		return true // anyone may, so no token limits it
	}
	if !tokenAllows(c.Token, a, st.Namespace) {
		return false
	}
	if a == ActionCatalog && c.Anonymous() {
		return true
	}
	if c.Anonymous() || st.User == nil || st.User.GetName() != c.User {
		return false // anonymous, or the account is gone
	}
	if a == ActionCatalog {
		return true
	}
	need := required(a, st)
	return need != "" && slices.Contains(PermissionsOf(st.Roles, st.User.GetSuperuser()), need)
}

// required returns the permission a needs on st's repository.
func required(a Action, st fsm.Access) Permission {
	switch a {
	case ActionPull:
		return PermPull
	case ActionPush:
		switch {
		case st.RepositoryExists:
			return PermPush
		case st.NamespaceExists:
			return PermCreateRepository
		default:
			return PermCreateNamespace
		}
	case ActionDelete:
		return PermDeleteRepository
	case ActionTag:
		return PermChangeTags
	case ActionEditMetadata:
		return PermEditMetadata
	case ActionSetVisibility:
		return PermSetVisibility
	case ActionManageRoles:
		return PermManageRoles
	}
	return ""
}

// tokenActions maps an Action to the API token action that covers it; ""
// means API tokens may not do it.
var tokenActions = map[Action]string{
	ActionPull:         "pull",
	ActionCatalog:      "pull",
	ActionPush:         "push",
	ActionTag:          "push",
	ActionEditMetadata: "push",
	ActionDelete:       "delete",
}

// tokenAllows reports whether API token t (nil: none) covers a on ns.
func tokenAllows(t *fsmpb.ApiToken, a Action, ns string) bool {
	if t == nil {
		return true
	}
	need := tokenActions[a]
	if need == "" || !slices.Contains(t.GetActions(), need) {
		return false
	}
	return a == ActionCatalog || len(t.GetNamespaces()) == 0 || slices.Contains(t.GetNamespaces(), ns)
}

// tokenPermissions maps each API token action to the permissions a caller
// can use through it: what the actions tokenActions maps to require.
var tokenPermissions = map[string][]Permission{
	"pull":   {PermPull},
	"push":   {PermPush, PermChangeTags, PermEditMetadata, PermCreateRepository, PermCreateNamespace},
	"delete": {PermDeleteRepository},
}

// Confine returns the part of perms, held on namespace ns ("" for every
// namespace), that a caller can use through API token t (nil: all of
// them): none outside the token's namespaces, and only those its actions
// cover.
func Confine(t *fsmpb.ApiToken, ns string, perms []Permission) []Permission {
	if t == nil {
		return perms
	}
	if len(t.GetNamespaces()) > 0 && (ns == "" || !slices.Contains(t.GetNamespaces(), ns)) {
		return nil
	}
	var out []Permission
	for _, p := range perms {
		for _, a := range t.GetActions() {
			if slices.Contains(tokenPermissions[a], p) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// HasPermission reports whether a caller that is not anonymous holds p
// globally: PermManageAccounts, PermManageRemotes, PermCreateNamespace.
// pr is fsm.FSM.Principal of c.User.
func HasPermission(c Caller, p Permission, pr fsm.Principal) bool {
	if c.Anonymous() || c.Token != nil || pr.User == nil || pr.User.GetName() != c.User {
		return false
	}
	return slices.Contains(PermissionsOf(pr.Global, pr.User.GetSuperuser()), p)
}
