// Package blobstate shows a cluster node's replicated blob state to the
// reconcilers that act on it, replication and garbage collection: the
// registered nodes and their liveness, holder records, references and gc
// records read from the local FSM, and their changes as Raft commands. It
// is the one adapter between cluster.Node and those packages' narrow
// interfaces, which their tests implement over a plain FSM.
package blobstate

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

// State is a cluster node's blob state.
type State struct{ node *cluster.Node }

var (
	_ replication.Cluster = State{}
	_ gc.Cluster          = State{}
)

// Of returns node's blob state.
func Of(node *cluster.Node) State { return State{node: node} }

func (c State) LocalID() string { return c.node.ID() }

func (c State) Nodes() ([]replication.Node, error) {
	registered, err := c.node.FSM().Nodes()
	if err != nil {
		return nil, err
	}
	alive := map[string]bool{c.node.ID(): true}
	for _, m := range c.node.Members() {
		if m.Alive() {
			alive[m.ID] = true
		}
	}
	out := make([]replication.Node, 0, len(registered))
	for _, n := range registered {
		out = append(out, replication.Node{
			ID:     n.GetId(),
			URL:    "https://" + n.GetClusterAddress(),
			Weight: n.GetWeight(),
			Alive:  alive[n.GetId()],
		})
	}
	return out, nil
}

func (c State) BlobHolders(d digest.Digest) (*fsmpb.BlobHolders, error) {
	return c.node.FSM().BlobHolders(d)
}

func (c State) Sync(ctx context.Context) error { return c.node.Sync(ctx) }

// Linearize implements Cluster.
func (c State) Linearize(ctx context.Context) error { return c.node.Linearize(ctx) }

func (c State) ListBlobHolders(last string, n int) ([]*fsmpb.BlobHolders, error) {
	return c.node.FSM().ListBlobHolders(last, n)
}

func (c State) AddBlobHolder(ctx context.Context, d digest.Digest, size int64, nodeID string) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.AddBlobHolder{
		Digest: d.String(), Size: size, NodeId: nodeID,
	}))
}

func (c State) RemoveBlobHolder(ctx context.Context, d digest.Digest, nodeID string) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.RemoveBlobHolder{
		Digest: d.String(), NodeId: nodeID,
	}))
}

func (c State) apply(ctx context.Context, cmd *fsmpb.Command) error {
	if _, err := c.node.Apply(ctx, cmd); err != nil {
		return fmt.Errorf("apply %T: %w", cmd.GetOp(), err)
	}
	return nil
}

func (c State) NodeIDs() ([]string, error) {
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

func (c State) ListUnreferencedBlobs(last string, n int) ([]fsm.UnreferencedBlob, error) {
	return c.node.FSM().ListUnreferencedBlobs(last, n)
}

func (c State) ListCollectedBlobs(last string, n int) ([]*fsmpb.CollectedBlob, error) {
	return c.node.FSM().ListCollectedBlobs(last, n)
}

func (c State) CollectBlob(ctx context.Context, d digest.Digest, grace time.Duration) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.CollectBlob{
		Digest: d.String(), GraceNanos: int64(grace),
	}))
}

func (c State) CollectedBlobDeleted(ctx context.Context, d digest.Digest, nodeID string) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.CollectedBlobDeleted{
		Digest: d.String(), NodeId: nodeID,
	}))
}

func (c State) CollectedBlob(d digest.Digest) (*fsmpb.CollectedBlob, error) {
	return c.node.FSM().CollectedBlob(d)
}

func (c State) BlobReferences(d digest.Digest) (links, manifests int, err error) {
	return c.node.FSM().BlobReferences(d)
}

func (c State) LiveNodeIDs() ([]string, error) {
	nodes, err := c.Nodes()
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
func (c State) CatchUp(ctx context.Context) error {
	if !c.node.Status().Ready() {
		return errors.New("node is not ready: its FSM may be behind the leader")
	}
	return c.node.Sync(ctx)
}

func (c State) ListEmptyRepositories(last string, n int) ([]fsm.EmptyRepository, error) {
	return c.node.FSM().ListEmptyRepositories(last, n)
}

func (c State) RemoveEmptyRepository(ctx context.Context, repo string, grace time.Duration) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.RemoveEmptyRepository{
		Repository: repo, GraceNanos: int64(grace),
	}))
}

func (c State) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64, holders ...string) error {
	return c.node.LinkBlob(ctx, repo, d, size, holders...)
}

func (c State) RecordGCRun(ctx context.Context, run *fsmpb.GCRun) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.RecordGCRun{Run: run}))
}

func (c State) RecordSweep(ctx context.Context, sweep *fsmpb.SweepSummary) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.RecordSweep{Sweep: sweep}))
}
