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
	// NodeName is a human-readable name, reported in Status.
	NodeName string
	// ClusterListen is the address the Raft transport listens on.
	ClusterListen string
	// Advertise is the address peers reach this node at. If empty it is the
	// listener's address, with an unspecified IP replaced by 127.0.0.1.
	Advertise string
	// BootstrapExpect is the number of voters the cluster starts with. A
	// node whose data directory has no Raft state bootstraps a one-voter
	// cluster when it is 1; other values wait to be joined.
	BootstrapExpect int

	// ApplyTimeout bounds a write when the caller's context has no earlier
	// deadline. Default 10s.
	ApplyTimeout time.Duration
	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout and
	// CommitTimeout tune Raft; zero values take Raft's defaults.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval and SnapshotThreshold control how often Raft
	// snapshots the FSM and compacts its log; TrailingLogs is how many
	// entries it keeps after a snapshot. Zero values take Raft's defaults.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64

	// Logger receives the node's, Raft's and Pebble's logs. Default: discard.
	Logger *slog.Logger
	// Registerer receives the node's metrics. Nil: no metrics.
	Registerer prometheus.Registerer
}

const (
	defaultApplyTimeout = 10 * time.Second
	snapshotsRetained   = 2
	transportMaxPool    = 3
	transportTimeout    = 10 * time.Second
)

func (c Config) withDefaults() Config {
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = defaultApplyTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
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
	return errors.Join(errs...)
}
