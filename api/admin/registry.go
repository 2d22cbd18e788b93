package admin

import (
	"context"
	"fmt"
	"strings"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

type registryService struct {
	wharfv1connect.UnimplementedRegistryServiceHandler
	cfg Config
}

// ListRepositories pages through repositories in lexical order. The page
// token is the last repository name of the previous page.
func (s *registryService) ListRepositories(ctx context.Context, req *connect.Request[wharfv1.ListRepositoriesRequest]) (*connect.Response[wharfv1.ListRepositoriesResponse], error) {
	if _, err := requireLogin(ctx); err != nil {
		return nil, err
	}
	size, err := pageSize(req.Msg.PageSize)
	if err != nil {
		return nil, err
	}
	names, more, err := s.namesPage(req.Msg.Namespace, req.Msg.PageToken, size)
	if err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	resp := &wharfv1.ListRepositoriesResponse{}
	if more && len(names) > 0 {
		resp.NextPageToken = names[len(names)-1]
	}
	for _, name := range names {
		if ok, err := s.cfg.mayPull(ctx, name); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		info, err := s.repositoryInfo(name)
		if err != nil {
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("repository %q: %w", name, err))
		}
		resp.Repositories = append(resp.Repositories, info)
	}
	return connect.NewResponse(resp), nil
}

func (s *registryService) repositoryInfo(name string) (*wharfv1.Repository, error) {
	repo, err := s.cfg.Catalog.Repository(name)
	if err != nil {
		return nil, err
	}
	stats, err := s.cfg.Catalog.RepositoryStats(name)
	if err != nil {
		return nil, err
	}
	return &wharfv1.Repository{
		Name:             repo.Name,
		Namespace:        repo.Namespace,
		TagCount:         int32(stats.Tags),
		ManifestCount:    int32(stats.Manifests),
		CreatedUnixNanos: repo.CreatedUnixNanos,
	}, nil
}

func pageSize(requested int32) (int, error) {
	switch {
	case requested < 0:
		return 0, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("page_size must not be negative, got %d", requested))
	case requested == 0:
		return defaultPageSize, nil
	case requested > maxPageSize:
		return maxPageSize, nil
	}
	return int(requested), nil
}

// namesPage returns up to size repository names after token, restricted to
// namespace when it is set, and whether more may follow.
func (s *registryService) namesPage(namespace, token string, size int) ([]string, bool, error) {
	if namespace == "" {
		names, err := s.cfg.Catalog.ListRepositories(token, size+1)
		if err != nil {
			return nil, false, err
		}
		if len(names) > size {
			return names[:size], true, nil
		}
		return names, false, nil
	}
	// A namespace holds the repository named like it (a flat namespace)
	// or repositories below "<namespace>/"; both sort together from the
	// namespace name on.
	last := token
	if last == "" || last < namespace {
		last = namespaceStart(namespace)
	}
	var out []string
	for {
		batch, err := s.cfg.Catalog.ListRepositories(last, size+1)
		if err != nil {
			return nil, false, err
		}
		for _, name := range batch {
			if !inNamespace(name, namespace) {
				if name > namespace+"/" {
					return out, false, nil
				}
				continue
			}
			if len(out) == size {
				return out, true, nil
			}
			out = append(out, name)
		}
		if len(batch) < size+1 {
			return out, false, nil
		}
		last = batch[len(batch)-1]
	}
}

// namespaceStart is the greatest name sorting before every repository of
// namespace: the namespace name with its last byte decremented is not a
// valid repository, but it works as a 'last' cursor.
func namespaceStart(namespace string) string {
	b := []byte(namespace)
	b[len(b)-1]--
	return string(b) + "\xff"
}

func inNamespace(repo, namespace string) bool {
	return repo == namespace || strings.HasPrefix(repo, namespace+"/")
}
