package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/internal/testnet"
)

// clusterOpts tunes startCluster.
type clusterOpts struct {
	// deadNodeTimeout overrides the short test default.
	deadNodeTimeout time.Duration
	// commitTimeout overrides Raft's (the default's) 50ms.
	commitTimeout time.Duration
	// diskSpace, if set, gives node i its DiskSpace.
	diskSpace func(i int) DiskSpace
}

// testCluster is a set of in-process nodes on loopback.
type testCluster struct {
	t       *testing.T
	key     string
	opts    clusterOpts
	expect  int
	nodes   []*Node
	gossips []string // gossip address of each node
}

func freePort(t testing.TB) string { return testnet.FreeAddr(t) }

// clusterConfig is a config with fast Raft and gossip timings.
func (tc *testCluster) config(gossip string, join []string) Config {
	cfg := testConfig(tc.t.TempDir())
	cfg.NodeName = "node-" + gossip
	cfg.GossipListen = gossip
	cfg.Join = join
	cfg.ClusterKey = tc.key
	cfg.BootstrapExpect = tc.expect
	cfg.HeartbeatTimeout = 300 * time.Millisecond
	cfg.ElectionTimeout = 300 * time.Millisecond
	cfg.LeaderLeaseTimeout = 150 * time.Millisecond
	// Well above the heartbeat timeout: a loaded CI machine can delay
	// heartbeats, and a shorter one refuses writes on a healthy cluster.
	cfg.QuorumTimeout = 2 * time.Second
	cfg.ReconcileInterval = 200 * time.Millisecond
	cfg.DeadNodeTimeout = cmpOr(tc.opts.deadNodeTimeout, time.Second)
	cfg.CommitTimeout = tc.opts.commitTimeout
	cfg.GossipProbeInterval = 100 * time.Millisecond
	cfg.RetryJoinInterval = 100 * time.Millisecond
	if os.Getenv("WHARF_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// startCluster opens n nodes at once, each joining all the others, with
// BootstrapExpect n, and waits for a leader and n voters.
func startCluster(t *testing.T, n int, opts clusterOpts) *testCluster {
	t.Helper()
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCluster{t: t, key: key, opts: opts, expect: n}
	for range n {
		tc.gossips = append(tc.gossips, freePort(t))
	}
	tc.nodes = make([]*Node, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		join := slices.Delete(slices.Clone(tc.gossips), i, i+1)
		cfg := tc.config(tc.gossips[i], join)
		if opts.diskSpace != nil {
			cfg.DiskSpace = opts.diskSpace(i)
		}
		wg.Go(func() { tc.nodes[i], errs[i] = Open(context.Background(), cfg) })
	}
	wg.Wait()
	for i, node := range tc.nodes {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		t.Cleanup(func() { node.Shutdown(context.Background()) })
	}
	tc.waitVoters(n, 0)
	return tc
}

// add opens one more node that joins the first node's gossip address.
func (tc *testCluster) add() *Node {
	tc.t.Helper()
	addr := freePort(tc.t)
	n, err := Open(context.Background(), tc.config(addr, []string{tc.gossips[0]}))
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { n.Shutdown(context.Background()) })
	tc.nodes = append(tc.nodes, n)
	tc.gossips = append(tc.gossips, addr)
	return n
}

// live returns the nodes not shut down.
func (tc *testCluster) live() []*Node {
	var out []*Node
	for _, n := range tc.nodes {
		if !n.closed.Load() {
			out = append(out, n)
		}
	}
	return out
}

// leader waits until exactly one live node leads and every live node
// agrees, and returns it.
func (tc *testCluster) leader() *Node {
	tc.t.Helper()
	var leader *Node
	waitFor(tc.t, 10*time.Second, func() error {
		leader = nil
		for _, n := range tc.live() {
			if n.raft.State() == raft.Leader {
				if leader != nil {
					return errors.New("two leaders")
				}
				leader = n
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		for _, n := range tc.live() {
			if _, id := n.raft.LeaderWithID(); string(id) != leader.id {
				return fmt.Errorf("node %s sees leader %q, want %s", n.id, id, leader.id)
			}
		}
		return nil
	})
	return leader
}

func (tc *testCluster) follower() *Node {
	tc.t.Helper()
	leader := tc.leader()
	for _, n := range tc.live() {
		if n != leader {
			return n
		}
	}
	tc.t.Fatal("no follower")
	return nil
}

// waitVoters waits until the leader's configuration has the given voters
// and non-voters.
func (tc *testCluster) waitVoters(voters, nonvoters int) raft.Configuration {
	tc.t.Helper()
	var conf raft.Configuration
	waitFor(tc.t, 15*time.Second, func() error {
		leader := tc.leader()
		var err error
		if conf, err = leader.configuration(); err != nil {
			return err
		}
		v := countVoters(conf)
		if v != voters || len(conf.Servers)-v != nonvoters {
			return fmt.Errorf("configuration %v, want %d voters and %d non-voters", conf.Servers, voters, nonvoters)
		}
		return nil
	})
	return conf
}

func waitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestClusterFormsOnce(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{})
	leader := tc.leader()
	want, err := leader.configuration()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range tc.nodes {
		// Every node bootstrapped the same configuration, or none: the log
		// starts with one configuration entry. A node that did not
		// bootstrap gets it from the leader, maybe a moment after the
		// leader is known.
		var first raft.Log
		waitFor(t, 5*time.Second, func() error { return n.logs.GetLog(1, &first) })
		if first.Type != raft.LogConfiguration {
			t.Fatalf("node %s: first log entry is %v", n.id, first.Type)
		}
		got := raft.DecodeConfiguration(first.Data)
		if !slices.Equal(got.Servers, want.Servers) {
			t.Fatalf("node %s bootstrapped %v, leader has %v", n.id, got.Servers, want.Servers)
		}
	}
	// The leader registers every member in the FSM.
	waitFor(t, 5*time.Second, func() error {
		nodes, err := leader.FSM().Nodes()
		if err != nil || len(nodes) != 3 {
			return fmt.Errorf("registered %d nodes, %v", len(nodes), err)
		}
		return nil
	})
	members := tc.nodes[1].Members()
	if len(members) != 3 {
		t.Fatalf("members = %+v", members)
	}
	for _, m := range members {
		if m.Gossip != "alive" || m.Suffrage != "voter" || m.ClusterAddr == "" {
			t.Errorf("member %+v", m)
		}
	}
}

func TestClusterGrowsVoters(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{})
	tc.add()
	conf := tc.waitVoters(3, 1)
	if s, _ := findServer(conf, tc.nodes[3].id); s.Suffrage != raft.Nonvoter {
		t.Fatalf("4th node is %v, want a non-voter", s.Suffrage)
	}
	// The non-voter replicates.
	ctx := ctxTimeout(t, 10*time.Second)
	if err := tc.nodes[3].PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	// With five members alive the cluster runs five voters.
	tc.add()
	tc.waitVoters(5, 0)
}

func TestClusterReadYourWritesEverywhere(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{})
	ctx := ctxTimeout(t, 20*time.Second)
	leader := tc.leader()
	var followers []*Node
	for _, n := range tc.nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	// A write through a follower is forwarded to the leader.
	if err := followers[0].PutManifest(ctx, manifestOp("acme/app", "m1", "latest")); err != nil {
		t.Fatal(err)
	}
	for round, writer := range []*Node{followers[0], leader, followers[1]} {
		content := fmt.Sprint("m", round+2)
		if err := writer.PutManifest(ctx, manifestOp("acme/app", content, "latest")); err != nil {
			t.Fatal(err)
		}
		// No waiting: every node must see the moved tag at once.
		for _, reader := range tc.nodes {
			d, err := reader.ResolveTag(ctx, "acme/app", "latest")
			if err != nil || d != digest.FromString(content) {
				t.Fatalf("round %d: node %s resolves latest to %s, %v; want %s", round, reader.id, d, err, digest.FromString(content))
			}
			if _, err := reader.Manifest(ctx, "acme/app", digest.FromString(content)); err != nil {
				t.Fatalf("round %d: node %s: manifest: %v", round, reader.id, err)
			}
		}
	}
	// FSM refusals come back through forwarding.
	if err := followers[1].DeleteTag(ctx, "acme/app", "nope"); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("DeleteTag through follower = %v, want ErrNotFound", err)
	}
}

func TestClusterGracefulLeave(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{deadNodeTimeout: time.Hour})
	tc.add()
	tc.waitVoters(3, 1)
	leaving := tc.leader() // the leader hands over before leaving
	if err := leaving.Leave(ctxTimeout(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	// The non-voter is promoted to keep three voters.
	conf := tc.waitVoters(3, 0)
	if _, in := findServer(conf, leaving.id); in {
		t.Fatalf("node that left is still in %v", conf.Servers)
	}
	leader := tc.leader()
	waitFor(t, 5*time.Second, func() error {
		if _, err := leader.FSM().Node(leaving.id); !errors.Is(err, fsm.ErrNotFound) {
			return fmt.Errorf("node that left is still registered: %v", err)
		}
		return nil
	})
}

func TestClusterLeaderFailover(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{deadNodeTimeout: time.Second})
	ctx := ctxTimeout(t, 30*time.Second)
	follower := tc.follower()
	if err := follower.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	old := tc.leader()
	shutdown(t, old)
	// The write waits out the election and lands on the new leader.
	if err := follower.PutManifest(ctx, manifestOp("acme/app", "m2", "v2")); err != nil {
		t.Fatal(err)
	}
	if tc.leader() == old {
		t.Fatal("old leader still leads")
	}
	for _, n := range tc.live() {
		if tags, err := n.ListTags(ctx, "acme/app", "", 0); err != nil || len(tags) != 2 {
			t.Fatalf("node %s: tags %v, %v", n.id, tags, err)
		}
	}
	// After DeadNodeTimeout the dead server is removed: two voters remain,
	// both alive, so the removal keeps a quorum.
	conf := tc.waitVoters(2, 0)
	if _, in := findServer(conf, old.id); in {
		t.Fatalf("dead node still in %v", conf.Servers)
	}
}

func TestClusterNoQuorumFailsFast(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{deadNodeTimeout: time.Hour})
	survivor := tc.follower()
	for _, n := range tc.nodes {
		if n != survivor {
			shutdown(t, n)
		}
	}
	ctx := context.Background()
	start := time.Now()
	err := survivor.PutManifest(ctx, manifestOp("acme/app", "m1", "v1"))
	if !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("write without quorum = %v, want ErrNoQuorum", err)
	}
	if _, err := survivor.ResolveTag(ctx, "acme/app", "v1"); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("read without quorum = %v, want ErrNoQuorum", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("failing took %s", took)
	}
	if survivor.Status().Ready() {
		t.Fatalf("a node without quorum is ready: %+v", survivor.Status())
	}
}

func TestClusterReadIndexBatching(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{})
	ctx := ctxTimeout(t, 10*time.Second)
	follower := tc.follower()
	if err := follower.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	before := follower.reads.rounds.Load()
	const readers = 50
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	start := make(chan struct{})
	for range readers {
		wg.Go(func() {
			<-start
			if _, err := follower.ResolveTag(ctx, "acme/app", "v1"); err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rounds := follower.reads.rounds.Load() - before
	t.Logf("%d readers used %d read index round trips", readers, rounds)
	if rounds < 1 || rounds > 5 {
		t.Fatalf("%d round trips for %d concurrent readers", rounds, readers)
	}
}

// TestClusterReadScope: the reads of one request share a read index, and
// a write through the request makes its next read fetch a new one, which
// sees the write even on a follower.
func TestClusterReadScope(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{})
	ctx := ctxTimeout(t, 10*time.Second)
	follower := tc.follower()
	if err := follower.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	rounds := func() uint64 { return follower.reads.rounds.Load() }
	req := WithReadScope(ctx)
	before := rounds()
	for range 5 {
		if d, err := follower.ResolveTag(req, "acme/app", "v1"); err != nil || d != digest.FromString("m1") {
			t.Fatalf("ResolveTag = %s, %v; want m1", d, err)
		}
	}
	if got := rounds() - before; got != 1 {
		t.Fatalf("5 reads in one scope made %d read index round trips, want 1", got)
	}
	// Another request (another scope) fetches its own.
	before = rounds()
	if _, err := follower.ResolveTag(WithReadScope(ctx), "acme/app", "v1"); err != nil {
		t.Fatal(err)
	}
	if got := rounds() - before; got != 1 {
		t.Fatalf("a new scope made %d round trips, want 1", got)
	}
	// A write in the scope: its next read must see it, through a new read
	// index, at once.
	for i := 2; i < 12; i++ {
		content := fmt.Sprint("m", i)
		before = rounds()
		if err := follower.PutManifest(req, manifestOp("acme/app", content, "v1")); err != nil {
			t.Fatal(err)
		}
		d, err := follower.ResolveTag(req, "acme/app", "v1")
		if err != nil || d != digest.FromString(content) {
			t.Fatalf("after moving v1 to %s in the scope, it resolves to %s, %v", content, d, err)
		}
		if got := rounds() - before; got != 1 {
			t.Fatalf("a read after a write in the scope made %d round trips, want 1", got)
		}
	}
}

// TestClusterReadsDoNotWaitForCommitTimeout: with a CommitTimeout far
// longer than the test allows, a follower still reads the leader's latest
// write at once, because the leader, asked for a read index its followers
// have not learned as committed, tells them with a barrier.
func TestClusterReadsDoNotWaitForCommitTimeout(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{commitTimeout: time.Minute})
	leader := tc.leader()
	follower := tc.follower()
	for i := range 5 {
		// Each read gets 5s: without the nudge it would wait for the
		// leader's next message, up to two minutes away.
		ctx := ctxTimeout(t, 5*time.Second)
		content := fmt.Sprint("m", i)
		if err := leader.PutManifest(ctx, manifestOp("acme/app", content, "v1")); err != nil {
			t.Fatal(err)
		}
		d, err := follower.ResolveTag(ctx, "acme/app", "v1")
		if err != nil || d != digest.FromString(content) {
			t.Fatalf("follower resolves v1 to %s, %v; want %s", d, err, content)
		}
	}
	if leader.nudge.nudges.Load() == 0 {
		t.Fatal("the leader never nudged its followers")
	}
	// Reads without writes need no more nudges: a barrier is no command,
	// so the follower need not learn that it committed.
	before := leader.nudge.nudges.Load()
	ctx := ctxTimeout(t, 5*time.Second)
	for range 50 {
		if _, err := follower.ResolveTag(WithReadScope(ctx), "acme/app", "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if got := leader.nudge.nudges.Load() - before; got > 1 {
		t.Fatalf("50 reads without writes cost %d nudges, want at most 1", got)
	}
}

func TestClusterRefusesWrongKey(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{})
	leader := tc.leader()
	// An intruder with another key tries to join through gossip.
	intruder := &testCluster{t: t, key: mustKey(t), expect: 3}
	cfg := intruder.config(freePort(t), []string{tc.gossips[0]})
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	// Its writes find no leader; gossip never lists it.
	if err := n.PutManifest(context.Background(), manifestOp("acme/app", "evil")); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("intruder's write = %v, want ErrNoQuorum", err)
	}
	for _, member := range tc.nodes {
		for _, m := range member.Members() {
			if m.ID == n.id {
				t.Fatalf("node %s lists the intruder: %+v", member.id, m)
			}
		}
	}
	if got := len(n.Members()); got != 1 {
		t.Fatalf("intruder sees %d members", got)
	}
	// Its certificate is refused on the cluster port.
	resp, err := n.PeerHTTPClient().Get("https://" + leader.ClusterAddress() + "/wharf.cluster.v1.PeerService/ReadIndex")
	if err == nil {
		resp.Body.Close()
		t.Fatal("the intruder reached the leader's internal API")
	}
	conf := tc.waitVoters(3, 0)
	if _, in := findServer(conf, n.id); in {
		t.Fatal("the intruder is in the raft configuration")
	}
	// No log entry mentions it: not registered, not added, nothing written.
	for i := uint64(1); i <= leader.raft.LastIndex(); i++ {
		var l raft.Log
		if err := leader.logs.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(l.Data, []byte(n.id)) || bytes.Contains(l.Data, []byte("evil")) {
			t.Fatalf("log entry %d (%v) mentions the intruder", i, l.Type)
		}
	}
}
