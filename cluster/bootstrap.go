package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// bootstrapPoll is how often the bootstrapper looks at the member list
// besides on gossip events.
const bootstrapPoll = 200 * time.Millisecond

// bootstrapDecision is what a node without Raft state does next.
type bootstrapDecision int

const (
	// bootstrapWait: fewer than the expected members are visible yet.
	bootstrapWait bootstrapDecision = iota
	// bootstrapNow: bootstrap with the returned configuration.
	bootstrapNow
	// bootstrapJoin: a member has Raft state, so a cluster exists; wait for
	// its leader to add this node.
	bootstrapJoin
)

// planBootstrap decides from the gossiped members (self included) whether to
// bootstrap. Every node that sees the same members computes the same
// configuration: all alive members, sorted by ID, as voters. Members
// without a cluster address are not counted.
func planBootstrap(members []Member, expect int) (bootstrapDecision, raft.Configuration) {
	var servers []raft.Server
	for _, m := range members {
		if m.state != memberlist.StateAlive || m.ClusterAddr == "" {
			continue
		}
		if m.HasRaftState {
			return bootstrapJoin, raft.Configuration{}
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.ClusterAddr)})
	}
	if len(servers) < expect {
		return bootstrapWait, raft.Configuration{}
	}
	slices.SortFunc(servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return bootstrapNow, raft.Configuration{Servers: servers}
}

// bootstrapLoop runs on a node started with BootstrapExpect > 1 and no Raft
// state, until it bootstraps, learns that a cluster exists, or ctx ends.
func (n *Node) bootstrapLoop(ctx context.Context) {
	t := time.NewTicker(bootstrapPoll)
	defer t.Stop()
	for {
		done, err := n.tryBootstrap()
		if err != nil {
			n.logger.Warn("bootstrap", "error", err)
		}
		if done {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-n.gossip.boot:
		case <-t.C:
		}
	}
}

func (n *Node) tryBootstrap() (done bool, err error) {
	if n.raftHasState() {
		return true, nil // a leader added this node meanwhile
	}
	decision, conf := planBootstrap(n.gossip.members(), n.cfg.BootstrapExpect)
	switch decision {
	case bootstrapWait:
		return false, nil
	case bootstrapJoin:
		n.logger.Info("a cluster exists; waiting for its leader to add this node")
		return true, nil
	}
	err = n.raft.BootstrapCluster(conf).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return false, fmt.Errorf("bootstrap %d servers: %w", len(conf.Servers), err)
	}
	n.logger.Info("bootstrapped cluster", "servers", len(conf.Servers))
	n.gossip.setHasState(true)
	return true, nil
}

// raftHasState reports whether Raft has a log or a configuration.
func (n *Node) raftHasState() bool {
	if n.raft.LastIndex() > 0 {
		return true
	}
	f := n.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}
