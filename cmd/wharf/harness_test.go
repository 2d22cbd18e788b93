package main

// An in-process cluster harness: N complete wharf nodes (the same
// startRegistryNode that 'wharf serve' runs), each with its own data dir
// and real loopback listeners, behind a round-robin load balancer.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/blobstore/placement"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/internal/clustertest"
	"github.com/wharf-registry/wharf/internal/testnet"
)

// harnessOpts configures startHarness. Zero values take the defaults noted.
type harnessOpts struct {
	nodes       int // default 3
	replicas    int // default 3
	writeQuorum int // default 2
	// deadNodeTimeout is how long a crashed node stays registered; default
	// 5m, so that tests see a dead (not removed) member.
	deadNodeTimeout time.Duration
	repairInterval  time.Duration // default 200ms
	// lbPublicURL sets every node's --public-url to the balancer, so that
	// Location headers send clients back through it.
	lbPublicURL bool
	// tune, if set, adjusts each node's cluster config after the test
	// timings are applied.
	tune func(*cluster.Config)
	// logs, if set, receives every node's log at info level and above.
	logs           io.Writer
	gcInterval     time.Duration // default 1m
	gcGrace        time.Duration // default 1h
	emptyRepoGrace time.Duration // default 24h
}

// testNode is one node of the harness: its fixed addresses and data dir,
// and, while it runs, the registry node and its HTTP server.
type testNode struct {
	idx     int
	opts    serveOptions
	id      string // Raft node ID, known after the first start
	baseURL string // http://127.0.0.1:port of the public listener

	mu   sync.Mutex
	reg  *registryNode
	srv  *http.Server
	live bool
}

// harness is a running in-process cluster.
type harness struct {
	t     testing.TB
	key   string
	opts  harnessOpts
	nodes []*testNode
	lb    *httptest.Server
	next  atomic.Uint64
	// lbTransport forwards the balancer's requests to the nodes.
	lbTransport *http.Transport
}

// harnessAdminPassword is the password of every harness node's admin
// user; the tests act as admin.
const harnessAdminPassword = "harness-admin-password"

// asAdmin makes a go-containerregistry call log in as admin.
func asAdmin() remote.Option {
	return remote.WithAuth(&authn.Basic{Username: adminUser, Password: harnessAdminPassword})
}

// harnessPort returns a loopback address for a node to listen on, for
// good: nodes restart on their addresses.
func harnessPort(t testing.TB) string { return testnet.FreeAddr(t) }

func harnessLogger(t testing.TB, idx int, logs io.Writer) *slog.Logger {
	if logs != nil {
		return slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", idx)
	}
	if os.Getenv("WHARF_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).
		With("node", idx)
}

// startHarness starts opts.nodes nodes at once, each joining every other's
// gossip address with --bootstrap-expect N, plus the load balancer, and
// waits until the cluster is whole (see waitHealthy).
func startHarness(t testing.TB, opts harnessOpts) *harness {
	t.Helper()
	opts.nodes = cmpOr(opts.nodes, 3)
	opts.replicas = cmpOr(opts.replicas, 3)
	opts.writeQuorum = cmpOr(opts.writeQuorum, 2)
	opts.deadNodeTimeout = cmpOr(opts.deadNodeTimeout, 5*time.Minute)
	opts.repairInterval = cmpOr(opts.repairInterval, 200*time.Millisecond)
	opts.gcInterval = cmpOr(opts.gcInterval, time.Minute)
	opts.gcGrace = cmpOr(opts.gcGrace, time.Hour)
	opts.emptyRepoGrace = cmpOr(opts.emptyRepoGrace, 24*time.Hour)
	key, err := cluster.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, key: key, opts: opts}
	h.lbTransport = &http.Transport{MaxIdleConnsPerHost: 32, DisableCompression: true}
	h.lb = httptest.NewServer(http.HandlerFunc(h.balance))
	t.Cleanup(h.shutdown)
	gossips := make([]string, opts.nodes)
	for i := range gossips {
		gossips[i] = harnessPort(t)
	}
	for i := range opts.nodes {
		listen := harnessPort(t)
		o := serveOptions{
			dataDir:          t.TempDir(),
			listen:           listen,
			clusterListen:    harnessPort(t),
			nodeName:         fmt.Sprintf("n%d", i),
			bootstrapExpect:  opts.nodes,
			advertise:        "127.0.0.1",
			gossipListen:     gossips[i],
			join:             slices.Delete(slices.Clone(gossips), i, i+1),
			clusterKey:       key,
			replicas:         opts.replicas,
			writeQuorum:      opts.writeQuorum,
			deadNodeTimeout:  opts.deadNodeTimeout,
			repairInterval:   opts.repairInterval,
			maxManifestBytes: 4 << 20,
			uploadMaxAge:     time.Hour,
			gcGrace:          opts.gcGrace,
			gcInterval:       opts.gcInterval,
			emptyRepoGrace:   opts.emptyRepoGrace,
			shutdownTimeout:  5 * time.Second,
			adminPassword:    harnessAdminPassword,
			// Tests name other client addresses with X-Forwarded-For.
			trustedProxies: []string{"127.0.0.1"},
			tuneCluster: func(c *cluster.Config) {
				clustertest.FastTimings(c)
				if opts.tune != nil {
					opts.tune(c)
				}
			},
		}
		if opts.nodes == 1 {
			// A lone node: no key, no gossip, bootstraps itself.
			o.join, o.clusterKey = nil, ""
		}
		if opts.lbPublicURL {
			// By name: clients refuse a token realm on a loopback or
			// private IP literal other than the registry's own host,
			// and nodes are also reached directly.
			o.publicURL = strings.Replace(h.lb.URL, "127.0.0.1", "localhost", 1)
		}
		if err := o.validate(); err != nil {
			t.Fatalf("node %d options: %v", i, err)
		}
		h.nodes = append(h.nodes, &testNode{idx: i, opts: o, baseURL: "http://" + listen})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(h.nodes))
	for i, n := range h.nodes {
		wg.Go(func() { errs[i] = h.startNode(n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	h.waitHealthy(20 * time.Second)
	return h
}

// shutdown crashes every node and closes the balancer (also done at
// cleanup).
func (h *harness) shutdown() {
	h.lb.Close()
	for _, n := range h.nodes {
		h.stopNode(n, false)
	}
	h.lbTransport.CloseIdleConnections()
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// startNode starts (or restarts, from the same data dir and on the same
// ports) one node and serves its handler on its public address.
func (h *harness) startNode(n *testNode) error {
	reg, err := startRegistryNode(context.Background(), n.opts, harnessLogger(h.t, n.idx, h.opts.logs), nil)
	if err != nil {
		return fmt.Errorf("node %d: %w", n.idx, err)
	}
	var ln net.Listener
	// The port was ours a moment ago; retry briefly in case a closing
	// listener still holds it.
	for range 50 {
		if ln, err = net.Listen("tcp", n.opts.listen); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		reg.crash()
		return fmt.Errorf("node %d: listen: %w", n.idx, err)
	}
	srv := &http.Server{Handler: reg.handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	n.mu.Lock()
	n.reg, n.srv, n.live, n.id = reg, srv, true, reg.node.ID()
	n.mu.Unlock()
	return nil
}

// stopNode closes a running node's public server (dropping connections)
// and then crashes the node or makes it leave gracefully.
func (h *harness) stopNode(n *testNode, graceful bool) {
	n.mu.Lock()
	reg, srv, live := n.reg, n.srv, n.live
	n.live = false
	n.mu.Unlock()
	if !live {
		return
	}
	_ = srv.Close()
	if graceful {
		reg.close(5 * time.Second)
	} else {
		reg.crash()
	}
}

// crash stops node i the way a killed process stops: no leave, no
// handover; its listener is closed.
func (h *harness) crash(i int) { h.stopNode(h.nodes[i], false) }

// restart starts a crashed node again with the same data dir and ports.
func (h *harness) restart(i int) {
	h.t.Helper()
	if err := h.startNode(h.nodes[i]); err != nil {
		h.t.Fatal(err)
	}
}

func (n *testNode) isLive() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.live
}

func (n *testNode) registry() *registryNode {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reg
}

// live returns the running nodes.
func (h *harness) live() []*testNode {
	var out []*testNode
	for _, n := range h.nodes {
		if n.isLive() {
			out = append(out, n)
		}
	}
	return out
}

// balance is the round-robin load balancer: every request goes to the next
// live node, with no stickiness.
func (h *harness) balance(w http.ResponseWriter, r *http.Request) {
	live := h.live()
	if len(live) == 0 {
		http.Error(w, "no live backend", http.StatusBadGateway)
		return
	}
	n := live[int(h.next.Add(1)-1)%len(live)]
	target, _ := url.Parse(n.baseURL)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
		},
		Transport:     h.lbTransport,
		FlushInterval: -1,
		ErrorLog:      nil,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "backend: "+err.Error(), http.StatusBadGateway)
		},
	}
	proxy.ServeHTTP(w, r)
}

// lbURL is the load balancer's base URL.
func (h *harness) lbURL() string { return h.lb.URL }

// lbHost is the load balancer's host:port, for image references.
// It names the host "localhost", as --public-url does with lbPublicURL, so
// that clients send their token to the Location URLs the nodes return.
func (h *harness) lbHost() string {
	return strings.Replace(h.lb.Listener.Addr().String(), "127.0.0.1", "localhost", 1)
}

// host returns node i's public host:port.
func (h *harness) host(i int) string { return h.nodes[i].opts.listen }

// waitHealthy waits until every live node is ready (a leader, log applied),
// sees every live node alive through gossip, and the FSM registers every
// node of the harness.
func (h *harness) waitHealthy(timeout time.Duration) {
	h.t.Helper()
	waitUntil(h.t, timeout, func() error {
		live := h.live()
		for _, n := range live {
			reg := n.registry()
			if !reg.node.Status().Ready() {
				return fmt.Errorf("node %d not ready: %+v", n.idx, reg.node.Status())
			}
			nodes, err := reg.node.FSM().Nodes()
			if err != nil {
				return err
			}
			if len(nodes) != len(h.nodes) {
				return fmt.Errorf("node %d registers %d nodes, want %d", n.idx, len(nodes), len(h.nodes))
			}
			alive := map[string]bool{}
			for _, m := range reg.node.Members() {
				if m.Alive() {
					alive[m.ID] = true
				}
			}
			for _, o := range live {
				if len(live) > 1 && !alive[o.id] {
					return fmt.Errorf("node %d does not see node %d alive", n.idx, o.idx)
				}
			}
			resp, err := http.Get(n.baseURL + "/readyz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("node %d /readyz: %s", n.idx, resp.Status)
			}
		}
		return nil
	})
}

// leader returns the index of the live node every live node agrees leads.
func (h *harness) leader() int {
	h.t.Helper()
	var leader int
	waitUntil(h.t, 10*time.Second, func() error {
		leader = -1
		var leaderID string
		for _, n := range h.live() {
			if n.registry().node.IsLeader() {
				if leader >= 0 {
					return errors.New("two leaders")
				}
				leader, leaderID = n.idx, n.id
			}
		}
		if leader < 0 {
			return errors.New("no leader")
		}
		for _, n := range h.live() {
			if id := n.registry().node.Status().LeaderID; id != leaderID {
				return fmt.Errorf("node %d sees leader %q, want %q", n.idx, id, leaderID)
			}
		}
		return nil
	})
	return leader
}

// follower returns the index of a live node that is not the leader.
func (h *harness) follower() int {
	h.t.Helper()
	l := h.leader()
	for _, n := range h.live() {
		if n.idx != l {
			return n.idx
		}
	}
	h.t.Fatal("no follower")
	return -1
}

// onDisk returns the indexes of the live nodes whose local store holds d
// (the local blobstore, not the replica view that also finds peers' blobs).
func (h *harness) onDisk(d digest.Digest) []int {
	h.t.Helper()
	var out []int
	for _, n := range h.live() {
		_, err := n.registry().blobs.Stat(context.Background(), d)
		switch {
		case err == nil:
			out = append(out, n.idx)
		case !errors.Is(err, blobstore.ErrBlobUnknown):
			h.t.Fatalf("node %d: stat %s: %v", n.idx, d, err)
		}
	}
	return out
}

// holders returns the indexes of the nodes the FSM (as node `via` sees it)
// records as holders of d, live or not.
func (h *harness) holders(via int, d digest.Digest) []int {
	h.t.Helper()
	rec, err := h.nodes[via].registry().node.FSM().BlobHolders(d)
	if errors.Is(err, fsm.ErrNotFound) {
		return nil
	}
	if err != nil {
		h.t.Fatalf("holders of %s: %v", d, err)
	}
	var out []int
	for _, id := range rec.GetNodeIds() {
		out = append(out, h.indexOf(id))
	}
	slices.Sort(out)
	return out
}

func (h *harness) indexOf(id string) int {
	for _, n := range h.nodes {
		if n.id == id {
			return n.idx
		}
	}
	h.t.Fatalf("unknown node ID %q", id)
	return -1
}

// owners returns the indexes of the R nodes rendezvous hashing places d
// on, among the given nodes.
func (h *harness) owners(d digest.Digest, among []*testNode, r int) []int {
	h.t.Helper()
	var out []int
	for _, o := range placement.Owners(d, h.placementNodes(among), r) {
		out = append(out, h.indexOf(o.ID))
	}
	slices.Sort(out)
	return out
}

// placementNodes returns among as placement sees them, with the weights
// the cluster registered.
func (h *harness) placementNodes(among []*testNode) []placement.Node {
	h.t.Helper()
	registered, err := h.live()[0].registry().node.FSM().Nodes()
	if err != nil {
		h.t.Fatal(err)
	}
	weight := map[string]float64{}
	for _, n := range registered {
		weight[n.GetId()] = n.GetWeight()
	}
	var pn []placement.Node
	for _, n := range among {
		pn = append(pn, placement.Node{ID: n.id, Weight: weight[n.id]})
	}
	return pn
}

// rank returns the indexes of the live nodes in the weighted rendezvous
// order of d, best first: for a session ID's digest, the order of its
// mirror chain.
func (h *harness) rank(d digest.Digest) []int {
	h.t.Helper()
	var out []int
	for _, n := range placement.Rank(d, h.placementNodes(h.live())) {
		out = append(out, h.indexOf(n.ID))
	}
	return out
}

// waitUntil polls cond every 20ms until it returns nil, failing the test
// with cond's last error after timeout.
func waitUntil(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// --- raw OCI requests, for the cases a client library hides ---

// doRequest sends one request and returns status, headers and body.
func doRequest(t testing.TB, method, url string, hdr http.Header, body io.Reader) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if req.Header.Get("Authorization") == "" {
		req.SetBasicAuth(adminUser, harnessAdminPassword)
	}
	if b, ok := body.(*bytes.Reader); ok {
		req.ContentLength = int64(b.Len())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, data
}

// resolve turns a Location header into an absolute URL on base.
func resolve(t testing.TB, base, loc string) string {
	t.Helper()
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	l, err := b.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return l.String()
}

// onNode rewrites an absolute URL to point at another node's base URL,
// keeping path and query.
func onNode(t testing.TB, abs, base string) string {
	t.Helper()
	u, err := url.Parse(abs)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := url.Parse(base)
	u.Scheme, u.Host = b.Scheme, b.Host
	return u.String()
}

// pushBlobMonolithic stores blob b in repo on the node at base with one
// POST ?digest=.
func pushBlobMonolithic(t testing.TB, base, repo string, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	code, _, body := doRequest(t, http.MethodPost, base+"/v2/"+repo+"/blobs/uploads/?digest="+d.String(),
		http.Header{"Content-Type": {"application/octet-stream"}}, bytes.NewReader(b))
	if code != http.StatusCreated {
		t.Fatalf("push blob %s to %s: %d %s", d, base, code, body)
	}
	return d
}
