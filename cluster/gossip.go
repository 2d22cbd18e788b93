package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// gossipMeta is what a node tells others about itself in memberlist's node
// metadata (at most memberlist.MetaMaxSize bytes).
type gossipMeta struct {
	Name        string `json:"n,omitempty"`
	ClusterAddr string `json:"a"`
	// HasState: the node has Raft state (bootstrapped, or added by a leader).
	HasState bool `json:"s,omitempty"`
	// Leaving: the node is about to leave gracefully. memberlist's leave
	// event does not tell a leave from a failure, so the intent travels in
	// the metadata first.
	Leaving bool `json:"l,omitempty"`
}

// maxGossipName bounds the node name in the metadata.
const maxGossipName = 128

// Member is one node as this node sees it.
type Member struct {
	ID          string
	Name        string
	ClusterAddr string
	GossipAddr  string
	// Gossip is memberlist's view: "alive", "suspect", "dead", "left", or
	// "none" for a registered node gossip does not know.
	Gossip string
	// Suffrage is "voter", "nonvoter" or "none" (not in the Raft
	// configuration).
	Suffrage   string
	Registered bool
	Leader     bool
	// LastContact is, on the leader, the time since it last heard from the
	// member (zero for itself and for members that never answered it); on
	// a follower, known only for the leader's entry: the time since this
	// node last heard from the leader.
	LastContact time.Duration
	// AppliedIndex is known for the local node only.
	AppliedIndex uint64
	// HasRaftState is what the member gossips about its Raft state.
	HasRaftState bool
	// Leaving: the member announced that it is leaving gracefully.
	Leaving bool

	state memberlist.NodeStateType
	// gossiped: state is gossip's (a member known only from Raft or the
	// FSM has none).
	gossiped bool
}

// Alive reports whether gossip sees the member alive (not suspect, dead
// or departed).
func (m Member) Alive() bool { return m.gossiped && m.state == memberlist.StateAlive }

// gossip wraps memberlist: it publishes this node's metadata and turns
// membership changes into signals for the bootstrapper and the leader.
type gossip struct {
	ml *memberlist.Memberlist
	// events and boot signal a membership change to the leader's
	// reconciler and the bootstrapper; one pending signal is enough, as
	// both read the whole member list.
	events chan struct{}
	boot   chan struct{}
	logger *slog.Logger
	// notices are the small messages nodes gossip to each other.
	notices *notices

	mu   sync.Mutex
	meta gossipMeta
	// table is the member list as memberlist's events described it.
	// memberlist.Members hands out pointers it later mutates, so members
	// are copied inside the event callbacks, which memberlist calls under
	// its lock. Departed (dead or left) members stay in the table.
	table map[string]Member
}

type gossipConfig struct {
	nodeID        string
	listen        string
	advertiseHost string // IP; empty: memberlist's choice
	key           []byte
	probeInterval time.Duration
	meta          gossipMeta
	logger        *slog.Logger
	stopping      *atomic.Bool
}

func startGossip(c gossipConfig) (*gossip, error) {
	g := &gossip{
		events: make(chan struct{}, 1),
		boot:   make(chan struct{}, 1),
		logger: c.logger,
		meta:   c.meta,
		table:  map[string]Member{},
	}
	g.notices = newNotices(g.aliveMembers)
	mc, err := g.memberlistConfig(c)
	if err != nil {
		return nil, err
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on %s: %w", c.listen, err)
	}
	g.ml = ml
	return g, nil
}

// deadNodeReclaim is how long gossip must have seen a node dead before a
// node of the same ID on another address replaces it.
const deadNodeReclaim = 2 * time.Second

// pushPullInterval is how often gossip exchanges its full member list with
// a random member.
const pushPullInterval = 5 * time.Second

func (g *gossip) memberlistConfig(c gossipConfig) (*memberlist.Config, error) {
	host, portStr, err := net.SplitHostPort(c.listen)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: %w", c.listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("gossip address %q: bad port: %w", c.listen, err)
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.nodeID
	mc.BindAddr = orDefault(host, "0.0.0.0")
	mc.BindPort = port
	mc.AdvertisePort = port
	mc.AdvertiseAddr = c.advertiseHost
	mc.SecretKey = c.key
	mc.GossipVerifyIncoming = true
	mc.GossipVerifyOutgoing = true
	mc.Delegate = g
	mc.Events = g
	mc.Logger = nil
	mc.LogOutput = &memberlistLog{l: c.logger, stopping: c.stopping}
	// A node restarted from its data directory on a new address keeps its
	// ID. memberlist refuses the new address while it remembers the old
	// one, unless the old one has been dead for DeadNodeReclaimTime; left
	// at 0, that lasts until the dead entry is forgotten
	// (GossipToTheDeadTime, 30s after it was declared dead).
	mc.DeadNodeReclaimTime = deadNodeReclaim
	// The refused node's alive message is not gossiped again; the next
	// full state exchange (push/pull) carries it. Every 30s by default;
	// with the handful of nodes a registry runs, a short interval costs
	// little.
	mc.PushPullInterval = pushPullInterval
	if c.probeInterval > 0 {
		mc.ProbeInterval = c.probeInterval
		mc.ProbeTimeout = c.probeInterval / 2
		mc.GossipInterval = c.probeInterval / 5
		mc.SuspicionMult = 2
		mc.PushPullInterval = 10 * c.probeInterval
		mc.GossipToTheDeadTime = 10 * c.probeInterval
	}
	return mc, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// join tries addrs until one answers or ctx ends, pausing interval between
// rounds.
func (g *gossip) join(ctx context.Context, addrs []string, interval time.Duration) {
	for {
		n, err := g.ml.Join(addrs)
		if n > 0 {
			g.logger.Info("joined cluster through gossip", "contacted", n)
			return
		}
		g.logger.Warn("join cluster", "addresses", addrs, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// setHasState updates the gossiped Raft state flag.
func (g *gossip) setHasState(v bool) {
	g.mu.Lock()
	changed := g.meta.HasState != v
	g.meta.HasState = v
	g.mu.Unlock()
	if changed {
		if err := g.ml.UpdateNode(time.Second); err != nil {
			g.logger.Warn("gossip updated metadata", "error", err)
		}
	}
}

// members returns the live members and those that departed (dead or
// left) since this node started, sorted by ID.
func (g *gossip) members() []Member {
	g.mu.Lock()
	out := make([]Member, 0, len(g.table))
	for _, m := range g.table {
		out = append(out, m)
	}
	g.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// aliveMembers counts the members gossip sees alive, this one included.
func (g *gossip) aliveMembers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, m := range g.table {
		if m.state == memberlist.StateAlive {
			n++
		}
	}
	return max(n, 1)
}

// memberFromNode describes nd. memberlist's Node.State is not kept
// current, so the caller says what it knows: alive for a listed member; for
// a departed one, left if it announced leaving, else dead.
func memberFromNode(nd *memberlist.Node, state memberlist.NodeStateType) Member {
	var meta gossipMeta
	_ = json.Unmarshal(nd.Meta, &meta) // a member with bad metadata has no cluster address and is ignored
	if state != memberlist.StateAlive {
		state = memberlist.StateDead
		if meta.Leaving {
			state = memberlist.StateLeft
		}
	}
	return Member{
		ID:           nd.Name,
		Name:         meta.Name,
		ClusterAddr:  meta.ClusterAddr,
		GossipAddr:   nd.Address(),
		Gossip:       gossipState(state),
		HasRaftState: meta.HasState,
		Leaving:      meta.Leaving,
		state:        state,
		gossiped:     true,
	}
}

func gossipState(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// leave announces the intent to leave in the metadata, then broadcasts the
// leave itself.
func (g *gossip) leave(timeout time.Duration) error {
	g.mu.Lock()
	g.meta.Leaving = true
	g.mu.Unlock()
	if err := g.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("announce leave: %w", err)
	}
	if err := g.ml.Leave(timeout); err != nil {
		return fmt.Errorf("leave gossip: %w", err)
	}
	return nil
}

func (g *gossip) shutdown() error { return g.ml.Shutdown() }

func (g *gossip) signal() {
	for _, ch := range []chan struct{}{g.events, g.boot} {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// memberlist.Delegate

func (g *gossip) NodeMeta(limit int) []byte {
	g.mu.Lock()
	meta := g.meta
	g.mu.Unlock()
	if len(meta.Name) > maxGossipName {
		meta.Name = meta.Name[:maxGossipName]
	}
	b, err := json.Marshal(meta)
	if err != nil || len(b) > limit {
		g.logger.Error("gossip metadata too large", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

func (g *gossip) NotifyMsg(b []byte) { g.notices.receive(b) }
func (g *gossip) GetBroadcasts(overhead, limit int) [][]byte {
	return g.notices.queue.GetBroadcasts(overhead, limit)
}
func (g *gossip) LocalState(join bool) []byte            { return nil }
func (g *gossip) MergeRemoteState(buf []byte, join bool) {}

// memberlist.EventDelegate

func (g *gossip) NotifyJoin(nd *memberlist.Node) { g.record(memberFromNode(nd, memberlist.StateAlive)) }
func (g *gossip) NotifyUpdate(nd *memberlist.Node) {
	g.record(memberFromNode(nd, memberlist.StateAlive))
}

func (g *gossip) NotifyLeave(nd *memberlist.Node) {
	m := memberFromNode(nd, memberlist.StateDead)
	g.logger.Info("member departed", "member", m.ID, "state", m.Gossip)
	g.record(m)
}

func (g *gossip) record(m Member) {
	g.mu.Lock()
	g.table[m.ID] = m
	g.mu.Unlock()
	g.signal()
}

// memberlistLog sends memberlist's "[LEVEL] memberlist: msg" lines to slog.
type memberlistLog struct {
	l *slog.Logger
	// stopping, if set, is true once the node has started to stop.
	stopping *atomic.Bool
}

func (w *memberlistLog) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for prefix, lvl := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[INFO]": slog.LevelInfo} {
		if i := bytes.Index(p, []byte(prefix)); i >= 0 {
			level = lvl
			line = string(bytes.TrimSpace(p[i+len(prefix):]))
			break
		}
	}
	var errs []error
	if strings.Contains(line, net.ErrClosed.Error()) { // memberlist logs errors as text
		errs = append(errs, net.ErrClosed)
	}
	w.l.Log(context.Background(), shutdownLevel(level, w.stopping, errs...), line)
	return len(p), nil
}
