package admin

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// namespaceService implements wharf.v1.NamespaceService.
type namespaceService struct {
	wharfv1connect.UnimplementedNamespaceServiceHandler
	cfg Config
}

// namespaceScanFactor bounds the namespaces a page reads: this many per
// namespace the page may hold, those the caller may not see included.
const namespaceScanFactor = 20

// ListNamespaces pages through the namespaces the caller may see.
func (s *namespaceService) ListNamespaces(ctx context.Context, req *connect.Request[wharfv1.ListNamespacesRequest]) (*connect.Response[wharfv1.ListNamespacesResponse], error) {
	if _, err := requireLogin(ctx); err != nil {
		return nil, err
	}
	size, err := pageSize(req.Msg.PageSize)
	if err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	v := s.cfg.viewer(ctx, f)
	scan := size * namespaceScanFactor
	names, err := f.ListNamespaces(req.Msg.PageToken, scan)
	if err != nil {
		return nil, stateError(err)
	}
	resp := &wharfv1.ListNamespacesResponse{}
	for i, name := range names {
		ok, err := v.may(auth.ActionPull, name)
		if err != nil {
			return nil, stateError(err)
		}
		if !ok {
			continue
		}
		ns, err := namespaceMessage(f, name)
		if err != nil {
			return nil, stateError(err)
		}
		resp.Namespaces = append(resp.Namespaces, ns)
		if len(resp.Namespaces) == size && i < len(names)-1 {
			resp.NextPageToken = name
			return connect.NewResponse(resp), nil
		}
	}
	if len(names) == scan {
		resp.NextPageToken = names[len(names)-1]
	}
	return connect.NewResponse(resp), nil
}

// namespaceMessage describes namespace name, which holds repositories or
// was claimed by its creator.
func namespaceMessage(f *fsm.FSM, name string) (*wharfv1.Namespace, error) {
	out := &wharfv1.Namespace{Name: name}
	rec, err := f.Namespace(name)
	switch {
	case err == nil:
		out.Flat, out.CreatedUnixNanos = rec.GetFlat(), rec.GetCreatedUnixNanos()
	case !errors.Is(err, fsm.ErrNotFound):
		return nil, err
	}
	own, err := f.NamespaceOwner(name)
	switch {
	case err == nil:
		out.Creator = own.GetUser()
		if out.CreatedUnixNanos == 0 {
			out.CreatedUnixNanos = own.GetCreatedUnixNanos()
		}
	case !errors.Is(err, fsm.ErrNotFound):
		return nil, err
	}
	if out.Public, err = f.NamespacePublic(name); err != nil {
		return nil, err
	}
	return out, nil
}

// GetNamespace describes a namespace.
func (s *namespaceService) GetNamespace(ctx context.Context, req *connect.Request[wharfv1.GetNamespaceRequest]) (*connect.Response[wharfv1.GetNamespaceResponse], error) {
	name := req.Msg.Name
	if err := checkNamespace("name", name); err != nil {
		return nil, err
	}
	if _, err := s.cfg.requireOn(ctx, auth.ActionPull, name); err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	if known, err := f.NamespaceKnown(name); err != nil || !known {
		if err == nil {
			err = fmt.Errorf("%w: namespace %q does not exist", fsm.ErrNotFound, name)
		}
		return nil, stateError(err)
	}
	ns, err := namespaceMessage(f, name)
	if err != nil {
		return nil, stateError(err)
	}
	grants, err := namespaceGrants(f, name)
	if err != nil {
		return nil, stateError(err)
	}
	q := fsm.RepositoryQuery{Namespace: name, Limit: defaultPageSize}
	repos, next, err := listRepositories(f, s.cfg.viewer(ctx, f), q, "")
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.GetNamespaceResponse{
		Namespace: ns, Grants: grants, Repositories: repos, NextRepositoryToken: next,
	}), nil
}

// DeleteNamespace deletes a namespace that holds no repository.
func (s *namespaceService) DeleteNamespace(ctx context.Context, req *connect.Request[wharfv1.DeleteNamespaceRequest]) (*connect.Response[wharfv1.DeleteNamespaceResponse], error) {
	name := req.Msg.Name
	if err := checkNamespace("name", name); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireOn(ctx, auth.ActionDelete, name)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.apply(ctx, c, "namespace_deleted", name, fsm.NewCommand(&fsmpb.DeleteNamespace{Namespace: name})); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.DeleteNamespaceResponse{}), nil
}
