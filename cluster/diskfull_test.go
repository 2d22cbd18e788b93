package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

// testDiskSpace is a disk whose floor the test crosses at will.
type testDiskSpace struct {
	full atomic.Bool
}

func (d *testDiskSpace) AllowMetadata() error {
	if d.full.Load() {
		return &diskspace.RefusedError{Write: "metadata write", Free: 1 << 20, Threshold: 2 << 20}
	}
	return nil
}

func (d *testDiskSpace) DiskFull() {}

// TestNodeBelowItsFloorAcceptsOnlyDeletions checks that a node whose disk
// is below its floor refuses the writes that do not free space, before
// they reach the Raft log, and still commits deletions.
func TestNodeBelowItsFloorAcceptsOnlyDeletions(t *testing.T) {
	ctx := context.Background()
	disk := &testDiskSpace{}
	cfg := testConfig(t.TempDir())
	cfg.DiskSpace = disk
	n := openNode(t, cfg)
	if err := n.PutManifest(ctx, manifestOp("acme/app", "m1", "v1", "v2")); err != nil {
		t.Fatal(err)
	}
	disk.full.Store(true)
	before := n.raft.LastIndex()
	err := n.PutManifest(ctx, manifestOp("acme/app", "m2", "v3"))
	if !diskspace.IsFull(err) {
		t.Fatalf("manifest put below the floor: %v, want insufficient storage", err)
	}
	if got := n.raft.LastIndex(); got != before {
		t.Errorf("the refused write reached the Raft log (index %d -> %d)", before, got)
	}
	if err := n.LinkBlob(ctx, "acme/app", digest.FromString("b"), 1, ""); !diskspace.IsFull(err) {
		t.Errorf("blob link below the floor: %v, want insufficient storage", err)
	}
	if err := n.DeleteTag(ctx, "acme/app", "v1"); err != nil {
		t.Errorf("tag delete below the floor: %v", err)
	}
	if err := n.DeleteManifest(ctx, "acme/app", digest.FromString("m1")); err != nil {
		t.Errorf("manifest delete below the floor: %v", err)
	}
	disk.full.Store(false)
	if err := n.PutManifest(ctx, manifestOp("acme/app", "m2", "v3")); err != nil {
		t.Errorf("manifest put once space was freed: %v", err)
	}
}

// TestLeaderBelowItsFloorRefusesForwardedWrites checks that the leader
// holds forwarded writes to its own disk's floor: a follower with room
// gets the refusal at once, as insufficient storage rather than a lost
// quorum, and deletions still go through.
func TestLeaderBelowItsFloorRefusesForwardedWrites(t *testing.T) {
	disks := make([]*testDiskSpace, 3)
	tc := startCluster(t, 3, clusterOpts{diskSpace: func(i int) DiskSpace {
		disks[i] = &testDiskSpace{}
		return disks[i]
	}})
	leader, follower := tc.leader(), tc.follower()
	ctx := ctxTimeout(t, 10*time.Second)
	if err := follower.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	for i, n := range tc.nodes {
		if n == leader {
			disks[i].full.Store(true)
		}
	}
	start := time.Now()
	err := follower.PutManifest(ctx, manifestOp("acme/app", "m2", "v2"))
	if !diskspace.IsFull(err) || errors.Is(err, ErrNoQuorum) {
		t.Fatalf("write through a follower to a full leader: %v, want insufficient storage", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the refusal took %s: it was retried", took)
	}
	if err := follower.DeleteTag(ctx, "acme/app", "v1"); err != nil {
		t.Errorf("tag delete through a follower to a full leader: %v", err)
	}
	if _, err := follower.FSM().ResolveTag("acme/app", "v2"); !errors.Is(err, fsm.ErrNotFound) {
		t.Errorf("the refused tag exists: %v", err)
	}
}
