package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Voter counts: a small cluster runs 3 voters, one of 5 or more members 5.
const (
	smallVoters      = 3
	largeVoters      = 5
	largeClusterSize = 5
)

// establishRetry is the pause between attempts to commit the new leader's
// barrier.
const establishRetry = 100 * time.Millisecond

// monitorLeadership runs the leader loop while this node leads.
func (n *Node) monitorLeadership(ctx context.Context) {
	var loop *runningLoop
	defer func() { loop.stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case leading := <-n.leaderNotify:
			switch {
			case leading && loop == nil:
				loop = startLoop(ctx, n.leaderLoop)
			case !leading:
				loop.stop()
				loop = nil
			}
		}
	}
}

// runningLoop is a goroutine that runs until stopped.
type runningLoop struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func startLoop(ctx context.Context, fn func(context.Context)) *runningLoop {
	ctx, cancel := context.WithCancel(ctx)
	l := &runningLoop{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		fn(ctx)
	}()
	return l
}

// stop cancels the loop and waits for it; a nil loop is a no-op.
func (l *runningLoop) stop() {
	if l == nil {
		return
	}
	l.cancel()
	<-l.done
}

// leaderLoop commits a barrier (so the FSM holds every earlier entry and
// the leader's commit index is current), starts the leader tasks, then
// reconciles membership on gossip events and every ReconcileInterval until
// ctx ends.
func (n *Node) leaderLoop(ctx context.Context) {
	defer n.leaderReadyTerm.Store(0)
	if !n.establishLeadership(ctx) {
		return
	}
	n.logger.Info("leading the cluster", "term", n.leaderReadyTerm.Load())
	n.leaderTasks.start(ctx)
	defer n.leaderTasks.stop()
	st := &reconcileState{deadSince: map[string]time.Time{}}
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	var events <-chan struct{}
	if n.gossip != nil {
		events = n.gossip.events
	}
	for {
		if err := n.reconcile(ctx, st); err != nil && ctx.Err() == nil {
			n.logger.Warn("reconcile membership", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-events:
		case <-t.C:
		}
	}
}

func (n *Node) establishLeadership(ctx context.Context) bool {
	for {
		term := n.raft.CurrentTerm()
		err := wait(ctx, n.raft.Barrier(n.cfg.ApplyTimeout))
		if err == nil {
			n.leaderReadyTerm.Store(term)
			return true
		}
		n.logger.Warn("commit leader barrier", "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(establishRetry):
		}
	}
}

// reconcileState is the leader's memory between reconciliations.
type reconcileState struct {
	// deadSince is when each failed member was first seen dead (or gone
	// from gossip while still registered or in Raft).
	deadSince map[string]time.Time
}

// reconcile brings the FSM's registered nodes and the Raft configuration in
// line with gossip.
func (n *Node) reconcile(ctx context.Context, st *reconcileState) error {
	members := n.localMembers()
	conf, err := n.configuration()
	if err != nil {
		return err
	}
	registered, err := n.registeredNodes()
	if err != nil {
		return err
	}
	alive := map[string]bool{}
	for _, m := range members {
		if m.state == memberlist.StateAlive && m.ClusterAddr != "" {
			alive[m.ID] = true
			delete(st.deadSince, m.ID)
		}
	}
	var errs []error
	for _, m := range members {
		if alive[m.ID] {
			errs = append(errs, n.ensureMember(ctx, m, registered, len(alive)))
		}
	}
	errs = append(errs, n.removeFailed(ctx, st, members, registered, conf, alive))
	errs = append(errs, n.promoteVoters(ctx, alive))
	return errors.Join(errs...)
}

// localMembers is gossip's member list, or this node alone without gossip.
func (n *Node) localMembers() []Member {
	if n.gossip != nil {
		return n.gossip.members()
	}
	return []Member{{ID: n.id, Name: n.cfg.NodeName, ClusterAddr: n.advertise.String(), state: memberlist.StateAlive, gossiped: true, Gossip: "alive"}}
}

func (n *Node) configuration() (raft.Configuration, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Configuration{}, fmt.Errorf("read raft configuration: %w", err)
	}
	return f.Configuration(), nil
}

func (n *Node) registeredNodes() (map[string]*fsmpb.Node, error) {
	nodes, err := n.fsm.Nodes()
	if err != nil {
		return nil, err
	}
	out := make(map[string]*fsmpb.Node, len(nodes))
	for _, nd := range nodes {
		out[nd.GetId()] = nd
	}
	return out, nil
}

// ensureMember registers an alive member and adds it to Raft: as a voter
// while there are fewer voters than wanted, else as a non-voter.
//
// Gossip only proves the member holds the gossip key. Before the member is
// registered, added or moved, the leader checks that mutual TLS with its
// cluster port succeeds, so a member whose certificate comes from another
// CA (operator-supplied TLS) never enters the FSM or Raft.
func (n *Node) ensureMember(ctx context.Context, m Member, registered map[string]*fsmpb.Node, alive int) error {
	conf, err := n.configuration()
	if err != nil {
		return err
	}
	srv, found := findServer(conf, m.ID)
	r := registered[m.ID]
	current := r != nil && r.GetClusterAddress() == m.ClusterAddr && r.GetName() == m.Name && r.GetGossipAddress() == m.GossipAddr
	if current && found && string(srv.Address) == m.ClusterAddr {
		return nil
	}
	if err := n.probePeer(ctx, m.ClusterAddr); err != nil {
		return fmt.Errorf("not adding member %s: its cluster port %s does not complete mutual TLS with this node (certificate from another CA?): %w", m.ID, m.ClusterAddr, err)
	}
	if !current {
		node := &fsmpb.Node{Id: m.ID, Name: m.Name, ClusterAddress: m.ClusterAddr, GossipAddress: m.GossipAddr}
		cmd := fsm.NewCommand(&fsmpb.RegisterNode{Node: node})
		if _, err := n.Apply(ctx, cmd); err != nil {
			return fmt.Errorf("register node %s: %w", m.ID, err)
		}
		n.logger.Info("registered node", "member", m.ID, "address", m.ClusterAddr)
	}
	if found && string(srv.Address) == m.ClusterAddr {
		return nil
	}
	if (found && srv.Suffrage == raft.Voter) || (!found && countVoters(conf) < n.targetVoters(alive)) {
		n.logger.Info("adding voter", "member", m.ID, "address", m.ClusterAddr)
		return n.raftChange(ctx, "add voter "+m.ID, n.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.ClusterAddr), 0, n.cfg.ApplyTimeout))
	}
	n.logger.Info("adding non-voter", "member", m.ID, "address", m.ClusterAddr)
	return n.raftChange(ctx, "add non-voter "+m.ID, n.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.ClusterAddr), 0, n.cfg.ApplyTimeout))
}

// peerProbeTimeout bounds the check that a member's cluster port accepts
// this node.
const peerProbeTimeout = 3 * time.Second

// probePeer makes one HTTP request to addr's cluster port. Any answer means
// both sides accepted the other's certificate: the server checks the
// client's before it reads a request.
func (n *Node) probePeer(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, peerProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/", nil)
	if err != nil {
		return err
	}
	resp, err := n.peerClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// targetVoters is how many voters a cluster of alive members should have.
func (n *Node) targetVoters(alive int) int {
	return targetVoters(alive, n.cfg.MaxVoters)
}

func targetVoters(alive, maxVoters int) int {
	want := smallVoters
	if alive >= largeClusterSize {
		want = largeVoters
	}
	return min(want, maxVoters)
}

// removeFailed removes members that left, and members dead for longer
// than DeadNodeTimeout when that keeps a quorum of alive voters.
func (n *Node) removeFailed(ctx context.Context, st *reconcileState, members []Member, registered map[string]*fsmpb.Node, conf raft.Configuration, alive map[string]bool) error {
	now := time.Now()
	var errs []error
	for _, id := range failedIDs(members, registered, conf, alive) {
		if id.id == n.id {
			continue
		}
		if !id.left {
			since, ok := st.deadSince[id.id]
			if !ok {
				st.deadSince[id.id] = now
				continue
			}
			if now.Sub(since) < n.cfg.DeadNodeTimeout {
				continue
			}
		}
		errs = append(errs, n.removeMember(ctx, id.id, id.left, alive))
	}
	return errors.Join(errs...)
}

type failedMember struct {
	id   string
	left bool // left gracefully, rather than failed
}

// failedIDs lists the registered or Raft members that left or are dead,
// or that gossip does not know (treated as dead), sorted by ID.
func failedIDs(members []Member, registered map[string]*fsmpb.Node, conf raft.Configuration, alive map[string]bool) []failedMember {
	state := map[string]memberlist.NodeStateType{}
	for _, m := range members {
		state[m.ID] = m.state
	}
	var known []string
	for id := range registered {
		known = append(known, id)
	}
	for _, s := range conf.Servers {
		known = append(known, string(s.ID))
	}
	slices.Sort(known)
	var out []failedMember
	for _, id := range slices.Compact(known) {
		st, seen := state[id]
		switch {
		case alive[id]:
		case st == memberlist.StateLeft:
			out = append(out, failedMember{id: id, left: true})
		case !seen || st == memberlist.StateDead:
			out = append(out, failedMember{id: id})
		}
	}
	return out
}

// removeMember takes a member out of Raft and deregisters it. A dead voter
// stays when removing it would leave too few alive voters for a quorum.
func (n *Node) removeMember(ctx context.Context, id string, left bool, alive map[string]bool) error {
	conf, err := n.configuration()
	if err != nil {
		return err
	}
	if srv, ok := findServer(conf, id); ok {
		if !left && srv.Suffrage == raft.Voter && !canRemoveVoter(voterIDs(conf), alive, id) {
			n.logger.Warn("not removing dead voter: the remaining voters would lack a quorum", "member", id)
			return nil
		}
		n.logger.Info("removing server", "member", id, "left", left)
	}
	return n.dropMember(ctx, id)
}

// dropMember takes a member out of the Raft configuration, if it is in it,
// and deregisters it.
func (n *Node) dropMember(ctx context.Context, id string) error {
	conf, err := n.configuration()
	if err != nil {
		return err
	}
	if _, ok := findServer(conf, id); ok {
		if err := n.raftChange(ctx, "remove server "+id, n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout)); err != nil {
			return err
		}
	}
	cmd := fsm.NewCommand(&fsmpb.DeregisterNode{NodeId: id})
	if _, err := n.Apply(ctx, cmd); err != nil && !errors.Is(err, fsm.ErrNotFound) {
		return fmt.Errorf("deregister node %s: %w", id, err)
	}
	n.logger.Info("deregistered node", "member", id)
	return nil
}

// canRemoveVoter reports whether removing voter remove from voters leaves
// enough alive voters for a quorum of the new configuration.
func canRemoveVoter(voters []string, alive map[string]bool, remove string) bool {
	if !slices.Contains(voters, remove) {
		return true
	}
	remaining, up := 0, 0
	for _, v := range voters {
		if v == remove {
			continue
		}
		remaining++
		if alive[v] {
			up++
		}
	}
	return remaining > 0 && up >= remaining/2+1
}

// promoteVoters makes alive non-voters voters while there are fewer voters
// than wanted, in ID order.
func (n *Node) promoteVoters(ctx context.Context, alive map[string]bool) error {
	conf, err := n.configuration()
	if err != nil {
		return err
	}
	missing := n.targetVoters(len(alive)) - countVoters(conf)
	for _, s := range conf.Servers {
		if missing <= 0 {
			break
		}
		if s.Suffrage == raft.Voter || !alive[string(s.ID)] {
			continue
		}
		n.logger.Info("promoting non-voter", "member", s.ID)
		if err := n.raftChange(ctx, "promote "+string(s.ID), n.raft.AddVoter(s.ID, s.Address, 0, n.cfg.ApplyTimeout)); err != nil {
			return err
		}
		missing--
	}
	return nil
}

func (n *Node) raftChange(ctx context.Context, what string, f raft.Future) error {
	if err := wait(ctx, f); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func findServer(conf raft.Configuration, id string) (raft.Server, bool) {
	for _, s := range conf.Servers {
		if string(s.ID) == id {
			return s, true
		}
	}
	return raft.Server{}, false
}

func countVoters(conf raft.Configuration) int {
	return len(voterIDs(conf))
}

func voterIDs(conf raft.Configuration) []string {
	var ids []string
	for _, s := range conf.Servers {
		if s.Suffrage == raft.Voter {
			ids = append(ids, string(s.ID))
		}
	}
	return ids
}

// refreshGossipState keeps the gossiped "has Raft state" flag true once a
// leader has added this node.
func (n *Node) refreshGossipState(ctx context.Context) {
	t := time.NewTicker(bootstrapPoll)
	defer t.Stop()
	for {
		if n.raftHasState() {
			n.gossip.setHasState(true)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
