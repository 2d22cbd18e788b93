package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// contacts remembers when this node, as leader, last heard from each peer:
// when the peer last answered an AppendEntries (heartbeats included).
// hashicorp/raft keeps the same in its replication state but exposes it
// only as metrics.
type contacts struct {
	mu   sync.Mutex
	last map[raft.ServerID]time.Time
}

func newContacts() *contacts { return &contacts{last: map[raft.ServerID]time.Time{}} }

func (c *contacts) record(id raft.ServerID) {
	now := time.Now()
	c.mu.Lock()
	c.last[id] = now
	c.mu.Unlock()
}

// since returns how long ago id last answered, if it ever did.
func (c *contacts) since(id raft.ServerID) (time.Duration, bool) {
	c.mu.Lock()
	t, ok := c.last[id]
	c.mu.Unlock()
	if !ok {
		return 0, false
	}
	return time.Since(t), true
}

// contactTransport is the Raft transport with every answered AppendEntries
// recorded in contacts. Raft sends heartbeats with AppendEntries whether or
// not it pipelines entries, so each peer is recorded at least once per
// heartbeat interval while it answers.
type contactTransport struct {
	*raft.NetworkTransport
	contacts *contacts
}

func (t *contactTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		t.contacts.record(id)
	}
	return err
}

// MemberContacts returns, on the leader, how long ago it last heard from
// each other server of the Raft configuration that ever answered it; nil
// on any other node.
func (n *Node) MemberContacts() map[string]time.Duration {
	if n.raft.State() != raft.Leader {
		return nil
	}
	conf, err := n.configuration()
	if err != nil {
		return nil
	}
	out := map[string]time.Duration{}
	for _, s := range conf.Servers {
		if string(s.ID) == n.id {
			continue
		}
		if age, ok := n.contacts.since(s.ID); ok {
			out[string(s.ID)] = age
		}
	}
	return out
}
