// Package gc removes blobs that nothing references any more, and
// repositories a push left empty.
//
// What references a blob, and since when a blob is unreferenced, is
// replicated state (see the fsm package: bref/, gc/ and collected/ keys).
// This package holds the two reconcilers that act on it:
//
//   - on the Raft leader, as a leader task (CollectLoop), Collect proposes
//     CollectBlob for every blob that has been unreferenced for longer
//     than the grace period. The FSM
//     re-checks both conditions when it applies the command, so a blob
//     linked or pushed again in the meantime is kept. A collected blob loses
//     its holder record and gets a tombstone naming the nodes that held it.
//     Collect also takes nodes that are no longer registered off tombstones.
//   - on every node, Sweep deletes the local copy of each collected blob
//     whose tombstone names this node, then reports it with
//     CollectedBlobDeleted; the tombstone goes with the last node.
//
// A running upload never loses its blob: its bytes live in the upload
// session until commit; the commit's holder record (LinkBlob's holder, or
// AddBlobHolder) gives an unreferenced blob
// a fresh grace period, and takes this node off a tombstone if the blob was
// collected in the meantime, so the link that follows succeeds and the new
// copy is not deleted. A local delete is also skipped while the file was
// stored (or stored again by a commit that found it present) less than
// Settle ago: that covers a commit whose holder record is still on its way
// through Raft. A mount or manifest push that raced a collection fails with
// fsm.ErrBlobCollected instead of referencing a blob that is being deleted.
//
// Sweep also deletes the local copies this node no longer holds: files of
// blobs whose holder record exists but does not list this node, because the
// leader's repair trimmed it as an extra holder that is not one of the
// blob's owners (see package replica). It first waits until the local FSM
// has caught up with the leader (a node replaying an old log must not act on
// a record from the past), and deletes a copy only while the record lists at
// least min(Replicas, other live nodes) live holders other than this node,
// and only if the file was not stored (or stored again: a client upload, a
// peer copy) less than Settle ago. A client that stores the blob here again
// after the trim therefore keeps its copy: the commit refreshes the file's
// time, and its holder record lists the node again. Reads in progress keep
// their open descriptors, which survive the unlink.
//
// Sweep deletes orphans too: files of blobs that no holder record names at
// all, such as a blob committed here whose holder record was never written
// (the link's Raft write failed), a copy a peer pushed whose AddBlobHolder
// was lost, the files of a node that was deregistered and came back, or a
// collected blob whose tombstone did not name this node, once the tombstone
// is gone. After the same catch-up with the leader, a file is an orphan only
// if the FSM has no holder record for its blob and no tombstone either (a
// tombstone is the collected-blob path's business, above). An orphan is
// deleted only if the file was not stored (or stored again, or touched by a
// peer copy) less than Grace ago, not merely Settle: it may be a fresh
// upload whose holder record is about to be written, or one whose link
// failed and that the client will retry. An orphan whose blob something
// still references (a repository link or a manifest) is kept whatever its
// age: no node is recorded as holding that blob, so this file may be its
// last copy; the sweep counts it (SweepReport.OrphansReferenced) and SweepLoop
// logs a warning.
//
// On the leader, Collect also removes repositories that have held no
// manifest, and had no blob linked, for EmptyRepositoryGrace: what a push
// that failed before its manifest leaves behind. It proposes
// RemoveEmptyRepository, which the FSM re-checks as it applies it (see the
// fsm package), so a push that linked a blob or stored a manifest in the
// meantime keeps the repository. The removed repository's blob links go
// with it, which may leave its blobs unreferenced, to be collected in turn.
//
// # Status
//
// What collection did is replicated state, so that every node reports the
// same (the admin API's GCService.GetStatus answers from its local FSM): at
// the end of each run, the node that ran it proposes RecordGCRun with the
// run's summary, and at the end of each sweep every node proposes
// RecordSweep with its own. The FSM keeps the last run and one sweep per
// registered node, so the state stays bounded whatever the number of runs;
// the proposer stamps the time. Each costs one Raft entry per run per
// node; a sweep that deleted nothing, like the one before it, is not
// recorded again until RecordEvery has passed, so an idle cluster writes a
// few entries an hour rather than one per node a minute (the recorded
// sweep time then lags by up to RecordEvery). Keeping the summaries in
// each node's memory instead would need every node to be asked (and
// answer) for a status; a record in the FSM answers on any node, even
// about a node that is down.
//
// Run is a collection on demand (GCService.RunCollection): the answering
// node proposes CollectBlob itself, through Raft like any write. It is safe
// beside the leader's CollectLoop, because the FSM re-checks every
// CollectBlob as it applies it: a blob collected twice is refused the
// second time as not collectable. A dry run proposes nothing and reports
// each blob the run would collect.
//
// PurgeLoop removes upload sessions idle for longer than UploadMaxAge,
// every min(1h, UploadMaxAge/4); the last purge goes into the node's next
// recorded sweep.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// page is how many records one scan step reads.
const page = 500

// Cluster is what garbage collection needs of the local cluster node.
type Cluster interface {
	// LocalID is this node's ID.
	LocalID() string
	// NodeIDs returns the IDs of the registered nodes.
	NodeIDs() ([]string, error)
	// ListUnreferencedBlobs and ListCollectedBlobs page through the FSM's
	// gc records and tombstones.
	ListUnreferencedBlobs(last string, n int) ([]fsm.UnreferencedBlob, error)
	ListCollectedBlobs(last string, n int) ([]*fsmpb.CollectedBlob, error)
	// CollectBlob commits a CollectBlob command stamped with the proposer's
	// clock; it fails with fsm.ErrBlobNotCollectable when the FSM keeps the
	// blob.
	CollectBlob(ctx context.Context, d digest.Digest, grace time.Duration) error
	// CollectedBlobDeleted commits that nodeID no longer has a copy of d.
	CollectedBlobDeleted(ctx context.Context, d digest.Digest, nodeID string) error
	// BlobHolders returns the holder record of d, or fsm.ErrNotFound.
	BlobHolders(d digest.Digest) (*fsmpb.BlobHolders, error)
	// CollectedBlob returns the tombstone of collected blob d, or
	// fsm.ErrNotFound.
	CollectedBlob(d digest.Digest) (*fsmpb.CollectedBlob, error)
	// BlobReferences counts what references blob d: repository links and
	// stored manifests.
	BlobReferences(d digest.Digest) (links, manifests int, err error)
	// LiveNodeIDs returns the IDs of the registered nodes gossip sees alive
	// (this node included).
	LiveNodeIDs() ([]string, error)
	// CatchUp returns once the local FSM has applied every entry the leader
	// committed before the call, or an error if that is not known.
	CatchUp(ctx context.Context) error
	// ListEmptyRepositories pages through the repositories without
	// manifests, with since when.
	ListEmptyRepositories(last string, n int) ([]fsm.EmptyRepository, error)
	// RemoveEmptyRepository commits a RemoveEmptyRepository command stamped
	// with the proposer's clock; it fails with fsm.ErrRepositoryNotEmpty
	// when the FSM keeps the repository.
	RemoveEmptyRepository(ctx context.Context, repo string, grace time.Duration) error
	// RecordGCRun and RecordSweep commit a run's and a sweep's summary,
	// stamped with the proposer's clock.
	RecordGCRun(ctx context.Context, run *fsmpb.GCRun) error
	RecordSweep(ctx context.Context, sweep *fsmpb.SweepSummary) error
}

// Config configures a Collector.
type Config struct {
	Local   *blobstore.Store
	Cluster Cluster
	// Grace is how long a blob must stay unreferenced before it is
	// collected, and how long after its last local store a file that no
	// holder record names (an orphan) is kept. Default 1h.
	Grace time.Duration
	// Interval is how often the leader collects and every node sweeps.
	// Default 1m.
	Interval time.Duration
	// Settle is how long after a local commit of a blob its copy is safe
	// from deletion, whatever the FSM says: longer than a commit's
	// AddBlobHolder takes to be applied. Default min(5m, Grace).
	Settle time.Duration
	// EmptyRepositoryGrace is how long a repository must have held no
	// manifest, with no blob linked to it either, before it is removed.
	// Default 24h.
	EmptyRepositoryGrace time.Duration
	// Replicas (R) is the number of copies each blob should have. A copy
	// this node no longer holds is deleted only while at least
	// min(R, other live nodes) other live nodes hold the blob. Default 3.
	Replicas int
	// PurgeUploads removes the upload sessions idle for longer than its
	// argument and returns how many (blobstore.Store.PurgeUploads); nil:
	// PurgeLoop purges nothing. UploadMaxAge is that age, default 24h;
	// PurgeInterval how often PurgeLoop purges, default
	// min(1h, UploadMaxAge/4).
	PurgeUploads  func(ctx context.Context, olderThan time.Duration) (int, error)
	UploadMaxAge  time.Duration
	PurgeInterval time.Duration
	// RecordEvery is how long a node may go without recording a sweep
	// that deleted nothing, like the last one it recorded. Default
	// 10*Interval.
	RecordEvery time.Duration
	// Now is the clock Collect compares with the FSM's timestamps; default
	// time.Now. Sweep compares file times with the local wall clock.
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

func (c *Config) setDefaults() {
	if c.Grace <= 0 {
		c.Grace = time.Hour
	}
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.Settle <= 0 {
		c.Settle = min(5*time.Minute, c.Grace)
	}
	if c.EmptyRepositoryGrace <= 0 {
		c.EmptyRepositoryGrace = 24 * time.Hour
	}
	if c.Replicas <= 0 {
		c.Replicas = 3
	}
	if c.UploadMaxAge <= 0 {
		c.UploadMaxAge = 24 * time.Hour
	}
	if c.PurgeInterval <= 0 {
		c.PurgeInterval = PurgeInterval(c.UploadMaxAge)
	}
	if c.RecordEvery <= 0 {
		c.RecordEvery = 10 * c.Interval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// PurgeInterval is how often upload sessions idle for longer than maxAge
// are looked for: min(1h, maxAge/4), so a session is removed at most a
// quarter of maxAge late, and a long maxAge costs one scan an hour.
func PurgeInterval(maxAge time.Duration) time.Duration {
	return max(time.Second, min(time.Hour, maxAge/4))
}

// Collector runs garbage collection for one node.
type Collector struct {
	cfg     Config
	metrics *metrics

	mu sync.Mutex
	// lastPurge is the last upload purge: when (unix nanos) and how many.
	lastPurge, lastPurged int64
	// recorded is the last sweep this node recorded, nil before the first.
	recorded *fsmpb.SweepSummary
}

// New returns a Collector. Close unregisters its metrics.
func New(cfg Config) (*Collector, error) {
	cfg.setDefaults()
	if cfg.Local == nil || cfg.Cluster == nil {
		return nil, errors.New("gc: Local and Cluster are required")
	}
	return &Collector{cfg: cfg, metrics: newMetrics(cfg.Registerer)}, nil
}

// Close unregisters the metrics.
func (c *Collector) Close() { c.metrics.unregister(c.cfg.Registerer) }

// CollectLoop collects every Interval until ctx ends: a leader task
// (cluster.Node.RunOnLeader).
func (c *Collector) CollectLoop(ctx context.Context) {
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if rep, _, err := c.Run(ctx, RunOptions{}); err != nil && ctx.Err() == nil {
			c.cfg.Logger.Warn("blob collection round", "err", err)
		} else if rep.Collected > 0 || rep.RepositoriesRemoved > 0 {
			c.cfg.Logger.Info("collected unreferenced blobs and empty repositories",
				"blobs", rep.Collected, "repositories", rep.RepositoriesRemoved)
		}
	}
}

// SweepLoop sweeps every Interval until ctx ends. Run it on every node.
func (c *Collector) SweepLoop(ctx context.Context) {
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := c.SweepAndRecord(ctx); err != nil && ctx.Err() == nil {
			c.cfg.Logger.Warn("record sweep summary", "err", err)
		}
	}
}

// SweepAndRecord sweeps, logs the outcome and records the summary
// (sparingly: see the package documentation). Its error is the
// recording's; the sweep's own is logged and counted in the summary.
func (c *Collector) SweepAndRecord(ctx context.Context) (SweepReport, error) {
	start := time.Now()
	rep, err := c.Sweep(ctx)
	if ctx.Err() != nil {
		return rep, ctx.Err() // stopped, not failed; nothing to record
	}
	c.logSweep(rep, err)
	return rep, c.recordSweep(ctx, start, rep, err)
}

// Settings returns the collector's grace period and interval.
func (c *Collector) Settings() (grace, interval time.Duration) {
	return c.cfg.Grace, c.cfg.Interval
}

// recordSweep proposes the summary of a sweep that started at start,
// unless it deleted nothing, like the last one recorded less than
// RecordEvery ago.
func (c *Collector) recordSweep(ctx context.Context, start time.Time, rep SweepReport, sweepErr error) error {
	c.mu.Lock()
	sum := &fsmpb.SweepSummary{
		NodeId:                 c.cfg.Cluster.LocalID(),
		StartedUnixNanos:       start.UnixNano(),
		CollectedFiles:         int64(rep.Deleted),
		CollectedBytes:         rep.BytesFreed,
		TrimmedFiles:           int64(rep.Unheld),
		TrimmedBytes:           rep.UnheldBytesFreed,
		OrphanFiles:            int64(rep.Orphans),
		OrphanBytes:            rep.OrphanBytesFreed,
		OrphansReferenced:      int64(rep.OrphansReferenced),
		OrphansYoung:           int64(rep.OrphansKept),
		Settling:               int64(rep.Settling),
		TrimmedKept:            int64(rep.UnheldKept),
		Errors:                 int64(countErrors(sweepErr)),
		UploadsPurgedUnixNanos: c.lastPurge,
		UploadsPurged:          c.lastPurged,
		UploadMaxAgeNanos:      int64(c.cfg.UploadMaxAge),
	}
	prev := c.recorded
	c.mu.Unlock()
	if prev != nil && idle(sum) && sameCounts(prev, sum) && start.Sub(time.Unix(0, prev.GetStartedUnixNanos())) < c.cfg.RecordEvery {
		return nil
	}
	if err := c.cfg.Cluster.RecordSweep(ctx, sum); err != nil {
		return err
	}
	c.mu.Lock()
	c.recorded = sum
	c.mu.Unlock()
	return nil
}

// idle reports whether a sweep deleted nothing and kept nothing that
// deserves a look (referenced orphans), without errors.
func idle(s *fsmpb.SweepSummary) bool {
	return s.GetCollectedFiles()+s.GetTrimmedFiles()+s.GetOrphanFiles()+s.GetOrphansReferenced()+s.GetErrors() == 0
}

// sameCounts reports whether two summaries differ only in their times.
func sameCounts(a, b *fsmpb.SweepSummary) bool {
	a, b = proto.CloneOf(a), proto.CloneOf(b)
	a.StartedUnixNanos, a.EndedUnixNanos, b.StartedUnixNanos, b.EndedUnixNanos = 0, 0, 0, 0
	return proto.Equal(a, b)
}

// countErrors counts the errors errors.Join put together in err.
func countErrors(err error) int {
	if err == nil {
		return 0
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n := 0
		for _, e := range j.Unwrap() {
			n += countErrors(e)
		}
		return max(n, 1)
	}
	return 1
}

// PurgeLoop removes abandoned upload sessions at once, then every
// PurgeInterval until ctx ends. Run it on every node.
func (c *Collector) PurgeLoop(ctx context.Context) {
	if c.cfg.PurgeUploads == nil {
		return
	}
	tick := time.NewTicker(c.cfg.PurgeInterval)
	defer tick.Stop()
	for {
		n, err := c.cfg.PurgeUploads(ctx, c.cfg.UploadMaxAge)
		switch {
		case err != nil && ctx.Err() == nil:
			c.cfg.Logger.Warn("purge abandoned uploads", "err", err)
		case n > 0:
			c.cfg.Logger.Info("purged abandoned uploads", "count", n, "max_age", c.cfg.UploadMaxAge)
		}
		if ctx.Err() == nil {
			c.metrics.uploadsPurged.Add(float64(n))
			c.mu.Lock()
			c.lastPurge, c.lastPurged = time.Now().UnixNano(), int64(n)
			c.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// logSweep logs a sweep's outcome: one info line if it deleted any file,
// even if it also failed, then a warning for what went wrong.
func (c *Collector) logSweep(rep SweepReport, err error) {
	if rep.Deleted > 0 || rep.Unheld > 0 || rep.Orphans > 0 {
		c.cfg.Logger.Info("deleted blob files", "collected", rep.Deleted, "bytes", rep.BytesFreed,
			"unheld", rep.Unheld, "unheld_bytes", rep.UnheldBytesFreed,
			"orphans", rep.Orphans, "orphan_bytes", rep.OrphanBytesFreed)
	}
	if rep.OrphansReferenced > 0 {
		c.cfg.Logger.Warn("kept blob files that no holder record names although their blobs are referenced: "+
			"no node is recorded as holding those blobs, these files may be their last copies",
			"count", rep.OrphansReferenced)
	}
	if err != nil {
		c.cfg.Logger.Warn("sweep blob files", "err", err)
	}
}

// CollectReport summarises one collection round.
type CollectReport struct {
	Unreferenced int // gc records read
	// Collected counts the blobs the FSM collected (in a dry run: those
	// past their grace period, that a run would propose), BytesCollected
	// their size.
	Collected      int
	BytesCollected int64
	Kept           int // blobs the FSM refused to collect (referenced again)
	Forgotten      int // tombstone entries of unregistered nodes dropped
	// RepositoriesRemoved counts the empty repositories the FSM removed,
	// RepositoriesKept those it kept (a push linked or stored something).
	RepositoriesRemoved int
	RepositoriesKept    int
}

// Collect proposes CollectBlob for every blob unreferenced for longer than
// the grace period, and drops unregistered nodes from tombstones.
func (c *Collector) Collect(ctx context.Context) (CollectReport, error) {
	return c.collect(ctx, RunOptions{})
}

// RunOptions adjusts a Run.
type RunOptions struct {
	// DryRun proposes nothing: Candidate is called for every blob a run
	// would collect, and nothing is recorded.
	DryRun bool
	// Manual marks the recorded run as asked for by an admin.
	Manual bool
	// Progress, if set, is called now and then during the run (every
	// progressEvery blobs examined) and once at its end.
	Progress func(Progress)
	// Candidate, if set, is called for every blob a dry run would collect.
	Candidate func(Candidate)
}

// Progress is how far a run has got.
type Progress struct {
	Examined, Collected int
	BytesCollected      int64
}

// Candidate is a blob a dry run would collect.
type Candidate struct {
	Digest            digest.Digest
	Size              int64
	UnreferencedSince time.Time
}

// progressEvery is how many examined blobs make a Progress call.
const progressEvery = 100

// Run collects now, like the leader's periodic run, and then records the
// run's summary (RecordGCRun), which it returns too; a dry run records
// nothing. Any node may run it (see the package documentation).
func (c *Collector) Run(ctx context.Context, opts RunOptions) (CollectReport, *fsmpb.GCRun, error) {
	start := c.cfg.Now()
	rep, err := c.collect(ctx, opts)
	run := &fsmpb.GCRun{
		NodeId:              c.cfg.Cluster.LocalID(),
		StartedUnixNanos:    start.UnixNano(),
		EndedUnixNanos:      c.cfg.Now().UnixNano(),
		Manual:              opts.Manual,
		Examined:            int64(rep.Unreferenced),
		Collected:           int64(rep.Collected),
		BytesCollected:      rep.BytesCollected,
		Kept:                int64(rep.Kept),
		RepositoriesRemoved: int64(rep.RepositoriesRemoved),
		Errors:              int64(countErrors(err)),
		GraceNanos:          int64(c.cfg.Grace),
		IntervalNanos:       int64(c.cfg.Interval),
	}
	if opts.DryRun || ctx.Err() != nil {
		return rep, run, err
	}
	c.metrics.lastRun.Set(float64(run.EndedUnixNanos) / 1e9)
	if rerr := c.cfg.Cluster.RecordGCRun(ctx, run); rerr != nil {
		err = errors.Join(err, fmt.Errorf("record the run's summary: %w", rerr))
	}
	return rep, run, err
}

func (c *Collector) collect(ctx context.Context, opts RunOptions) (CollectReport, error) {
	var rep CollectReport
	progress := func() {
		if opts.Progress != nil {
			opts.Progress(Progress{Examined: rep.Unreferenced, Collected: rep.Collected, BytesCollected: rep.BytesCollected})
		}
	}
	cutoff := c.cfg.Now().Add(-c.cfg.Grace).UnixNano()
	var errs []error
	last := ""
	for ctx.Err() == nil {
		recs, err := c.cfg.Cluster.ListUnreferencedBlobs(last, page)
		if err != nil {
			return rep, err
		}
		for _, rec := range recs {
			if rep.Unreferenced++; rep.Unreferenced%progressEvery == 0 {
				progress()
			}
			if rec.SinceUnixNanos > cutoff {
				continue
			}
			if err := c.collectOne(ctx, rec, opts, &rep); err != nil {
				errs = append(errs, err)
			}
		}
		if len(recs) < page {
			break
		}
		last = recs[len(recs)-1].Digest.String()
	}
	if opts.DryRun {
		progress()
		return rep, errors.Join(append(errs, ctx.Err())...)
	}
	n, err := c.forgetUnregistered(ctx)
	rep.Forgotten = n
	errs = append(errs, err, c.removeEmptyRepositories(ctx, &rep))
	progress()
	return rep, errors.Join(errs...)
}

// collectOne proposes CollectBlob for rec, or in a dry run reports it.
func (c *Collector) collectOne(ctx context.Context, rec fsm.UnreferencedBlob, opts RunOptions, rep *CollectReport) error {
	var size int64
	switch h, err := c.cfg.Cluster.BlobHolders(rec.Digest); {
	case err == nil:
		size = h.GetSize()
	case !errors.Is(err, fsm.ErrNotFound):
		return fmt.Errorf("holders of %s: %w", rec.Digest, err)
	}
	if opts.DryRun {
		rep.Collected++
		rep.BytesCollected += size
		if opts.Candidate != nil {
			opts.Candidate(Candidate{Digest: rec.Digest, Size: size, UnreferencedSince: time.Unix(0, rec.SinceUnixNanos)})
		}
		return nil
	}
	err := c.cfg.Cluster.CollectBlob(ctx, rec.Digest, c.cfg.Grace)
	switch {
	case errors.Is(err, fsm.ErrBlobNotCollectable):
		rep.Kept++
	case err != nil:
		return fmt.Errorf("collect %s: %w", rec.Digest, err)
	default:
		rep.Collected++
		rep.BytesCollected += size
		c.metrics.collected.Inc()
		c.metrics.bytesCollected.Add(float64(size))
	}
	return nil
}

// removeEmptyRepositories proposes RemoveEmptyRepository for every
// repository empty for longer than EmptyRepositoryGrace.
func (c *Collector) removeEmptyRepositories(ctx context.Context, rep *CollectReport) error {
	grace := c.cfg.EmptyRepositoryGrace
	cutoff := c.cfg.Now().Add(-grace).UnixNano()
	var errs []error
	last := ""
	for ctx.Err() == nil {
		repos, err := c.cfg.Cluster.ListEmptyRepositories(last, page)
		if err != nil {
			return errors.Join(append(errs, fmt.Errorf("list empty repositories: %w", err))...)
		}
		for _, r := range repos {
			if r.SinceUnixNanos > cutoff {
				continue
			}
			err := c.cfg.Cluster.RemoveEmptyRepository(ctx, r.Name, grace)
			switch {
			case errors.Is(err, fsm.ErrRepositoryNotEmpty):
				rep.RepositoriesKept++
			case err != nil:
				errs = append(errs, fmt.Errorf("remove empty repository %s: %w", r.Name, err))
			default:
				rep.RepositoriesRemoved++
				c.metrics.repositoriesRemoved.Inc()
				c.cfg.Logger.Info("removed an empty repository", "repository", r.Name,
					"empty_since", time.Unix(0, r.SinceUnixNanos).UTC(), "grace", grace)
			}
		}
		if len(repos) < page {
			break
		}
		last = repos[len(repos)-1].Name
	}
	return errors.Join(errs...)
}

// forgetUnregistered takes nodes that left the cluster off tombstones: they
// will never report deleting their copies.
func (c *Collector) forgetUnregistered(ctx context.Context) (int, error) {
	ids, err := c.cfg.Cluster.NodeIDs()
	if err != nil {
		return 0, fmt.Errorf("registered nodes: %w", err)
	}
	n := 0
	var errs []error
	err = c.eachTombstone(ctx, func(tomb *fsmpb.CollectedBlob) {
		for _, id := range tomb.GetNodeIds() {
			if slices.Contains(ids, id) {
				continue
			}
			if err := c.cfg.Cluster.CollectedBlobDeleted(ctx, digest.Digest(tomb.GetDigest()), id); err != nil {
				errs = append(errs, fmt.Errorf("forget %s on tombstone of %s: %w", id, tomb.GetDigest(), err))
				continue
			}
			n++
		}
	})
	return n, errors.Join(append(errs, err)...)
}

// SweepReport summarises one local sweep.
type SweepReport struct {
	Deleted    int   // local copies deleted
	BytesFreed int64 // their size
	Settling   int   // copies kept because they were stored less than Settle ago
	// Unheld and UnheldBytesFreed count the local copies of blobs whose
	// holder record no longer lists this node (trimmed), deleted.
	Unheld           int
	UnheldBytesFreed int64
	// UnheldKept counts such copies kept because too few other live nodes
	// hold the blob.
	UnheldKept int
	// Orphans and OrphanBytesFreed count the local files of blobs that no
	// holder record (and no tombstone) names, deleted.
	Orphans          int
	OrphanBytesFreed int64
	// OrphansKept counts orphans kept because they were stored less than
	// Grace ago.
	OrphansKept int
	// OrphansReferenced counts orphans kept because something references
	// their blob (see the package documentation).
	OrphansReferenced int
}

// Sweep deletes this node's copies of collected blobs and reports them,
// then deletes its copies of blobs it is no longer recorded as holding, and
// its orphans (see the package documentation).
func (c *Collector) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	local := c.cfg.Cluster.LocalID()
	// Read the clock before the FSM: a copy stored before cutoff had Settle
	// for its holder record to reach this node's FSM.
	start := time.Now()
	cutoff := start.Add(-c.cfg.Settle)
	var errs []error
	err := c.eachTombstone(ctx, func(tomb *fsmpb.CollectedBlob) {
		if _, ok := slices.BinarySearch(tomb.GetNodeIds(), local); !ok {
			return
		}
		d := digest.Digest(tomb.GetDigest())
		freed, kept, err := c.cfg.Local.DeleteIfStoredBefore(ctx, d, cutoff)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if kept {
			rep.Settling++
			return
		}
		if freed > 0 {
			rep.Deleted++
			rep.BytesFreed += freed
			c.metrics.deleted.Inc()
			c.metrics.bytesFreed.Add(float64(freed))
		}
		if err := c.cfg.Cluster.CollectedBlobDeleted(ctx, d, local); err != nil && !errors.Is(err, fsm.ErrNotFound) {
			errs = append(errs, fmt.Errorf("report deleting %s: %w", d, err))
		}
	})
	errs = append(errs, err)
	if ctx.Err() == nil {
		errs = append(errs, c.sweepFiles(ctx, start, &rep))
	}
	return rep, errors.Join(errs...)
}

// sweepFiles walks the local blob files once the FSM has caught up with the
// leader: it deletes the copies of blobs whose holder record does not list
// this node (sweepUnheld) and the orphans, files of blobs that no holder
// record names (sweepOrphan). start is when Sweep read the clock, before
// reading the FSM.
func (c *Collector) sweepFiles(ctx context.Context, start time.Time, rep *SweepReport) error {
	// start was read before this: a copy stored before start-Settle had
	// Settle for its holder record to be committed, which the FSM has now
	// applied. The same catch-up covers orphans, stored before start-Grace.
	if err := c.cfg.Cluster.CatchUp(ctx); err != nil {
		return fmt.Errorf("holder records may be behind the leader; not deleting unheld copies or orphans: %w", err)
	}
	ids, err := c.cfg.Cluster.LiveNodeIDs()
	if err != nil {
		return fmt.Errorf("live nodes: %w", err)
	}
	local := c.cfg.Cluster.LocalID()
	u := unheld{
		local:  local,
		live:   make(map[string]bool, len(ids)),
		cutoff: start.Add(-c.cfg.Settle),
	}
	for _, id := range ids {
		if id != local {
			u.live[id] = true
		}
	}
	u.need = max(1, min(c.cfg.Replicas, len(u.live)))
	orphanCutoff := start.Add(-c.cfg.Grace)
	var errs []error
	err = c.cfg.Local.Blobs(ctx, func(d digest.Digest) error {
		rec, err := c.cfg.Cluster.BlobHolders(d)
		switch {
		case errors.Is(err, fsm.ErrNotFound):
			err = c.sweepOrphan(ctx, d, orphanCutoff, rep)
		case err != nil:
			err = fmt.Errorf("holders of %s: %w", d, err)
		default:
			err = c.sweepUnheld(ctx, d, rec, u, rep)
		}
		if err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

// unheld is what sweepUnheld needs to know for every file.
type unheld struct {
	local  string
	live   map[string]bool // live nodes other than this one
	need   int             // min(Replicas, len(live)), at least 1
	cutoff time.Time       // start of the sweep less Settle
}

// sweepUnheld deletes the local copy of blob d if its holder record rec
// does not list this node, the copy was stored before u.cutoff and enough
// other live nodes hold the blob (see the package documentation).
func (c *Collector) sweepUnheld(ctx context.Context, d digest.Digest, rec *fsmpb.BlobHolders, u unheld, rep *SweepReport) error {
	if _, held := slices.BinarySearch(rec.GetNodeIds(), u.local); held {
		return nil
	}
	elsewhere := 0
	for _, id := range rec.GetNodeIds() {
		if u.live[id] {
			elsewhere++
		}
	}
	if elsewhere < u.need {
		rep.UnheldKept++
		return nil
	}
	freed, kept, err := c.cfg.Local.DeleteIfStoredBefore(ctx, d, u.cutoff)
	switch {
	case err != nil:
		return err
	case kept:
		rep.Settling++
	case freed > 0:
		rep.Unheld++
		rep.UnheldBytesFreed += freed
		c.metrics.unheldDeleted.Inc()
		c.metrics.bytesFreed.Add(float64(freed))
	}
	return nil
}

// sweepOrphan deletes the local file of blob d, which no holder record
// names, if no tombstone names the blob either, nothing references it, and
// the file was stored before cutoff (the start of the sweep less Grace).
func (c *Collector) sweepOrphan(ctx context.Context, d digest.Digest, cutoff time.Time, rep *SweepReport) error {
	// Looked up after the holder record: a collection removes the record
	// and writes the tombstone in one command, so a blob collected since
	// the tombstones were listed is seen here, and left to the next sweep.
	if _, err := c.cfg.Cluster.CollectedBlob(d); err == nil {
		return nil
	} else if !errors.Is(err, fsm.ErrNotFound) {
		return fmt.Errorf("tombstone of %s: %w", d, err)
	}
	links, manifests, err := c.cfg.Cluster.BlobReferences(d)
	if err != nil {
		return fmt.Errorf("references of %s: %w", d, err)
	}
	if links+manifests > 0 {
		rep.OrphansReferenced++
		return nil
	}
	// A holder record of this node written from now on follows a store of
	// the file here (an upload's commit, a peer copy or Touch), which makes
	// it newer than cutoff: DeleteIfStoredBefore then keeps it.
	freed, kept, err := c.cfg.Local.DeleteIfStoredBefore(ctx, d, cutoff)
	switch {
	case err != nil:
		return err
	case kept:
		rep.OrphansKept++
	case freed > 0:
		rep.Orphans++
		rep.OrphanBytesFreed += freed
		c.metrics.orphanDeleted.Inc()
		c.metrics.bytesFreed.Add(float64(freed))
	}
	return nil
}

// eachTombstone calls fn for every tombstone, a page at a time.
func (c *Collector) eachTombstone(ctx context.Context, fn func(*fsmpb.CollectedBlob)) error {
	last := ""
	for ctx.Err() == nil {
		tombs, err := c.cfg.Cluster.ListCollectedBlobs(last, page)
		if err != nil {
			return fmt.Errorf("list collected blobs: %w", err)
		}
		for _, t := range tombs {
			fn(t)
		}
		if len(tombs) < page {
			return nil
		}
		last = tombs[len(tombs)-1].GetDigest()
	}
	return ctx.Err()
}

type metrics struct {
	collected  prometheus.Counter
	deleted    prometheus.Counter
	bytesFreed prometheus.Counter
	// unheldDeleted counts deleted copies this node was no longer recorded
	// as holding; their bytes count in bytesFreed.
	unheldDeleted prometheus.Counter
	// orphanDeleted counts deleted files that no holder record named; their
	// bytes count in bytesFreed.
	orphanDeleted prometheus.Counter
	// repositoriesRemoved counts the empty repositories this node removed
	// as leader.
	repositoriesRemoved prometheus.Counter
	// bytesCollected adds up the size of the blobs collected here.
	bytesCollected prometheus.Counter
	// uploadsPurged counts abandoned upload sessions removed.
	uploadsPurged prometheus.Counter
	// lastRun is when this node's last collection run ended.
	lastRun prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		collected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_gc_blobs_collected_total",
			Help: "Unreferenced blobs this node collected as leader (removed from the cluster's holder records).",
		}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_gc_blob_files_deleted_total",
			Help: "Local copies of collected blobs this node deleted.",
		}),
		bytesFreed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_gc_bytes_freed_total",
			Help: "Bytes of local disk freed by deleting collected blobs, copies this node no longer holds and orphan files.",
		}),
		unheldDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_blob_unheld_files_deleted_total",
			Help: "Local copies of blobs whose holder record no longer lists this node (trimmed extra copies) deleted.",
		}),
		orphanDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_gc_orphan_files_deleted_total",
			Help: "Local blob files that no holder record named (orphans), deleted after the grace period.",
		}),
		repositoriesRemoved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_gc_empty_repositories_removed_total",
			Help: "Repositories without manifests or tags this node removed as leader after the empty-repository grace period.",
		}),
		bytesCollected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_gc_bytes_collected_total",
			Help: "Bytes of the unreferenced blobs this node collected (as leader, or in a run an admin asked for).",
		}),
		uploadsPurged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_upload_sessions_purged_total",
			Help: "Abandoned upload sessions this node removed after --upload-max-age.",
		}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wharf_gc_last_run_timestamp_seconds",
			Help: "Unix time at which this node's last collection run ended (0: none since it started).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.collected, m.deleted, m.bytesFreed, m.unheldDeleted, m.orphanDeleted, m.repositoriesRemoved,
			m.bytesCollected, m.uploadsPurged, m.lastRun)
	}
	return m
}

func (m *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	reg.Unregister(m.collected)
	reg.Unregister(m.deleted)
	reg.Unregister(m.bytesFreed)
	reg.Unregister(m.unheldDeleted)
	reg.Unregister(m.orphanDeleted)
	reg.Unregister(m.repositoriesRemoved)
	reg.Unregister(m.bytesCollected)
	reg.Unregister(m.uploadsPurged)
	reg.Unregister(m.lastRun)
}
