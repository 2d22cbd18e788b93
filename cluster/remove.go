package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// Errors of RemoveMember.
var (
	// ErrNotLeader: only the leader changes the membership.
	ErrNotLeader = errors.New("this node is not the leader")
	// ErrUnknownMember: no member of the cluster has that ID or name.
	ErrUnknownMember = errors.New("no such member")
	// ErrMemberAlive: gossip sees the member alive, and force was not set;
	// or the member is the leader itself.
	ErrMemberAlive = errors.New("member is alive")
	// ErrRemovalLosesQuorum: the alive voters left would lack a quorum.
	ErrRemovalLosesQuorum = errors.New("removal would leave the alive voters without a quorum")
)

// RemoveMember takes a member (named by ID or name) out of the Raft
// configuration and deregisters it now, rather than after DeadNodeTimeout.
// Only the leader can. It refuses a member gossip sees alive unless force
// is set (a running member whose cluster port still answers is added back
// by the next reconciliation), the leader itself, and a voter whose
// removal would leave too few alive voters for a quorum, force or not.
func (n *Node) RemoveMember(ctx context.Context, node string, force bool) (Member, error) {
	if n.raft.State() != raft.Leader {
		return Member{}, fmt.Errorf("remove member %s: %w", node, ErrNotLeader)
	}
	m, err := n.findMember(node)
	if err != nil {
		return Member{}, err
	}
	if err := n.checkRemoval(m, force); err != nil {
		return m, err
	}
	n.logger.Info("removing member on request", "member", m.ID, "name", m.Name, "gossip", m.Gossip, "force", force)
	if err := n.dropMember(ctx, m.ID); err != nil {
		return m, fmt.Errorf("remove member %s: %w", m.ID, err)
	}
	return m, nil
}

// findMember returns the member whose ID, else whose name, is node: one in
// the Raft configuration or registered in the FSM.
func (n *Node) findMember(node string) (Member, error) {
	var byName []Member
	for _, m := range n.Members() {
		if m.Suffrage == "none" && !m.Registered {
			continue // known to gossip only: not a member to remove
		}
		if m.ID == node {
			return m, nil
		}
		if m.Name == node {
			byName = append(byName, m)
		}
	}
	switch len(byName) {
	case 0:
		return Member{}, fmt.Errorf("%w: %q is neither the ID nor the name of a member", ErrUnknownMember, node)
	case 1:
		return byName[0], nil
	}
	return Member{}, fmt.Errorf("%w: %d members are named %q; give the ID", ErrUnknownMember, len(byName), node)
}

// checkRemoval refuses what RemoveMember must not do.
func (n *Node) checkRemoval(m Member, force bool) error {
	if m.ID == n.id {
		return fmt.Errorf("%w: %s (%s) is the leader answering; make it leave instead ('wharf cluster leave')", ErrMemberAlive, m.Name, m.ID)
	}
	alive := n.aliveMembers()
	if alive[m.ID] && !force {
		return fmt.Errorf("%w: gossip sees %s (%s) alive; stop it, or make it leave ('wharf cluster leave'), or force the removal", ErrMemberAlive, m.Name, m.ID)
	}
	conf, err := n.configuration()
	if err != nil {
		return err
	}
	if !canRemoveVoter(voterIDs(conf), alive, m.ID) {
		return fmt.Errorf("%w: removing voter %s (%s) leaves %s", ErrRemovalLosesQuorum, m.Name, m.ID, aliveVotersAfter(conf, alive, m.ID))
	}
	return nil
}

// aliveMembers is the set of members gossip sees alive with a cluster
// address, as reconciliation counts them.
func (n *Node) aliveMembers() map[string]bool {
	alive := map[string]bool{}
	for _, m := range n.localMembers() {
		if m.Alive() && m.ClusterAddr != "" {
			alive[m.ID] = true
		}
	}
	return alive
}

// aliveVotersAfter describes the voters left after removing remove.
func aliveVotersAfter(conf raft.Configuration, alive map[string]bool, remove string) string {
	remaining, up := 0, 0
	for _, v := range voterIDs(conf) {
		if v == remove {
			continue
		}
		remaining++
		if alive[v] {
			up++
		}
	}
	return fmt.Sprintf("%d alive of %d voters, fewer than the quorum of %d", up, remaining, remaining/2+1)
}
