package gc

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// A dry run proposes nothing and lists what a run then collects; the run
// records its summary.
func TestDryRunListsWhatARunCollects(t *testing.T) {
	tc := newTestCluster(t, 2)
	gone := tc.push("node0", "acme/app", randomBlob(t, 4096))
	young := tc.push("node0", "acme/app", randomBlob(t, 100))
	kept := tc.push("node1", "acme/app", randomBlob(t, 10))
	tc.unlink("acme/app", gone)
	tc.advance(grace + time.Minute)
	tc.unlink("acme/app", young)
	c := tc.collector("node1", time.Nanosecond)
	ctx := context.Background()

	before := tc.fsm.AppliedIndex()
	var listed []Candidate
	var progress []Progress
	rep, run, err := c.Run(ctx, RunOptions{DryRun: true,
		Candidate: func(cd Candidate) { listed = append(listed, cd) },
		Progress:  func(p Progress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if tc.fsm.AppliedIndex() != before {
		t.Fatalf("a dry run applied %d commands", tc.fsm.AppliedIndex()-before)
	}
	if len(listed) != 1 || listed[0].Digest != gone || listed[0].Size != 4096 || listed[0].UnreferencedSince.IsZero() {
		t.Fatalf("dry run listed %+v, want %s (4096 bytes) only", listed, gone)
	}
	if rep.Collected != 1 || run.GetBytesCollected() != 4096 || run.GetExamined() != 2 {
		t.Fatalf("dry run report %+v, run %v", rep, run)
	}
	if len(progress) == 0 || progress[len(progress)-1] != (Progress{Examined: 2, Collected: 1, BytesCollected: 4096}) {
		t.Fatalf("progress %+v, want a last report of the totals", progress)
	}
	if _, err := tc.fsm.LastGCRun(); !errors.Is(err, fsm.ErrNotFound) {
		t.Fatalf("a dry run recorded a run: %v", err)
	}

	rep, _, err = c.Run(ctx, RunOptions{Manual: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Collected != 1 || rep.BytesCollected != 4096 {
		t.Fatalf("run %+v, want the dry run's blob collected", rep)
	}
	if _, err := tc.fsm.CollectedBlob(gone); err != nil {
		t.Fatalf("tombstone of %s: %v", gone, err)
	}
	for _, d := range []digest.Digest{young, kept} {
		if _, err := tc.fsm.BlobHolders(d); err != nil {
			t.Fatalf("holders of %s, which the dry run did not list: %v", d, err)
		}
	}
	rec, err := tc.fsm.LastGCRun()
	if err != nil {
		t.Fatal(err)
	}
	if rec.GetNodeId() != "node1" || !rec.GetManual() || rec.GetCollected() != 1 || rec.GetBytesCollected() != 4096 ||
		rec.GetEndedUnixNanos() != tc.now().UnixNano() || rec.GetGraceNanos() != int64(grace) {
		t.Fatalf("recorded run %v", rec)
	}
}

// An idle sweep like the last one recorded is not recorded again before
// RecordEvery; one that deleted something is.
func TestSweepSummariesAreRecordedSparingly(t *testing.T) {
	tc := newTestCluster(t, 1)
	if err := tc.apply(fsm.NewCommand(&fsmpb.RegisterNode{Node: &fsmpb.Node{Id: "node0", ClusterAddress: "x:1"}})); err != nil {
		t.Fatal(err)
	}
	c := tc.collector("node0", time.Nanosecond)
	c.cfg.RecordEvery = time.Hour
	ctx := context.Background()
	t0 := tc.now()
	record := func(at time.Time, rep SweepReport) *fsmpb.SweepSummary {
		t.Helper()
		tc.clock.Store(at.UnixNano())
		if err := c.recordSweep(ctx, at, rep, nil); err != nil {
			t.Fatal(err)
		}
		s, err := tc.fsm.Sweeps()
		if err != nil || len(s) != 1 {
			t.Fatalf("Sweeps = %v, %v", s, err)
		}
		return s[0]
	}
	if s := record(t0, SweepReport{}); s.GetStartedUnixNanos() != t0.UnixNano() {
		t.Fatalf("first sweep %v, want recorded", s)
	}
	if s := record(t0.Add(time.Minute), SweepReport{}); s.GetStartedUnixNanos() != t0.UnixNano() {
		t.Fatalf("an idle sweep like the last was recorded: %v", s)
	}
	s := record(t0.Add(2*time.Minute), SweepReport{Orphans: 2, OrphanBytesFreed: 9})
	if s.GetOrphanFiles() != 2 || s.GetOrphanBytes() != 9 {
		t.Fatalf("a sweep that deleted orphans: %v", s)
	}
	if s := record(t0.Add(3*time.Minute), SweepReport{}); s.GetOrphanFiles() != 0 {
		t.Fatalf("the idle sweep after a busy one was not recorded: %v", s)
	}
	c.mu.Lock()
	c.lastPurge, c.lastPurged = t0.Add(4*time.Minute).UnixNano(), 3
	c.mu.Unlock()
	if s := record(t0.Add(5*time.Minute), SweepReport{}); s.GetUploadsPurged() != 3 {
		t.Fatalf("a new upload purge was not recorded: %v", s)
	}
	if s := record(t0.Add(2*time.Hour), SweepReport{}); s.GetStartedUnixNanos() != t0.Add(2*time.Hour).UnixNano() {
		t.Fatalf("an idle sweep after RecordEvery was not recorded: %v", s)
	}
}

func TestPurgeLoopCountsIntoTheSweep(t *testing.T) {
	tc := newTestCluster(t, 1)
	ages := make(chan time.Duration, 1)
	c, err := New(Config{Local: tc.local["node0"], Cluster: view{tc, "node0"}, UploadMaxAge: 2 * time.Hour,
		PurgeUploads: func(_ context.Context, age time.Duration) (int, error) {
			select {
			case ages <- age:
			default:
			}
			return 4, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.PurgeInterval != 30*time.Minute {
		t.Fatalf("purge interval %s for a 2h max age, want 30m", c.cfg.PurgeInterval)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.PurgeLoop(ctx); close(done) }()
	if age := <-ages; age != 2*time.Hour {
		t.Fatalf("purged sessions older than %s, want 2h", age)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		n := c.lastPurged
		c.mu.Unlock()
		if n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the purge was not counted")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
}

func TestPurgeInterval(t *testing.T) {
	for maxAge, want := range map[time.Duration]time.Duration{
		24 * time.Hour:   time.Hour,
		2 * time.Hour:    30 * time.Minute,
		time.Minute:      15 * time.Second,
		time.Millisecond: time.Second,
	} {
		if got := PurgeInterval(maxAge); got != want {
			t.Errorf("PurgeInterval(%s) = %s, want %s", maxAge, got, want)
		}
	}
}
