package gc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

// storeOrphan stores content on node id's disk only, as a commit whose
// holder record was never written does, and returns its digest.
func (tc *testCluster) storeOrphan(id string, content []byte) digest.Digest {
	tc.t.Helper()
	d := digest.FromBytes(content)
	if _, err := tc.local[id].Put(context.Background(), d, bytes.NewReader(content)); err != nil {
		tc.t.Fatal(err)
	}
	return d
}

// backdate makes node id's file of blob d look stored age ago (the store
// keeps that time as the file's modification time).
func (tc *testCluster) backdate(id string, d digest.Digest, age time.Duration) {
	tc.t.Helper()
	path := filepath.Join(tc.roots[id], "blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded())
	at := time.Now().Add(-age)
	if err := os.Chtimes(path, at, at); err != nil {
		tc.t.Fatal(err)
	}
}

// counter returns the value of counter name in reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestSweepOrphans(t *testing.T) {
	const size = 4096
	for _, tt := range []struct {
		name string
		age  time.Duration // since node0 last stored the file
		// setup writes the FSM state of the blob, none by default.
		setup func(t *testing.T, tc *testCluster, d digest.Digest)
		want  SweepReport
		kept  bool // node0 still has the file
	}{{
		name: "orphan stored longer than Grace ago is deleted",
		age:  grace + time.Minute,
		want: SweepReport{Orphans: 1, OrphanBytesFreed: size},
	}, {
		name: "orphan stored less than Grace ago is kept",
		age:  grace - time.Minute, // long past Settle
		want: SweepReport{OrphansKept: 1},
		kept: true,
	}, {
		name: "held by this node",
		age:  2 * grace,
		setup: func(t *testing.T, tc *testCluster, d digest.Digest) {
			if err := (view{tc, "node0"}).AddBlobHolder(context.Background(), d, size, "node0"); err != nil {
				t.Fatal(err)
			}
		},
		kept: true,
	}, {
		name: "held by another live node only: deleted as unheld, not as an orphan",
		age:  2 * grace,
		setup: func(t *testing.T, tc *testCluster, d digest.Digest) {
			if err := (view{tc, "node0"}).AddBlobHolder(context.Background(), d, size, "node1"); err != nil {
				t.Fatal(err)
			}
		},
		want: SweepReport{Unheld: 1, UnheldBytesFreed: size},
	}, {
		name: "held by a dead node only: kept as unheld, not deleted as an orphan",
		age:  2 * grace,
		setup: func(t *testing.T, tc *testCluster, d digest.Digest) {
			if err := (view{tc, "node0"}).AddBlobHolder(context.Background(), d, size, "node1"); err != nil {
				t.Fatal(err)
			}
			tc.mu.Lock()
			tc.dead["node1"] = true
			tc.mu.Unlock()
		},
		want: SweepReport{UnheldKept: 1},
		kept: true,
	}, {
		name: "collected, tombstone naming another node: left to the tombstone",
		age:  2 * grace,
		setup: func(t *testing.T, tc *testCluster, d digest.Digest) {
			if err := (view{tc, "node0"}).AddBlobHolder(context.Background(), d, size, "node1"); err != nil {
				t.Fatal(err)
			}
			tc.advance(grace + time.Second)
			if rep, err := tc.collector("node0", time.Nanosecond).Collect(context.Background()); err != nil || rep.Collected != 1 {
				t.Fatalf("collect: %+v, %v", rep, err)
			}
			if tomb, err := tc.fsm.CollectedBlob(d); err != nil || !slices.Equal(tomb.GetNodeIds(), []string{"node1"}) {
				t.Fatalf("tombstone %v, %v; want one naming node1", tomb, err)
			}
		},
		kept: true,
	}, {
		name: "referenced, no holder record: maybe the last copy",
		age:  2 * grace,
		setup: func(t *testing.T, tc *testCluster, d digest.Digest) {
			if err := tc.link("acme/app", d, size); err != nil { // a mount of the local file
				t.Fatal(err)
			}
		},
		want: SweepReport{OrphansReferenced: 1},
		kept: true,
	}} {
		t.Run(tt.name, func(t *testing.T) {
			tc := newTestCluster(t, 2)
			d := tc.storeOrphan("node0", randomBlob(t, size))
			if tt.setup != nil {
				tt.setup(t, tc, d)
			}
			tc.backdate("node0", d, tt.age)
			reg := prometheus.NewRegistry()
			c, err := New(Config{Local: tc.local["node0"], Cluster: view{tc, "node0"}, Grace: grace,
				Settle: time.Nanosecond, Now: tc.now, Replicas: tc.r, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()

			rep, err := c.Sweep(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep != tt.want {
				t.Errorf("sweep: %+v, want %+v", rep, tt.want)
			}
			if got := slices.Contains(tc.onDisk(d), "node0"); got != tt.kept {
				t.Errorf("file on node0 after the sweep: %v, want %v", got, tt.kept)
			}
			if got := counter(t, reg, "wharf_gc_orphan_files_deleted_total"); got != float64(tt.want.Orphans) {
				t.Errorf("orphan files deleted metric: %v, want %d", got, tt.want.Orphans)
			}
			freed := tt.want.OrphanBytesFreed + tt.want.UnheldBytesFreed
			if got := counter(t, reg, "wharf_gc_bytes_freed_total"); got != float64(freed) {
				t.Errorf("bytes freed metric: %v, want %d", got, freed)
			}
		})
	}
}

func TestSweepKeepsOrphansWhileCatchUpFails(t *testing.T) {
	tc := newTestCluster(t, 1)
	d := tc.storeOrphan("node0", randomBlob(t, 1024))
	tc.backdate("node0", d, 2*grace)
	noLeader := errors.New("no leader")
	tc.mu.Lock()
	tc.catchUpErr = noLeader
	tc.mu.Unlock()

	rep, err := tc.collector("node0", time.Nanosecond).Sweep(context.Background())
	if !errors.Is(err, noLeader) {
		t.Fatalf("sweep while catching up fails: %v, want the catch-up error", err)
	}
	if rep.Orphans != 0 || len(tc.onDisk(d)) != 1 {
		t.Fatalf("sweep while catching up fails: %+v, blob on %v; want the orphan kept", rep, tc.onDisk(d))
	}

	tc.mu.Lock()
	tc.catchUpErr = nil
	tc.mu.Unlock()
	if rep, err := tc.collector("node0", time.Nanosecond).Sweep(context.Background()); err != nil || rep.Orphans != 1 {
		t.Fatalf("sweep once caught up: %+v, %v; want the orphan deleted", rep, err)
	}
	if got := tc.onDisk(d); len(got) != 0 {
		t.Fatalf("orphan still on %v", got)
	}
}

// recorder is a slog.Handler that keeps the records.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	return nil
}

// find returns the attributes of the records at level with message msg.
func (r *recorder) find(level slog.Level, msg string) []map[string]slog.Value {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]slog.Value
	for _, rec := range r.recs {
		if rec.Level != level || rec.Message != msg {
			continue
		}
		attrs := map[string]slog.Value{}
		rec.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value
			return true
		})
		out = append(out, attrs)
	}
	return out
}

func TestRunLogsOneLinePerSweepThatDeletedOrphans(t *testing.T) {
	tc := newTestCluster(t, 1)
	d := tc.storeOrphan("node0", randomBlob(t, 2048))
	tc.backdate("node0", d, 2*grace)
	logs := &recorder{}
	c, err := New(Config{Local: tc.local["node0"], Cluster: view{tc, "node0"}, Grace: grace,
		Interval: 10 * time.Millisecond, Now: tc.now, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.SweepLoop(ctx)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(tc.onDisk(d)) != 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // a few more sweeps, with nothing to delete
	cancel()
	<-done

	lines := logs.find(slog.LevelInfo, "deleted blob files")
	if len(lines) != 1 {
		t.Fatalf("%d info lines about deleted blob files, want 1 (for the sweep that deleted the orphan)", len(lines))
	}
	if got := lines[0]["orphans"]; got.Kind() != slog.KindInt64 || got.Int64() != 1 {
		t.Errorf("orphans = %v, want 1", got)
	}
	if got := lines[0]["orphan_bytes"]; got.Kind() != slog.KindInt64 || got.Int64() != 2048 {
		t.Errorf("orphan_bytes = %v, want 2048", got)
	}
	if warns := logs.find(slog.LevelWarn, "sweep blob files"); len(warns) != 0 {
		t.Errorf("warnings: %v", warns)
	}
}
