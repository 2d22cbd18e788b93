package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"connectrpc.com/connect"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Collector is what the GCService needs of the node's garbage collector
// (cmd/wharf adapts cluster/gc's Collector).
type Collector interface {
	// Collect collects now on this node, or with opts.DryRun lists what it
	// would collect, and returns the run's summary.
	Collect(ctx context.Context, opts CollectOptions) (*fsmpb.GCRun, error)
	// Settings returns the grace period and the collection interval.
	Settings() (grace, interval time.Duration)
}

// CollectOptions adjusts a Collect call.
type CollectOptions struct {
	// DryRun proposes nothing: Candidate is called for each blob a run
	// would collect.
	DryRun bool
	// Progress is called now and then, and once at the end.
	Progress func(examined, collected int, bytes int64)
	// Candidate is called, in a dry run, for each blob a run would collect.
	Candidate func(d digest.Digest, size int64, unreferencedSince time.Time)
}

// Bounds of the GCService's answers.
const (
	maxKeepers        = 100  // repositories and manifests WhyKept lists, each
	maxKeeperTags     = 10   // tags WhyKept lists per manifest
	maxStorageEntries = 1000 // namespaces GetStorage lists
)

// gcService implements wharf.v1.GCService. Every RPC needs the admin
// role: the status and storage describe the whole cluster, and adding up
// storage reads every blob record, which no namespace owner should be able
// to set off at will.
type gcService struct {
	wharfv1connect.UnimplementedGCServiceHandler
	cfg Config
}

// GetStatus reports the last run, the next, and every node's last sweep,
// from the replicated state: every node answers the same.
func (s *gcService) GetStatus(ctx context.Context, _ *connect.Request[wharfv1.GetStatusRequest]) (*connect.Response[wharfv1.GetStatusResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	grace, interval := s.cfg.GC.Settings()
	out := &wharfv1.GetStatusResponse{GraceNanos: int64(grace), IntervalNanos: int64(interval)}
	switch run, err := f.LastGCRun(); {
	case err == nil:
		out.LastRun = gcRunMessage(run)
		out.NextRunUnixNanos = run.GetEndedUnixNanos() + int64(interval)
	case !errors.Is(err, fsm.ErrNotFound):
		return nil, stateError(err)
	}
	sweeps, err := f.Sweeps()
	if err != nil {
		return nil, stateError(err)
	}
	for _, sw := range sweeps {
		out.Sweeps = append(out.Sweeps, &wharfv1.NodeSweep{
			NodeId:                 sw.GetNodeId(),
			StartedUnixNanos:       sw.GetStartedUnixNanos(),
			EndedUnixNanos:         sw.GetEndedUnixNanos(),
			CollectedFiles:         sw.GetCollectedFiles(),
			CollectedBytes:         sw.GetCollectedBytes(),
			TrimmedFiles:           sw.GetTrimmedFiles(),
			TrimmedBytes:           sw.GetTrimmedBytes(),
			OrphanFiles:            sw.GetOrphanFiles(),
			OrphanBytes:            sw.GetOrphanBytes(),
			OrphansReferenced:      sw.GetOrphansReferenced(),
			OrphansYoung:           sw.GetOrphansYoung(),
			Errors:                 sw.GetErrors(),
			UploadsPurgedUnixNanos: sw.GetUploadsPurgedUnixNanos(),
			UploadsPurged:          sw.GetUploadsPurged(),
			UploadMaxAgeNanos:      sw.GetUploadMaxAgeNanos(),
		})
	}
	return connect.NewResponse(out), nil
}

func gcRunMessage(r *fsmpb.GCRun) *wharfv1.GCRun {
	return &wharfv1.GCRun{
		NodeId:              r.GetNodeId(),
		StartedUnixNanos:    r.GetStartedUnixNanos(),
		EndedUnixNanos:      r.GetEndedUnixNanos(),
		Manual:              r.GetManual(),
		Examined:            r.GetExamined(),
		Collected:           r.GetCollected(),
		BytesCollected:      r.GetBytesCollected(),
		Kept:                r.GetKept(),
		RepositoriesRemoved: r.GetRepositoriesRemoved(),
		Errors:              r.GetErrors(),
	}
}

// RunCollection collects now on this node and streams its progress (or,
// in a dry run, each candidate), then the summary.
func (s *gcService) RunCollection(ctx context.Context, req *connect.Request[wharfv1.RunCollectionRequest], stream *connect.ServerStream[wharfv1.RunCollectionResponse]) error {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return err
	}
	c, _ := caller(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The collector calls back on this goroutine. A failed send stops the
	// run: the client is gone.
	var sendErr error
	send := func(m *wharfv1.RunCollectionResponse) {
		if sendErr != nil {
			return
		}
		if sendErr = stream.Send(m); sendErr != nil {
			cancel()
		}
	}
	dry := req.Msg.DryRun
	run, err := s.cfg.GC.Collect(ctx, CollectOptions{
		DryRun: dry,
		Progress: func(examined, collected int, bytes int64) {
			send(&wharfv1.RunCollectionResponse{Event: &wharfv1.RunCollectionResponse_Progress{Progress: &wharfv1.CollectionProgress{
				Examined: int64(examined), Collected: int64(collected), BytesCollected: bytes,
			}}})
		},
		Candidate: func(d digest.Digest, size int64, since time.Time) {
			send(&wharfv1.RunCollectionResponse{Event: &wharfv1.RunCollectionResponse_Candidate{Candidate: &wharfv1.CollectionCandidate{
				Digest: d.String(), Size: size, UnreferencedSinceUnixNanos: since.UnixNano(),
			}}})
		},
	})
	if !dry { // what it collected before any failure
		auth.Audit(s.cfg.log(), "gc.run", c.User, "", "collected", run.GetCollected(), "bytes", run.GetBytesCollected(), "errors", run.GetErrors())
	}
	if sendErr != nil {
		return connect.NewError(connect.CodeCanceled, fmt.Errorf("send progress: %w", sendErr))
	}
	send(&wharfv1.RunCollectionResponse{Event: &wharfv1.RunCollectionResponse_Summary{Summary: gcRunMessage(run)}})
	if err != nil {
		return stateError(fmt.Errorf("collection run: %w", err))
	}
	if sendErr != nil {
		return connect.NewError(connect.CodeCanceled, fmt.Errorf("send summary: %w", sendErr))
	}
	return nil
}

// checkDigest parses a blob digest from field.
func checkDigest(field, s string) (digest.Digest, error) {
	if s == "" {
		return "", invalidArgument(field, errors.New("is required: a digest such as sha256:<64 hex digits>"))
	}
	d, err := digest.Parse(s)
	if err != nil {
		return "", invalidArgument(field, fmt.Errorf("invalid digest %q: %v", s, err))
	}
	return d, nil
}

// WhyKept says what keeps a blob, or when its grace period ends.
func (s *gcService) WhyKept(ctx context.Context, req *connect.Request[wharfv1.WhyKeptRequest]) (*connect.Response[wharfv1.WhyKeptResponse], error) {
	d, err := checkDigest("digest", req.Msg.Digest)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	out := &wharfv1.WhyKeptResponse{Digest: d.String()}
	holders, err := f.BlobHolders(d)
	switch {
	case err == nil:
		out.Size, out.HolderNodeIds = holders.GetSize(), holders.GetNodeIds()
	case !errors.Is(err, fsm.ErrNotFound):
		return nil, stateError(err)
	}
	k, err := f.BlobKeepers(d, maxKeepers, maxKeeperTags)
	if err != nil {
		return nil, stateError(err)
	}
	out.Repositories, out.Truncated = k.Repositories, k.Truncated
	for _, m := range k.Manifests {
		out.Manifests = append(out.Manifests, &wharfv1.BlobManifestRef{Repository: m.Repository, ManifestDigest: m.Digest.String(), Tags: m.Tags})
	}
	if k.UnreferencedSince != 0 {
		grace, _ := s.cfg.GC.Settings()
		out.UnreferencedSinceUnixNanos = k.UnreferencedSince
		out.GraceUntilUnixNanos = k.UnreferencedSince + int64(grace)
	}
	if holders != nil || len(out.Repositories)+len(out.Manifests) > 0 {
		return connect.NewResponse(out), nil
	}
	switch tomb, err := f.CollectedBlob(d); {
	case err == nil:
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("blob %s was collected at %s; %d node(s) have yet to delete their copies",
			d, time.Unix(0, tomb.GetCollectedUnixNanos()).UTC().Format(time.RFC3339), len(tomb.GetNodeIds())))
	case !errors.Is(err, fsm.ErrNotFound):
		return nil, stateError(err)
	}
	return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("blob %s is unknown: no node holds it and nothing references it", d))
}

// GetStorage adds up the stored bytes (see fsm.FSM.Storage for the cost).
func (s *gcService) GetStorage(ctx context.Context, _ *connect.Request[wharfv1.GetStorageRequest]) (*connect.Response[wharfv1.GetStorageResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	st, err := f.Storage()
	if err != nil {
		return nil, stateError(err)
	}
	out := &wharfv1.GetStorageResponse{
		ReferencedBytes: st.Referenced.Bytes, ReferencedBlobs: st.Referenced.Blobs,
		HeldBytes: st.Held.Bytes, HeldBlobs: st.Held.Blobs,
	}
	names := slices.Sorted(maps.Keys(st.Namespaces))
	if len(names) > maxStorageEntries {
		names, out.Truncated = names[:maxStorageEntries], true
	}
	for _, ns := range names {
		u := st.Namespaces[ns]
		out.Namespaces = append(out.Namespaces, &wharfv1.NamespaceStorage{Namespace: ns, Bytes: u.Bytes, Blobs: u.Blobs})
	}
	for _, id := range slices.Sorted(maps.Keys(st.Nodes)) {
		u := st.Nodes[id]
		out.Nodes = append(out.Nodes, &wharfv1.NodeStorage{NodeId: id, Bytes: u.Bytes, Blobs: u.Blobs})
	}
	return connect.NewResponse(out), nil
}
