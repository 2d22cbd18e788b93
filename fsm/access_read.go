package fsm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Access is what access control knows about a user and a repository, read
// in one consistent view of the state.
type Access struct {
	// User is the account, or nil for an anonymous caller or a user that
	// no longer exists.
	User *fsmpb.User
	// Namespace is the first path component of the repository.
	Namespace string
	// NamespaceExists is true once the namespace has a repository or a
	// creator's claim.
	NamespaceExists bool
	// RepositoryExists is true once the repository has been created.
	RepositoryExists bool
	// Public is true if the repository or its namespace is public.
	Public bool
	// Creator is true if User created the namespace.
	Creator bool
	// Roles are the roles User holds on the namespace, directly or through
	// a group, the global roles included, and ROLE_OWNER for the creator;
	// sorted, without duplicates.
	Roles []fsmpb.Role
}

// Principal is everything a user holds, read in one consistent view.
type Principal struct {
	// User is the account, or nil if it does not exist.
	User *fsmpb.User
	// Groups are the groups the user belongs to, sorted.
	Groups []string
	// Global are the global roles the user holds, directly or through a
	// group; sorted, without duplicates.
	Global []fsmpb.Role
	// Namespaces maps each namespace the user holds a role on, directly,
	// through a group or as its creator, to those roles.
	Namespaces map[string][]fsmpb.Role
}

// Access returns what access control needs to decide on user's request
// for repo. An empty user is an anonymous caller.
func (f *FSM) Access(user, repo string) (Access, error) {
	ns, _ := splitNamespace(repo)
	a := Access{Namespace: ns}
	err := f.view(func(r pebble.Reader) error { return readAccess(r, user, repo, &a) })
	if err != nil {
		return Access{}, fmt.Errorf("access of %q to %q: %w", user, repo, err)
	}
	return a, nil
}

// Accessor answers Access for one user over many repositories, as a
// listing asks: it reads the user's account, groups and roles once, and
// then for each repository only what is the repository's own (whether it
// and its namespace exist and are public, and whether the user created
// the namespace, once per namespace). Its answers are those of FSM.Access
// as of the reads; a role granted or revoked while it is in use may be
// seen late, as by any read. It is not safe for concurrent use.
type Accessor struct {
	f       *FSM
	user    string
	p       Principal
	creator map[string]bool // by namespace, as read
}

// Accessor returns an Accessor for user ("" for an anonymous caller).
func (f *FSM) Accessor(user string) (*Accessor, error) {
	a := &Accessor{f: f, user: user, creator: map[string]bool{}}
	if user == "" {
		return a, nil
	}
	p, err := f.Principal(user)
	if err != nil {
		return nil, err
	}
	a.p = p
	return a, nil
}

// Access is FSM.Access(user, repo).
func (a *Accessor) Access(repo string) (Access, error) {
	ns, _ := splitNamespace(repo)
	acc := Access{Namespace: ns}
	err := a.f.view(func(r pebble.Reader) error {
		var err error
		if acc.NamespaceExists, err = namespaceKnown(r, ns); err != nil {
			return err
		}
		if acc.RepositoryExists, err = has(r, repositoryKey(repo)); err != nil {
			return err
		}
		if acc.Public, err = isPublic(r, repo); err != nil {
			return err
		}
		if a.user == "" || a.p.User == nil {
			return nil
		}
		acc.User = a.p.User
		creator, known := a.creator[ns]
		if !known {
			if creator, err = isCreator(r, a.user, ns); err != nil {
				return err
			}
			a.creator[ns] = creator
		}
		acc.Creator = creator
		acc.Roles = sortRoles(slices.Concat(a.p.Global, a.p.Namespaces[ns]))
		return nil
	})
	if err != nil {
		return Access{}, fmt.Errorf("access of %q to %q: %w", a.user, repo, err)
	}
	return acc, nil
}

func readAccess(r pebble.Reader, user, repo string, a *Access) error {
	var err error
	if a.NamespaceExists, err = namespaceKnown(r, a.Namespace); err != nil {
		return err
	}
	if a.RepositoryExists, err = has(r, repositoryKey(repo)); err != nil {
		return err
	}
	if a.Public, err = isPublic(r, repo); err != nil {
		return err
	}
	if user == "" {
		return nil
	}
	if a.User, err = findUser(r, user); err != nil || a.User == nil {
		return err
	}
	if a.Creator, err = isCreator(r, user, a.Namespace); err != nil {
		return err
	}
	subjects, err := subjectsOf(r, user)
	if err != nil {
		return err
	}
	for _, s := range subjects {
		for _, ns := range []string{"", a.Namespace} {
			roles, err := rolesOn(r, s, ns)
			if err != nil {
				return err
			}
			a.Roles = append(a.Roles, roles...)
		}
	}
	if a.Creator {
		a.Roles = append(a.Roles, fsmpb.Role_ROLE_OWNER)
	}
	a.Roles = sortRoles(a.Roles)
	return nil
}

// Principal returns the account of user and every role it holds.
func (f *FSM) Principal(user string) (Principal, error) {
	p := Principal{Namespaces: map[string][]fsmpb.Role{}}
	err := f.view(func(r pebble.Reader) error { return readPrincipal(r, user, &p) })
	if err != nil {
		return Principal{}, fmt.Errorf("principal %q: %w", user, err)
	}
	return p, nil
}

func readPrincipal(r pebble.Reader, user string, p *Principal) error {
	var err error
	if p.User, err = findUser(r, user); err != nil || p.User == nil {
		return err
	}
	if p.Groups, err = suffixes(r, memberOfPrefix(user)); err != nil {
		return err
	}
	subjects, err := subjectsOf(r, user)
	if err != nil {
		return err
	}
	for _, s := range subjects {
		err := scanPrefix(r, subjectPrefix(s.GetKind(), s.GetName()), func(k, _ []byte) (bool, error) {
			ns, role := splitGrantSuffix(string(k[len(subjectPrefix(s.GetKind(), s.GetName())):]))
			if ns == "" {
				p.Global = append(p.Global, role)
			} else {
				p.Namespaces[ns] = append(p.Namespaces[ns], role)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	if err := addCreatedNamespaces(r, p); err != nil {
		return err
	}
	p.Global = sortRoles(p.Global)
	for ns, roles := range p.Namespaces {
		p.Namespaces[ns] = sortRoles(roles)
	}
	return nil
}

// addCreatedNamespaces adds owner roles for the namespaces p's user created.
// Ownership records have no index by user: a user's standing is read
// rarely (logins, MyPermissions), and namespaces are few.
func addCreatedNamespaces(r pebble.Reader, p *Principal) error {
	return scanPrefix(r, []byte(prefixNamespaceOwn), func(k, v []byte) (bool, error) {
		var own fsmpb.NamespaceOwner
		if err := unmarshalRecord(k, v, &own); err != nil {
			return false, err
		}
		if own.GetUserId() == p.User.GetId() {
			p.Namespaces[own.GetNamespace()] = append(p.Namespaces[own.GetNamespace()], fsmpb.Role_ROLE_OWNER)
		}
		return true, nil
	})
}

// subjectsOf returns user and the groups it belongs to as grant subjects.
func subjectsOf(r pebble.Reader, user string) ([]*fsmpb.Subject, error) {
	groups, err := suffixes(r, memberOfPrefix(user))
	if err != nil {
		return nil, err
	}
	subjects := []*fsmpb.Subject{{Kind: fsmpb.SubjectKind_SUBJECT_KIND_USER, Name: user}}
	for _, g := range groups {
		subjects = append(subjects, &fsmpb.Subject{Kind: fsmpb.SubjectKind_SUBJECT_KIND_GROUP, Name: g})
	}
	return subjects, nil
}

// rolesOn returns the roles granted to s directly on ns ("" for global).
func rolesOn(r pebble.Reader, s *fsmpb.Subject, ns string) ([]fsmpb.Role, error) {
	names, err := suffixes(r, subjectGrantPrefix(s.GetKind(), s.GetName(), ns))
	if err != nil {
		return nil, err
	}
	roles := make([]fsmpb.Role, 0, len(names))
	for _, n := range names {
		roles = append(roles, parseRole(n))
	}
	return roles, nil
}

// splitGrantSuffix splits "<ns>\x00<role>" from a subject grant key.
func splitGrantSuffix(s string) (string, fsmpb.Role) {
	ns, role, _ := strings.Cut(s, sep)
	return ns, parseRole(role)
}

func parseRole(name string) fsmpb.Role {
	return fsmpb.Role(fsmpb.Role_value["ROLE_"+strings.ToUpper(name)])
}

func sortRoles(roles []fsmpb.Role) []fsmpb.Role {
	slices.Sort(roles)
	return slices.Compact(roles)
}

func isPublic(r pebble.Reader, repo string) (bool, error) {
	ns, _ := splitNamespace(repo)
	public, err := has(r, namespacePublicKey(ns))
	if err != nil || public {
		return public, err
	}
	return has(r, repositoryPublicKey(repo))
}

// findUser returns the record of user, or nil if there is none.
func findUser(r pebble.Reader, name string) (*fsmpb.User, error) {
	var u fsmpb.User
	found, err := getProto(r, userKey(name), &u)
	if err != nil || !found {
		return nil, err
	}
	return &u, nil
}

// User returns the record of user name, or ErrNotFound.
func (f *FSM) User(name string) (*fsmpb.User, error) {
	var u fsmpb.User
	if err := f.getRecord(userKey(name), &u, "user %q", name); err != nil {
		return nil, err
	}
	return &u, nil
}

// Users returns every user ordered by name.
func (f *FSM) Users() ([]*fsmpb.User, error) {
	return listRecords[*fsmpb.User](f, []byte(prefixUser), "users")
}

// Group returns the record of group name, or ErrNotFound.
func (f *FSM) Group(name string) (*fsmpb.Group, error) {
	var g fsmpb.Group
	if err := f.getRecord(groupKey(name), &g, "group %q", name); err != nil {
		return nil, err
	}
	return &g, nil
}

// Groups returns every group ordered by name.
func (f *FSM) Groups() ([]*fsmpb.Group, error) {
	return listRecords[*fsmpb.Group](f, []byte(prefixGroup), "groups")
}

// GroupMembers returns the members of group in order, or ErrNotFound.
func (f *FSM) GroupMembers(group string) ([]string, error) {
	var users []string
	err := f.view(func(r pebble.Reader) error {
		if err := mustExist(r, groupKey(group)); err != nil {
			return err
		}
		var err error
		users, err = suffixes(r, memberPrefix(group))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("members of group %q: %w", group, err)
	}
	return users, nil
}

// GrantsOn returns the grants on namespace ns, or the global grants if ns
// is empty, ordered by subject. Creator ownership is not a grant; see
// NamespaceOwner.
func (f *FSM) GrantsOn(ns string) ([]*fsmpb.Grant, error) {
	return listRecords[*fsmpb.Grant](f, grantPrefix(ns), "grants"+onNamespace(ns))
}

// Grants returns every grant, ordered by namespace (global ones first).
func (f *FSM) Grants() ([]*fsmpb.Grant, error) {
	return listRecords[*fsmpb.Grant](f, []byte(prefixGrant), "grants")
}

// NamespaceOwner returns the creator of namespace ns, or ErrNotFound if no
// creator was recorded. The record outlives the user; see Access.Creator.
func (f *FSM) NamespaceOwner(ns string) (*fsmpb.NamespaceOwner, error) {
	var own fsmpb.NamespaceOwner
	if err := f.getRecord(namespaceOwnerKey(ns), &own, "owner of namespace %q", ns); err != nil {
		return nil, err
	}
	return &own, nil
}

// Public reports whether repo or its namespace is public.
func (f *FSM) Public(repo string) (bool, error) {
	var public bool
	err := f.view(func(r pebble.Reader) (err error) {
		public, err = isPublic(r, repo)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("visibility of %q: %w", repo, err)
	}
	return public, nil
}

// APIToken returns the record of API token id, or ErrNotFound.
func (f *FSM) APIToken(id string) (*fsmpb.ApiToken, error) {
	var t fsmpb.ApiToken
	if err := f.getRecord(tokenKey(id), &t, "token %s", id); err != nil {
		return nil, err
	}
	return &t, nil
}

// APITokens returns the API tokens of owner ordered by ID, or every token
// if owner is empty.
func (f *FSM) APITokens(owner string) ([]*fsmpb.ApiToken, error) {
	if owner == "" {
		return listRecords[*fsmpb.ApiToken](f, []byte(prefixToken), "tokens")
	}
	var tokens []*fsmpb.ApiToken
	err := f.view(func(r pebble.Reader) error {
		ids, err := suffixes(r, userTokenPrefix(owner))
		if err != nil {
			return err
		}
		for _, id := range ids {
			var t fsmpb.ApiToken
			if _, err := getProto(r, tokenKey(id), &t); err != nil {
				return err
			}
			tokens = append(tokens, &t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tokens of %q: %w", owner, err)
	}
	return tokens, nil
}

// SigningKeys returns the token signing keys, or ErrNotFound before the
// first key is stored.
func (f *FSM) SigningKeys() (*fsmpb.SigningKeySet, error) {
	var set fsmpb.SigningKeySet
	if err := f.getRecord(keySigningKeys, &set, "signing keys"); err != nil {
		return nil, err
	}
	return &set, nil
}

func (f *FSM) keySuffixes(prefix []byte, what string) ([]string, error) {
	var out []string
	err := f.view(func(r pebble.Reader) (err error) {
		out, err = suffixes(r, prefix)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}

// listRecords decodes every record under prefix, in key order.
func listRecords[M interface {
	proto.Message
	*T
}, T any](f *FSM, prefix []byte, what string) ([]M, error) {
	var out []M
	err := f.view(func(r pebble.Reader) error {
		return scanPrefix(r, prefix, func(k, v []byte) (bool, error) {
			m := M(new(T))
			if err := unmarshalRecord(k, v, m); err != nil {
				return false, err
			}
			out = append(out, m)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	return out, nil
}
