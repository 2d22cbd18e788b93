package gc

import (
	"context"
	"slices"
	"testing"
	"time"
)

const emptyGrace = 24 * time.Hour // the default EmptyRepositoryGrace

func (tc *testCluster) wantRepositories(want ...string) {
	tc.t.Helper()
	got, err := tc.fsm.ListRepositories("", 0)
	if err != nil {
		tc.t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		tc.t.Fatalf("repositories %v, want %v", got, want)
	}
}

// A push that failed before its manifest leaves a repository that goes
// once it has been empty for the grace period, counted from its last blob
// link; its blobs are then collected after their own grace period.
func TestEmptyRepositoryIsRemovedAfterGraceThenItsBlobs(t *testing.T) {
	tc := newTestCluster(t, 2)
	failed := tc.push("node0", "acme/failed", randomBlob(t, 4096))
	kept := tc.push("node1", "acme/app", randomBlob(t, 4096))
	if err := tc.putManifest("acme/app", "manifest", kept); err != nil {
		t.Fatal(err)
	}

	tc.advance(emptyGrace - time.Minute)
	if crep, _ := tc.round(time.Nanosecond); crep.RepositoriesRemoved != 0 {
		t.Fatalf("within the grace period: %+v", crep)
	}
	if err := tc.link("acme/failed", failed, 4096); err != nil { // the push is retried
		t.Fatal(err)
	}
	tc.advance(2 * time.Minute)
	if crep, _ := tc.round(time.Nanosecond); crep.RepositoriesRemoved != 0 {
		t.Fatalf("after a link that started the wait again: %+v", crep)
	}
	tc.wantRepositories("acme/app", "acme/failed")

	tc.advance(emptyGrace)
	crep, srep := tc.round(time.Nanosecond)
	if crep.RepositoriesRemoved != 1 || crep.Collected != 0 || srep.Deleted != 0 {
		t.Fatalf("after the grace period: %+v %+v, want the repository removed and no blob collected yet", crep, srep)
	}
	tc.wantRepositories("acme/app")
	if got := tc.onDisk(failed); len(got) != 2 {
		t.Fatalf("the removed repository's blob is on %v before its own grace period, want both nodes", got)
	}

	tc.advance(grace + time.Minute)
	crep, srep = tc.round(time.Nanosecond)
	if crep.Collected != 1 || srep.Deleted != 2 {
		t.Fatalf("after the blob grace period: %+v %+v, want its blob collected from both nodes", crep, srep)
	}
	if got := tc.onDisk(failed); len(got) != 0 {
		t.Fatalf("the removed repository's blob is still on %v", got)
	}
	if got := tc.onDisk(kept); len(got) != 2 {
		t.Fatalf("the blob of the repository with a manifest is on %v, want both nodes", got)
	}
}

// racingView stores a manifest in the repository the collector is about to
// remove, between the listing and the removal.
type racingView struct {
	view
	race func()
}

func (v racingView) RemoveEmptyRepository(ctx context.Context, repo string, grace time.Duration) error {
	v.race()
	return v.view.RemoveEmptyRepository(ctx, repo, grace)
}

// The FSM re-checks emptiness as it applies the removal: a manifest pushed
// after the collector listed the repository keeps it.
func TestEmptyRepositoryFilledMeanwhileIsKept(t *testing.T) {
	tc := newTestCluster(t, 1)
	d := tc.push("node0", "acme/late", randomBlob(t, 4096))
	tc.advance(emptyGrace + time.Minute)
	c, err := New(Config{Local: tc.local["node0"], Cluster: racingView{view{tc, "node0"}, func() {
		if err := tc.putManifest("acme/late", "manifest", d); err != nil {
			t.Error(err)
		}
	}}, Grace: grace, Now: tc.now})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.RepositoriesRemoved != 0 || rep.RepositoriesKept != 1 {
		t.Fatalf("%+v: want the repository kept", rep)
	}
	tc.wantRepositories("acme/late")
}
