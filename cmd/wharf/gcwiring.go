package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/cluster/gc"
	"github.com/wharf-registry/wharf/cluster/replication"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// gcCluster shows a cluster node to garbage collection as gc.Cluster:
// records from the FSM, decisions as Raft commands.
type gcCluster struct{ node *cluster.Node }

var _ gc.Cluster = gcCluster{}

func (c gcCluster) LocalID() string { return c.node.ID() }

func (c gcCluster) NodeIDs() ([]string, error) {
	nodes, err := c.node.FSM().Nodes()
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.GetId()
	}
	return ids, nil
}

func (c gcCluster) ListUnreferencedBlobs(last string, n int) ([]fsm.UnreferencedBlob, error) {
	return c.node.FSM().ListUnreferencedBlobs(last, n)
}

func (c gcCluster) ListCollectedBlobs(last string, n int) ([]*fsmpb.CollectedBlob, error) {
	return c.node.FSM().ListCollectedBlobs(last, n)
}

func (c gcCluster) CollectBlob(ctx context.Context, d digest.Digest, grace time.Duration) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.CollectBlob{
		Digest: d.String(), GraceNanos: int64(grace),
	}))
}

func (c gcCluster) CollectedBlobDeleted(ctx context.Context, d digest.Digest, nodeID string) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.CollectedBlobDeleted{
		Digest: d.String(), NodeId: nodeID,
	}))
}

func (c gcCluster) BlobHolders(d digest.Digest) (*fsmpb.BlobHolders, error) {
	return c.node.FSM().BlobHolders(d)
}

func (c gcCluster) CollectedBlob(d digest.Digest) (*fsmpb.CollectedBlob, error) {
	return c.node.FSM().CollectedBlob(d)
}

func (c gcCluster) BlobReferences(d digest.Digest) (links, manifests int, err error) {
	return c.node.FSM().BlobReferences(d)
}

func (c gcCluster) LiveNodeIDs() ([]string, error) {
	nodes, err := replication.NewRaftCluster(c.node).Nodes()
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range nodes {
		if n.Alive {
			ids = append(ids, n.ID)
		}
	}
	return ids, nil
}

// CatchUp requires a ready node (it has a leader and has applied the log up
// to its commit index), then takes a read index from the leader: once that
// returns, the FSM has applied every entry committed before the call.
// (With --stale-reads readiness is all that is checked.)
func (c gcCluster) CatchUp(ctx context.Context) error {
	if !c.node.Status().Ready() {
		return errors.New("node is not ready: its FSM may be behind the leader")
	}
	return c.node.Sync(ctx)
}

func (c gcCluster) ListEmptyRepositories(last string, n int) ([]fsm.EmptyRepository, error) {
	return c.node.FSM().ListEmptyRepositories(last, n)
}

func (c gcCluster) RemoveEmptyRepository(ctx context.Context, repo string, grace time.Duration) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.RemoveEmptyRepository{
		Repository: repo, GraceNanos: int64(grace),
	}))
}

func (c gcCluster) apply(ctx context.Context, cmd *fsmpb.Command) error {
	if _, err := c.node.Apply(ctx, cmd); err != nil {
		return fmt.Errorf("apply %T: %w", cmd.GetOp(), err)
	}
	return nil
}
