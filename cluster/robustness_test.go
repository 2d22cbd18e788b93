package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm"
)

// startClusterWith is startCluster with a hook that edits node i's config
// before it opens.
func startClusterWith(t *testing.T, n int, opts clusterOpts, edit func(i int, cfg *Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, key: mustKey(t), opts: opts, expect: n}
	for range n {
		tc.gossips = append(tc.gossips, freePort(t))
	}
	tc.nodes = make([]*Node, n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		cfg := tc.config(tc.gossips[i], slices.Delete(slices.Clone(tc.gossips), i, i+1))
		if edit != nil {
			edit(i, &cfg)
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

// testCA is an operator's CA: ECDSA P-256, PEM files on disk.
type testCA struct {
	cert   *x509.Certificate
	key    *ecdsa.PrivateKey
	dir    string
	caFile string
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	ca.caFile = filepath.Join(ca.dir, "ca.pem")
	writePEM(t, ca.caFile, "CERTIFICATE", der)
	return ca
}

// issue writes a node certificate (IP SAN 127.0.0.1, server and client
// auth) and its key, and returns their paths.
func (ca *testCA) issue(t *testing.T, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(ca.dir, name+".pem")
	keyFile = filepath.Join(ca.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func (ca *testCA) configure(t *testing.T, cfg *Config, name string) {
	cfg.TLSCertFile, cfg.TLSKeyFile = ca.issue(t, name)
	cfg.TLSCAFile = ca.caFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsRefused reports whether a TLS client with conf is refused by addr: the
// handshake fails, or (TLS 1.3: the server checks the client's certificate
// after the client has finished) the first read reports the server's
// alert rather than a timeout.
func tlsRefused(addr string, conf *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, conf)
	if err != nil {
		return nil
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("connection to %s accepted (read: %v)", addr, err)
	}
	return nil
}

// TestClusterOperatorTLS: three nodes with certificates from an operator's
// CA form a cluster and replicate; a node whose certificate comes from
// another CA (but which has the gossip key) is refused on the cluster port
// both ways and is never registered nor added to Raft.
func TestClusterOperatorTLS(t *testing.T) {
	ca := newTestCA(t, "operator CA")
	tc := startClusterWith(t, 3, clusterOpts{deadNodeTimeout: time.Hour}, func(i int, cfg *Config) {
		ca.configure(t, cfg, fmt.Sprint("node", i))
	})
	// The nodes really use the operator's certificates.
	for _, n := range tc.nodes {
		leaf, err := x509.ParseCertificate(n.sec.cert.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := leaf.CheckSignatureFrom(ca.cert); err != nil {
			t.Fatalf("node %s does not present an operator certificate: %v", n.id, err)
		}
	}
	ctx := ctxTimeout(t, 30*time.Second)
	follower := tc.follower()
	// Forwarded write (peer HTTP over mTLS), replication (Raft over mTLS),
	// linearizable reads on every node (read index over mTLS).
	if err := follower.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	for _, n := range tc.nodes {
		if d, err := n.ResolveTag(ctx, "acme/app", "v1"); err != nil || d != digest.FromString("m1") {
			t.Fatalf("node %s: ResolveTag = %s, %v", n.id, d, err)
		}
	}

	// A node with the gossip key but a certificate from another CA.
	other := newTestCA(t, "other CA")
	cfg := tc.config(freePort(t), []string{tc.gossips[0]})
	other.configure(t, &cfg, "rogue")
	rogue, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rogue.Shutdown(context.Background()) })
	leader := tc.leader()
	// Gossip (shared key) does see it, so the leader has to decide.
	waitFor(t, 10*time.Second, func() error {
		for _, m := range leader.Members() {
			if m.ID == rogue.id && m.Gossip == "alive" {
				return nil
			}
		}
		return errors.New("leader's gossip does not list the rogue node")
	})
	// Refused on the cluster port, for HTTP and for Raft, both ways.
	if resp, err := rogue.PeerHTTPClient().Get("https://" + leader.ClusterAddress() + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("the rogue node reached the leader's internal API")
	}
	if resp, err := leader.PeerHTTPClient().Get("https://" + rogue.ClusterAddress() + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("the leader accepted the rogue node's server certificate")
	}
	if err := tlsRefused(leader.ClusterAddress(), rogue.sec.clientTLS(alpnRaft)); err != nil {
		t.Fatal(err)
	}
	// Several reconciliations later it is neither in Raft nor registered.
	time.Sleep(10 * leader.cfg.ReconcileInterval)
	conf := tc.waitVoters(3, 0)
	if _, in := findServer(conf, rogue.id); in {
		t.Fatalf("the rogue node is in the raft configuration %v", conf.Servers)
	}
	if _, err := leader.FSM().Node(rogue.id); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("the rogue node is registered: %v", err)
	}
	if err := rogue.PutManifest(ctxTimeout(t, 10*time.Second), manifestOp("acme/app", "evil", "v1")); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("rogue write = %v, want ErrNoQuorum", err)
	}
	// The cluster still works.
	if err := follower.PutManifest(ctx, manifestOp("acme/app", "m2", "v2")); err != nil {
		t.Fatal(err)
	}
}

// reopenAt restarts a shut-down node from its data directory on a new
// cluster port and gossip port, joining the other nodes' gossip.
func (tc *testCluster) reopenAt(i int, gossipAddr string) *Node {
	tc.t.Helper()
	old := tc.nodes[i]
	cfg := old.cfg
	cfg.ClusterListen = "127.0.0.1:0"
	cfg.GossipListen = gossipAddr
	cfg.Join = slices.Delete(slices.Clone(tc.gossips), i, i+1)
	n, err := Open(context.Background(), cfg)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { n.Shutdown(context.Background()) })
	tc.nodes[i] = n
	tc.gossips[i] = gossipAddr
	return n
}

// TestClusterNodeMovesAddress: a voter restarts from its data directory on
// new cluster and gossip ports. It keeps its ID; the leader moves it to the
// new address in the Raft configuration and in the FSM; it catches up on
// what was written while it was down and serves reads.
func TestClusterNodeMovesAddress(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{deadNodeTimeout: time.Hour})
	ctx := ctxTimeout(t, 60*time.Second)
	leader := tc.leader()
	if err := leader.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(tc.nodes, func(n *Node) bool { return n != leader })
	old := tc.nodes[i]
	oldAddr := old.ClusterAddress()
	shutdown(t, old) // a crash: no leave
	if err := leader.PutManifest(ctx, manifestOp("acme/app", "m2", "v1", "v2")); err != nil {
		t.Fatal(err)
	}

	n := tc.reopenAt(i, freePort(t))
	if n.id != old.id {
		t.Fatalf("restarted as %s, was %s", n.id, old.id)
	}
	if n.ClusterAddress() == oldAddr {
		t.Fatalf("cluster address did not change: %s", oldAddr)
	}
	waitFor(t, 20*time.Second, func() error {
		leader := tc.leader()
		conf, err := leader.configuration()
		if err != nil {
			return err
		}
		srv, in := findServer(conf, n.id)
		if !in || string(srv.Address) != n.ClusterAddress() || srv.Suffrage != raft.Voter {
			return fmt.Errorf("raft configuration %v, want voter %s at %s", conf.Servers, n.id, n.ClusterAddress())
		}
		rec, err := leader.FSM().Node(n.id)
		if err != nil {
			return err
		}
		if rec.GetClusterAddress() != n.ClusterAddress() || rec.GetGossipAddress() != tc.gossips[i] {
			return fmt.Errorf("registered %v, want cluster %s gossip %s", rec, n.ClusterAddress(), tc.gossips[i])
		}
		return nil
	})
	conf := tc.waitVoters(3, 0)
	for _, s := range conf.Servers {
		if string(s.Address) == oldAddr {
			t.Fatalf("old address still in %v", conf.Servers)
		}
	}
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// It caught up on the write it missed, and its FSM registered itself
	// under the new address.
	if d, err := n.ResolveTag(ctx, "acme/app", "v2"); err != nil || d != digest.FromString("m2") {
		t.Fatalf("moved node: ResolveTag v2 = %s, %v", d, err)
	}
	if rec, err := n.FSM().Node(n.id); err != nil || rec.GetClusterAddress() != n.ClusterAddress() {
		t.Fatalf("moved node's own FSM registers it as %v, %v", rec, err)
	}
	// Writes through it reach the leader, and it gets them back.
	if err := n.PutManifest(ctx, manifestOp("acme/app", "m3", "v3")); err != nil {
		t.Fatal(err)
	}
	for _, node := range tc.live() {
		if d, err := node.ResolveTag(ctx, "acme/app", "v3"); err != nil || d != digest.FromString("m3") {
			t.Fatalf("node %s: ResolveTag v3 = %s, %v", node.id, d, err)
		}
	}
	// Gossip agrees: one entry for the node, alive, at the new addresses.
	for _, m := range tc.leader().Members() {
		if m.ID == n.id && (m.Gossip != "alive" || m.ClusterAddr != n.ClusterAddress() || m.GossipAddr != tc.gossips[i]) {
			t.Fatalf("leader's member entry %+v", m)
		}
	}
}

// TestClusterDeadVoterRemoval: a crashed voter of three is removed after
// DeadNodeTimeout (two alive voters keep a quorum, and no member is left to
// promote); a new member restores three voters.
func TestClusterDeadVoterRemoval(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{deadNodeTimeout: time.Second})
	dead := tc.follower()
	shutdown(t, dead)
	conf := tc.waitVoters(2, 0)
	if _, in := findServer(conf, dead.id); in {
		t.Fatalf("dead node still in %v", conf.Servers)
	}
	leader := tc.leader()
	waitFor(t, 5*time.Second, func() error {
		if _, err := leader.FSM().Node(dead.id); !errors.Is(err, fsm.ErrNotFound) {
			return fmt.Errorf("dead node still registered: %v", err)
		}
		return nil
	})
	ctx := ctxTimeout(t, 20*time.Second)
	if err := leader.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	// Below the target of three voters: the next member becomes a voter.
	// (tc.add joins through node 0's gossip address, which may be the dead
	// node's.)
	cfg := tc.config(freePort(t), []string{tc.gossips[slices.Index(tc.nodes, leader)]})
	n, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Shutdown(context.Background()) })
	tc.nodes = append(tc.nodes, n)
	conf = tc.waitVoters(3, 0)
	if s, _ := findServer(conf, n.id); s.Suffrage != raft.Voter {
		t.Fatalf("new member is %v", s.Suffrage)
	}
}

// TestClusterDeadVoterKeepsQuorum exercises the case canRemoveVoter guards
// in practice. With crashes alone it cannot arise: a leader exists only
// while a majority M of the V voters is alive, and removing one dead voter
// leaves M alive out of V-1, still a majority. It arises when gossip and
// Raft disagree: here two followers lose gossip (their memberlist stops,
// as when the gossip port is firewalled) while their Raft keeps working.
// The leader sees two dead voters and the dead-node timeout expires, but
// removing either would leave one gossip-alive voter out of two; without
// the rule both removals would commit (Raft can still reach them) and the
// leader would end as the only voter of the cluster.
func TestClusterDeadVoterKeepsQuorum(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{deadNodeTimeout: 500 * time.Millisecond})
	leader := tc.leader()
	var cut []*Node
	for _, n := range tc.nodes {
		if n != leader {
			if err := n.gossip.ml.Shutdown(); err != nil {
				t.Fatal(err)
			}
			cut = append(cut, n)
		}
	}
	waitFor(t, 10*time.Second, func() error {
		for _, m := range leader.Members() {
			if m.ID != leader.id && m.Gossip != "dead" {
				return fmt.Errorf("member %s is %s in gossip", m.ID, m.Gossip)
			}
		}
		return nil
	})
	// Well past DeadNodeTimeout, with a reconciliation every 200ms.
	time.Sleep(3 * time.Second)
	conf := tc.waitVoters(3, 0)
	if tc.leader() != leader {
		t.Fatal("leadership moved")
	}
	for _, n := range cut {
		if s, in := findServer(conf, n.id); !in || s.Suffrage != raft.Voter {
			t.Fatalf("voter %s was removed: %v", n.id, conf.Servers)
		}
		if _, err := leader.FSM().Node(n.id); err != nil {
			t.Fatalf("voter %s was deregistered: %v", n.id, err)
		}
	}
	// The cluster still commits and replicates to both.
	ctx := ctxTimeout(t, 10*time.Second)
	if err := cut[0].PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	if d, err := cut[1].ResolveTag(ctx, "acme/app", "v1"); err != nil || d != digest.FromString("m1") {
		t.Fatalf("ResolveTag = %s, %v", d, err)
	}
}

// TestClusterStaleReads: a follower with StaleReads answers from its own
// FSM, making no read index round trip, and sees a write once it has been
// replicated, even after it is cut off from the rest; a node without it
// makes a round trip per read.
func TestClusterStaleReads(t *testing.T) {
	tc := startClusterWith(t, 3, clusterOpts{deadNodeTimeout: time.Hour}, func(i int, cfg *Config) {
		cfg.StaleReads = i < 2
	})
	leader := tc.leader()
	var stale *Node
	for _, n := range tc.nodes[:2] {
		if n != leader {
			stale = n
			break
		}
	}
	strict := tc.nodes[2]
	ctx := ctxTimeout(t, 30*time.Second)
	if err := leader.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	before := stale.reads.rounds.Load()
	waitFor(t, 5*time.Second, func() error {
		d, err := stale.ResolveTag(ctx, "acme/app", "v1")
		if err != nil || d != digest.FromString("m1") {
			return fmt.Errorf("stale follower: ResolveTag = %s, %v", d, err)
		}
		return nil
	})
	for range 20 {
		if _, err := stale.ResolveTag(ctx, "acme/app", "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if got := stale.reads.rounds.Load() - before; got != 0 {
		t.Fatalf("stale follower made %d read index round trips", got)
	}
	// The contrast: a node without StaleReads asks the leader (itself,
	// if it leads) for every read.
	before = strict.reads.rounds.Load()
	for range 3 {
		if _, err := strict.ResolveTag(ctx, "acme/app", "v1"); err != nil {
			t.Fatal(err)
		}
	}
	if got := strict.reads.rounds.Load() - before; got != 3 {
		t.Fatalf("linearizable node made %d read index round trips for 3 sequential reads", got)
	}
	// Cut off from every peer, the stale follower still answers.
	for _, n := range tc.nodes {
		if n != stale {
			shutdown(t, n)
		}
	}
	if d, err := stale.ResolveTag(ctx, "acme/app", "v1"); err != nil || d != digest.FromString("m1") {
		t.Fatalf("cut-off stale follower: ResolveTag = %s, %v", d, err)
	}
	if got := stale.reads.rounds.Load(); got != 0 {
		t.Fatalf("stale follower made %d read index round trips in all", got)
	}
}

// TestLoneNodeLeave: Leave on a node alone in its configuration shuts it
// down at once, releases its ports, and it restarts from its data
// directory with its data. With and without gossip.
func TestLoneNodeLeave(t *testing.T) {
	for _, withGossip := range []bool{false, true} {
		t.Run(fmt.Sprint("gossip=", withGossip), func(t *testing.T) {
			cfg := testConfig(t.TempDir())
			if withGossip {
				cfg.GossipListen = freePort(t)
				cfg.ClusterKey = mustKey(t)
			}
			n := openNode(t, cfg)
			if (n.gossip != nil) != withGossip {
				t.Fatalf("gossip running: %v", n.gossip != nil)
			}
			ctx := ctxTimeout(t, 20*time.Second)
			if err := n.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
				t.Fatal(err)
			}
			id, addr := n.id, n.ClusterAddress()
			start := time.Now()
			if err := n.Leave(ctx); err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("Leave took %s", took)
			}
			if !n.closed.Load() {
				t.Fatal("node not shut down")
			}
			if _, err := n.ResolveTag(ctx, "acme/app", "v1"); !errors.Is(err, ErrNoQuorum) {
				t.Fatalf("read after Leave = %v", err)
			}
			// Same ports: Leave released them.
			cfg.ClusterListen = addr
			n = openNode(t, cfg)
			if n.id != id {
				t.Fatalf("restarted as %s, was %s", n.id, id)
			}
			if d, err := n.ResolveTag(ctx, "acme/app", "v1"); err != nil || d != digest.FromString("m1") {
				t.Fatalf("after restart: ResolveTag = %s, %v", d, err)
			}
			conf, err := n.configuration()
			if err != nil || len(conf.Servers) != 1 || string(conf.Servers[0].ID) != id {
				t.Fatalf("configuration after restart %v, %v", conf.Servers, err)
			}
			if err := n.PutManifest(ctx, manifestOp("acme/app", "m2", "v2")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestClusterMembersView: Members() as a follower sees it (the leader's
// last contact, the local applied index) and the gossip state of a member
// that left gracefully versus one that crashed.
func TestClusterMembersView(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{deadNodeTimeout: time.Hour})
	tc.add()
	tc.add()
	tc.waitVoters(5, 0)
	ctx := ctxTimeout(t, 30*time.Second)
	leader := tc.leader()
	if err := leader.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	follower := tc.follower()
	if _, err := follower.ResolveTag(ctx, "acme/app", "v1"); err != nil {
		t.Fatal(err)
	}
	members := follower.Members()
	if len(members) != 5 {
		t.Fatalf("%d members: %+v", len(members), members)
	}
	for _, m := range members {
		switch m.ID {
		case leader.id:
			// Heartbeats come every HeartbeatTimeout/10 (30ms here).
			if !m.Leader || m.LastContact <= 0 || m.LastContact > follower.cfg.HeartbeatTimeout {
				t.Errorf("leader entry %+v: want Leader and 0 < LastContact <= %s", m, follower.cfg.HeartbeatTimeout)
			}
		default:
			if m.Leader || m.LastContact != 0 {
				t.Errorf("non-leader entry %+v", m)
			}
		}
		if m.ID == follower.id {
			if m.AppliedIndex == 0 || m.AppliedIndex != follower.fsm.AppliedIndex() {
				t.Errorf("local entry AppliedIndex %d, FSM %d", m.AppliedIndex, follower.fsm.AppliedIndex())
			}
		} else if m.AppliedIndex != 0 {
			t.Errorf("remote entry %s has AppliedIndex %d", m.ID, m.AppliedIndex)
		}
		if m.Gossip != "alive" || m.Suffrage != "voter" || !m.Registered || m.ClusterAddr == "" || m.Name == "" {
			t.Errorf("entry %+v", m)
		}
	}
	// The leader's own entry on the leader: no LastContact.
	for _, m := range leader.Members() {
		if m.ID == leader.id && (!m.Leader || m.LastContact != 0 || m.AppliedIndex == 0) {
			t.Errorf("leader's own entry %+v", m)
		}
	}

	// One follower leaves gracefully, another crashes.
	var others []*Node
	for _, n := range tc.nodes {
		if n != leader && n != follower {
			others = append(others, n)
		}
	}
	left, crashed := others[0], others[1]
	if err := left.Leave(ctxTimeout(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	shutdown(t, crashed)
	waitFor(t, 10*time.Second, func() error {
		for _, m := range follower.Members() {
			want := map[string]string{left.id: "left", crashed.id: "dead"}[m.ID]
			if want == "" {
				want = "alive"
			}
			if m.Gossip != want {
				return fmt.Errorf("member %s is %q in gossip, want %q", m.ID, m.Gossip, want)
			}
		}
		return nil
	})
	for _, m := range follower.Members() {
		switch m.ID {
		case left.id: // removed from Raft and deregistered
			if m.Suffrage != "none" {
				t.Errorf("left member %+v", m)
			}
		case crashed.id: // kept until DeadNodeTimeout (an hour)
			if m.Suffrage != "voter" || !m.Registered {
				t.Errorf("crashed member %+v", m)
			}
		}
	}
	waitFor(t, 10*time.Second, func() error {
		for _, m := range follower.Members() {
			if m.ID == left.id && m.Registered {
				return fmt.Errorf("left member still registered: %+v", m)
			}
		}
		return nil
	})
}
