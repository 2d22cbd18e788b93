package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore/peer"
	"github.com/wharf-registry/wharf/blobstore/placement"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// repairPage is how many holder records one scan step reads.
const repairPage = 500

// RepairLoop repairs every RepairInterval until ctx ends: a leader task
// (cluster.Node.RunOnLeader).
func (s *Store) RepairLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.RepairInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := s.Repair(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("blob repair round", "err", err)
		}
	}
}

// RepairReport summarises one repair round.
type RepairReport struct {
	Scanned         int // holder records read
	UnderReplicated int // blobs with fewer than min(R, live nodes) live holders
	Copied          int // copies made
	Lost            int // blobs with no live holder at all
	Trimmed         int // extra holders (not owners) taken off holder records
	// Deferred counts under-replicated blobs left for the next round: all
	// their holders are alive, so the copies their uploader started are
	// probably still running.
	Deferred int
}

// Repair scans every holder record once and copies each under-replicated
// blob from a live holder to the owners that lack it. It also forgets
// holders that are no longer registered nodes, and trims the extra holders
// of a blob all of whose owners hold it (see trim.go).
func (s *Store) Repair(ctx context.Context) (RepairReport, error) {
	var rep RepairReport
	nodes, err := s.cfg.Cluster.Nodes()
	if err != nil {
		return rep, fmt.Errorf("cluster nodes: %w", err)
	}
	var errs []error
	short := map[digest.Digest]bool{}
	last := ""
	for {
		page, err := s.cfg.Cluster.ListBlobHolders(last, repairPage)
		if err != nil {
			return rep, fmt.Errorf("list blob holders: %w", err)
		}
		for _, rec := range page {
			if err := s.repairBlob(ctx, rec, nodes, short, &rep); err != nil {
				errs = append(errs, err)
			}
		}
		rep.Scanned += len(page)
		if len(page) < repairPage || ctx.Err() != nil {
			break
		}
		last = page[len(page)-1].GetDigest()
	}
	s.underReplicated.Store(int64(rep.UnderReplicated))
	s.mu.Lock()
	s.shortLastRound = short
	s.mu.Unlock()
	return rep, errors.Join(errs...)
}

// deferRepair reports whether to leave under-replicated blob d for the next
// round, and notes it in short. A blob short of copies only because its
// copies have not been made yet (no holder is dead) gets one round of
// grace: copying it now would race the uploader's own copies to the same
// owners. A blob that lost a holder is repaired at once.
func (s *Store) deferRepair(d digest.Digest, lostHolder bool, short map[digest.Digest]bool) bool {
	short[d] = true
	if lostHolder {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.shortLastRound[d]
}

// repairBlob brings one blob back to min(R, live nodes) live holders, or
// trims the holders it has beyond its owners.
func (s *Store) repairBlob(ctx context.Context, rec *fsmpb.BlobHolders, nodes []Node, short map[digest.Digest]bool, rep *RepairReport) error {
	d, err := digest.Parse(rec.GetDigest())
	if err != nil {
		return fmt.Errorf("holder record %q: %w", rec.GetDigest(), err)
	}
	registered := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		registered[n.ID] = true
	}
	live := liveNodes(nodes)
	var sources []Node
	lostHolder := false
	for _, id := range rec.GetNodeIds() {
		if !registered[id] {
			if err := s.cfg.Cluster.RemoveBlobHolder(ctx, d, id); err != nil {
				return fmt.Errorf("forget holder %s of %s: %w", id, d, err)
			}
			lostHolder = true
			continue
		}
		if n, ok := live[id]; ok {
			sources = append(sources, n)
		} else {
			lostHolder = true
		}
	}
	want := min(s.cfg.Replicas, len(live))
	if len(sources) >= want {
		if len(sources) > want {
			return s.trimExtra(ctx, d, rec, nodes, rep)
		}
		return nil
	}
	rep.UnderReplicated++
	if len(sources) == 0 {
		rep.Lost++
		return fmt.Errorf("blob %s has no live holder", d)
	}
	if s.deferRepair(d, lostHolder, short) {
		rep.Deferred++
		return nil
	}
	return s.copyMissing(ctx, d, rec.GetSize(), sources, nodes, want-len(sources), rep)
}

// copyMissing copies d from one of sources to up to n live nodes that do
// not hold it, in rank order.
func (s *Store) copyMissing(ctx context.Context, d digest.Digest, size int64, sources, nodes []Node, n int, rep *RepairReport) error {
	holding := make(map[string]bool, len(sources))
	for _, src := range sources {
		holding[src.ID] = true
	}
	live := liveNodes(nodes)
	var errs []error
	for _, cand := range placement.Rank(d, placementNodes(nodes)) {
		if n == 0 {
			break
		}
		if holding[cand.ID] {
			continue
		}
		if err := s.copyBetween(ctx, d, size, sources, live[cand.ID]); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Copied++
		n--
	}
	if n > 0 {
		return fmt.Errorf("blob %s is still %d copies short: %w", d, n, errors.Join(errs...))
	}
	return nil
}

// copyBetween streams d from the first source that answers to target,
// verified on both ends, and records the new copy.
func (s *Store) copyBetween(ctx context.Context, d digest.Digest, size int64, sources []Node, target Node) error {
	var errs []error
	for _, src := range sources {
		err := s.pipe(ctx, d, size, src, target)
		if err == nil {
			s.metrics.repairs.Inc()
			return s.cfg.Cluster.AddBlobHolder(ctx, d, size, target.ID)
		}
		errs = append(errs, fmt.Errorf("from %s: %w", src.ID, err))
	}
	return fmt.Errorf("copy %s to %s: %w", d, target.ID, errors.Join(errs...))
}

// pipe copies d from src to dst through this node without storing it: the
// local store when src is this node, else a verified fetch streamed into
// the push.
func (s *Store) pipe(ctx context.Context, d digest.Digest, size int64, src, dst Node) error {
	if src.ID == s.cfg.Cluster.LocalID() {
		f, err := s.cfg.Local.Open(ctx, d)
		if err != nil {
			return err
		}
		defer f.Close()
		return peer.Push(ctx, s.cfg.Client, dst.URL, d, size, f)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := peer.Fetch(ctx, s.cfg.Client, src.URL, d, pw)
		pw.CloseWithError(err)
	}()
	err := peer.Push(ctx, s.cfg.Client, dst.URL, d, size, pr)
	pr.CloseWithError(err)
	return err
}
