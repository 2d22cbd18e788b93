// Package admin implements wharf's Connect admin services (wharf.v1.*),
// served on the public listener next to the OCI API. The CLI is their
// first client; the web UI will be the second.
package admin

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
	"github.com/wharf-registry/wharf/internal/secretbox"
)

// Node is what the services need of the local cluster node.
type Node interface {
	Status() cluster.Status
	// IsLeader reports whether this node leads the cluster.
	IsLeader() bool
	Members() []cluster.Member
	TransferLeadership(ctx context.Context) error
	ClusterAddress() string
	// MemberContacts is, on the leader, how long ago it last heard from
	// each other member; nil elsewhere.
	MemberContacts() map[string]time.Duration
	// RemoveMember removes a member now (leader only).
	RemoveMember(ctx context.Context, node string, force bool) (cluster.Member, error)
}

// BlobStats reports what the local blob store holds.
type BlobStats interface {
	Stats(ctx context.Context) (count, bytes int64, err error)
}

// Replicas reports on blob replication.
type Replicas interface {
	// UnderReplicated is the count of blobs with fewer live copies than
	// the replication factor, as of the leader's last scan.
	UnderReplicated() int64
}

// BlobContent reads blobs, wherever in the cluster they are: the admin
// API reads image configurations.
type BlobContent interface {
	Stream(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error)
}

// Config holds the services' dependencies.
type Config struct {
	Node     Node
	Blobs    BlobStats
	Replicas Replicas
	// State returns the registry metadata once it reflects every write
	// acknowledged before the call, through any node (cluster.Node.Current).
	State func(ctx context.Context) (*fsm.FSM, error)
	// Content reads image configurations.
	Content BlobContent
	// PeerClient reaches other nodes' cluster ports, where these services
	// are mounted too, to ask each for its own status.
	PeerClient *http.Client
	// DataDir is measured for disk use.
	DataDir string
	// Leave starts this node's graceful departure from the cluster and the
	// end of its process; nil refuses Leave.
	Leave   func()
	Version string
	// PublicURL is the node's --public-url, which Identity reports.
	PublicURL string

	// Auth, if set, authenticates every request and makes each RPC check
	// the caller's permission; nil leaves the services open, as on the
	// cluster port, where peers are authenticated by mutual TLS.
	Auth *Auth
	// Apply commits a command through Raft. With State it enables the
	// services of repositories, namespaces, images and activity; with
	// Auth, the AccessService.
	Apply func(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.Result, error)
	// GC is the node's garbage collector; with State it enables the
	// GCService.
	GC Collector
	// Secrets seals the secrets of remote registries before they are
	// proposed and opens them to talk to the registries; with Auth and
	// Apply it enables the RemoteService.
	Secrets *secretbox.Box
	// Logger receives the audit lines of every change.
	Logger *slog.Logger
}

// compressMinBytes: smaller answers are sent uncompressed.
const compressMinBytes = 1 << 10

// MaxRequestBytes bounds the body of an admin request, both as sent
// (compressed or not) and once inflated: far more than any request needs,
// far less than would strain a node's memory. A larger one is refused with
// resource_exhausted before more of it is read.
const MaxRequestBytes = 4 << 20

// Handlers returns the services' handlers keyed by their path prefix, for
// api.Config.Connect.
func Handlers(cfg Config, opts ...connect.HandlerOption) map[string]http.Handler {
	// Compressing answers smaller than a packet or so costs more CPU than
	// it saves; Connect's default compresses every one a client accepts.
	opts = append([]connect.HandlerOption{
		connect.WithCompressMinBytes(compressMinBytes),
		connect.WithReadMaxBytes(MaxRequestBytes),
	}, opts...)
	handlers := make(map[string]http.Handler, 8)
	add := func(path string, h http.Handler) { handlers[path] = h }
	add(wharfv1connect.NewClusterServiceHandler(&clusterService{cfg: cfg}, opts...))
	if cfg.State != nil && cfg.Apply != nil {
		add(wharfv1connect.NewRepositoryServiceHandler(&repositoryService{cfg: cfg}, opts...))
		add(wharfv1connect.NewNamespaceServiceHandler(&namespaceService{cfg: cfg}, opts...))
		add(wharfv1connect.NewImageServiceHandler(&imageService{cfg: cfg}, opts...))
		add(wharfv1connect.NewActivityServiceHandler(&activityService{cfg: cfg}, opts...))
	}
	if cfg.Auth != nil && cfg.Apply != nil {
		add(wharfv1connect.NewAccessServiceHandler(&accessService{cfg: cfg}, opts...))
	}
	if cfg.Auth != nil && cfg.Apply != nil && cfg.State != nil && cfg.Secrets != nil {
		add(wharfv1connect.NewRemoteServiceHandler(&remoteService{cfg: cfg}, opts...))
	}
	if cfg.Auth != nil && cfg.Apply != nil && cfg.State != nil {
		add(wharfv1connect.NewMirrorServiceHandler(&mirrorService{cfg: cfg}, opts...))
		add(wharfv1connect.NewSyncServiceHandler(&syncService{cfg: cfg}, opts...))
		add(wharfv1connect.NewCacheServiceHandler(&cacheService{cfg: cfg}, opts...))
	}
	if cfg.State != nil && cfg.GC != nil {
		add(wharfv1connect.NewGCServiceHandler(&gcService{cfg: cfg}, opts...))
	}
	for p, h := range handlers {
		if cfg.Auth != nil {
			h = cfg.Auth.wrap(h)
		}
		handlers[p] = http.MaxBytesHandler(h, MaxRequestBytes)
	}
	return handlers
}

type clusterService struct {
	wharfv1connect.UnimplementedClusterServiceHandler
	cfg Config
}

// Status describes the answering node.
func (s *clusterService) Status(ctx context.Context, _ *connect.Request[wharfv1.StatusRequest]) (*connect.Response[wharfv1.StatusResponse], error) {
	if _, err := requireLogin(ctx); err != nil {
		return nil, err
	}
	st := s.cfg.Node.Status()
	count, bytes, err := s.cfg.Blobs.Stats(ctx)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("blob store stats: %w", err))
	}
	used, free := diskUsage(s.cfg.DataDir)
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
		DiskUsedBytes:   used,
		DiskFreeBytes:   free,
		ClusterAddress:  s.cfg.Node.ClusterAddress(),
		MemberContacts:  memberContacts(s.cfg.Node.MemberContacts()),
	}), nil
}

// memberContacts lists contacts sorted by node ID.
func memberContacts(contacts map[string]time.Duration) []*wharfv1.MemberContact {
	out := make([]*wharfv1.MemberContact, 0, len(contacts))
	for id, age := range contacts {
		out = append(out, &wharfv1.MemberContact{NodeId: id, AgeNanos: int64(age)})
	}
	slices.SortFunc(out, func(a, b *wharfv1.MemberContact) int { return strings.Compare(a.NodeId, b.NodeId) })
	return out
}

// diskUsage returns the used and free bytes of the filesystem holding dir,
// or zeros if it cannot be measured.
func diskUsage(dir string) (used, free uint64) {
	if dir == "" {
		return 0, 0
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0
	}
	bsize := uint64(st.Bsize)
	return (st.Blocks - st.Bfree) * bsize, st.Bavail * bsize
}

// Identity names the answering node and the cluster's public URL, to any
// caller: nothing in it is secret, and the CLI needs it before it logs in.
func (s *clusterService) Identity(_ context.Context, _ *connect.Request[wharfv1.IdentityRequest]) (*connect.Response[wharfv1.IdentityResponse], error) {
	st := s.cfg.Node.Status()
	return connect.NewResponse(&wharfv1.IdentityResponse{
		PublicUrl: s.cfg.PublicURL,
		NodeId:    st.NodeID,
		NodeName:  st.NodeName,
		Version:   s.cfg.Version,
	}), nil
}
