package replication

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/blobstore/peer"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// sharedFSM stands in for Raft: one real FSM on Pebble that every test node
// applies its commands to, in order.
type sharedFSM struct {
	mu    sync.Mutex
	fsm   *fsm.FSM
	index uint64
}

func (s *sharedFSM) apply(cmd *fsmpb.Command) error {
	data, err := proto.Marshal(cmd)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index++
	res, _ := s.fsm.Apply(&raft.Log{Index: s.index, Type: raft.LogCommand, Data: data}).(*fsmpb.Result)
	return fsm.ResultError(res)
}

// testCluster is a set of nodes, each with its own blob store and peer
// server on real loopback HTTP, sharing one FSM.
type testCluster struct {
	t     *testing.T
	fsm   *sharedFSM
	mu    sync.Mutex
	nodes []Node
	local map[string]*blobstore.Store
	srvs  map[string]*httptest.Server
	peers map[string]*peer.Server
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	f, err := fsm.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	tc := &testCluster{t: t, fsm: &sharedFSM{fsm: f}, local: map[string]*blobstore.Store{}, srvs: map[string]*httptest.Server{}, peers: map[string]*peer.Server{}}
	for i := range n {
		id := fmt.Sprintf("node%d", i)
		store, err := blobstore.Open(blobstore.Config{Root: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		ps := peer.NewServer(store, nil)
		ps.Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		tc.local[id], tc.srvs[id], tc.peers[id] = store, srv, ps
		tc.nodes = append(tc.nodes, Node{ID: id, URL: srv.URL, Weight: 1, Alive: true})
	}
	return tc
}

// refuse makes node id's peer server answer 503 to every request, so that
// copies to it fail. Its listener stays open: a closed one's port can be
// taken at once by another test process of `go test ./...`, such as
// another package's peer server, which would store the copies (that made
// TestWaitDurableFailsClearlyWithoutEnoughNodes fail once).
func (tc *testCluster) refuse(id string) {
	tc.srvs[id].Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "out of service", http.StatusServiceUnavailable)
	})
}

// setAlive changes gossip's view of a node.
func (tc *testCluster) setAlive(id string, alive bool) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for i := range tc.nodes {
		if tc.nodes[i].ID == id {
			tc.nodes[i].Alive = alive
		}
	}
}

// view is one node's Cluster.
type view struct {
	tc *testCluster
	id string
}

func (v view) LocalID() string { return v.id }
func (v view) Nodes() ([]Node, error) {
	v.tc.mu.Lock()
	defer v.tc.mu.Unlock()
	return append([]Node(nil), v.tc.nodes...), nil
}
func (v view) BlobHolders(d digest.Digest) (*fsmpb.BlobHolders, error) {
	return v.tc.fsm.fsm.BlobHolders(d)
}

// Sync has nothing to do: every view shares one FSM, applied synchronously.
func (v view) Sync(context.Context) error      { return nil }
func (v view) Linearize(context.Context) error { return nil }
func (v view) ListBlobHolders(last string, n int) ([]*fsmpb.BlobHolders, error) {
	return v.tc.fsm.fsm.ListBlobHolders(last, n)
}
func (v view) AddBlobHolder(_ context.Context, d digest.Digest, size int64, node string) error {
	return v.tc.fsm.apply(fsm.NewCommand(&fsmpb.AddBlobHolder{
		Digest: d.String(), Size: size, NodeId: node}))
}
func (v view) LinkBlob(_ context.Context, repo string, d digest.Digest, size int64, holders ...string) error {
	return v.tc.fsm.apply(fsm.NewCommand(fsm.LinkBlobOp(repo, d, size, holders...)))
}
func (v view) RemoveBlobHolder(_ context.Context, d digest.Digest, node string) error {
	return v.tc.fsm.apply(fsm.NewCommand(&fsmpb.RemoveBlobHolder{
		Digest: d.String(), NodeId: node}))
}

// store returns node id's replication.Store with R replicas and W write
// quorum; the node's peer server relays upload sessions through it from
// now on, so call it before the uploads.
func (tc *testCluster) store(id string, r, w int) *Store {
	tc.t.Helper()
	s, err := New(Config{
		Local: tc.local[id], Cluster: view{tc, id}, Client: http.DefaultClient,
		Replicas: r, WriteQuorum: w, DurableTimeout: 2 * time.Second, FetchDir: tc.t.TempDir(),
	})
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { s.Close() })
	tc.peers[id].RelayTo(s)
	return s
}

func (tc *testCluster) holders(d digest.Digest) []string {
	rec, err := tc.fsm.fsm.BlobHolders(d)
	if errors.Is(err, fsm.ErrNotFound) {
		return nil
	}
	if err != nil {
		tc.t.Fatal(err)
	}
	return rec.GetNodeIds()
}

func randomBlob(t *testing.T, size int) ([]byte, digest.Digest) {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, digest.FromBytes(b)
}

// clientStores stores a blob on s as a client's monolithic upload does:
// stored, linked into a repository with this node as its holder, and
// copied to its owners.
func clientStores(t *testing.T, s *Store, content []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(content)
	if _, err := s.Put(context.Background(), "test/app", d, bytes.NewReader(content), int64(len(content))); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestStoredBlobsReachWriteQuorum(t *testing.T) {
	tc := newTestCluster(t, 3)
	s := tc.store("node0", 3, 2)
	content, _ := randomBlob(t, 256<<10)
	d := clientStores(t, s, content)
	if err := s.WaitDurable(context.Background(), []digest.Digest{d}); err != nil {
		t.Fatal(err)
	}
	if got := len(tc.holders(d)); got < 2 {
		t.Fatalf("WaitDurable returned with %d holders, want at least 2", got)
	}
	// The background copies go on to all R=3 owners.
	deadline := time.Now().Add(5 * time.Second)
	for len(tc.holders(d)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("holders %v, want all 3 nodes", tc.holders(d))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for id, store := range tc.local {
		if _, err := store.Stat(context.Background(), d); err != nil {
			t.Errorf("%s does not hold the blob: %v", id, err)
		}
	}
}

func TestReadsFetchFromHolders(t *testing.T) {
	tc := newTestCluster(t, 3)
	writer := tc.store("node0", 1, 1)
	content, _ := randomBlob(t, 1<<20)
	d := clientStores(t, writer, content)
	if err := writer.WaitDurable(context.Background(), []digest.Digest{d}); err != nil {
		t.Fatal(err)
	}
	var reader *Store
	for _, id := range []string{"node0", "node1", "node2"} {
		if _, err := tc.local[id].Stat(context.Background(), d); errors.Is(err, blobstore.ErrBlobUnknown) {
			reader = tc.store(id, 1, 1)
			break
		}
	}
	if reader == nil {
		t.Fatal("with R=1 some node should lack the blob")
	}
	size, err := reader.Stat(context.Background(), d)
	if err != nil || size != int64(len(content)) {
		t.Fatalf("Stat through a non-holder: %d, %v", size, err)
	}
	f, err := reader.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read %d bytes (%v), want the %d stored", len(got), err, len(content))
	}
	if _, err := reader.Open(context.Background(), digest.FromString("absent")); !errors.Is(err, blobstore.ErrBlobUnknown) {
		t.Errorf("Open of an absent blob: %v, want ErrBlobUnknown", err)
	}
}

func TestWaitDurableFailsClearlyWithoutEnoughNodes(t *testing.T) {
	tc := newTestCluster(t, 3)
	tc.refuse("node1")
	tc.refuse("node2")
	s := tc.store("node0", 3, 2)
	content, _ := randomBlob(t, 4096)
	d := clientStores(t, s, content)
	err := s.WaitDurable(context.Background(), []digest.Digest{d})
	if err == nil || !strings.Contains(err.Error(), "has 1 of the 2 durable copies") {
		t.Fatalf("got %v, want an error counting 1 of 2 copies; holders %v, copies ok %v failed %v",
			err, tc.holders(d), copiesOf(t, s, "ok"), copiesOf(t, s, "failed"))
	}
}

func TestRepairRestoresReplicasAfterANodeDies(t *testing.T) {
	tc := newTestCluster(t, 4)
	s := tc.store("node0", 2, 2)
	var ds []digest.Digest
	for range 20 {
		content, _ := randomBlob(t, 8192)
		ds = append(ds, clientStores(t, s, content))
	}
	if err := s.WaitDurable(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	s.wg.Wait() // let the background copies finish

	tc.setAlive("node3", false)
	tc.srvs["node3"].Close()
	leader := tc.store("node1", 2, 2)
	rep, err := leader.Repair(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scanned != 20 || rep.Lost != 0 {
		t.Errorf("report %+v: want 20 scanned, none lost", rep)
	}
	for _, d := range ds {
		live := 0
		for _, id := range tc.holders(d) {
			if id != "node3" {
				live++
			}
		}
		if live < 2 {
			t.Errorf("%s has %d live holders after repair, want 2 (holders %v)", d, live, tc.holders(d))
		}
	}
	again, err := leader.Repair(context.Background())
	if err != nil || again.UnderReplicated != 0 {
		t.Errorf("second round: %+v, %v; want nothing under-replicated", again, err)
	}
	if leader.UnderReplicated() != 0 {
		t.Errorf("UnderReplicated() = %d after repair", leader.UnderReplicated())
	}
}

func TestRepairForgetsUnregisteredHolders(t *testing.T) {
	tc := newTestCluster(t, 2)
	s := tc.store("node0", 2, 1)
	content, _ := randomBlob(t, 1024)
	d := clientStores(t, s, content)
	if err := (view{tc, "node0"}).AddBlobHolder(context.Background(), d, int64(len(content)), "gone-node"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Repair(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range tc.holders(d) {
		if id == "gone-node" {
			t.Fatalf("holder of an unregistered node kept: %v", tc.holders(d))
		}
	}
}

func TestRepairGivesFreshUploadsOneRound(t *testing.T) {
	tc := newTestCluster(t, 3)
	ctx := context.Background()
	content, d := randomBlob(t, 4096)
	// Stored on node0 and recorded, but its own copies not started: what
	// the leader sees while an uploader's copies are still running.
	if _, err := tc.local["node0"].Put(ctx, d, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if err := (view{tc, "node0"}).AddBlobHolder(ctx, d, int64(len(content)), "node0"); err != nil {
		t.Fatal(err)
	}
	leader := tc.store("node1", 3, 2)
	first, err := leader.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Deferred != 1 || first.Copied != 0 {
		t.Fatalf("first round %+v: want the fresh blob deferred, nothing copied", first)
	}
	second, err := leader.Repair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.Deferred != 0 || second.Copied != 2 {
		t.Fatalf("second round %+v: want 2 copies of the blob still short", second)
	}
	if got := len(tc.holders(d)); got != 3 {
		t.Errorf("holders %v after two rounds, want 3", tc.holders(d))
	}
}
