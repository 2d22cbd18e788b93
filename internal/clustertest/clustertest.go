// Package clustertest starts real cluster nodes for the tests of the
// packages above cluster: Raft and Pebble on disk, on loopback, with
// timings short enough for tests and long enough for a loaded CI machine.
// The cluster package's own tests, which reach into a node's internals,
// keep a harness of their own (it cannot import this package), with the
// same timings; cmd/wharf's harness runs whole registry nodes with them.
package clustertest

import (
	"context"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/cluster"
)

// FastTimings shortens c's Raft and gossip timings for tests of several
// nodes.
func FastTimings(c *cluster.Config) {
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 150 * time.Millisecond
	// 2s rather than 1s: on a busy shared machine a follower can go a
	// second without a heartbeat, and would then refuse writes.
	c.QuorumTimeout = 2 * time.Second
	c.GossipProbeInterval = 100 * time.Millisecond
	c.ReconcileInterval = 200 * time.Millisecond
	c.RetryJoinInterval = 100 * time.Millisecond
}

// Node starts a lone node that bootstraps itself, with its data in a
// temporary directory (or dir, if tune sets DataDir), and returns it once
// it is ready; the test's cleanup shuts it down. tune adjusts its config.
func Node(t testing.TB, tune ...func(*cluster.Config)) *cluster.Node {
	t.Helper()
	ctx := context.Background()
	cfg := cluster.Config{
		DataDir:         t.TempDir(),
		NodeName:        t.Name(),
		ClusterListen:   "127.0.0.1:0",
		BootstrapExpect: 1,
		// A lone voter elects itself after one election timeout.
		HeartbeatTimeout:   50 * time.Millisecond,
		ElectionTimeout:    50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond,
	}
	for _, f := range tune {
		f(&cfg)
	}
	node, err := cluster.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open cluster node: %v", err)
	}
	t.Cleanup(func() { _ = node.Shutdown(ctx) })
	if err := node.WaitReady(ctx); err != nil {
		t.Fatalf("node not ready: %v", err)
	}
	return node
}
