package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// testConfig is a single-node config with fast elections.
func testConfig(dir string) Config {
	return Config{
		DataDir:            dir,
		NodeName:           "test",
		ClusterListen:      "127.0.0.1:0",
		BootstrapExpect:    1,
		ApplyTimeout:       5 * time.Second,
		HeartbeatTimeout:   50 * time.Millisecond,
		ElectionTimeout:    50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
	}
}

// openNode opens a node and waits until it leads.
func openNode(t testing.TB, cfg Config) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Let the leader loop finish its first reconciliation (it registers
	// the node and moves it to its new address in the Raft configuration),
	// so tests that count log entries see no stray writes.
	waitFor(t, 10*time.Second, func() error {
		rec, err := n.FSM().Node(n.id)
		if err == nil && rec.GetClusterAddress() != n.ClusterAddress() {
			err = fmt.Errorf("registered at %s, listening at %s", rec.GetClusterAddress(), n.ClusterAddress())
		}
		if err != nil {
			return err
		}
		conf, err := n.configuration()
		if err != nil {
			return err
		}
		if srv, ok := findServer(conf, n.id); !ok || string(srv.Address) != n.ClusterAddress() {
			return fmt.Errorf("raft configuration has %v, listening at %s", conf.Servers, n.ClusterAddress())
		}
		return nil
	})
	return n
}

func shutdown(t testing.TB, n *Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func manifestOp(repo, content string, tags ...string) *fsmpb.PutManifest {
	return &fsmpb.PutManifest{
		Repository: repo,
		Digest:     digest.FromString(content).String(),
		MediaType:  "application/vnd.oci.image.manifest.v1+json",
		Content:    []byte(content),
		Tags:       tags,
	}
}

func TestNodeRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n := openNode(t, testConfig(dir))
	id := n.Status().NodeID
	if err := n.PutManifest(ctx, manifestOp("acme/app", "m1", "latest")); err != nil {
		t.Fatal(err)
	}
	if err := n.LinkBlob(ctx, "acme/app", digest.FromString("layer"), 5, ""); err != nil {
		t.Fatal(err)
	}
	shutdown(t, n)

	n = openNode(t, testConfig(dir))
	if got := n.Status().NodeID; got != id {
		t.Fatalf("node ID after restart = %q, want %q", got, id)
	}
	d, err := n.ResolveTag(ctx, "acme/app", "latest")
	if err != nil || d != digest.FromString("m1") {
		t.Fatalf("ResolveTag after restart = %s, %v", d, err)
	}
	if size, ok, err := n.BlobLinked(ctx, "acme/app", digest.FromString("layer")); err != nil || !ok || size != 5 {
		t.Fatalf("BlobLinked after restart = %d, %v, %v", size, ok, err)
	}
	// Writes go on after the restart.
	if err := n.PutManifest(ctx, manifestOp("acme/app", "m2", "latest")); err != nil {
		t.Fatal(err)
	}
}

func TestNodeApplyErrors(t *testing.T) {
	ctx := context.Background()
	n := openNode(t, testConfig(t.TempDir()))
	if err := n.PutManifest(ctx, manifestOp("solo", "m1")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"namespace conflict", n.PutManifest(ctx, manifestOp("solo/x", "m2")), fsm.ErrNamespaceConflict},
		{"missing tag", n.DeleteTag(ctx, "solo", "nope"), fsm.ErrNotFound},
		{"missing manifest", n.DeleteManifest(ctx, "solo", digest.FromString("nope")), fsm.ErrNotFound},
		{"missing blob", n.UnlinkBlob(ctx, "solo", digest.FromString("nope")), fsm.ErrNotFound},
		{"invalid name", n.LinkBlob(ctx, "Solo", digest.FromString("b"), 1, ""), fsm.ErrInvalid},
		{"check name", n.CheckRepositoryName(ctx, "solo/y"), fsm.ErrNamespaceConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("error = %v, want %v", tt.err, tt.want)
			}
		})
	}
}

func TestNodeApplyIsIdempotentPerRequest(t *testing.T) {
	ctx := context.Background()
	n := openNode(t, testConfig(t.TempDir()))
	cmd := &fsmpb.Command{Op: &fsmpb.Command_PutManifest{PutManifest: manifestOp("acme/app", "m1", "v1")}}
	if _, err := n.Apply(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteTag(ctx, "acme/app", "v1"); err != nil {
		t.Fatal(err)
	}
	// A retry of the same command (same request ID) is not applied again.
	if _, err := n.Apply(ctx, cmd); err != nil {
		t.Fatal(err)
	}
	if _, err := n.ResolveTag(ctx, "acme/app", "v1"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("retried command was applied again: %v", err)
	}
}

func TestNodeAfterShutdown(t *testing.T) {
	ctx := context.Background()
	n := openNode(t, testConfig(t.TempDir()))
	shutdown(t, n)
	shutdown(t, n) // idempotent
	if err := n.PutManifest(ctx, manifestOp("acme/app", "m1")); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("PutManifest after shutdown = %v, want ErrNoQuorum", err)
	}
	if _, err := n.RepositoryExists(ctx, "acme/app"); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("RepositoryExists after shutdown = %v, want ErrNoQuorum", err)
	}
}

func TestNodeSnapshotTruncateRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.SnapshotThreshold = 8
	cfg.TrailingLogs = 2
	ctx := context.Background()
	n := openNode(t, cfg)
	const count = 30
	for i := range count {
		if err := n.PutManifest(ctx, manifestOp("acme/app", fmt.Sprint("m", i), fmt.Sprint("t", i))); err != nil {
			t.Fatal(err)
		}
		if i == count/2 {
			if err := n.raft.Snapshot().Error(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	first, err := n.logs.FirstIndex()
	if err != nil || first <= 1 {
		t.Fatalf("log was not truncated: FirstIndex = %d, %v", first, err)
	}
	shutdown(t, n)

	n = openNode(t, cfg)
	tags, err := n.ListTags(ctx, "acme/app", "", 0)
	if err != nil || len(tags) != count {
		t.Fatalf("after restart: %d tags, %v; want %d", len(tags), err, count)
	}
}

// TestNodeRecoversLostFSM deletes the FSM and restarts: the latest Raft
// snapshot and the log after it rebuild the state.
func TestNodeRecoversLostFSM(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.TrailingLogs = 1
	ctx := context.Background()
	n := openNode(t, cfg)
	for _, c := range []string{"a", "b", "c"} {
		if err := n.PutManifest(ctx, manifestOp("acme/app", c, c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	if err := n.PutManifest(ctx, manifestOp("acme/app", "d", "d")); err != nil {
		t.Fatal(err)
	}
	shutdown(t, n)
	if err := removeAll(dir, "fsm"); err != nil {
		t.Fatal(err)
	}

	n = openNode(t, cfg)
	tags, err := n.ListTags(ctx, "acme/app", "", 0)
	if err != nil || len(tags) != 4 {
		t.Fatalf("after losing the fsm: tags %v, %v; want a-d", tags, err)
	}
}

func TestNodeMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := testConfig(t.TempDir())
	cfg.Registerer = reg
	n := openNode(t, cfg)
	if err := n.PutManifest(context.Background(), manifestOp("acme/app", "m1")); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, f := range families {
		series[f.GetName()] = len(f.GetMetric())
	}
	for name, want := range map[string]int{
		"wharf_fsm_apply_seconds": 1, "wharf_raft_state": 4, "wharf_raft_commit_index": 1,
		"wharf_raft_commit_nudges_total": 1, "wharf_read_index_rounds_total": 1,
	} {
		if series[name] != want {
			t.Errorf("%s has %d series, want %d", name, series[name], want)
		}
	}
	shutdown(t, n)
	// Shutdown unregisters, so the node can be reopened with the same registry.
	n = openNode(t, cfg)
	shutdown(t, n)
}

func removeAll(dir, sub string) error { return os.RemoveAll(filepath.Join(dir, sub)) }

// TestNodeReplaysEntriesTheFSMLost: the FSM commits its batches without
// fsync (the Raft log is the durable record), so a power cut can leave it
// behind the log. Rolling the fsm directory back to an earlier copy shows
// the entries after it are applied again at start, from the log.
func TestNodeReplaysEntriesTheFSMLost(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	ctx := context.Background()
	n := openNode(t, cfg)
	for _, c := range []string{"a", "b"} {
		if err := n.PutManifest(ctx, manifestOp("acme/app", c, c)); err != nil {
			t.Fatal(err)
		}
	}
	shutdown(t, n)
	saved := filepath.Join(t.TempDir(), "fsm")
	if err := os.CopyFS(saved, os.DirFS(filepath.Join(dir, "fsm"))); err != nil {
		t.Fatal(err)
	}

	n = openNode(t, cfg)
	for _, c := range []string{"c", "d"} {
		if err := n.PutManifest(ctx, manifestOp("acme/app", c, c)); err != nil {
			t.Fatal(err)
		}
	}
	shutdown(t, n)
	if err := removeAll(dir, "fsm"); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(dir, "fsm"), os.DirFS(saved)); err != nil {
		t.Fatal(err)
	}

	n = openNode(t, cfg)
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tags, err := n.ListTags(ctx, "acme/app", "", 0)
	if err != nil || len(tags) != 4 {
		t.Fatalf("after rolling the fsm back: tags %v, %v; want a-d", tags, err)
	}
}
