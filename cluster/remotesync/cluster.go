package remotesync

import (
	"context"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Cluster is what the scheduler and the worker need of the node they run
// on: its identity, its applied state, the nodes that are alive, and
// writes through Raft. cluster.Node provides it (through a small adapter
// in cmd/wharf).
type Cluster interface {
	// NodeID is this node's ID.
	NodeID() string
	// State is this node's applied FSM.
	State() *fsm.FSM
	// LiveNodes returns the IDs of the registered nodes gossip sees alive.
	LiveNodes() []string
	// Apply commits cmd through Raft; a refusal is returned as an error
	// matching an fsm sentinel.
	Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.Result, error)
}

// Secrets opens a remote registry's sealed secrets.
type Secrets func(r *fsmpb.Remote) (password, clientKeyPEM, proxyPassword string, err error)
