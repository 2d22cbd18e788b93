package fsm

import (
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

func recordRun(nanos int64, run *fsmpb.GCRun) *fsmpb.Command {
	return at(nanos, NewCommand(&fsmpb.RecordGCRun{Run: run}))
}

func recordSweep(nanos int64, sw *fsmpb.SweepSummary) *fsmpb.Command {
	return at(nanos, NewCommand(&fsmpb.RecordSweep{Sweep: sw}))
}

func TestRecordGCRunAndSweep(t *testing.T) {
	good := &fsmpb.GCRun{NodeId: "n1", StartedUnixNanos: 10, Examined: 3, Collected: 2, BytesCollected: 7, GraceNanos: hour}
	goodSweep := &fsmpb.SweepSummary{NodeId: "n1", StartedUnixNanos: 10, OrphanFiles: 1, OrphanBytes: 5, UploadsPurged: 2}
	with := func(m proto.Message, edit func(proto.Message)) proto.Message {
		c := proto.Clone(m)
		edit(c)
		return c
	}
	tests := []struct {
		name string
		cmd  *fsmpb.Command
		want fsmpb.ResultCode
	}{
		{"run", recordRun(20, good), codeOK},
		{"sweep", recordSweep(20, goodSweep), codeOK},
		{"run without a run", at(20, NewCommand(&fsmpb.RecordGCRun{})), codeInvalid},
		{"run without a node", recordRun(20, with(good, func(m proto.Message) { m.(*fsmpb.GCRun).NodeId = "" }).(*fsmpb.GCRun)), codeInvalid},
		{"run without a start", recordRun(20, with(good, func(m proto.Message) { m.(*fsmpb.GCRun).StartedUnixNanos = 0 }).(*fsmpb.GCRun)), codeInvalid},
		{"run started after it ended", recordRun(5, good), codeInvalid},
		{"run with a negative count", recordRun(20, with(good, func(m proto.Message) { m.(*fsmpb.GCRun).BytesCollected = -1 }).(*fsmpb.GCRun)), codeInvalid},
		{"sweep without a sweep", at(20, NewCommand(&fsmpb.RecordSweep{})), codeInvalid},
		{"sweep with a bad node ID", recordSweep(20, with(goodSweep, func(m proto.Message) { m.(*fsmpb.SweepSummary).NodeId = "a\x00b" }).(*fsmpb.SweepSummary)), codeInvalid},
		{"sweep with a negative count", recordSweep(20, with(goodSweep, func(m proto.Message) { m.(*fsmpb.SweepSummary).UploadsPurged = -2 }).(*fsmpb.SweepSummary)), codeInvalid},
		{"sweep started after it ended", recordSweep(9, goodSweep), codeInvalid},
		{"sweep of an unregistered node", recordSweep(20, with(goodSweep, func(m proto.Message) { m.(*fsmpb.SweepSummary).NodeId = "gone" }).(*fsmpb.SweepSummary)), codeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := openTest(t)
			tf.mustApply(registerNode("n1", "a:1", 1), recordRun(2, &fsmpb.GCRun{NodeId: "n0", StartedUnixNanos: 1}),
				recordSweep(2, &fsmpb.SweepSummary{NodeId: "n1", StartedUnixNanos: 1}))
			before := dump(t, tf.FSM)
			res := tf.apply(tt.cmd)
			if res.GetCode() != tt.want {
				t.Fatalf("apply = %v, want %v", res, tt.want)
			}
			after := dump(t, tf.FSM)
			if tt.want != codeOK {
				delete(before, string(keyApplied))
				delete(after, string(keyApplied))
				if !mapsEqual(before, after) {
					t.Fatalf("a refused command changed the state:\n got %v\nwant %v", after, before)
				}
				return
			}
			if op := tt.cmd.GetRecordGcRun(); op != nil {
				got, err := tf.LastGCRun()
				if err != nil {
					t.Fatal(err)
				}
				want := proto.CloneOf(op.GetRun())
				want.EndedUnixNanos = tt.cmd.GetUnixNanos()
				if !proto.Equal(got, want) {
					t.Fatalf("LastGCRun = %v, want %v", got, want)
				}
			}
			if op := tt.cmd.GetRecordSweep(); op != nil {
				got, err := tf.Sweeps()
				if err != nil || len(got) != 1 {
					t.Fatalf("Sweeps = %v, %v; want one", got, err)
				}
				want := proto.CloneOf(op.GetSweep())
				want.EndedUnixNanos = tt.cmd.GetUnixNanos()
				if !proto.Equal(got[0], want) {
					t.Fatalf("sweep = %v, want %v (replaced)", got[0], want)
				}
			}
		})
	}
}

// The records depend on the log alone, one per run and per node, and the
// node's goes with it.
func TestGCRecordsReplayIdenticallyAndStayBounded(t *testing.T) {
	log := []*fsmpb.Command{registerNode("n1", "a:1", 1), registerNode("n2", "b:1", 1)}
	for i := range int64(50) {
		log = append(log,
			recordRun(100+i, &fsmpb.GCRun{NodeId: "n1", StartedUnixNanos: 99 + i, Examined: i, EndedUnixNanos: 12345}),
			recordSweep(100+i, &fsmpb.SweepSummary{NodeId: "n1", StartedUnixNanos: 99 + i, OrphanFiles: i}),
			recordSweep(100+i, &fsmpb.SweepSummary{NodeId: "n2", StartedUnixNanos: 99 + i}))
	}
	a, b := openTest(t), openTest(t)
	a.mustApply(log...)
	b.mustApply(log...)
	if got, want := dump(t, b.FSM), dump(t, a.FSM); !mapsEqual(got, want) {
		t.Fatalf("replayed state differs:\n got %v\nwant %v", got, want)
	}
	if keys := dumpKeys(t, a.FSM, "gcrun/", prefixSweep); len(keys) != 3 {
		t.Fatalf("records %q, want one run and one sweep per node", keys)
	}
	run, err := a.LastGCRun()
	if err != nil || run.GetExamined() != 49 || run.GetEndedUnixNanos() != 149 {
		t.Fatalf("LastGCRun = %v, %v; want the last, ended at its command's time", run, err)
	}
	a.mustApply(deregisterNode("n1"))
	sweeps, err := a.Sweeps()
	if err != nil || len(sweeps) != 1 || sweeps[0].GetNodeId() != "n2" {
		t.Fatalf("Sweeps after n1 left = %v, %v; want n2's only", sweeps, err)
	}
	if _, err := openTest(t).LastGCRun(); err == nil {
		t.Fatal("LastGCRun of a new state: want ErrNotFound")
	}
}

func TestBlobKeepersAndStorage(t *testing.T) {
	tf := openTest(t)
	tf.mustApply(
		at(hour, linkHeld("acme/app", "b1", 10, "n1", "n2")),
		at(hour, linkHeld("acme/db", "b1", 10, "n1")),
		at(hour, linkHeld("beta/x", "b1", 10, "n1")),
		at(hour, linkHeld("acme/app", "b2", 20, "n2")),
		at(hour, putImage("acme/app", "m", "b1", "b2")),
		at(hour, &fsmpb.Command{Op: &fsmpb.Command_TagManifest{TagManifest: &fsmpb.TagManifest{Repository: "acme/app", Digest: dgst("m"), Tag: "v1"}}}),
		at(2*hour, addHolder("b3", 30, "n2")), // unreferenced
	)
	k, err := tf.BlobKeepers(digest.Digest(dgst("b1")), 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Repositories, []string{"acme/app", "acme/db"}) || !k.Truncated {
		t.Fatalf("repositories %v truncated %v; want the first two of three, truncated", k.Repositories, k.Truncated)
	}
	if len(k.Manifests) != 1 || k.Manifests[0].Digest.String() != dgst("m") || !slices.Equal(k.Manifests[0].Tags, []string{"v1"}) {
		t.Fatalf("manifests %+v; want m tagged v1", k.Manifests)
	}
	if k.UnreferencedSince != 0 {
		t.Fatalf("referenced blob unreferenced since %d", k.UnreferencedSince)
	}
	k, err = tf.BlobKeepers(digest.Digest(dgst("b3")), 2, 10)
	if err != nil || len(k.Repositories)+len(k.Manifests) != 0 || k.UnreferencedSince != 2*hour {
		t.Fatalf("keepers of an unreferenced blob = %+v, %v; want none, since %d", k, err, 2*hour)
	}

	st, err := tf.Storage()
	if err != nil {
		t.Fatal(err)
	}
	wantNS := map[string]Usage{"acme": {2, 30}, "beta": {1, 10}}
	if len(st.Namespaces) != len(wantNS) || st.Namespaces["acme"] != wantNS["acme"] || st.Namespaces["beta"] != wantNS["beta"] {
		t.Errorf("namespaces %v, want %v (each blob once per namespace)", st.Namespaces, wantNS)
	}
	if st.Referenced != (Usage{2, 30}) || st.Held != (Usage{3, 60}) {
		t.Errorf("referenced %v held %v, want {2 30} {3 60}", st.Referenced, st.Held)
	}
	if st.Nodes["n1"] != (Usage{1, 10}) || st.Nodes["n2"] != (Usage{3, 60}) {
		t.Errorf("nodes %v, want n1 {1 10}, n2 {3 60}", st.Nodes)
	}
}
