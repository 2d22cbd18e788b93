package gc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/blobstore/peer"
	"github.com/wharf-registry/wharf/cluster/replication"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const grace = time.Hour

// testCluster is a set of nodes, each with a real blob store, a peer server
// on loopback HTTP and a replication.Store, sharing one FSM that stands in for
// Raft. Commands are stamped with a fake cluster clock.
type testCluster struct {
	t     *testing.T
	mu    sync.Mutex // orders applies, like the Raft log
	fsm   *fsm.FSM
	index uint64
	clock atomic.Int64 // unix nanos
	ids   []string
	urls  map[string]string
	local map[string]*blobstore.Store
	roots map[string]string // each node's blob store root
	repl  map[string]*replication.Store
	r     int             // replicas
	dead  map[string]bool // gossip's view; guarded by mu
	// catchUpErr is what every view's CatchUp returns; guarded by mu.
	catchUpErr error
}

func newTestCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return newTestClusterR(t, n, n)
}

// newTestClusterR is newTestCluster with r replicas and write quorum r.
func newTestClusterR(t *testing.T, n, r int) *testCluster {
	t.Helper()
	f, err := fsm.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	tc := &testCluster{t: t, fsm: f, urls: map[string]string{}, local: map[string]*blobstore.Store{}, roots: map[string]string{},
		repl: map[string]*replication.Store{}, r: r, dead: map[string]bool{}}
	tc.clock.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	for i := range n {
		id := fmt.Sprintf("node%d", i)
		root := t.TempDir()
		store, err := blobstore.Open(blobstore.Config{Root: root})
		if err != nil {
			t.Fatal(err)
		}
		tc.roots[id] = root
		mux := http.NewServeMux()
		peer.NewServer(store, nil).Register(mux)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		tc.ids = append(tc.ids, id)
		tc.urls[id], tc.local[id] = srv.URL, store
	}
	for _, id := range tc.ids {
		s, err := replication.New(replication.Config{
			Local: tc.local[id], Cluster: view{tc, id}, Client: http.DefaultClient,
			Replicas: r, WriteQuorum: r, DurableTimeout: 5 * time.Second, FetchDir: t.TempDir(),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		tc.repl[id] = s
	}
	return tc
}

func (tc *testCluster) now() time.Time          { return time.Unix(0, tc.clock.Load()) }
func (tc *testCluster) advance(d time.Duration) { tc.clock.Add(int64(d)) }

// apply commits cmd, stamped with the cluster clock, and maps refusals to
// the errors cluster.Node.Apply returns.
func (tc *testCluster) apply(cmd *fsmpb.Command) error {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	cmd.UnixNanos = tc.clock.Load()
	data, err := proto.Marshal(cmd)
	if err != nil {
		return err
	}
	tc.index++
	res, _ := tc.fsm.Apply(&raft.Log{Index: tc.index, Type: raft.LogCommand, Data: data}).(*fsmpb.Result)
	return fsm.ResultError(res)
}

// view is one node's replication.Cluster and gc.Cluster.
type view struct {
	tc *testCluster
	id string
}

func (v view) LocalID() string { return v.id }
func (v view) NodeIDs() ([]string, error) {
	return slices.Clone(v.tc.ids), nil
}
func (v view) Nodes() ([]replication.Node, error) {
	v.tc.mu.Lock()
	defer v.tc.mu.Unlock()
	var out []replication.Node
	for _, id := range v.tc.ids {
		out = append(out, replication.Node{ID: id, URL: v.tc.urls[id], Weight: 1, Alive: !v.tc.dead[id]})
	}
	return out, nil
}
func (v view) LiveNodeIDs() ([]string, error) {
	v.tc.mu.Lock()
	defer v.tc.mu.Unlock()
	var out []string
	for _, id := range v.tc.ids {
		if !v.tc.dead[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// CatchUp has nothing to wait for (one FSM, always current); it fails with
// tc.catchUpErr, standing in for a node that cannot reach the leader.
func (v view) CatchUp(context.Context) error {
	v.tc.mu.Lock()
	defer v.tc.mu.Unlock()
	return v.tc.catchUpErr
}

// Sync has nothing to do: the views share one FSM, applied synchronously.
func (v view) Sync(context.Context) error      { return nil }
func (v view) Linearize(context.Context) error { return nil }
func (v view) BlobHolders(d digest.Digest) (*fsmpb.BlobHolders, error) {
	return v.tc.fsm.BlobHolders(d)
}
func (v view) CollectedBlob(d digest.Digest) (*fsmpb.CollectedBlob, error) {
	return v.tc.fsm.CollectedBlob(d)
}
func (v view) BlobReferences(d digest.Digest) (links, manifests int, err error) {
	return v.tc.fsm.BlobReferences(d)
}
func (v view) ListBlobHolders(last string, n int) ([]*fsmpb.BlobHolders, error) {
	return v.tc.fsm.ListBlobHolders(last, n)
}
func (v view) AddBlobHolder(_ context.Context, d digest.Digest, size int64, node string) error {
	return v.tc.apply(fsm.NewCommand(&fsmpb.AddBlobHolder{
		Digest: d.String(), Size: size, NodeId: node}))
}
func (v view) LinkBlob(_ context.Context, repo string, d digest.Digest, size int64, holders ...string) error {
	return v.tc.apply(fsm.NewCommand(fsm.LinkBlobOp(repo, d, size, holders...)))
}
func (v view) RemoveBlobHolder(_ context.Context, d digest.Digest, node string) error {
	return v.tc.apply(fsm.NewCommand(&fsmpb.RemoveBlobHolder{
		Digest: d.String(), NodeId: node}))
}
func (v view) ListUnreferencedBlobs(last string, n int) ([]fsm.UnreferencedBlob, error) {
	return v.tc.fsm.ListUnreferencedBlobs(last, n)
}
func (v view) ListCollectedBlobs(last string, n int) ([]*fsmpb.CollectedBlob, error) {
	return v.tc.fsm.ListCollectedBlobs(last, n)
}
func (v view) CollectBlob(_ context.Context, d digest.Digest, grace time.Duration) error {
	return v.tc.apply(fsm.NewCommand(&fsmpb.CollectBlob{
		Digest: d.String(), GraceNanos: int64(grace)}))
}
func (v view) ListEmptyRepositories(last string, n int) ([]fsm.EmptyRepository, error) {
	return v.tc.fsm.ListEmptyRepositories(last, n)
}
func (v view) RemoveEmptyRepository(_ context.Context, repo string, grace time.Duration) error {
	return v.tc.apply(fsm.NewCommand(&fsmpb.RemoveEmptyRepository{
		Repository: repo, GraceNanos: int64(grace)}))
}
func (v view) RecordGCRun(_ context.Context, run *fsmpb.GCRun) error {
	return v.tc.apply(fsm.NewCommand(&fsmpb.RecordGCRun{Run: run}))
}
func (v view) RecordSweep(_ context.Context, sweep *fsmpb.SweepSummary) error {
	return v.tc.apply(fsm.NewCommand(&fsmpb.RecordSweep{Sweep: sweep}))
}
func (v view) CollectedBlobDeleted(_ context.Context, d digest.Digest, node string) error {
	return v.tc.apply(fsm.NewCommand(&fsmpb.CollectedBlobDeleted{
		Digest: d.String(), NodeId: node}))
}

// collector returns node id's Collector; Settle is tiny so that copies made
// a moment ago may be deleted.
func (tc *testCluster) collector(id string, settle time.Duration) *Collector {
	tc.t.Helper()
	c, err := New(Config{Local: tc.local[id], Cluster: view{tc, id}, Grace: grace, Settle: settle, Now: tc.now, Replicas: tc.r})
	if err != nil {
		tc.t.Fatal(err)
	}
	return c
}

// stores commits content to node id's disk alone, as the commit of an
// upload does before its holder record is written.
func (tc *testCluster) stores(id string, content []byte) digest.Digest {
	tc.t.Helper()
	d := digest.FromBytes(content)
	if _, err := tc.local[id].Put(context.Background(), d, bytes.NewReader(content)); err != nil {
		tc.t.Fatal(err)
	}
	return d
}

// holds records node id as a holder of blob d, as the link after an upload
// does.
func (tc *testCluster) holds(id string, d digest.Digest, size int64) {
	tc.t.Helper()
	if err := (view{tc, id}).AddBlobHolder(context.Background(), d, size, id); err != nil {
		tc.t.Fatal(err)
	}
}

// push stores content through node id as a client upload would (stored,
// linked into repo with node id as its holder, copied to its owners) and
// waits for a copy on every node.
func (tc *testCluster) push(id, repo string, content []byte) digest.Digest {
	tc.t.Helper()
	ctx := context.Background()
	s := tc.repl[id]
	d := digest.FromBytes(content)
	if _, err := s.Put(ctx, repo, d, bytes.NewReader(content), int64(len(content))); err != nil {
		tc.t.Fatal(err)
	}
	if err := s.WaitDurable(ctx, []digest.Digest{d}); err != nil {
		tc.t.Fatal(err)
	}
	return d
}

func (tc *testCluster) link(repo string, d digest.Digest, size int64) error {
	return tc.apply(fsm.NewCommand(&fsmpb.LinkBlob{
		Repository: repo, Digest: d.String(), Size: size}))
}

func (tc *testCluster) unlink(repo string, d digest.Digest) {
	tc.t.Helper()
	if err := tc.apply(fsm.NewCommand(&fsmpb.UnlinkBlob{
		Repository: repo, Digest: d.String()})); err != nil {
		tc.t.Fatal(err)
	}
}

func (tc *testCluster) putManifest(repo, content string, blobs ...digest.Digest) error {
	op := &fsmpb.PutManifest{Repository: repo, Digest: digest.FromString(content).String(),
		Content: []byte(content), MediaType: "application/vnd.oci.image.manifest.v1+json"}
	for _, b := range blobs {
		op.Blobs = append(op.Blobs, b.String())
	}
	return tc.apply(fsm.NewCommand(op))
}

// onDisk returns the nodes whose local store has d.
func (tc *testCluster) onDisk(d digest.Digest) []string {
	var ids []string
	for _, id := range tc.ids {
		if _, err := tc.local[id].Stat(context.Background(), d); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// round runs a collection on the leader and a sweep on every node.
func (tc *testCluster) round(settle time.Duration) (CollectReport, SweepReport) {
	tc.t.Helper()
	ctx := context.Background()
	crep, err := tc.collector("node0", settle).Collect(ctx)
	if err != nil {
		tc.t.Fatal(err)
	}
	var srep SweepReport
	for _, id := range tc.ids {
		r, err := tc.collector(id, settle).Sweep(ctx)
		if err != nil {
			tc.t.Fatal(err)
		}
		srep.Deleted += r.Deleted
		srep.BytesFreed += r.BytesFreed
		srep.Settling += r.Settling
	}
	return crep, srep
}

func randomBlob(t *testing.T, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnlinkedBlobIsDeletedFromEveryHolderAfterGrace(t *testing.T) {
	tc := newTestCluster(t, 3)
	gone := tc.push("node1", "acme/app", randomBlob(t, 64<<10))
	kept := tc.push("node2", "acme/app", randomBlob(t, 4096))
	if got := tc.onDisk(gone); len(got) != 3 {
		t.Fatalf("blob on %v before GC, want all 3 nodes", got)
	}
	tc.unlink("acme/app", gone)

	tc.advance(grace - time.Minute)
	if crep, srep := tc.round(time.Nanosecond); crep.Collected != 0 || srep.Deleted != 0 {
		t.Fatalf("within the grace period: %+v %+v, want nothing collected", crep, srep)
	}
	tc.advance(2 * time.Minute)
	crep, srep := tc.round(time.Nanosecond)
	if crep.Collected != 1 || srep.Deleted != 3 || srep.BytesFreed != 3*64<<10 {
		t.Fatalf("after the grace period: %+v %+v, want 1 collected, 3 copies (3*64KiB) deleted", crep, srep)
	}
	if got := tc.onDisk(gone); len(got) != 0 {
		t.Fatalf("collected blob still on %v", got)
	}
	if _, err := tc.fsm.BlobHolders(gone); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("holders of a collected blob: %v", err)
	}
	if _, err := tc.fsm.CollectedBlob(gone); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("tombstone kept after every node deleted its copy: %v", err)
	}
	if got := tc.onDisk(kept); len(got) != 3 {
		t.Fatalf("linked blob on %v, want all 3 nodes", got)
	}
	// Nothing left to do.
	if crep, srep := tc.round(time.Nanosecond); crep.Collected != 0 || srep.Deleted != 0 {
		t.Fatalf("second round: %+v %+v", crep, srep)
	}
}

func TestBlobLinkedAgainBeforeGraceIsKept(t *testing.T) {
	tc := newTestCluster(t, 2)
	d := tc.push("node0", "acme/app", randomBlob(t, 4096))
	tc.unlink("acme/app", d)
	tc.advance(grace / 2)
	if err := tc.link("acme/other", d, 4096); err != nil { // a mount
		t.Fatal(err)
	}
	tc.advance(2 * grace)
	if crep, srep := tc.round(time.Nanosecond); crep.Collected != 0 || srep.Deleted != 0 {
		t.Fatalf("%+v %+v: want a re-linked blob kept", crep, srep)
	}
	if got := tc.onDisk(d); len(got) != 2 {
		t.Fatalf("blob on %v, want both nodes", got)
	}
}

func TestManifestKeepsBlobWhoseLinkWasDeleted(t *testing.T) {
	tc := newTestCluster(t, 2)
	d := tc.push("node1", "acme/app", randomBlob(t, 4096))
	if err := tc.putManifest("acme/app", "manifest", d); err != nil {
		t.Fatal(err)
	}
	tc.unlink("acme/app", d) // OCI DELETE of the blob; the manifest still lists it
	tc.advance(3 * grace)
	if crep, _ := tc.round(time.Nanosecond); crep.Collected != 0 {
		t.Fatalf("%+v: a blob a manifest references was collected", crep)
	}
	if got := tc.onDisk(d); len(got) != 2 {
		t.Fatalf("blob on %v, want both nodes", got)
	}
}

func TestCollectedBlobFailsALaterManifestPushUntilPushedAgain(t *testing.T) {
	tc := newTestCluster(t, 3)
	content := randomBlob(t, 4096)
	d := tc.push("node0", "acme/app", content)
	tc.unlink("acme/app", d)
	tc.advance(grace + time.Second)
	// Collect only: the nodes have not deleted their copies yet.
	if rep, err := tc.collector("node0", time.Nanosecond).Collect(context.Background()); err != nil || rep.Collected != 1 {
		t.Fatalf("collect: %+v, %v", rep, err)
	}
	// A manifest push validated before the collection commits after it.
	err := tc.putManifest("acme/app", "manifest", d)
	if !errors.Is(err, fsm.ErrBlobCollected) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("put manifest referencing a collected blob: %v, want ErrBlobCollected naming it", err)
	}
	// So does a mount.
	if err := tc.link("acme/other", d, 4096); !errors.Is(err, fsm.ErrBlobCollected) {
		t.Fatalf("mount of a collected blob: %v, want ErrBlobCollected", err)
	}

	// The client pushes the blob again through node1 (whose old copy is still
	// there: the commit finds it and stores it again).
	tc.stores("node1", content)
	tc.holds("node1", d, int64(len(content)))
	if err := tc.putManifest("acme/app", "manifest", d); err != nil {
		t.Fatalf("put manifest after pushing the blob again: %v", err)
	}
	_, srep := tc.round(time.Nanosecond)
	if got := tc.onDisk(d); !slices.Contains(got, "node1") {
		t.Fatalf("the new copy on node1 was deleted (blob on %v, sweep %+v)", got, srep)
	}
	if rec, err := tc.fsm.BlobHolders(d); err != nil || !slices.Contains(rec.GetNodeIds(), "node1") {
		t.Fatalf("holders after pushing again: %v, %v", rec, err)
	}
}

func TestSweepKeepsACopyStoredWithinSettle(t *testing.T) {
	tc := newTestCluster(t, 1)
	content := randomBlob(t, 4096)
	d := tc.push("node0", "acme/app", content)
	tc.unlink("acme/app", d)
	tc.advance(grace + time.Second)
	// A commit that found the blob present has stored it again just now;
	// its AddBlobHolder has not been applied yet.
	if _, err := tc.local["node0"].Put(context.Background(), d, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	crep, srep := tc.round(time.Hour)
	if crep.Collected != 1 || srep.Deleted != 0 || srep.Settling != 1 {
		t.Fatalf("%+v %+v: want the blob collected but its fresh copy kept", crep, srep)
	}
	if got := tc.onDisk(d); len(got) != 1 {
		t.Fatal("fresh copy deleted")
	}
	// The commit's AddBlobHolder lands: node0 holds a copy again and has
	// nothing left to delete.
	if err := (view{tc, "node0"}).AddBlobHolder(context.Background(), d, int64(len(content)), "node0"); err != nil {
		t.Fatal(err)
	}
	if _, err := tc.fsm.CollectedBlob(d); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("tombstone after the node stored the blob again: %v", err)
	}
	if err := tc.link("acme/app", d, int64(len(content))); err != nil {
		t.Fatalf("link after storing again: %v", err)
	}
}

func TestCollectForgetsUnregisteredNodesOnTombstones(t *testing.T) {
	tc := newTestCluster(t, 2)
	d := tc.push("node0", "acme/app", randomBlob(t, 1024))
	if err := (view{tc, "node0"}).AddBlobHolder(context.Background(), d, 1024, "gone-node"); err != nil {
		t.Fatal(err)
	}
	tc.unlink("acme/app", d)
	tc.advance(grace + time.Second)
	tc.round(time.Nanosecond)
	if _, err := tc.fsm.CollectedBlob(d); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("tombstone waits for an unregistered node: %v", err)
	}
}
