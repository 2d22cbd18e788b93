package cluster

import (
	"context"
	"fmt"
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
)

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
// node alone in its configuration just shuts down.
func (n *Node) Leave(ctx context.Context) error {
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
	if err := n.gossip.leave(gossipLeaveTimeout); err != nil {
		return err
	}
	n.logger.Info("left gossip; waiting to be removed from raft")
	t := time.NewTicker(leavePoll)
	defer t.Stop()
	for {
		conf, err := n.configuration()
		if err == nil {
			if _, in := findServer(conf, n.id); !in {
				n.logger.Info("removed from the raft configuration")
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for removal from raft: %w", ctx.Err())
		case <-t.C:
		}
	}
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
