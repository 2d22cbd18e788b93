package main

import (
	"context"

	"github.com/wharf-registry/wharf/api/admin"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/cluster/remotesync"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
	"github.com/wharf-registry/wharf/internal/secretbox"
)

// syncCluster shows a cluster.Node to the sync scheduler and worker.
type syncCluster struct{ node *cluster.Node }

func (c syncCluster) NodeID() string  { return c.node.ID() }
func (c syncCluster) State() *fsm.FSM { return c.node.FSM() }
func (c syncCluster) Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	return c.node.Apply(ctx, cmd)
}

// LiveNodes are the registered nodes gossip sees alive.
func (c syncCluster) LiveNodes() []string {
	var ids []string
	for _, m := range c.node.Members() {
		if m.Registered && m.Gossip == "alive" {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

var _ remotesync.Cluster = syncCluster{}

// remoteSecretsOpener opens remotes' secrets with box.
func remoteSecretsOpener(box *secretbox.Box) remotesync.Secrets {
	return func(r *fsmpb.Remote) (string, string, string, error) {
		c, err := admin.OpenRemoteSecrets(r, box)
		return c.Password, c.ClientKeyPEM, c.ProxyPassword, err
	}
}
