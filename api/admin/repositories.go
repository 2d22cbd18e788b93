package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// repositoryService implements wharf.v1.RepositoryService.
type repositoryService struct {
	wharfv1connect.UnimplementedRepositoryServiceHandler
	cfg Config
}

var repositoryOrders = map[wharfv1.RepositoryOrder]fsm.RepositoryOrder{
	wharfv1.RepositoryOrder_REPOSITORY_ORDER_UNSPECIFIED: fsm.ByName,
	wharfv1.RepositoryOrder_REPOSITORY_ORDER_NAME:        fsm.ByName,
	wharfv1.RepositoryOrder_REPOSITORY_ORDER_CREATED:     fsm.ByCreated,
	wharfv1.RepositoryOrder_REPOSITORY_ORDER_UPDATED:     fsm.ByUpdated,
	wharfv1.RepositoryOrder_REPOSITORY_ORDER_PUSHED:      fsm.ByPushed,
}

// ListRepositories pages through the repositories the caller may pull:
// for an anonymous caller the public ones, as the viewer decides. With a
// permission filter an anonymous caller holds only pull (on the public
// repositories), so any other permission lists nothing, as for a caller
// who logged in and holds it nowhere.
func (s *repositoryService) ListRepositories(ctx context.Context, req *connect.Request[wharfv1.ListRepositoriesRequest]) (*connect.Response[wharfv1.ListRepositoriesResponse], error) {
	q, err := repositoryQuery(req.Msg)
	if err != nil {
		return nil, err
	}
	action, err := permissionAction("permission", req.Msg.Permission)
	if err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	v := s.cfg.viewer(ctx, f)
	repos, next, err := listRepositories(f, v, q, action)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.ListRepositoriesResponse{Repositories: repos, NextPageToken: next}), nil
}

// repositoryQuery turns a request into a query of the FSM, its filters
// on names and descriptions included.
func repositoryQuery(m *wharfv1.ListRepositoriesRequest) (fsm.RepositoryQuery, error) {
	size, err := pageSize(m.PageSize)
	if err != nil {
		return fsm.RepositoryQuery{}, err
	}
	order, ok := repositoryOrders[m.Order]
	if !ok {
		return fsm.RepositoryQuery{}, invalidArgument("order", fmt.Errorf("unknown order %d", m.Order))
	}
	if m.Namespace != "" {
		if err := checkNamespace("namespace", m.Namespace); err != nil {
			return fsm.RepositoryQuery{}, err
		}
	}
	name, desc := strings.ToLower(m.NameContains), strings.ToLower(m.DescriptionContains)
	return fsm.RepositoryQuery{
		Order: order, Descending: m.Descending, Namespace: m.Namespace, Limit: size, Token: m.PageToken,
		Keep: func(r *fsmpb.Repository) bool {
			return strings.Contains(r.GetName(), name) && strings.Contains(strings.ToLower(r.GetDescription()), desc)
		},
	}, nil
}

// listRepositories returns a page of q that the viewer may pull (and do
// action on, if set), and the token to go on.
func listRepositories(f *fsm.FSM, v *viewer, q fsm.RepositoryQuery, action auth.Action) ([]*wharfv1.Repository, string, error) {
	match := q.Keep
	var keepErr error
	q.Keep = func(r *fsmpb.Repository) bool {
		if keepErr != nil || match != nil && !match(r) {
			return false
		}
		ok, err := v.may(auth.ActionPull, r.GetName())
		if err == nil && ok && action != "" {
			ok, err = v.may(action, r.GetName())
		}
		keepErr = err
		return err == nil && ok
	}
	page, err := f.ListRepositoryPage(q)
	if errors.Is(err, fsm.ErrInvalid) {
		return nil, "", invalidArgument("page_token", err)
	}
	if err == nil {
		err = keepErr
	}
	if err != nil {
		return nil, "", stateError(err)
	}
	out := make([]*wharfv1.Repository, 0, len(page.Repositories))
	for _, r := range page.Repositories {
		m, err := repositoryMessage(f, r)
		if err != nil {
			return nil, "", stateError(err)
		}
		out = append(out, m)
	}
	return out, page.Next, nil
}

func repositoryMessage(f *fsm.FSM, r *fsmpb.Repository) (*wharfv1.Repository, error) {
	public, err := f.Public(r.GetName())
	if err != nil {
		return nil, err
	}
	origin, mirrored, err := repositoryOrigin(f, r.GetName())
	if err != nil {
		return nil, err
	}
	return &wharfv1.Repository{
		Name:             r.GetName(),
		Namespace:        r.GetNamespace(),
		Description:      r.GetDescription(),
		CreatedUnixNanos: r.GetCreatedUnixNanos(),
		UpdatedUnixNanos: r.GetUpdatedUnixNanos(),
		PushedUnixNanos:  r.GetPushedUnixNanos(),
		PushedBy:         r.GetPushedBy(),
		TagCount:         r.GetTagCount(),
		ManifestCount:    r.GetManifestCount(),
		Public:           public,
		Origin:           origin,
		Mirrored:         mirrored,
	}, nil
}

// GetRepository describes one repository.
func (s *repositoryService) GetRepository(ctx context.Context, req *connect.Request[wharfv1.GetRepositoryRequest]) (*connect.Response[wharfv1.GetRepositoryResponse], error) {
	name := req.Msg.Name
	if err := checkRepository("name", name); err != nil {
		return nil, err
	}
	if _, err := s.cfg.requirePull(ctx, name); err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := describeRepository(f, name)
	if err != nil {
		return nil, stateError(err)
	}
	return connect.NewResponse(resp), nil
}

func describeRepository(f *fsm.FSM, name string) (*wharfv1.GetRepositoryResponse, error) {
	rec, err := f.Repository(name)
	if err != nil {
		return nil, err
	}
	repo, err := repositoryMessage(f, rec)
	if err != nil {
		return nil, err
	}
	readme, err := f.Readme(name)
	if err != nil {
		return nil, err
	}
	grants, err := namespaceGrants(f, rec.GetNamespace())
	if err != nil {
		return nil, err
	}
	var owners []*wharfv1.RoleGrant
	for _, g := range grants {
		if g.Role == roleName(fsmpb.Role_ROLE_OWNER) {
			owners = append(owners, g)
		}
	}
	usage, err := f.RepositoryUsage(name)
	if err != nil {
		return nil, err
	}
	signed, err := f.Signed(name)
	if err != nil {
		return nil, err
	}
	return &wharfv1.GetRepositoryResponse{
		Repository: repo,
		Readme:     readme,
		Owners:     owners,
		Storage:    &wharfv1.RepositoryStorage{Bytes: usage.Bytes, UniqueBytes: usage.UniqueBytes, Blobs: usage.Blobs},
		Signed:     signed,
		Origin:     repo.Origin,
	}, nil
}

// SetRepositoryInfo sets a repository's description, readme or both.
func (s *repositoryService) SetRepositoryInfo(ctx context.Context, req *connect.Request[wharfv1.SetRepositoryInfoRequest]) (*connect.Response[wharfv1.SetRepositoryInfoResponse], error) {
	m := req.Msg
	if err := checkRepository("name", m.Name); err != nil {
		return nil, err
	}
	if err := checkInfo(m); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireOn(ctx, auth.ActionEditMetadata, m.Name)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.SetRepositoryInfo{Repository: m.Name, Description: m.Description, Readme: m.Readme})
	err = s.cfg.apply(ctx, c, "repository_info_set", m.Name, cmd, "description", m.Description != nil, "readme", m.Readme != nil)
	if err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := f.Repository(m.Name)
	if err != nil {
		return nil, stateError(err)
	}
	repo, err := repositoryMessage(f, rec)
	if err != nil {
		return nil, stateError(err)
	}
	return connect.NewResponse(&wharfv1.SetRepositoryInfoResponse{Repository: repo}), nil
}

// checkInfo refuses what the FSM would, before a Raft round trip.
func checkInfo(m *wharfv1.SetRepositoryInfoRequest) error {
	if m.Description == nil && m.Readme == nil {
		return invalidArgument("description", errors.New("set a description, a readme or both"))
	}
	if n := len(m.GetDescription()); n > fsm.MaxDescriptionBytes {
		return invalidArgument("description", fmt.Errorf("must be at most %d bytes of plain text, got %d", fsm.MaxDescriptionBytes, n))
	}
	if n := len(m.GetReadme()); n > fsm.MaxReadmeBytes {
		return invalidArgument("readme", fmt.Errorf("must be at most %d bytes of markdown, got %d", fsm.MaxReadmeBytes, n))
	}
	return nil
}

// DeleteRepository deletes a repository.
func (s *repositoryService) DeleteRepository(ctx context.Context, req *connect.Request[wharfv1.DeleteRepositoryRequest]) (*connect.Response[wharfv1.DeleteRepositoryResponse], error) {
	name := req.Msg.Name
	if err := checkRepository("name", name); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireOn(ctx, auth.ActionDelete, name)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.apply(ctx, c, "repository_deleted", name, fsm.NewCommand(&fsmpb.DeleteRepository{Repository: name})); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.DeleteRepositoryResponse{}), nil
}
