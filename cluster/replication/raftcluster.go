package replication

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// RaftCluster is a cluster.Node seen as a Cluster: registered nodes from
// the FSM, liveness from gossip, holder changes as Raft commands.
type RaftCluster struct{ node *cluster.Node }

var _ Cluster = RaftCluster{}

// NewRaftCluster returns node as a Cluster.
func NewRaftCluster(node *cluster.Node) RaftCluster { return RaftCluster{node: node} }

func (c RaftCluster) LocalID() string { return c.node.ID() }

func (c RaftCluster) Nodes() ([]Node, error) {
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
	out := make([]Node, 0, len(registered))
	for _, n := range registered {
		out = append(out, Node{
			ID:     n.GetId(),
			URL:    "https://" + n.GetClusterAddress(),
			Weight: n.GetWeight(),
			Alive:  alive[n.GetId()],
		})
	}
	return out, nil
}

func (c RaftCluster) BlobHolders(d digest.Digest) (*fsmpb.BlobHolders, error) {
	return c.node.FSM().BlobHolders(d)
}

func (c RaftCluster) Sync(ctx context.Context) error { return c.node.Sync(ctx) }

// Linearize implements Cluster.
func (c RaftCluster) Linearize(ctx context.Context) error { return c.node.Linearize(ctx) }

func (c RaftCluster) ListBlobHolders(last string, n int) ([]*fsmpb.BlobHolders, error) {
	return c.node.FSM().ListBlobHolders(last, n)
}

func (c RaftCluster) AddBlobHolder(ctx context.Context, d digest.Digest, size int64, nodeID string) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.AddBlobHolder{
		Digest: d.String(), Size: size, NodeId: nodeID,
	}))
}

func (c RaftCluster) RemoveBlobHolder(ctx context.Context, d digest.Digest, nodeID string) error {
	return c.apply(ctx, fsm.NewCommand(&fsmpb.RemoveBlobHolder{
		Digest: d.String(), NodeId: nodeID,
	}))
}

func (c RaftCluster) apply(ctx context.Context, cmd *fsmpb.Command) error {
	if _, err := c.node.Apply(ctx, cmd); err != nil {
		return fmt.Errorf("apply %T: %w", cmd.GetOp(), err)
	}
	return nil
}
