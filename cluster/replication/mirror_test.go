package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	dto "github.com/prometheus/client_model/go"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/blobstore/peer"
)

// clientUploads uploads content to s through an upload session in two
// appends, as the OCI handler does, and commits it into test/app.
func clientUploads(t *testing.T, s *Store, content []byte) (digest.Digest, string) {
	t.Helper()
	ctx := context.Background()
	d := digest.FromBytes(content)
	w, err := s.NewUpload(ctx, "test/app")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	half := len(content) / 2
	for _, part := range [][]byte{content[:half], content[half:]} {
		if _, err := w.Append(ctx, bytes.NewReader(part)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // let the mirrors follow
	}
	if _, err := w.Commit(ctx, d); err != nil {
		t.Fatal(err)
	}
	return d, w.ID()
}

// The upload's copies form one chain: node0 sends the bytes to one node,
// which passes them on to the next while they arrive and records that copy
// itself, and so on down the chain.
func TestMirroredUploadIsDurableWithoutCopies(t *testing.T) {
	for _, n := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			tc := newTestCluster(t, n)
			s := tc.store("node0", n, 2)
			var relays []*Store
			for i := 1; i < n; i++ {
				relays = append(relays, tc.store(fmt.Sprintf("node%d", i), n, 2))
			}
			relayed := func() float64 {
				var sum float64
				for _, r := range relays {
					sum += copiesOf(t, r, "relayed")
				}
				return sum
			}
			content, _ := randomBlob(t, 3<<20)
			d, _ := clientUploads(t, s, content)
			// The link took the first copy: W=2 at once.
			if got := tc.holders(d); len(got) < 2 {
				t.Errorf("right after the link, holders %v: want node0 and the first copy", got)
			}
			if err := s.WaitDurable(context.Background(), []digest.Digest{d}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(tc.holders(d)) < n || copiesOf(t, s, "mirrored") < 1 || relayed() < float64(n-2) {
				if time.Now().After(deadline) {
					t.Fatalf("holders %v, want all %d nodes", tc.holders(d), n)
				}
				time.Sleep(10 * time.Millisecond)
			}
			for id, store := range tc.local {
				if _, err := store.Stat(context.Background(), d); err != nil {
					t.Errorf("%s does not hold the blob: %v", id, err)
				}
				if open := store.OpenUploads(); open != 0 {
					t.Errorf("%s has %d upload sessions open", id, open)
				}
			}
			if got := copiesOf(t, s, "mirrored"); got != 1 {
				t.Errorf("%v copies mirrored by node0, want 1", got)
			}
			// Each node after the first passes the bytes on once, but the last.
			for i, r := range relays {
				if got := copiesOf(t, r, "relayed"); got > 1 {
					t.Errorf("node%d relayed %v copies, want at most 1", i+1, got)
				}
			}
			if got := relayed(); got != float64(n-2) {
				t.Errorf("%v copies relayed, want %d", got, n-2)
			}
			for _, store := range append(relays, s) {
				if got := copiesOf(t, store, "ok"); got != 0 {
					t.Errorf("%v copies after the commit, want 0: the mirrors did them", got)
				}
			}
		})
	}
}

// In a cluster of more than R nodes an upload is mirrored to W-1
// provisional targets, so the blob has W copies as the upload commits; it
// then reaches all of its owners (repair on the leader trims extras).
func TestLargerClusterMirrorsToWMinusOneTargets(t *testing.T) {
	tc := newTestCluster(t, 5)
	s := tc.store("node0", 3, 2)
	content, _ := randomBlob(t, 3<<20)
	d, _ := clientUploads(t, s, content)
	if err := s.WaitDurable(context.Background(), []digest.Digest{d}); err != nil {
		t.Fatal(err)
	}
	owners := tc.ownersOf(d, 3)
	deadline := time.Now().Add(5 * time.Second)
	for copiesOf(t, s, "mirrored") < 1 || !containsAll(tc.holders(d), owners) {
		if time.Now().After(deadline) {
			t.Fatalf("holders %v, mirrored copies %v; want the owners %v among the holders and 1 mirrored copy",
				tc.holders(d), copiesOf(t, s, "mirrored"), owners)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := copiesOf(t, s, "mirrored"); got != 1 {
		t.Errorf("%v mirrored copies, want W-1 = 1", got)
	}
}

func containsAll(set, want []string) bool {
	for _, w := range want {
		if !slices.Contains(set, w) {
			return false
		}
	}
	return true
}

// A peer that fails, or takes the session and then never reads, neither
// fails the client's upload nor slows it by more than the link's bounded
// wait for the mirrored copies; the blob still reaches W (and R) copies,
// the stuck peer's through the copy after commit.
func TestMirrorToFailingOrStuckPeer(t *testing.T) {
	for _, mode := range []string{"failing", "stuck"} {
		t.Run(mode, func(t *testing.T) {
			tc := newTestCluster(t, 3)
			release := make(chan struct{})
			// Which node gets which role depends on the session ID; make
			// both other nodes bad at mirrors, good at whole-blob copies.
			for _, id := range []string{"node1", "node2"} {
				good := tc.srvs[id].Config.Handler
				bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != peer.MirrorPath {
						good.ServeHTTP(w, r)
						return
					}
					if mode == "failing" {
						http.Error(w, "broken", http.StatusInternalServerError)
						return
					}
					select { // never reads the body
					case <-release:
					case <-r.Context().Done():
					}
					http.Error(w, "gave up", http.StatusServiceUnavailable)
				}))
				t.Cleanup(bad.Close)
				t.Cleanup(func() { // before bad.Close, which waits for the handlers
					select {
					case <-release:
					default:
						close(release)
					}
				})
				tc.mu.Lock()
				for i := range tc.nodes {
					if tc.nodes[i].ID == id {
						tc.nodes[i].URL = bad.URL
					}
				}
				tc.mu.Unlock()
			}
			s := tc.store("node0", 3, 2)
			content, _ := randomBlob(t, 4<<20)
			start := time.Now()
			d, _ := clientUploads(t, s, content)
			if took, limit := time.Since(start), linkCopiesWait+time.Second; took > limit {
				t.Fatalf("the upload took %v, more than %v", took, limit)
			}
			if mode == "stuck" {
				// Stuck mirrors hold the copy back until they end; a
				// stuck peer's own timeouts end them in production.
				close(release)
			}
			if err := s.WaitDurable(context.Background(), []digest.Digest{d}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for len(tc.holders(d)) < 3 {
				if time.Now().After(deadline) {
					t.Fatalf("holders %v, want all 3 nodes", tc.holders(d))
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got := copiesOf(t, s, "mirrored"); got != 0 {
				t.Errorf("%v mirrored copies, want 0", got)
			}
		})
	}
}

// A cancelled upload cancels the peers' sessions.
func TestCancelledUploadCancelsMirrors(t *testing.T) {
	tc, s := threeNodes(t)
	ctx := context.Background()
	u, err := s.cfg.Local.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	progress := s.appending(ctx, u)
	if _, err := u.Append(ctx, bytes.NewReader(make([]byte, 1<<20))); err != nil {
		t.Fatal(err)
	}
	progress()
	open := func() []string {
		var ids []string
		for _, id := range []string{"node1", "node2"} {
			if tc.local[id].OpenUploads() > 0 {
				ids = append(ids, id)
			}
		}
		return ids
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(open()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("mirror sessions on %v, want node1 and node2", open())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := u.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	s.cancelled(u.ID())
	deadline = time.Now().Add(10 * time.Second)
	for len(open()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("mirror sessions still open on %v", open())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if slices.Contains(tc.holders(digest.FromBytes(make([]byte, 1<<20))), "node1") {
		t.Fatal("a cancelled upload was recorded")
	}
}

// threeNodes returns a cluster of 3 nodes, all with R=3 W=2 stores
// (node0's returned), the others' peer servers relaying through theirs.
func threeNodes(t *testing.T) (*testCluster, *Store) {
	t.Helper()
	tc := newTestCluster(t, 3)
	s := tc.store("node0", 3, 2)
	tc.store("node1", 3, 2)
	tc.store("node2", 3, 2)
	return tc, s
}

// mirroredSession starts an upload on s and appends content to it through
// the mirror, as the OCI handler does, and waits until node ids have a
// mirror session open for it.
func mirroredSession(t *testing.T, tc *testCluster, s *Store, content []byte, ids ...string) *blobstore.Upload {
	t.Helper()
	ctx := context.Background()
	u, err := s.cfg.Local.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	progress := s.appending(ctx, u)
	if _, err := u.Append(ctx, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	progress()
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for tc.local[id].OpenUploads() == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no mirror session on %s", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return u
}

// waitStored waits until node id stores blob d, or fails after 5s.
func waitStored(t *testing.T, tc *testCluster, id string, d digest.Digest) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := tc.local[id].Stat(context.Background(), d); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not store %s", id, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// commitLocally commits u as blob d on s, as the OCI handler does after
// Committing, and returns the mirrored copies handed to the link, which
// then leaves them to the store to record.
func commitLocally(t *testing.T, s *Store, u *blobstore.Upload, d digest.Digest) []string {
	t.Helper()
	ctx := context.Background()
	size, err := u.Commit(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	copies := s.committed(ctx, u.ID(), d, size)
	if copies == nil {
		t.Fatal("no mirrored copies to hand to the link")
	}
	nodes, settle := copies(ctx)
	settle(false) // the store records them itself
	return nodes
}

// committing lets the whole chain commit its copies before this node
// commits its own, so that their fsyncs overlap; the copies are then
// handed to the link as usual.
func TestCommittingStartsTheMirrorsCommitFirst(t *testing.T) {
	tc, s := threeNodes(t)
	ctx := context.Background()
	content, d := randomBlob(t, 1<<20)
	u := mirroredSession(t, tc, s, content, "node1", "node2")

	s.committing(u.ID(), d, int64(len(content)))
	// Both copies of the chain are stored before node0 commits.
	for _, id := range []string{"node1", "node2"} {
		waitStored(t, tc, id, d)
	}
	if _, err := tc.local["node0"].Stat(ctx, d); err == nil {
		t.Fatal("node0 stores the blob before its own commit")
	}
	nodes := commitLocally(t, s, u, d)
	// The link gets the chain's first copy; the relay records the second.
	if len(nodes) != 1 || (nodes[0] != "node1" && nodes[0] != "node2") {
		t.Errorf("copies handed to the link %v, want the chain's first node", nodes)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !containsAll(tc.holders(d), []string{"node1", "node2"}) {
		if time.Now().After(deadline) {
			t.Fatalf("holders %v, want node1 and node2 recorded", tc.holders(d))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A commit that fails after Committing with a wrong digest stores nothing
// on the mirrors; Cancelled drops them, and the session's next bytes start
// a new mirror whose commit succeeds.
func TestCommittingAWrongDigestStoresNothing(t *testing.T) {
	tc, s := threeNodes(t)
	ctx := context.Background()
	content, d := randomBlob(t, 256<<10)
	u := mirroredSession(t, tc, s, content[:len(content)/2], "node1", "node2")

	wrong := digest.FromBytes(content[:len(content)/2-1])
	s.committing(u.ID(), wrong, int64(len(content)/2))
	if _, err := u.Commit(ctx, wrong); !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Fatalf("commit with a wrong digest: %v, want a mismatch", err)
	}
	s.cancelled(u.ID())
	for _, id := range []string{"node1", "node2"} {
		if _, err := tc.local[id].Stat(ctx, wrong); err == nil {
			t.Errorf("%s stores the blob of a wrong digest", id)
		}
	}

	progress := s.appending(ctx, u)
	if _, err := u.Append(ctx, bytes.NewReader(content[len(content)/2:])); err != nil {
		t.Fatal(err)
	}
	progress()
	s.committing(u.ID(), d, int64(len(content)))
	nodes := commitLocally(t, s, u, d)
	if len(nodes) != 1 {
		t.Errorf("copies handed to the link %v, want the chain's first node", nodes)
	}
	for _, id := range []string{"node1", "node2"} {
		waitStored(t, tc, id, d)
	}
}

func copiesOf(t *testing.T, s *Store, result string) float64 {
	t.Helper()
	var m dto.Metric
	if err := s.metrics.copies.WithLabelValues(result).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// A relay whose next node fails leaves that copy to repair: the uploading
// node does not copy the blob there itself (the relay had it), the write
// quorum is met all the same, and the leader's second repair round (the
// first spares fresh uploads) makes the missing copy.
func TestFailedRelayIsLeftToRepair(t *testing.T) {
	tc := newTestCluster(t, 3)
	for _, id := range []string{"node1", "node2"} {
		good := tc.srvs[id].Config.Handler
		// The last node of a chain gets a stream naming no relay: fail it.
		tc.srvs[id].Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == peer.MirrorPath && r.Header.Get(peer.RelayHeader) == "" {
				http.Error(w, "disk on fire", http.StatusInternalServerError)
				return
			}
			good.ServeHTTP(w, r)
		})
	}
	s := tc.store("node0", 3, 2)
	relays := []*Store{tc.store("node1", 3, 2), tc.store("node2", 3, 2)}
	content, _ := randomBlob(t, 2<<20)
	d, _ := clientUploads(t, s, content)
	ctx := context.Background()
	if err := s.WaitDurable(ctx, []digest.Digest{d}); err != nil {
		t.Fatal(err)
	}
	// Let the background work after the commit end.
	time.Sleep(300 * time.Millisecond)
	if got := tc.holders(d); len(got) != 2 {
		t.Fatalf("holders %v, want the uploader and the first node of the chain", got)
	}
	if got := copiesOf(t, s, "mirrored"); got != 1 {
		t.Errorf("%v copies mirrored, want 1", got)
	}
	if got := copiesOf(t, s, "ok") + copiesOf(t, s, "failed"); got != 0 {
		t.Errorf("%v copies tried after the commit, want 0: the relay had the last node", got)
	}
	for _, r := range relays {
		if got := copiesOf(t, r, "relayed"); got != 0 {
			t.Errorf("%v copies relayed, want 0", got)
		}
	}
	if rep, err := s.Repair(ctx); err != nil || rep.Deferred != 1 {
		t.Fatalf("first repair round %+v, %v: want the fresh blob deferred", rep, err)
	}
	if rep, err := s.Repair(ctx); err != nil || rep.Copied != 1 {
		t.Fatalf("second repair round %+v, %v: want the missing copy made", rep, err)
	}
	if got := tc.holders(d); len(got) != 3 {
		t.Errorf("holders %v after repair, want all 3 nodes", got)
	}
}
