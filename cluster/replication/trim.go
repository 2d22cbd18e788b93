package replication

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore/placement"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Trimming: a blob a client uploads to a node that is not among its owners
// is copied to the owners and, once they all hold it, the repair scan takes
// the extra holder off the blob's holder record (RemoveBlobHolder). The node
// then deletes its file in its local sweep (package gc), which spares copies
// stored less than a settle period ago and re-checks the record first: a
// client storing the blob there again in the meantime refreshes the file and
// records the node as a holder again, and the file stays (until a later
// repair round trims it again).
//
// A trim never loses a copy that anything counts on: holder records are the
// source of truth for WaitDurable and for reads, the record loses the extra
// holder before its file goes, and the owners that stay are at least
// min(R, registered nodes) >= min(W, registered nodes) live holders.

// trimExtra removes from d's holder record every live holder that is not
// one of d's owners, once every owner holds d. It trims nothing while any of
// the top R of the ranking over all registered nodes is dead: those are the
// owners once the dead node is back or removed, and the live ranking in
// between is not the final word. Dead extra holders stay recorded until they
// are back (or removed as members).
func (s *Store) trimExtra(ctx context.Context, d digest.Digest, rec *fsmpb.BlobHolders, nodes []Node, rep *RepairReport) error {
	byID := make(map[string]Node, len(nodes))
	all := make([]placement.Node, 0, len(nodes))
	for _, n := range nodes {
		byID[n.ID] = n
		all = append(all, placement.Node{ID: n.ID, Weight: n.Weight})
	}
	holding := make(map[string]bool, len(rec.GetNodeIds()))
	for _, id := range rec.GetNodeIds() {
		holding[id] = true
	}
	owners := placement.Owners(d, all, s.cfg.Replicas)
	isOwner := make(map[string]bool, len(owners))
	for _, o := range owners {
		if !byID[o.ID].Alive || !holding[o.ID] {
			return nil // an owner is dead or lacks the blob: keep every copy
		}
		isOwner[o.ID] = true
	}
	liveHolders := 0
	var extra []string
	for _, id := range rec.GetNodeIds() {
		n, ok := byID[id]
		if !ok || !n.Alive {
			continue
		}
		liveHolders++
		if !isOwner[id] {
			extra = append(extra, id)
		}
	}
	var errs []error
	for _, id := range extra {
		// Never below R live holders (or every live node, if fewer).
		if liveHolders-1 < min(s.cfg.Replicas, len(liveNodes(nodes))) {
			break
		}
		err := s.cfg.Cluster.RemoveBlobHolder(ctx, d, id)
		if errors.Is(err, fsm.ErrNotFound) {
			continue // collected, or trimmed already
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("trim holder %s of %s: %w", id, d, err))
			continue
		}
		liveHolders--
		rep.Trimmed++
		s.metrics.trims.Inc()
	}
	return errors.Join(errs...)
}
