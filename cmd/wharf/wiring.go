package main

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"

	fsmv1 "github.com/wharf-registry/wharf/api/gen/wharf/fsm/v1"
	"github.com/wharf-registry/wharf/blobstore/replica"
	"github.com/wharf-registry/wharf/cluster"
)

// replicaCluster shows a cluster node to the blob replication as
// replica.Cluster: registered nodes from the FSM, liveness from gossip,
// holder changes as Raft commands.
type replicaCluster struct{ node *cluster.Node }

var _ replica.Cluster = replicaCluster{}

func (c replicaCluster) LocalID() string { return c.node.ID() }

func (c replicaCluster) IsLeader() bool { return c.node.Status().RaftState == "Leader" }

func (c replicaCluster) Nodes() ([]replica.Node, error) {
	registered, err := c.node.FSM().Nodes()
	if err != nil {
		return nil, err
	}
	alive := map[string]bool{c.node.ID(): true}
	for _, m := range c.node.Members() {
		if m.Gossip == "alive" {
			alive[m.ID] = true
		}
	}
	out := make([]replica.Node, 0, len(registered))
	for _, n := range registered {
		out = append(out, replica.Node{
			ID:     n.GetId(),
			URL:    "https://" + n.GetClusterAddress(),
			Weight: n.GetWeight(),
			Alive:  alive[n.GetId()],
		})
	}
	return out, nil
}

func (c replicaCluster) BlobHolders(d digest.Digest) (*fsmv1.BlobHolders, error) {
	return c.node.FSM().BlobHolders(d)
}

func (c replicaCluster) ListBlobHolders(last string, n int) ([]*fsmv1.BlobHolders, error) {
	return c.node.FSM().ListBlobHolders(last, n)
}

func (c replicaCluster) AddBlobHolder(ctx context.Context, d digest.Digest, size int64, nodeID string) error {
	return c.apply(ctx, &fsmv1.Command{Op: &fsmv1.Command_AddBlobHolder{AddBlobHolder: &fsmv1.AddBlobHolder{
		Digest: d.String(), Size: size, NodeId: nodeID,
	}}})
}

func (c replicaCluster) RemoveBlobHolder(ctx context.Context, d digest.Digest, nodeID string) error {
	return c.apply(ctx, &fsmv1.Command{Op: &fsmv1.Command_RemoveBlobHolder{RemoveBlobHolder: &fsmv1.RemoveBlobHolder{
		Digest: d.String(), NodeId: nodeID,
	}}})
}

func (c replicaCluster) apply(ctx context.Context, cmd *fsmv1.Command) error {
	if _, err := c.node.Apply(ctx, cmd); err != nil {
		return fmt.Errorf("apply %T: %w", cmd.GetOp(), err)
	}
	return nil
}

// peerURL returns the internal base URL of a live member, for proxying
// upload sessions.
func peerURL(node *cluster.Node) func(id string) (string, bool) {
	return func(id string) (string, bool) {
		for _, m := range node.Members() {
			if m.ID == id && m.Gossip == "alive" && m.ClusterAddr != "" {
				return "https://" + m.ClusterAddr, true
			}
		}
		return "", false
	}
}
