package replication

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore/placement"
)

// ownersOf returns d's top r nodes among every node of tc, sorted.
func (tc *testCluster) ownersOf(d digest.Digest, r int) []string {
	var pn []placement.Node
	for _, n := range tc.nodes {
		pn = append(pn, placement.Node{ID: n.ID, Weight: n.Weight})
	}
	var ids []string
	for _, o := range placement.Owners(d, pn, r) {
		ids = append(ids, o.ID)
	}
	slices.Sort(ids)
	return ids
}

// nonOwners returns the nodes of tc that are not among owners.
func (tc *testCluster) nonOwners(owners []string) []string {
	var ids []string
	for _, n := range tc.nodes {
		if !slices.Contains(owners, n.ID) {
			ids = append(ids, n.ID)
		}
	}
	return ids
}

// waitHolders polls until d's holder record is want.
func (tc *testCluster) waitHolders(d digest.Digest, want []string) {
	tc.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(tc.holders(d), want) {
		if time.Now().After(deadline) {
			tc.t.Fatalf("holders of %s: %v, want %v", d, tc.holders(d), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sorted(ids ...string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// storeOnNonOwners stores a new blob through each of the first n non-owners
// of it (R=2 of 5 nodes) and waits until its holders are the owners plus
// those writers.
func storeOnNonOwners(t *testing.T, tc *testCluster, n int) (d digest.Digest, owners, writers []string) {
	t.Helper()
	content, d := randomBlob(t, 16<<10)
	owners = tc.ownersOf(d, 2)
	writers = tc.nonOwners(owners)[:n]
	for _, w := range writers {
		s := tc.store(w, 2, 2)
		clientStores(t, s, content)
		if err := s.WaitDurable(context.Background(), []digest.Digest{d}); err != nil {
			t.Fatal(err)
		}
	}
	return d, owners, writers
}

func TestRepairTrimsAHolderThatIsNotAnOwner(t *testing.T) {
	tc := newTestCluster(t, 5)
	d, owners, writers := storeOnNonOwners(t, tc, 1)
	tc.waitHolders(d, sorted(append(slices.Clone(owners), writers...)...))

	leader := tc.store("node0", 2, 2)
	rep, err := leader.Repair(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Trimmed != 1 || rep.Copied != 0 || rep.UnderReplicated != 0 {
		t.Fatalf("report %+v: want 1 trimmed, nothing copied", rep)
	}
	if got := tc.holders(d); !slices.Equal(got, owners) {
		t.Fatalf("holders %v after repair, want the owners %v", got, owners)
	}
	// The holder record is what WaitDurable counts: still W=2 copies.
	if err := leader.WaitDurable(context.Background(), []digest.Digest{d}); err != nil {
		t.Fatalf("WaitDurable after the trim: %v", err)
	}
	again, err := leader.Repair(context.Background())
	if err != nil || again.Trimmed != 0 || again.Copied != 0 {
		t.Fatalf("second round: %+v, %v; want nothing to do", again, err)
	}
}

func TestRepairTrimsNothingWhileAnOwnerIsDead(t *testing.T) {
	tc := newTestCluster(t, 5)
	d, owners, writers := storeOnNonOwners(t, tc, 2)
	all := sorted(append(slices.Clone(owners), writers...)...)
	tc.waitHolders(d, all)

	// One owner dies: 3 live holders for R=2, and the live ranking has a
	// new second owner; nothing is trimmed until the owner is back.
	tc.setAlive(owners[1], false)
	leader := tc.store(owners[0], 2, 2)
	rep, err := leader.Repair(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Trimmed != 0 {
		t.Fatalf("report %+v: trimmed while an owner is dead", rep)
	}
	if got := tc.holders(d); !slices.Equal(got, all) {
		t.Fatalf("holders %v, want all of %v kept", got, all)
	}

	tc.setAlive(owners[1], true)
	rep, err = leader.Repair(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Trimmed != 2 {
		t.Fatalf("report %+v: want both writers trimmed once every owner is back", rep)
	}
	if got := tc.holders(d); !slices.Equal(got, owners) {
		t.Fatalf("holders %v, want the owners %v", got, owners)
	}
}

func TestRepairTrimsNothingWhileAnOwnerLacksTheBlob(t *testing.T) {
	tc := newTestCluster(t, 5)
	content, d := randomBlob(t, 16<<10)
	owners := tc.ownersOf(d, 2)
	writers := tc.nonOwners(owners)[:2]
	tc.refuse(owners[1]) // copies to it fail
	for _, w := range writers {
		clientStores(t, tc.store(w, 2, 2), content)
	}
	// The writers and the reachable owner; the background copies to the
	// other owner keep failing.
	tc.waitHolders(d, sorted(owners[0], writers[0], writers[1]))

	leader := tc.store(owners[0], 2, 2)
	rep, err := leader.Repair(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Trimmed != 0 || rep.UnderReplicated != 0 {
		t.Fatalf("report %+v: want nothing trimmed while owner %s lacks the blob", rep, owners[1])
	}
	if got := tc.holders(d); len(got) != 3 {
		t.Fatalf("holders %v, want all 3 kept", got)
	}
}
