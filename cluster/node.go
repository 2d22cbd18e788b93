package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/wharf-registry/wharf/fsm"
)

// Node is one member of the wharf cluster: a Raft server whose state
// machine is the registry metadata FSM.
type Node struct {
	cfg    Config
	id     string
	logger *slog.Logger

	fsm     *fsm.FSM
	logs    *logStore
	trans   *raft.NetworkTransport
	raft    *raft.Raft
	metrics *metrics

	// The cluster port and what it serves.
	sec         *security
	advertise   *net.TCPAddr
	mux         *mux
	internal    *http.ServeMux
	internalSrv *http.Server
	peerClient  *http.Client
	peers       peerClients
	gossip      *gossip // nil for a lone node without a cluster key

	leaderNotify chan bool
	// leaderReadyTerm is the term in which this node, as leader, has
	// committed an entry (its barrier); 0 when it is not leader.
	leaderReadyTerm atomic.Uint64
	// leaderTasks run while this node leads (RunOnLeader).
	leaderTasks *leaderTasks
	applied     *notifier
	reads       *readIndexer
	nudge       commitNudge
	// contacts is when, as leader, this node last heard from each peer.
	contacts *contacts

	// ctx ends at shutdown; background goroutines watch it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	opened time.Time // when Open was called
	closed atomic.Bool
	// stopping is set once the node starts to leave or shut down: Raft's
	// and gossip's complaints about peers are then expected (shutdownLevel).
	stopping     atomic.Bool
	shutdownOnce sync.Once
	shutdownDone chan struct{}
	shutdownErr  error
}

// Open starts a node from cfg.DataDir. On first start (no Raft state) with
// BootstrapExpect 1 it bootstraps a one-voter cluster; otherwise it resumes
// from its data directory. Open does not wait for a leader; see WaitReady.
//
// The FSM is persistent, so Raft's start-up handling is left at its default:
// Raft sets its applied index to that of the latest snapshot, hands that
// snapshot to FSM.Restore, and replays the log after it. FSM.Restore returns
// after reading the snapshot header when the FSM's own applied index is at
// least the snapshot's (the usual case), and the FSM skips replayed entries
// at or below its applied index, so nothing is applied twice and no start
// pays for a full restore. NoSnapshotRestoreOnStart would skip the Restore
// call too, but then an FSM that is behind the latest snapshot (a crash in
// the middle of an InstallSnapshot, a lost fsm directory) would silently
// miss the entries the snapshot replaced.
func Open(ctx context.Context, cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	n := &Node{
		cfg:          cfg,
		opened:       time.Now(),
		logger:       cfg.Logger,
		shutdownDone: make(chan struct{}),
		internal:     http.NewServeMux(),
		leaderNotify: make(chan bool, 16),
		leaderTasks:  newLeaderTasks(cfg.Logger),
		applied:      newNotifier(),
		contacts:     newContacts(),
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.reads = newReadIndexer(n.fetchReadIndex)
	if err := n.open(ctx); err != nil {
		if cerr := n.shutdown(); cerr != nil {
			n.logger.Warn("clean up after failed open", "error", cerr)
		}
		return nil, fmt.Errorf("open cluster node in %s: %w", cfg.DataDir, err)
	}
	return n, nil
}

func (n *Node) open(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(n.cfg.DataDir, "raft"), 0o750); err != nil {
		return err
	}
	id, err := loadNodeID(n.cfg.DataDir, n.cfg.NodeID)
	if err != nil {
		return err
	}
	n.id = id
	n.logger = n.logger.With("node_id", id)
	n.leaderTasks.logger = n.logger
	if err := n.openStores(); err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(n.cfg.DataDir, "raft"), snapshotsRetained, newHclog(n.logger, "raft-snapshots", &n.stopping))
	if err != nil {
		return fmt.Errorf("open snapshot store: %w", err)
	}
	hasState, err := n.checkState(snaps)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n.metrics = newMetrics()
	if err := n.startNetwork(hasState); err != nil {
		return err
	}
	if err := n.startRaft(snaps); err != nil {
		return err
	}
	n.serveInternal()
	if err := n.startBootstrap(hasState); err != nil {
		return err
	}
	n.startBackground()
	n.metrics.addNodeGauges(n)
	return n.metrics.register(n.cfg.Registerer)
}

// startBootstrap bootstraps a lone node, or starts waiting for the expected
// members, on a node without Raft state.
func (n *Node) startBootstrap(hasState bool) error {
	switch {
	case hasState:
		return nil
	case n.cfg.BootstrapExpect == 1 && len(n.cfg.Join) == 0:
		return n.bootstrap()
	case n.cfg.BootstrapExpect > 1:
		n.goBackground(n.bootstrapLoop)
	}
	return nil
}

// startBackground starts the goroutines that run until shutdown.
func (n *Node) startBackground() {
	n.goBackground(n.monitorLeadership)
	if n.gossip == nil {
		return
	}
	n.goBackground(n.refreshGossipState)
	if len(n.cfg.Join) > 0 {
		n.goBackground(func(ctx context.Context) { n.gossip.join(ctx, n.cfg.Join, n.cfg.RetryJoinInterval) })
	}
}

func (n *Node) goBackground(fn func(ctx context.Context)) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		fn(n.ctx)
	}()
}

func (n *Node) openStores() error {
	opts := []fsm.Option{fsm.WithLogger(n.logger.With("component", "fsm"))}
	var onDiskFull func()
	if n.cfg.DiskSpace != nil {
		onDiskFull = n.cfg.DiskSpace.DiskFull
		opts = append(opts, fsm.WithOnDiskFull(onDiskFull))
	}
	f, err := fsm.Open(filepath.Join(n.cfg.DataDir, "fsm"), opts...)
	if err != nil {
		return err
	}
	n.fsm = f
	logs, err := openLogStore(filepath.Join(n.cfg.DataDir, "raft", "log"), pebbleLogger{n.logger.With("component", "raft-log")}, onDiskFull)
	if err != nil {
		return err
	}
	n.logs = logs
	return nil
}

// checkState reports whether Raft has state, and refuses an FSM that is
// ahead of every index Raft knows: Raft would restart its log below the
// FSM's applied index and the FSM would skip real entries.
func (n *Node) checkState(snaps raft.SnapshotStore) (bool, error) {
	hasState, err := raft.HasExistingState(n.logs, n.logs, snaps)
	if err != nil {
		return false, fmt.Errorf("inspect raft state: %w", err)
	}
	known, err := n.logs.LastIndex()
	if err != nil {
		return false, err
	}
	metas, err := snaps.List()
	if err != nil {
		return false, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) > 0 {
		known = max(known, metas[0].Index)
	}
	if applied := n.fsm.AppliedIndex(); applied > known {
		return false, fmt.Errorf("fsm applied index %d is beyond the raft log (last index %d): the fsm directory belongs to other raft data", applied, known)
	}
	return hasState, nil
}

func (n *Node) startRaft(snaps raft.SnapshotStore) error {
	stream := &raftLayer{connQueue: n.mux.raft, advertise: n.advertise, tls: n.sec.clientTLS(alpnRaft)}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: transportMaxPool,
		Timeout: transportTimeout,
		Logger:  newHclog(n.logger, "raft-transport", &n.stopping),
	})
	f := instrumentedFSM{FSM: n.fsm, applySeconds: n.metrics.applySeconds, applied: n.applied}
	trans := &contactTransport{NetworkTransport: n.trans, contacts: n.contacts}
	r, err := raft.NewRaft(n.raftConfig(), f, n.logs, n.logs, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	n.raft = r
	return nil
}

func (n *Node) raftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(n.id)
	c.Logger = newHclog(n.logger, "raft", &n.stopping)
	c.NoSnapshotRestoreOnStart = false // see Open
	c.NotifyCh = n.leaderNotify
	setIfNonZero(&c.HeartbeatTimeout, n.cfg.HeartbeatTimeout)
	setIfNonZero(&c.ElectionTimeout, n.cfg.ElectionTimeout)
	setIfNonZero(&c.CommitTimeout, n.cfg.CommitTimeout)
	setIfNonZero(&c.SnapshotInterval, n.cfg.SnapshotInterval)
	setIfNonZero(&c.SnapshotThreshold, n.cfg.SnapshotThreshold)
	setIfNonZero(&c.TrailingLogs, n.cfg.TrailingLogs)
	// The lease may not exceed the heartbeat timeout; shorten the default
	// when only the heartbeat timeout was tuned.
	c.LeaderLeaseTimeout = min(c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	setIfNonZero(&c.LeaderLeaseTimeout, n.cfg.LeaderLeaseTimeout)
	return c
}

func setIfNonZero[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

func (n *Node) bootstrap() error {
	servers := []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(n.id), Address: n.trans.LocalAddr()}}
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	n.logger.Info("bootstrapped single-node cluster", "address", n.trans.LocalAddr())
	if n.gossip != nil {
		n.gossip.setHasState(true)
	}
	return nil
}

// Shutdown stops Raft and closes the stores. It is idempotent; if ctx ends
// first, Shutdown returns and the shutdown goes on in the background.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopping.Store(true)
	n.shutdownOnce.Do(func() {
		n.closed.Store(true)
		go func() {
			defer close(n.shutdownDone)
			n.shutdownErr = n.shutdown()
		}()
	})
	select {
	case <-n.shutdownDone:
		return n.shutdownErr
	case <-ctx.Done():
		return fmt.Errorf("shut down cluster node: %w", ctx.Err())
	}
}

func (n *Node) shutdown() error {
	n.leaderTasks.close()
	n.cancel()
	n.wg.Wait()
	var errs []error
	if n.raft != nil {
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("shut down raft: %w", err))
		}
	}
	n.metrics.unregister(n.cfg.Registerer)
	errs = append(errs, n.closeNetwork(), n.closeStores())
	return errors.Join(errs...)
}

// closeNetwork stops gossip and the cluster port, after Raft has stopped.
func (n *Node) closeNetwork() error {
	var errs []error
	if n.gossip != nil {
		if err := n.gossip.shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("shut down gossip: %w", err))
		}
	}
	// The mux first: closing it ends the queues the servers accept from.
	if n.mux != nil {
		if err := n.mux.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close cluster port: %w", err))
		}
	}
	if n.internalSrv != nil {
		errs = append(errs, n.internalSrv.Close())
	}
	if n.trans != nil {
		errs = append(errs, n.trans.Close())
	}
	if n.peerClient != nil {
		n.peerClient.CloseIdleConnections()
	}
	return errors.Join(errs...)
}

// closeStores closes what open opened, after Raft has stopped.
func (n *Node) closeStores() error {
	var errs []error
	if n.fsm != nil {
		errs = append(errs, n.fsm.Close())
	}
	if n.logs != nil {
		errs = append(errs, n.logs.Close())
	}
	return errors.Join(errs...)
}

// Status describes the node's view of the cluster.
type Status struct {
	NodeID        string
	NodeName      string
	RaftState     string
	LeaderID      string
	LeaderAddress string
	Term          uint64
	LastIndex     uint64
	CommitIndex   uint64
	// AppliedIndex is the FSM's: the last command entry applied. Raft's
	// no-op, barrier and configuration entries never reach the FSM, so it
	// can trail CommitIndex on a node that is caught up.
	AppliedIndex uint64
	// RaftAppliedIndex is the last entry of any kind Raft applied.
	RaftAppliedIndex uint64
	// Stale: this follower has not heard from its leader for longer than
	// QuorumTimeout (it is probably cut off from the quorum).
	Stale bool
}

// Ready reports whether the node knows a leader and has handed every entry it
// knows to be committed to the FSM. The FSM may still be applying the last
// of them; WaitReady waits for that too.
func (s Status) Ready() bool {
	return s.LeaderID != "" && !s.Stale && s.CommitIndex > 0 && s.RaftAppliedIndex >= s.CommitIndex
}

// Status returns the node's current status.
func (n *Node) Status() Status {
	addr, leader := n.raft.LeaderWithID()
	return Status{
		NodeID:           n.id,
		NodeName:         n.cfg.NodeName,
		RaftState:        n.raft.State().String(),
		LeaderID:         string(leader),
		LeaderAddress:    string(addr),
		Term:             n.raft.CurrentTerm(),
		LastIndex:        n.raft.LastIndex(),
		CommitIndex:      n.raft.CommitIndex(),
		AppliedIndex:     n.fsm.AppliedIndex(),
		RaftAppliedIndex: n.raft.AppliedIndex(),
		Stale:            leader != "" && string(leader) != n.id && time.Since(n.raft.LastContact()) > n.cfg.QuorumTimeout,
	}
}

// readyPoll is how often WaitReady checks the status.
const readyPoll = 10 * time.Millisecond

// WaitReady blocks until Status().Ready() or ctx ends. On the leader it
// then commits a barrier, which returns once the FSM has applied every
// earlier entry, so reads that follow see all committed writes.
func (n *Node) WaitReady(ctx context.Context) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for !n.Status().Ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for cluster node to be ready: %w", ctx.Err())
		case <-t.C:
		}
	}
	if n.raft.State() != raft.Leader {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if err := wait(ctx, n.raft.Barrier(time.Until(deadline))); err != nil {
		return fmt.Errorf("wait for cluster node to be ready: %w", err)
	}
	// The leader loop's own barrier makes the leader serve read indexes.
	for n.raft.State() == raft.Leader && n.leaderReadyTerm.Load() != n.raft.CurrentTerm() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for cluster node to be ready: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}
