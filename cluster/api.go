package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Leave timeouts.
const (
	gossipLeaveTimeout = 5 * time.Second
	leavePoll          = 50 * time.Millisecond
	defaultLeaveWait   = 30 * time.Second
	// acceptTimeout bounds the check that a peer's cluster port is open.
	acceptTimeout = 250 * time.Millisecond
)

// accepting reports whether something accepts TCP connections on addr.
func accepting(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, acceptTimeout)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// InternalMux is the handler tree of the cluster port's HTTP server, behind
// mutual TLS. Other packages mount peer handlers under /internal/.
func (n *Node) InternalMux() *http.ServeMux { return n.internal }

// PeerHTTPClient returns the mutual-TLS client for peers' cluster ports:
// https://<cluster address>/... (HTTP/2 or HTTP/1.1).
func (n *Node) PeerHTTPClient() *http.Client { return n.peerClient }

// ClusterAddress is the address peers reach this node's cluster port at.
func (n *Node) ClusterAddress() string { return n.advertise.String() }

// ID is the node's stable Raft server ID.
func (n *Node) ID() string { return n.id }

// TransferLeadership hands leadership to another voter and waits until it
// has it.
func (n *Node) TransferLeadership(ctx context.Context) error {
	if n.raft.State() != raft.Leader {
		return fmt.Errorf("transfer leadership: %w", errNotLeader)
	}
	if err := wait(ctx, n.raft.LeadershipTransfer()); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	return nil
}

// Leave leaves the cluster gracefully, then shuts the node down: a leader
// first hands leadership over; the node then announces its departure
// through gossip, and waits (until ctx ends, at most 30s without a
// deadline) for the leader to remove it from Raft and deregister it. A
// node alone in its configuration just shuts down, and so does one whose
// removal no quorum could commit: it is the last voter, or the voters that
// are not leaving too are fewer than a quorum (every node stopped at once).
func (n *Node) Leave(ctx context.Context) error {
	n.stopping.Store(true)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultLeaveWait)
		defer cancel()
	}
	if n.gossip != nil && !n.closed.Load() && n.hasPeers() {
		if err := n.leaveCluster(ctx); err != nil {
			n.logger.Warn("leave cluster", "error", err)
		}
	}
	return n.Shutdown(ctx)
}

func (n *Node) hasPeers() bool {
	conf, err := n.configuration()
	if err != nil {
		return false
	}
	return slices.ContainsFunc(conf.Servers, func(s raft.Server) bool { return string(s.ID) != n.id })
}

func (n *Node) leaveCluster(ctx context.Context) error {
	if n.raft.State() == raft.Leader {
		if err := n.TransferLeadership(ctx); err != nil {
			return err
		}
	}
	if stop, err := n.leaveGossip(ctx); stop || err != nil {
		return err
	}
	n.logger.Info("left gossip; waiting to be removed from raft")
	return n.waitForRemoval(ctx)
}

// leaveGossip announces the departure through gossip. memberlist waits for
// its leave broadcast to go out, which it never does once every other
// member is gone (a live one takes it at once), so the wait also ends,
// with stop set, as soon as gossip sees no other member alive: no one is
// left to commit this node's removal.
func (n *Node) leaveGossip(ctx context.Context) (stop bool, err error) {
	done := make(chan error, 1)
	go func() { done <- n.gossip.leave(gossipLeaveTimeout) }()
	t := time.NewTicker(leavePoll)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return false, err
		case <-ctx.Done():
			return false, fmt.Errorf("leave gossip: %w", ctx.Err())
		case <-t.C:
			if !n.otherMemberAlive() {
				n.logger.Info("shutting down without waiting to be removed from raft: no other member is alive")
				return true, nil
			}
		}
	}
}

// otherMemberAlive reports whether gossip sees another member alive.
func (n *Node) otherMemberAlive() bool {
	return slices.ContainsFunc(n.localMembers(), func(m Member) bool { return m.ID != n.id && m.Alive() })
}

// quorumGoneFor is how many polls in a row must find no quorum to commit
// this node's removal before a leaving node stops waiting for it: one
// slow answer of a busy peer's cluster port must not cut the wait short.
const quorumGoneFor = 10

// waitForRemoval polls until the leader has removed this node from the
// Raft configuration, or no quorum is left to do it. If leadership comes
// back to this node meanwhile, it hands it over again. It never removes
// itself: a leader's own removal, appended when the others are stopping
// too, may reach no other node, and would leave this node restarting as a
// non-voter beside voters whose logs are shorter than its own, a
// configuration no election can win.
func (n *Node) waitForRemoval(ctx context.Context) error {
	t := time.NewTicker(leavePoll)
	defer t.Stop()
	var handing chan error // the leadership transfer in flight, if any
	gone := 0              // polls in a row that found no quorum to remove this node
	for {
		conf, err := n.configuration()
		if err == nil {
			if _, in := findServer(conf, n.id); !in {
				n.logger.Info("removed from the raft configuration")
				return nil
			}
		}
		if gone = gone + 1; !n.removalUncommittable() {
			gone = 0
		}
		if gone >= quorumGoneFor {
			n.logStopWithoutRemoval()
			return nil
		}
		if handing == nil && n.raft.State() == raft.Leader {
			n.logger.Info("leading again while leaving; handing leadership over")
			handing = make(chan error, 1)
			go func(done chan<- error) { done <- n.raft.LeadershipTransfer().Error() }(handing)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for removal from raft: %w", ctx.Err())
		case err := <-handing:
			if err != nil {
				n.logger.Info("hand leadership over", "error", err)
			}
			handing = nil // look again
		case <-t.C:
		}
	}
}

// removalUncommittable reports that this node's removal from Raft cannot
// be committed without it: it is the last voter, or the other voters that
// stay are fewer than a quorum of them. A voter stays if gossip sees it
// alive and not leaving and its cluster port still accepts connections (a
// node whose process ended refuses them at once, seconds before gossip
// gives up on it). Waiting would then only run out the shutdown timeout;
// the configuration stays as it is, so the nodes form the same cluster
// again when they start.
func (n *Node) removalUncommittable() bool {
	others, up, err := n.stayingVoters()
	return err == nil && up < others/2+1
}

// stayingVoters counts the other voters, and those of them that stay.
func (n *Node) stayingVoters() (others, up int, err error) {
	conf, err := n.configuration()
	if err != nil {
		return 0, 0, err
	}
	staying := map[string]bool{}
	for _, m := range n.localMembers() {
		if m.Alive() && !m.Leaving {
			staying[m.ID] = true
		}
	}
	for _, s := range conf.Servers {
		if s.Suffrage != raft.Voter || string(s.ID) == n.id {
			continue
		}
		others++
		if staying[string(s.ID)] && accepting(string(s.Address)) {
			up++
		}
	}
	return others, up, nil
}

// logStopWithoutRemoval says, at info level, why a leaving node stops
// without waiting to be removed.
func (n *Node) logStopWithoutRemoval() {
	others, up, _ := n.stayingVoters()
	if others == 0 {
		n.logger.Info("shutting down without waiting to be removed from raft: this is the last voter")
		return
	}
	n.logger.Info("shutting down without waiting to be removed from raft: too few voters stay to commit the removal",
		"staying_voters", up, "other_voters", others, "quorum", others/2+1)
}

// Members returns every node this node knows of, from gossip, the Raft
// configuration and the FSM's registered nodes, sorted by ID.
func (n *Node) Members() []Member {
	byID := map[string]*Member{}
	get := func(id string) *Member {
		m, ok := byID[id]
		if !ok {
			m = &Member{ID: id, Gossip: "none", Suffrage: "none"}
			byID[id] = m
		}
		return m
	}
	for _, gm := range n.localMembers() {
		m := get(gm.ID)
		*m = gm
		m.Suffrage = "none"
	}
	if conf, err := n.configuration(); err == nil {
		for _, s := range conf.Servers {
			m := get(string(s.ID))
			m.Suffrage = suffrage(s.Suffrage)
			if m.ClusterAddr == "" {
				m.ClusterAddr = string(s.Address)
			}
		}
	}
	if nodes, err := n.fsm.Nodes(); err == nil {
		for _, nd := range nodes {
			m := get(nd.GetId())
			m.Registered = true
			if m.Name == "" {
				m.Name = nd.GetName()
			}
		}
	}
	n.annotateLeader(byID)
	out := make([]Member, 0, len(byID))
	for _, m := range byID {
		out = append(out, *m)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (n *Node) annotateLeader(byID map[string]*Member) {
	if self, ok := byID[n.id]; ok {
		self.AppliedIndex = n.fsm.AppliedIndex()
	}
	for id, age := range n.MemberContacts() {
		if m, ok := byID[id]; ok {
			m.LastContact = age
		}
	}
	_, leader := n.raft.LeaderWithID()
	m, ok := byID[string(leader)]
	if !ok {
		return
	}
	m.Leader = true
	if string(leader) != n.id {
		m.LastContact = time.Since(n.raft.LastContact())
	}
}

func suffrage(s raft.ServerSuffrage) string {
	switch s {
	case raft.Voter:
		return "voter"
	case raft.Nonvoter:
		return "nonvoter"
	}
	return "none"
}
