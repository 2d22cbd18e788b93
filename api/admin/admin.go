// Package admin implements wharf's Connect admin services (wharf.v1.*),
// served on the public listener next to the OCI API. The CLI is their
// first client; the web UI will be the second.
package admin

import (
	"context"
	"fmt"
	"net/http"

	"connectrpc.com/connect"

	fsmv1 "github.com/wharf-registry/wharf/api/gen/wharf/fsm/v1"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/fsm"
)

// Node is what the services need of the local cluster node.
type Node interface {
	Status() cluster.Status
}

// BlobStats reports what the local blob store holds.
type BlobStats interface {
	Stats(ctx context.Context) (count, bytes int64, err error)
}

// Catalog is the read side of the registry metadata; *fsm.FSM implements it.
type Catalog interface {
	// ListRepositories returns up to n repository names after last, in lexical order.
	ListRepositories(last string, n int) ([]string, error)
	// Repository returns the stored record of a repository.
	Repository(name string) (*fsmv1.Repository, error)
	// RepositoryStats counts what a repository holds.
	RepositoryStats(name string) (fsm.RepositoryStats, error)
}

// Config holds the services' dependencies.
type Config struct {
	Node    Node
	Blobs   BlobStats
	Catalog Catalog
	Version string
}

// Handlers returns the services' handlers keyed by their path prefix, for
// api.Config.Connect.
func Handlers(cfg Config, opts ...connect.HandlerOption) map[string]http.Handler {
	handlers := make(map[string]http.Handler, 2)
	path, h := wharfv1connect.NewClusterServiceHandler(&clusterService{cfg: cfg}, opts...)
	handlers[path] = h
	path, h = wharfv1connect.NewRegistryServiceHandler(&registryService{cfg: cfg}, opts...)
	handlers[path] = h
	return handlers
}

type clusterService struct {
	wharfv1connect.UnimplementedClusterServiceHandler
	cfg Config
}

// Status describes the answering node.
func (s *clusterService) Status(ctx context.Context, _ *connect.Request[wharfv1.StatusRequest]) (*connect.Response[wharfv1.StatusResponse], error) {
	st := s.cfg.Node.Status()
	count, bytes, err := s.cfg.Blobs.Stats(ctx)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("blob store stats: %w", err))
	}
	return connect.NewResponse(&wharfv1.StatusResponse{
		NodeId:          st.NodeID,
		NodeName:        st.NodeName,
		RaftState:       st.RaftState,
		LeaderId:        st.LeaderID,
		LeaderAddress:   st.LeaderAddress,
		RaftTerm:        st.Term,
		RaftLastIndex:   st.LastIndex,
		RaftCommitIndex: st.CommitIndex,
		FsmAppliedIndex: st.AppliedIndex,
		BlobCount:       count,
		BlobBytes:       bytes,
		Version:         s.cfg.Version,
	}), nil
}
