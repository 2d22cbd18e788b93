package cluster

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Node. Zero durations take the defaults noted.
type Config struct {
	// DataDir holds the FSM (fsm/), the Raft log and stable store (raft/log/),
	// Raft snapshots (raft/snapshots/) and the node ID (node-id).
	DataDir string
	// NodeID is the Raft server ID. Leave it empty to use the ID stored in
	// DataDir, generated on first start. A non-empty NodeID must match it.
	NodeID string
	// NodeName is a human-readable name, reported in Status and gossiped.
	NodeName string
	// ClusterListen is the cluster port: Raft and the internal HTTP API
	// (peer RPCs, blob transfer) behind mutual TLS, told apart by ALPN.
	ClusterListen string
	// Advertise is the host (or host:port for the cluster port) peers reach
	// this node at. If empty: the gossip layer's advertised IP when gossip
	// runs, else the listener's IP, with an unspecified IP replaced by
	// 127.0.0.1.
	Advertise string
	// GossipListen is memberlist's address (UDP and TCP). Empty disables
	// gossip, which only a lone node (BootstrapExpect 1, no Join) may do.
	GossipListen string
	// Join lists gossip addresses of existing members; the node retries
	// them in the background until one answers.
	Join []string
	// BootstrapExpect is the number of voters the cluster starts with. A
	// node whose data directory has no Raft state bootstraps a one-voter
	// cluster when it is 1 and Join is empty; with N > 1 it waits until
	// gossip shows N members without Raft state and bootstraps them
	// together; otherwise it waits for the leader to add it.
	BootstrapExpect int

	// ClusterKey is the shared secret from GenerateKey. The gossip key and
	// the cluster CA are derived from it. Required when BootstrapExpect > 1
	// or Join is set, unless TLS files are given (gossip then still needs
	// the key).
	ClusterKey string
	// TLSCertFile, TLSKeyFile and TLSCAFile replace the derived CA with
	// operator-supplied certificates for the cluster port.
	TLSCertFile string
	TLSKeyFile  string
	TLSCAFile   string

	// StaleReads serves reads from the local FSM without a read index.
	StaleReads bool
	// QuorumTimeout is how long a write or a linearizable read waits for a
	// leader (or for a follower's leader to be heard from) before failing
	// with ErrNoQuorum. Default: 3 election timeouts.
	QuorumTimeout time.Duration
	// DeadNodeTimeout is how long a member must be dead before the leader
	// removes it from Raft and the FSM. Default 30m.
	DeadNodeTimeout time.Duration
	// ReconcileInterval is how often the leader reconciles membership
	// besides on gossip events. Default 10s.
	ReconcileInterval time.Duration
	// MaxVoters caps the Raft voters: 3 until 5 members are alive, then 5.
	// Default 5.
	MaxVoters int
	// GossipProbeInterval tunes memberlist's failure detector; zero keeps
	// memberlist's LAN default. Tests shorten it.
	GossipProbeInterval time.Duration
	// RetryJoinInterval is the pause between attempts to join. Default 2s.
	RetryJoinInterval time.Duration

	// ApplyTimeout bounds a write when the caller's context has no earlier
	// deadline. Default 10s.
	ApplyTimeout time.Duration
	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout tune Raft;
	// zero values take Raft's defaults.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// CommitTimeout is how long the leader waits without new entries
	// before telling followers the new commit index. Reads through a
	// follower do not wait for it: the leader tells the followers at once
	// when a read needs it (see commitNudge). Default 50ms, Raft's own;
	// shorter costs the idle cluster a message per follower each time.
	CommitTimeout time.Duration
	// SnapshotInterval and SnapshotThreshold control how often Raft
	// snapshots the FSM and compacts its log; TrailingLogs is how many
	// entries it keeps after a snapshot. Zero values take Raft's defaults.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64

	// DiskSpace, if set, guards the data directory's disk: while it refuses
	// metadata writes, the node refuses the writes that would not free
	// space, and Pebble tells it when a write meets a full disk.
	DiskSpace DiskSpace

	// Logger receives the node's, Raft's and Pebble's logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the node's metrics. Nil: no metrics.
	Registerer prometheus.Registerer
}

// DiskSpace is what a Node asks of the disk its data directory is on
// (*diskspace.Watcher is one).
type DiskSpace interface {
	// AllowMetadata returns an error while writes that do not free space
	// are refused (fsm.AcceptedOnFullDisk tells them apart).
	AllowMetadata() error
	// DiskFull is called when a write of the FSM's or the Raft log's
	// Pebble database meets ENOSPC, before the write is retried once: it
	// can make room (delete a ballast file). Pebble stops the process when
	// a write to its log fails.
	DiskFull()
}

const (
	defaultApplyTimeout      = 10 * time.Second
	defaultDeadNodeTimeout   = 30 * time.Minute
	defaultReconcileInterval = 10 * time.Second
	defaultMaxVoters         = 5
	defaultRetryJoinInterval = 2 * time.Second
	// raftDefaultTimeout is raft.DefaultConfig's heartbeat and election timeout.
	raftDefaultTimeout = time.Second
	snapshotsRetained  = 2
	transportMaxPool   = 3
	transportTimeout   = 10 * time.Second
)

// defaultCommitTimeout: see Config.CommitTimeout.
const defaultCommitTimeout = 50 * time.Millisecond

func (c Config) withDefaults() Config {
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = defaultApplyTimeout
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = defaultCommitTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setIfZero(&c.DeadNodeTimeout, defaultDeadNodeTimeout)
	setIfZero(&c.ReconcileInterval, defaultReconcileInterval)
	setIfZero(&c.MaxVoters, defaultMaxVoters)
	setIfZero(&c.RetryJoinInterval, defaultRetryJoinInterval)
	if c.QuorumTimeout == 0 {
		election, heartbeat := c.ElectionTimeout, c.HeartbeatTimeout
		setIfZero(&election, raftDefaultTimeout)
		setIfZero(&heartbeat, raftDefaultTimeout)
		c.QuorumTimeout = 3 * max(election, heartbeat)
	}
	return c
}

func setIfZero[T comparable](dst *T, v T) {
	var zero T
	if *dst == zero {
		*dst = v
	}
}

// clustered reports whether the node is meant to have peers.
func (c Config) clustered() bool {
	return c.BootstrapExpect > 1 || len(c.Join) > 0
}

func (c Config) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if c.ClusterListen == "" {
		errs = append(errs, errors.New("ClusterListen is required"))
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, errors.New("BootstrapExpect must not be negative"))
	}
	if c.clustered() && c.ClusterKey == "" {
		errs = append(errs, errors.New("a cluster key is required with more than one node (BootstrapExpect > 1 or Join): make one with `wharf keygen` and give every node the same --cluster-key"))
	}
	if c.clustered() && c.GossipListen == "" {
		errs = append(errs, errors.New("GossipListen is required with more than one node"))
	}
	if (c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSCAFile != "") && (c.TLSCertFile == "" || c.TLSKeyFile == "" || c.TLSCAFile == "") {
		errs = append(errs, errors.New("TLSCertFile, TLSKeyFile and TLSCAFile go together"))
	}
	if c.MaxVoters < 1 {
		errs = append(errs, errors.New("MaxVoters must be at least 1"))
	}
	return errors.Join(errs...)
}
