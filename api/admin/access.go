package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Token lifetimes.
const (
	defaultTokenLifetime = 30 * 24 * time.Hour
	maxTokenLifetime     = 5 * 365 * 24 * time.Hour
)

// accessService implements wharf.v1.AccessService. Every RPC checks the
// caller's permission first; changes are Raft commands, and each is
// written to the audit log.
type accessService struct {
	wharfv1connect.UnimplementedAccessServiceHandler
	cfg Config
}

func (s *accessService) state(ctx context.Context) (*fsm.FSM, error) {
	f, err := s.cfg.Auth.Store.AccessState(ctx)
	if err != nil {
		return nil, stateError(err)
	}
	return f, nil
}

func hashPassword(password string) (string, error) {
	if len(password) < 8 {
		return "", connect.NewError(connect.CodeInvalidArgument, errors.New("the password needs at least 8 characters"))
	}
	h, err := auth.HashPassword(password)
	if err != nil {
		return "", connect.NewError(connect.CodeInvalidArgument, err)
	}
	return h, nil
}

// --- users ---

func (s *accessService) CreateUser(ctx context.Context, req *connect.Request[wharfv1.CreateUserRequest]) (*connect.Response[wharfv1.CreateUserResponse], error) {
	c, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts)
	if err != nil {
		return nil, err
	}
	h, err := hashPassword(req.Msg.Password)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.CreateUser{Name: req.Msg.Name, PasswordHash: h, Superuser: req.Msg.Superuser})
	if err := s.cfg.apply(ctx, c, "user_created", req.Msg.Name, cmd, "superuser", req.Msg.Superuser); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.CreateUserResponse{}), nil
}

func (s *accessService) ListUsers(ctx context.Context, _ *connect.Request[wharfv1.ListUsersRequest]) (*connect.Response[wharfv1.ListUsersResponse], error) {
	if _, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts); err != nil {
		return nil, err
	}
	f, err := s.state(ctx)
	if err != nil {
		return nil, err
	}
	users, err := f.Users()
	if err != nil {
		return nil, stateError(err)
	}
	resp := &wharfv1.ListUsersResponse{}
	for _, u := range users {
		pr, err := f.Principal(u.GetName())
		if err != nil {
			return nil, stateError(err)
		}
		resp.Users = append(resp.Users, &wharfv1.User{Name: u.GetName(), Superuser: u.GetSuperuser(), Groups: pr.Groups, CreatedUnixNanos: u.GetCreatedUnixNanos()})
	}
	return connect.NewResponse(resp), nil
}

func (s *accessService) DeleteUser(ctx context.Context, req *connect.Request[wharfv1.DeleteUserRequest]) (*connect.Response[wharfv1.DeleteUserResponse], error) {
	c, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.DeleteUser{Name: req.Msg.Name})
	if err := s.cfg.apply(ctx, c, "user_deleted", req.Msg.Name, cmd); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.DeleteUserResponse{}), nil
}

func (s *accessService) SetPassword(ctx context.Context, req *connect.Request[wharfv1.SetPasswordRequest]) (*connect.Response[wharfv1.SetPasswordResponse], error) {
	c, err := requireLogin(ctx)
	if err != nil {
		return nil, err
	}
	name := req.Msg.Name
	if name == "" || name == c.User {
		name = c.User
		if c.Token != nil {
			return nil, connect.NewError(connect.CodePermissionDenied, errors.New("an API token cannot change its owner's password; log in with the password"))
		}
	} else if _, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts); err != nil {
		return nil, err
	}
	h, err := hashPassword(req.Msg.Password)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.SetUserPassword{Name: name, PasswordHash: h})
	if err := s.cfg.apply(ctx, c, "password_changed", name, cmd); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.SetPasswordResponse{}), nil
}

// --- groups ---

func (s *accessService) CreateGroup(ctx context.Context, req *connect.Request[wharfv1.CreateGroupRequest]) (*connect.Response[wharfv1.CreateGroupResponse], error) {
	c, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.CreateGroup{Name: req.Msg.Name})
	if err := s.cfg.apply(ctx, c, "group_created", req.Msg.Name, cmd); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.CreateGroupResponse{}), nil
}

func (s *accessService) ListGroups(ctx context.Context, _ *connect.Request[wharfv1.ListGroupsRequest]) (*connect.Response[wharfv1.ListGroupsResponse], error) {
	if _, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts); err != nil {
		return nil, err
	}
	f, err := s.state(ctx)
	if err != nil {
		return nil, err
	}
	groups, err := f.Groups()
	if err != nil {
		return nil, stateError(err)
	}
	resp := &wharfv1.ListGroupsResponse{}
	for _, g := range groups {
		members, err := f.GroupMembers(g.GetName())
		if err != nil {
			return nil, stateError(err)
		}
		resp.Groups = append(resp.Groups, &wharfv1.Group{Name: g.GetName(), Members: members})
	}
	return connect.NewResponse(resp), nil
}

func (s *accessService) DeleteGroup(ctx context.Context, req *connect.Request[wharfv1.DeleteGroupRequest]) (*connect.Response[wharfv1.DeleteGroupResponse], error) {
	c, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.DeleteGroup{Name: req.Msg.Name})
	if err := s.cfg.apply(ctx, c, "group_deleted", req.Msg.Name, cmd); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.DeleteGroupResponse{}), nil
}

func (s *accessService) AddGroupMember(ctx context.Context, req *connect.Request[wharfv1.AddGroupMemberRequest]) (*connect.Response[wharfv1.AddGroupMemberResponse], error) {
	c, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.AddGroupMember{Group: req.Msg.Group, User: req.Msg.User})
	if err := s.cfg.apply(ctx, c, "group_member_added", req.Msg.Group, cmd, "user", req.Msg.User); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.AddGroupMemberResponse{}), nil
}

func (s *accessService) RemoveGroupMember(ctx context.Context, req *connect.Request[wharfv1.RemoveGroupMemberRequest]) (*connect.Response[wharfv1.RemoveGroupMemberResponse], error) {
	c, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.RemoveGroupMember{Group: req.Msg.Group, User: req.Msg.User})
	if err := s.cfg.apply(ctx, c, "group_member_removed", req.Msg.Group, cmd, "user", req.Msg.User); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.RemoveGroupMemberResponse{}), nil
}

// --- roles ---

// parseRole reads a role name such as "collaborator".
func parseRole(name string) (fsmpb.Role, error) {
	r := fsmpb.Role(fsmpb.Role_value["ROLE_"+strings.ToUpper(name)])
	if r == fsmpb.Role_ROLE_UNSPECIFIED {
		return r, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("unknown role %q: use collaborator, owner, publisher or admin", name))
	}
	return r, nil
}

func roleName(r fsmpb.Role) string { return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_")) }

// grantOf turns the API's RoleGrant into the FSM's Grant.
func grantOf(g *wharfv1.RoleGrant) (*fsmpb.Grant, error) {
	if g == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("no grant"))
	}
	role, err := parseRole(g.Role)
	if err != nil {
		return nil, err
	}
	out := &fsmpb.Grant{Role: role, Namespace: g.Namespace}
	switch {
	case (g.User == "") == (g.Group == ""):
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("name exactly one of a user and a group"))
	case g.User != "":
		out.Subject = &fsmpb.Subject{Kind: fsmpb.SubjectKind_SUBJECT_KIND_USER, Name: g.User}
	default:
		out.Subject = &fsmpb.Subject{Kind: fsmpb.SubjectKind_SUBJECT_KIND_GROUP, Name: g.Group}
	}
	return out, nil
}

// requireManageRoles checks that the caller may change grant g: the
// global roles are superusers' business, a namespace's roles its owners'.
func (s *accessService) requireManageRoles(ctx context.Context, g *fsmpb.Grant) (auth.Caller, error) {
	if fsm.GlobalRole(g.GetRole()) || g.GetNamespace() == "" {
		return s.cfg.requireGlobal(ctx, auth.PermManageAccounts)
	}
	return s.cfg.requireOn(ctx, auth.ActionManageRoles, g.GetNamespace())
}

func (s *accessService) GrantRole(ctx context.Context, req *connect.Request[wharfv1.GrantRoleRequest]) (*connect.Response[wharfv1.GrantRoleResponse], error) {
	g, err := grantOf(req.Msg.Grant)
	if err != nil {
		return nil, err
	}
	c, err := s.requireManageRoles(ctx, g)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.GrantRole{Grant: g})
	if err := s.cfg.apply(ctx, c, "role_granted", subjectString(g.GetSubject()), cmd, "role", roleName(g.GetRole()), "namespace", g.GetNamespace()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.GrantRoleResponse{}), nil
}

func (s *accessService) RevokeRole(ctx context.Context, req *connect.Request[wharfv1.RevokeRoleRequest]) (*connect.Response[wharfv1.RevokeRoleResponse], error) {
	g, err := grantOf(req.Msg.Grant)
	if err != nil {
		return nil, err
	}
	c, err := s.requireManageRoles(ctx, g)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.RevokeRole{Grant: g})
	if err := s.cfg.apply(ctx, c, "role_revoked", subjectString(g.GetSubject()), cmd, "role", roleName(g.GetRole()), "namespace", g.GetNamespace()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.RevokeRoleResponse{}), nil
}

func subjectString(s *fsmpb.Subject) string {
	if s.GetKind() == fsmpb.SubjectKind_SUBJECT_KIND_GROUP {
		return "group:" + s.GetName()
	}
	return s.GetName()
}

func (s *accessService) ListRoles(ctx context.Context, req *connect.Request[wharfv1.ListRolesRequest]) (*connect.Response[wharfv1.ListRolesResponse], error) {
	ns := req.Msg.Namespace
	if ns == "" {
		if _, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts); err != nil {
			return nil, err
		}
	} else if _, err := s.cfg.requireOn(ctx, auth.ActionManageRoles, ns); err != nil {
		return nil, err
	}
	f, err := s.state(ctx)
	if err != nil {
		return nil, err
	}
	grants, err := namespaceGrants(f, ns)
	if err != nil {
		return nil, stateError(err)
	}
	return connect.NewResponse(&wharfv1.ListRolesResponse{Grants: grants}), nil
}

func (s *accessService) ListRolePermissions(_ context.Context, req *connect.Request[wharfv1.ListRolePermissionsRequest]) (*connect.Response[wharfv1.ListRolePermissionsResponse], error) {
	roles := []fsmpb.Role{fsmpb.Role_ROLE_COLLABORATOR, fsmpb.Role_ROLE_OWNER, fsmpb.Role_ROLE_PUBLISHER, fsmpb.Role_ROLE_ADMIN}
	if req.Msg.Role != "" {
		r, err := parseRole(req.Msg.Role)
		if err != nil {
			return nil, err
		}
		roles = []fsmpb.Role{r}
	}
	resp := &wharfv1.ListRolePermissionsResponse{}
	for _, r := range roles {
		resp.Roles = append(resp.Roles, &wharfv1.RolePermissions{Role: roleName(r), Permissions: permStrings(auth.Permissions(r))})
	}
	return connect.NewResponse(resp), nil
}

func permStrings(perms []auth.Permission) []string {
	out := make([]string, len(perms))
	for i, p := range perms {
		out[i] = string(p)
	}
	return out
}

// --- visibility ---

func (s *accessService) SetVisibility(ctx context.Context, req *connect.Request[wharfv1.SetVisibilityRequest]) (*connect.Response[wharfv1.SetVisibilityResponse], error) {
	target := req.Msg.Repository
	if target == "" {
		target = req.Msg.Namespace
	}
	if (req.Msg.Namespace == "") == (req.Msg.Repository == "") {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("name exactly one of a namespace and a repository"))
	}
	c, err := s.cfg.requireOn(ctx, auth.ActionSetVisibility, target)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.SetVisibility{
		Namespace: req.Msg.Namespace, Repository: req.Msg.Repository, Public: req.Msg.Public,
	})
	if err := s.cfg.apply(ctx, c, "visibility_set", target, cmd, "public", req.Msg.Public); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.SetVisibilityResponse{}), nil
}

// --- API tokens ---

func (s *accessService) CreateToken(ctx context.Context, req *connect.Request[wharfv1.CreateTokenRequest]) (*connect.Response[wharfv1.CreateTokenResponse], error) {
	c, err := requireLogin(ctx)
	if err != nil {
		return nil, err
	}
	if _, on := caller(ctx); !on {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("tokens are created on the public listener"))
	}
	if c.Token != nil {
		return nil, errTokenManagesTokens
	}
	var fingerprint string
	if req.Msg.Session {
		if fingerprint, err = s.sessionFingerprint(ctx, c, req.Msg); err != nil {
			return nil, err
		}
	}
	life := defaultTokenLifetime
	if req.Msg.ExpiresInSeconds < 0 {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("expires_in_seconds must not be negative"))
	}
	if req.Msg.ExpiresInSeconds > 0 {
		life = min(time.Duration(req.Msg.ExpiresInSeconds)*time.Second, maxTokenLifetime)
	}
	id, secret, sum := auth.NewAPIToken()
	now := time.Now()
	t := &fsmpb.ApiToken{
		Id: id, Owner: c.User, Description: req.Msg.Description, Namespaces: req.Msg.Namespaces,
		Actions: req.Msg.Actions, ExpiresUnixNanos: now.Add(life).UnixNano(), SecretSha256: sum,
		Session: req.Msg.Session, PasswordFingerprint: fingerprint,
	}
	cmd := fsm.NewCommand(&fsmpb.CreateApiToken{Token: t})
	cmd.UnixNanos = now.UnixNano() // the token's creation, matching its expiry
	if err := s.cfg.apply(ctx, c, "token_created", id, cmd, "session", t.Session, "namespaces", t.Namespaces, "actions", t.Actions, "expires", now.Add(life).UTC().Format(time.RFC3339)); err != nil {
		return nil, err
	}
	t.CreatedUnixNanos = now.UnixNano()
	return connect.NewResponse(&wharfv1.CreateTokenResponse{Token: tokenInfo(t), Secret: secret}), nil
}

// sessionFingerprint checks a request for a login session, which only a
// password login may make, with no limits, and returns what the session
// records of the caller's password.
func (s *accessService) sessionFingerprint(ctx context.Context, c auth.Caller, m *wharfv1.CreateTokenRequest) (string, error) {
	switch {
	case c.Session != "":
		return "", connect.NewError(connect.CodePermissionDenied, errors.New("a login session cannot create another; log in with the password"))
	case len(m.Namespaces) > 0:
		return "", connect.NewError(connect.CodeInvalidArgument, errors.New("namespaces: a login session has every right of its user; create an API token to limit one"))
	case len(m.Actions) > 0:
		return "", connect.NewError(connect.CodeInvalidArgument, errors.New("actions: a login session has every right of its user; create an API token to limit one"))
	}
	u, err := s.cfg.Auth.Store.User(ctx, c.User)
	if err != nil {
		return "", stateError(err)
	}
	return auth.SessionFingerprint(u), nil
}

var errTokenManagesTokens = connect.NewError(connect.CodePermissionDenied, errors.New("an API token cannot manage tokens; log in with the password"))

// requirePassword refuses anonymous callers and API tokens.
func requirePassword(ctx context.Context) (auth.Caller, error) {
	c, err := requireLogin(ctx)
	if err == nil && c.Token != nil {
		err = errTokenManagesTokens
	}
	return c, err
}

func tokenInfo(t *fsmpb.ApiToken) *wharfv1.ApiToken {
	return &wharfv1.ApiToken{
		Id: t.GetId(), Owner: t.GetOwner(), Description: t.GetDescription(), Namespaces: t.GetNamespaces(),
		Actions: t.GetActions(), ExpiresUnixNanos: t.GetExpiresUnixNanos(), CreatedUnixNanos: t.GetCreatedUnixNanos(),
		Session: t.GetSession(),
	}
}

func (s *accessService) ListTokens(ctx context.Context, _ *connect.Request[wharfv1.ListTokensRequest]) (*connect.Response[wharfv1.ListTokensResponse], error) {
	c, err := requirePassword(ctx)
	if err != nil {
		return nil, err
	}
	owner := c.User
	if _, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts); err == nil {
		owner = ""
	}
	f, err := s.state(ctx)
	if err != nil {
		return nil, err
	}
	tokens, err := f.APITokens(owner)
	if err != nil {
		return nil, stateError(err)
	}
	resp := &wharfv1.ListTokensResponse{}
	for _, t := range tokens {
		resp.Tokens = append(resp.Tokens, tokenInfo(t))
	}
	return connect.NewResponse(resp), nil
}

func (s *accessService) RevokeToken(ctx context.Context, req *connect.Request[wharfv1.RevokeTokenRequest]) (*connect.Response[wharfv1.RevokeTokenResponse], error) {
	c, err := requirePassword(ctx)
	if err != nil {
		return nil, err
	}
	t, err := s.cfg.Auth.Store.APIToken(ctx, req.Msg.Id)
	if err != nil {
		return nil, stateError(err)
	}
	if t.GetOwner() != c.User {
		if _, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts); err != nil {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("token %s does not exist", req.Msg.Id))
		}
	}
	cmd := fsm.NewCommand(&fsmpb.DeleteApiToken{Id: req.Msg.Id})
	if err := s.cfg.apply(ctx, c, "token_revoked", req.Msg.Id, cmd, "owner", t.GetOwner()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.RevokeTokenResponse{}), nil
}

// --- the caller ---

func (s *accessService) WhoAmI(ctx context.Context, _ *connect.Request[wharfv1.WhoAmIRequest]) (*connect.Response[wharfv1.WhoAmIResponse], error) {
	c, _ := caller(ctx)
	resp := &wharfv1.WhoAmIResponse{User: c.User}
	if c.Token != nil {
		resp.TokenId = c.Token.GetId()
	}
	if c.Anonymous() {
		return connect.NewResponse(resp), nil
	}
	pr, err := s.cfg.Auth.Store.Principal(ctx, c.User)
	if err != nil {
		return nil, stateError(err)
	}
	resp.Superuser = pr.User.GetSuperuser()
	resp.Groups = pr.Groups
	for _, r := range pr.Global {
		resp.GlobalRoles = append(resp.GlobalRoles, roleName(r))
	}
	return connect.NewResponse(resp), nil
}

func (s *accessService) MyPermissions(ctx context.Context, _ *connect.Request[wharfv1.MyPermissionsRequest]) (*connect.Response[wharfv1.MyPermissionsResponse], error) {
	c, err := requireLogin(ctx)
	if err != nil {
		return nil, err
	}
	pr, err := s.cfg.Auth.Store.Principal(ctx, c.User)
	if err != nil {
		return nil, stateError(err)
	}
	// Through an API token, what the token lets the caller use.
	global := auth.Confine(c.Token, "", auth.PermissionsOf(pr.Global, pr.User.GetSuperuser()))
	resp := &wharfv1.MyPermissionsResponse{Global: permStrings(global)}
	for _, ns := range slices.Sorted(maps.Keys(pr.Namespaces)) {
		roles := slices.Concat(pr.Namespaces[ns], pr.Global)
		perms := auth.Confine(c.Token, ns, auth.PermissionsOf(roles, pr.User.GetSuperuser()))
		if len(perms) == 0 {
			continue
		}
		np := &wharfv1.NamespacePermissions{Namespace: ns, Permissions: permStrings(perms)}
		for _, r := range pr.Namespaces[ns] {
			np.Roles = append(np.Roles, roleName(r))
		}
		resp.Namespaces = append(resp.Namespaces, np)
	}
	return connect.NewResponse(resp), nil
}

// RotateSigningKey replaces the registry token signing key. The expected
// current key ID makes two concurrent rotations fail one of them instead of
// dropping a key still in use.
func (s *accessService) RotateSigningKey(ctx context.Context, _ *connect.Request[wharfv1.RotateSigningKeyRequest]) (*connect.Response[wharfv1.RotateSigningKeyResponse], error) {
	c, err := s.cfg.requireGlobal(ctx, auth.PermManageAccounts)
	if err != nil {
		return nil, err
	}
	f, err := s.state(ctx)
	if err != nil {
		return nil, err
	}
	current, err := f.SigningKeys()
	if err != nil {
		return nil, stateError(err)
	}
	key, err := auth.NewSigningKey()
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, err)
	}
	cmd := fsm.NewCommand(&fsmpb.RotateSigningKey{
		Key: key, ExpectCurrentId: current.GetCurrentId(),
	})
	if err := s.cfg.apply(ctx, c, "signing_key_rotated", key.GetId(), cmd, "previous", current.GetCurrentId()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.RotateSigningKeyResponse{KeyId: key.GetId(), PreviousKeyId: current.GetCurrentId()}), nil
}
