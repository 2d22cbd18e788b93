// Package gc removes blobs that nothing references any more.
//
// What references a blob, and since when a blob is unreferenced, is
// replicated state (see the fsm package: bref/, gc/ and collected/ keys).
// This package holds the two reconcilers that act on it:
//
//   - on the Raft leader, Collect proposes CollectBlob for every blob that
//     has been unreferenced for longer than the grace period. The FSM
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
// Files on disk that no holder record names (a Stored call that failed, a
// node that was deregistered and came back, a collected blob whose
// tombstone does not name this node) are not swept; they are left for a
// future orphan scan.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	fsmv1 "github.com/wharf-registry/wharf/api/gen/wharf/fsm/v1"
	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/fsm"
)

// page is how many records one scan step reads.
const page = 500

// Cluster is what garbage collection needs of the local cluster node.
type Cluster interface {
	// LocalID is this node's ID.
	LocalID() string
	// IsLeader reports whether this node is the Raft leader.
	IsLeader() bool
	// NodeIDs returns the IDs of the registered nodes.
	NodeIDs() ([]string, error)
	// ListUnreferencedBlobs and ListCollectedBlobs page through the FSM's
	// gc records and tombstones.
	ListUnreferencedBlobs(last string, n int) ([]fsm.UnreferencedBlob, error)
	ListCollectedBlobs(last string, n int) ([]*fsmv1.CollectedBlob, error)
	// CollectBlob commits a CollectBlob command stamped with the proposer's
	// clock; it fails with fsm.ErrBlobNotCollectable when the FSM keeps the
	// blob.
	CollectBlob(ctx context.Context, d digest.Digest, grace time.Duration) error
	// CollectedBlobDeleted commits that nodeID no longer has a copy of d.
	CollectedBlobDeleted(ctx context.Context, d digest.Digest, nodeID string) error
	// BlobHolders returns the holder record of d, or fsm.ErrNotFound.
	BlobHolders(d digest.Digest) (*fsmv1.BlobHolders, error)
	// LiveNodeIDs returns the IDs of the registered nodes gossip sees alive
	// (this node included).
	LiveNodeIDs() ([]string, error)
	// CatchUp returns once the local FSM has applied every entry the leader
	// committed before the call, or an error if that is not known.
	CatchUp(ctx context.Context) error
}

// Config configures a Collector.
type Config struct {
	Local   *blobstore.Store
	Cluster Cluster
	// Grace is how long a blob must stay unreferenced before it is
	// collected. Default 1h.
	Grace time.Duration
	// Interval is how often the leader collects and every node sweeps.
	// Default 1m.
	Interval time.Duration
	// Settle is how long after a local commit of a blob its copy is safe
	// from deletion, whatever the FSM says: longer than a commit's
	// AddBlobHolder takes to be applied. Default min(5m, Grace).
	Settle time.Duration
	// Replicas (R) is the number of copies each blob should have. A copy
	// this node no longer holds is deleted only while at least
	// min(R, other live nodes) other live nodes hold the blob. Default 3.
	Replicas int
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
	if c.Replicas <= 0 {
		c.Replicas = 3
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Collector runs garbage collection for one node.
type Collector struct {
	cfg     Config
	metrics *metrics
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

// Run collects (on the leader) and sweeps (everywhere) every Interval until
// ctx ends. Call it on every node.
func (c *Collector) Run(ctx context.Context) {
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if c.cfg.Cluster.IsLeader() {
			if rep, err := c.Collect(ctx); err != nil && ctx.Err() == nil {
				c.cfg.Logger.Warn("blob collection round", "err", err)
			} else if rep.Collected > 0 {
				c.cfg.Logger.Info("collected unreferenced blobs", "count", rep.Collected)
			}
		}
		if rep, err := c.Sweep(ctx); err != nil && ctx.Err() == nil {
			c.cfg.Logger.Warn("delete collected blobs", "err", err)
		} else if rep.Deleted > 0 || rep.Unheld > 0 {
			c.cfg.Logger.Info("deleted blob files", "collected", rep.Deleted, "bytes", rep.BytesFreed,
				"unheld", rep.Unheld, "unheld_bytes", rep.UnheldBytesFreed)
		}
	}
}

// CollectReport summarises one collection round.
type CollectReport struct {
	Unreferenced int // gc records read
	Collected    int // blobs the FSM collected
	Kept         int // blobs the FSM refused to collect (referenced again)
	Forgotten    int // tombstone entries of unregistered nodes dropped
}

// Collect proposes CollectBlob for every blob unreferenced for longer than
// the grace period, and drops unregistered nodes from tombstones.
func (c *Collector) Collect(ctx context.Context) (CollectReport, error) {
	var rep CollectReport
	cutoff := c.cfg.Now().Add(-c.cfg.Grace).UnixNano()
	var errs []error
	last := ""
	for ctx.Err() == nil {
		recs, err := c.cfg.Cluster.ListUnreferencedBlobs(last, page)
		if err != nil {
			return rep, err
		}
		rep.Unreferenced += len(recs)
		for _, rec := range recs {
			if rec.SinceUnixNanos > cutoff {
				continue
			}
			err := c.cfg.Cluster.CollectBlob(ctx, rec.Digest, c.cfg.Grace)
			switch {
			case errors.Is(err, fsm.ErrBlobNotCollectable):
				rep.Kept++
			case err != nil:
				errs = append(errs, fmt.Errorf("collect %s: %w", rec.Digest, err))
			default:
				rep.Collected++
				c.metrics.collected.Inc()
			}
		}
		if len(recs) < page {
			break
		}
		last = recs[len(recs)-1].Digest.String()
	}
	n, err := c.forgetUnregistered(ctx)
	rep.Forgotten = n
	return rep, errors.Join(append(errs, err)...)
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
	err = c.eachTombstone(ctx, func(tomb *fsmv1.CollectedBlob) {
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
}

// Sweep deletes this node's copies of collected blobs and reports them,
// then deletes its copies of blobs it is no longer recorded as holding.
func (c *Collector) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	local := c.cfg.Cluster.LocalID()
	// Read the clock before the FSM: a copy stored before cutoff had Settle
	// for its holder record to reach this node's FSM.
	cutoff := time.Now().Add(-c.cfg.Settle)
	var errs []error
	err := c.eachTombstone(ctx, func(tomb *fsmv1.CollectedBlob) {
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
		errs = append(errs, c.sweepUnheld(ctx, cutoff, &rep))
	}
	return rep, errors.Join(errs...)
}

// sweepUnheld deletes the local copies of blobs whose holder record does not
// list this node, stored before cutoff, while enough other live nodes hold
// them (see the package documentation).
func (c *Collector) sweepUnheld(ctx context.Context, cutoff time.Time, rep *SweepReport) error {
	// cutoff was read before this: a copy stored before it had Settle for
	// its holder record to be committed, which the FSM has now applied.
	if err := c.cfg.Cluster.CatchUp(ctx); err != nil {
		return fmt.Errorf("holder records may be behind the leader; not deleting unheld copies: %w", err)
	}
	ids, err := c.cfg.Cluster.LiveNodeIDs()
	if err != nil {
		return fmt.Errorf("live nodes: %w", err)
	}
	local := c.cfg.Cluster.LocalID()
	live := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id != local {
			live[id] = true
		}
	}
	need := max(1, min(c.cfg.Replicas, len(live)))
	var errs []error
	err = c.cfg.Local.Blobs(ctx, func(d digest.Digest) error {
		rec, err := c.cfg.Cluster.BlobHolders(d)
		if errors.Is(err, fsm.ErrNotFound) {
			return nil // collected (see Sweep above) or unrecorded: not ours to judge
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("holders of %s: %w", d, err))
			return nil
		}
		if _, held := slices.BinarySearch(rec.GetNodeIds(), local); held {
			return nil
		}
		elsewhere := 0
		for _, id := range rec.GetNodeIds() {
			if live[id] {
				elsewhere++
			}
		}
		if elsewhere < need {
			rep.UnheldKept++
			return nil
		}
		freed, kept, err := c.cfg.Local.DeleteIfStoredBefore(ctx, d, cutoff)
		switch {
		case err != nil:
			errs = append(errs, err)
		case kept:
			rep.Settling++
		case freed > 0:
			rep.Unheld++
			rep.UnheldBytesFreed += freed
			c.metrics.unheldDeleted.Inc()
			c.metrics.bytesFreed.Add(float64(freed))
		}
		return nil
	})
	return errors.Join(append(errs, err)...)
}

// eachTombstone calls fn for every tombstone, a page at a time.
func (c *Collector) eachTombstone(ctx context.Context, fn func(*fsmv1.CollectedBlob)) error {
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
			Help: "Bytes of local disk freed by deleting collected blobs and copies this node no longer holds.",
		}),
		unheldDeleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wharf_blob_unheld_files_deleted_total",
			Help: "Local copies of blobs whose holder record no longer lists this node (trimmed extra copies) deleted.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.collected, m.deleted, m.bytesFreed, m.unheldDeleted)
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
}
