package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"connectrpc.com/connect"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// What the services of repositories, namespaces, images and activity
// share: paging, argument checks, the caller's rights on one state, and
// changes with their audit lines.

const (
	defaultPageSize = 100
	maxPageSize     = 100
)

// pageSize returns the page size a request asks for, within bounds.
func pageSize(requested int32) (int, error) {
	switch {
	case requested < 0:
		return 0, invalidArgument("page_size", fmt.Errorf("must not be negative, got %d", requested))
	case requested == 0:
		return defaultPageSize, nil
	case requested > maxPageSize:
		return maxPageSize, nil
	}
	return int(requested), nil
}

// invalidArgument refuses a request field, saying which rule it broke.
func invalidArgument(field string, err error) error {
	msg := strings.TrimPrefix(err.Error(), fsm.ErrInvalid.Error()+": ")
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %s", field, msg))
}

// checkRepository refuses an invalid repository name in field.
func checkRepository(field, name string) error {
	if name == "" {
		return invalidArgument(field, errors.New("is required"))
	}
	if err := fsm.ValidateRepositoryName(name); err != nil {
		return invalidArgument(field, err)
	}
	return nil
}

// checkNamespace refuses an invalid namespace name in field.
func checkNamespace(field, name string) error {
	if err := checkRepository(field, name); err != nil {
		return err
	}
	if strings.Contains(name, "/") {
		return invalidArgument(field, fmt.Errorf("a namespace is one path component, got %q", name))
	}
	return nil
}

// resolve returns the digest reference names in repo: a digest as it is,
// a tag as it points.
func resolve(f *fsm.FSM, field, repo, reference string) (digest.Digest, error) {
	if reference == "" {
		return "", invalidArgument(field, errors.New("is required: a tag or a digest"))
	}
	if strings.Contains(reference, ":") {
		d, err := digest.Parse(reference)
		if err != nil {
			return "", invalidArgument(field, fmt.Errorf("invalid digest %q: %v", reference, err))
		}
		return d, nil
	}
	if err := fsm.ValidateTag(reference); err != nil {
		return "", invalidArgument(field, err)
	}
	d, err := f.ResolveTag(repo, reference)
	if err != nil {
		return "", stateError(err) // it names the tag and the repository
	}
	return d, nil
}

func (cfg Config) log() *slog.Logger {
	if cfg.Logger != nil {
		return cfg.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// apply commits cmd and writes an audit line for it.
func (cfg Config) apply(ctx context.Context, c auth.Caller, event, target string, cmd *fsmpb.Command, args ...any) error {
	if _, err := cfg.Apply(ctx, cmd); err != nil {
		return stateError(err)
	}
	auth.Audit(cfg.log(), event, c.User, target, args...)
	return nil
}

// state returns the metadata as of the call.
func (cfg Config) state(ctx context.Context) (*fsm.FSM, error) {
	f, err := cfg.State(ctx)
	if err != nil {
		return nil, stateError(err)
	}
	return f, nil
}

// viewer decides what the caller may do, on one state: listings filter
// with it record by record, reading the caller's roles once.
type viewer struct {
	caller auth.Caller
	on     bool // access control is on
	f      *fsm.FSM
	access *fsm.Accessor // read on first use
}

func (cfg Config) viewer(ctx context.Context, f *fsm.FSM) *viewer {
	c, on := caller(ctx)
	return &viewer{caller: c, on: on, f: f}
}

// may reports whether the caller may do a on repository (or namespace)
// name.
func (v *viewer) may(a auth.Action, name string) (bool, error) {
	if !v.on {
		return true, nil
	}
	if v.access == nil {
		ac, err := v.f.Accessor(v.caller.User)
		if err != nil {
			return false, err
		}
		v.access = ac
	}
	st, err := v.access.Access(name)
	if err != nil {
		return false, err
	}
	return auth.Decide(v.caller, a, name, st), nil
}

// permissionActions are the permissions held on a repository that a
// listing can filter on, with the action that needs each.
var permissionActions = map[auth.Permission]auth.Action{
	auth.PermPull:             auth.ActionPull,
	auth.PermPush:             auth.ActionPush,
	auth.PermChangeTags:       auth.ActionTag,
	auth.PermEditMetadata:     auth.ActionEditMetadata,
	auth.PermSetVisibility:    auth.ActionSetVisibility,
	auth.PermManageRoles:      auth.ActionManageRoles,
	auth.PermDeleteRepository: auth.ActionDelete,
}

// permissionAction returns the action a permission filter stands for; ""
// for none.
func permissionAction(field, p string) (auth.Action, error) {
	if p == "" {
		return "", nil
	}
	a, ok := permissionActions[auth.Permission(p)]
	if !ok {
		var names []string
		for _, q := range auth.SuperuserPermissions() {
			if _, ok := permissionActions[q]; ok {
				names = append(names, string(q))
			}
		}
		return "", invalidArgument(field, fmt.Errorf("%q is not a permission held on a repository; use one of %s", p, strings.Join(names, ", ")))
	}
	return a, nil
}

// namespaceGrants returns the roles held on ns, its creator's first; ns
// empty: the global roles.
func namespaceGrants(f *fsm.FSM, ns string) ([]*wharfv1.RoleGrant, error) {
	var out []*wharfv1.RoleGrant
	if ns != "" {
		own, err := f.NamespaceOwner(ns)
		switch {
		case err == nil:
			out = append(out, &wharfv1.RoleGrant{Role: "owner", Namespace: ns, User: own.GetUser(), Creator: true, CreatedUnixNanos: own.GetCreatedUnixNanos()})
		case !errors.Is(err, fsm.ErrNotFound):
			return nil, err
		}
	}
	grants, err := f.GrantsOn(ns)
	if err != nil {
		return nil, err
	}
	for _, g := range grants {
		rg := &wharfv1.RoleGrant{Role: roleName(g.GetRole()), Namespace: g.GetNamespace(), CreatedUnixNanos: g.GetCreatedUnixNanos()}
		if g.GetSubject().GetKind() == fsmpb.SubjectKind_SUBJECT_KIND_GROUP {
			rg.Group = g.GetSubject().GetName()
		} else {
			rg.User = g.GetSubject().GetName()
		}
		out = append(out, rg)
	}
	return out, nil
}
