package gc

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore/peer"
	"github.com/wharf-registry/wharf/blobstore/placement"
)

// ownersOf returns d's top tc.r nodes, sorted.
func (tc *testCluster) ownersOf(d digest.Digest) []string {
	var pn []placement.Node
	for _, id := range tc.ids {
		pn = append(pn, placement.Node{ID: id, Weight: 1})
	}
	var ids []string
	for _, o := range placement.Owners(d, pn, tc.r) {
		ids = append(ids, o.ID)
	}
	slices.Sort(ids)
	return ids
}

// pushToNonOwner pushes a new blob through a node that is not one of its
// owners and waits until the owners hold it too.
func (tc *testCluster) pushToNonOwner(repo string) (d digest.Digest, content []byte, owners []string, writer string) {
	tc.t.Helper()
	content = randomBlob(tc.t, 32<<10)
	d = digest.FromBytes(content)
	owners = tc.ownersOf(d)
	for _, id := range tc.ids {
		if !slices.Contains(owners, id) {
			writer = id
			break
		}
	}
	tc.push(writer, repo, content)
	want := slices.Sorted(slices.Values(append(slices.Clone(owners), writer)))
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, err := tc.fsm.BlobHolders(d)
		if err == nil && slices.Equal(rec.GetNodeIds(), want) {
			return d, content, owners, writer
		}
		if time.Now().After(deadline) {
			tc.t.Fatalf("holders of %s: %v (%v), want %v", d, rec.GetNodeIds(), err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (tc *testCluster) holderIDs(d digest.Digest) []string {
	tc.t.Helper()
	rec, err := tc.fsm.BlobHolders(d)
	if err != nil {
		tc.t.Fatal(err)
	}
	return rec.GetNodeIds()
}

// repair runs one repair round on the leader.
func (tc *testCluster) repair() int {
	tc.t.Helper()
	rep, err := tc.repl["node0"].Repair(context.Background())
	if err != nil {
		tc.t.Fatal(err)
	}
	return rep.Trimmed
}

// sweep runs a sweep on every node.
func (tc *testCluster) sweep(settle time.Duration) SweepReport {
	tc.t.Helper()
	var total SweepReport
	for _, id := range tc.ids {
		r, err := tc.collector(id, settle).Sweep(context.Background())
		if err != nil {
			tc.t.Fatal(err)
		}
		total.Unheld += r.Unheld
		total.UnheldBytesFreed += r.UnheldBytesFreed
		total.UnheldKept += r.UnheldKept
		total.Settling += r.Settling
		total.Deleted += r.Deleted
		total.Orphans += r.Orphans
		total.OrphansKept += r.OrphansKept
	}
	return total
}

func TestNonOwnerCopyIsTrimmedThenDeleted(t *testing.T) {
	tc := newTestClusterR(t, 4, 2)
	d, content, owners, writer := tc.pushToNonOwner("acme/app")
	if got := tc.onDisk(d); len(got) != 3 {
		t.Fatalf("blob on %v before the trim, want the 2 owners and the writer", got)
	}
	// Nothing to delete while the record lists the writer.
	if rep := tc.sweep(time.Nanosecond); rep.Unheld != 0 || rep.Settling != 0 {
		t.Fatalf("sweep before the trim: %+v", rep)
	}
	if n := tc.repair(); n != 1 {
		t.Fatalf("repair trimmed %d holders, want 1", n)
	}
	if got := tc.holderIDs(d); !slices.Equal(got, owners) {
		t.Fatalf("holders %v after the trim, want the owners %v", got, owners)
	}

	// A read that started before the sweep.
	f, err := tc.local[writer].Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	// Stored less than Settle ago: kept for now.
	if rep := tc.sweep(time.Hour); rep.Unheld != 0 || rep.Settling != 1 {
		t.Fatalf("sweep within Settle: %+v, want the writer's copy settling", rep)
	}
	rep := tc.sweep(time.Nanosecond)
	if rep.Unheld != 1 || rep.UnheldBytesFreed != int64(len(content)) || rep.Deleted != 0 {
		t.Fatalf("sweep after Settle: %+v, want the writer's copy (%d bytes) deleted", rep, len(content))
	}
	if got := tc.onDisk(d); !slices.Equal(got, owners) {
		t.Fatalf("blob on %v, want exactly the owners %v", got, owners)
	}
	if got, err := io.ReadAll(f); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read in progress on the writer: %d bytes, %v", len(got), err)
	}
	// The writer still serves the blob, from an owner.
	g, err := tc.repl[writer].Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got, err := io.ReadAll(g); err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read through the writer after the sweep: %d bytes, %v", len(got), err)
	}
	if n, rep := tc.repair(), tc.sweep(time.Nanosecond); n != 0 || rep.Unheld != 0 {
		t.Fatalf("second round: %d trimmed, %+v", n, rep)
	}
}

func TestSweepKeepsAnUnheldCopyWhileTooFewOthersHoldIt(t *testing.T) {
	tc := newTestClusterR(t, 4, 2)
	d, _, owners, writer := tc.pushToNonOwner("acme/app")
	if n := tc.repair(); n != 1 {
		t.Fatalf("repair trimmed %d holders, want 1", n)
	}
	// An owner dies before the writer sweeps: its copy may be needed.
	tc.mu.Lock()
	tc.dead[owners[0]] = true
	tc.mu.Unlock()
	if rep := tc.sweep(time.Nanosecond); rep.Unheld != 0 || rep.UnheldKept != 1 {
		t.Fatalf("sweep with an owner dead: %+v, want the writer's copy kept", rep)
	}
	if got := tc.onDisk(d); !slices.Contains(got, writer) {
		t.Fatalf("blob on %v: the writer's copy was deleted", got)
	}
}

func TestCopyStoredAgainAfterTheTrimSurvivesTheSweep(t *testing.T) {
	tc := newTestClusterR(t, 4, 2)
	d, content, owners, writer := tc.pushToNonOwner("acme/app")
	if n := tc.repair(); n != 1 {
		t.Fatalf("repair trimmed %d holders, want 1", n)
	}
	const settle = 100 * time.Millisecond
	time.Sleep(2 * settle) // the writer's copy is now older than Settle

	// A client uploads the blob to the writer again: the commit finds it
	// present and stores it again; its AddBlobHolder is not applied yet.
	tc.stores(writer, content)
	if rep := tc.sweep(settle); rep.Unheld != 0 || rep.Settling != 1 {
		t.Fatalf("sweep right after the commit: %+v, want the fresh copy settling", rep)
	}
	// The AddBlobHolder lands: the writer holds the blob again, however old.
	tc.holds(writer, d, int64(len(content)))
	time.Sleep(2 * settle)
	if rep := tc.sweep(settle); rep.Unheld != 0 || rep.Settling != 0 {
		t.Fatalf("sweep after the holder was added again: %+v", rep)
	}
	if got := tc.onDisk(d); !slices.Contains(got, writer) {
		t.Fatalf("blob on %v: the re-uploaded copy was deleted", got)
	}
	if !slices.Contains(tc.holderIDs(d), writer) {
		t.Fatalf("holders %v: the re-upload did not record the writer", tc.holderIDs(d))
	}
	// The next repair trims it again, and then it goes.
	if n := tc.repair(); n != 1 {
		t.Fatalf("repair trimmed %d holders, want 1", n)
	}
	time.Sleep(2 * settle)
	if rep := tc.sweep(settle); rep.Unheld != 1 {
		t.Fatalf("sweep: %+v, want the writer's copy deleted", rep)
	}
	if got := tc.onDisk(d); !slices.Equal(got, owners) {
		t.Fatalf("blob on %v, want the owners %v", got, owners)
	}
}

func TestPeerCopyOfAHeldBlobCountsAsStoredAgain(t *testing.T) {
	tc := newTestClusterR(t, 4, 2)
	d, content, _, writer := tc.pushToNonOwner("acme/app")
	if n := tc.repair(); n != 1 {
		t.Fatalf("repair trimmed %d holders, want 1", n)
	}
	const settle = 100 * time.Millisecond
	time.Sleep(2 * settle)
	// A peer pushes the blob to the writer (say it became an owner again):
	// the writer answers from the copy it has, which counts as stored now,
	// before the pusher records it as a holder.
	if err := peer.Push(context.Background(), http.DefaultClient, tc.urls[writer], d, int64(len(content)), bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if rep := tc.sweep(settle); rep.Unheld != 0 || rep.Settling != 1 {
		t.Fatalf("sweep right after the peer copy: %+v, want the copy settling", rep)
	}
}
