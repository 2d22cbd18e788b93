package remotesync

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// localCluster applies commands straight to a real FSM on disk, as a one
// node Raft would, and has the live nodes a test sets.
type localCluster struct {
	t     *testing.T
	f     *fsm.FSM
	id    string
	mu    sync.Mutex
	index uint64
	now   time.Time
	live  []string
}

func newLocalCluster(t *testing.T, nodes ...string) *localCluster {
	t.Helper()
	f, err := fsm.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	c := &localCluster{t: t, f: f, id: nodes[0], live: nodes, now: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
	for i, id := range nodes {
		c.mustApply(&fsmpb.RegisterNode{Node: &fsmpb.Node{Id: id, Name: id, ClusterAddress: "10.0.0." + string(rune('1'+i)) + ":7000"}})
	}
	c.mustApply(&fsmpb.CreateRemote{Remote: &fsmpb.Remote{Name: "hub", Url: "https://registry.example.com"}})
	return c
}

func (c *localCluster) NodeID() string  { return c.id }
func (c *localCluster) State() *fsm.FSM { return c.f }
func (c *localCluster) LiveNodes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.live...)
}
func (c *localCluster) setLive(ids ...string) { c.mu.Lock(); c.live = ids; c.mu.Unlock() }
func (c *localCluster) clock() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}
func (c *localCluster) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func (c *localCluster) Apply(_ context.Context, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	c.mu.Lock()
	c.index++
	index := c.index
	if cmd.UnixNanos == 0 {
		cmd.UnixNanos = c.now.UnixNano()
	}
	c.mu.Unlock()
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	res, _ := c.f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(*fsmpb.Result)
	return res, fsm.ResultError(res)
}

func (c *localCluster) mustApply(op proto.Message) *fsmpb.Result {
	c.t.Helper()
	cmd := fsm.NewCommand(op)
	cmd.Actor = "alice"
	res, err := c.Apply(context.Background(), cmd)
	if err != nil {
		c.t.Fatalf("apply %T: %v", op, err)
	}
	return res
}

func (c *localCluster) scheduler() *Scheduler {
	return NewScheduler(c, SchedulerConfig{Now: c.clock, DeadAfter: 10 * time.Second})
}

func (c *localCluster) jobs(repo string) []*fsmpb.SyncJob {
	c.t.Helper()
	jobs, err := c.f.SyncJobs(repo, "", 100)
	if err != nil {
		c.t.Fatal(err)
	}
	return jobs
}

// A schedule runs once per due time whichever leader looks, and runs
// missed while no leader looked collapse into one.
func TestSchedulerRunsEachDueTimeOnce(t *testing.T) {
	c := newLocalCluster(t, "n1")
	c.mustApply(&fsmpb.CreateMirror{Mirror: &fsmpb.Mirror{Repository: "acme/app", Remote: "hub", Upstream: "acme/app", Schedule: "1h", CreatedBy: "alice"}})
	created := c.clock()

	c.advance(59 * time.Minute)
	c.scheduler().Tick(context.Background())
	if jobs := c.jobs("acme/app"); len(jobs) != 0 {
		t.Fatalf("before the first due time: %d jobs", len(jobs))
	}
	c.advance(2 * time.Minute)
	first, second := c.scheduler(), c.scheduler() // the old leader and a new one
	first.Tick(context.Background())
	second.Tick(context.Background())
	jobs := c.jobs("acme/app")
	if len(jobs) != 1 {
		t.Fatalf("after the due time, two leaders: %d jobs, want 1", len(jobs))
	}
	j := jobs[0]
	if j.GetTrigger() != fsm.SyncTriggerSchedule || j.GetDueUnixNanos() != created.Add(time.Hour).UnixNano() {
		t.Fatalf("job = %v", j)
	}
	if j.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING || j.GetNode() != "n1" || j.GetAttempt() != 1 {
		t.Fatalf("job not assigned: %v", j)
	}
	c.mustApply(&fsmpb.FinishSyncJob{Id: j.GetId(), Node: "n1", Attempt: 1, State: fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED})

	// The leader was away for 2.5 hours: one run, at the latest due time.
	c.advance(150 * time.Minute)
	second.Tick(context.Background())
	first.Tick(context.Background())
	jobs = c.jobs("acme/app")
	if len(jobs) != 2 {
		t.Fatalf("after missed runs: %d jobs, want 2", len(jobs))
	}
	if due := time.Unix(0, jobs[0].GetDueUnixNanos()).UTC(); !due.Equal(created.Add(3 * time.Hour)) {
		t.Fatalf("collapsed run due at %v, want %v", due, created.Add(3*time.Hour))
	}
}

// Queued jobs go to the least loaded live node; a job whose node is gone
// for DeadAfter moves, and the old node can no longer report into it.
func TestSchedulerAssignsAndReassigns(t *testing.T) {
	c := newLocalCluster(t, "n1", "n2", "n3")
	for _, repo := range []string{"acme/a", "acme/b", "acme/c"} {
		c.mustApply(&fsmpb.CreateMirror{Mirror: &fsmpb.Mirror{Repository: repo, Remote: "hub", Upstream: repo, CreatedBy: "alice"}})
		c.mustApply(&fsmpb.RequestSync{Repository: repo, Trigger: fsm.SyncTriggerManual, RequestedBy: "alice"})
	}
	s := c.scheduler()
	s.Tick(context.Background())
	nodes := map[string]string{}
	for _, repo := range []string{"acme/a", "acme/b", "acme/c"} {
		j := c.jobs(repo)[0]
		if j.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING {
			t.Fatalf("%s: %v", repo, j)
		}
		nodes[j.GetNode()] = repo
	}
	if len(nodes) != 3 {
		t.Fatalf("three jobs on %d nodes, want one each: %v", len(nodes), nodes)
	}

	victim := c.jobs("acme/a")[0]
	c.setLive(without([]string{"n1", "n2", "n3"}, victim.GetNode())...)
	s.Tick(context.Background())
	if j := c.jobs("acme/a")[0]; j.GetNode() != victim.GetNode() {
		t.Fatalf("moved before DeadAfter: %v", j)
	}
	c.advance(11 * time.Second)
	s.Tick(context.Background())
	moved := c.jobs("acme/a")[0]
	if moved.GetNode() == victim.GetNode() || moved.GetAttempt() != 2 || moved.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING {
		t.Fatalf("after DeadAfter: %v", moved)
	}
	cmd := fsm.NewCommand(&fsmpb.SyncJobProgress{Id: victim.GetId(), Node: victim.GetNode(), Attempt: 1, Progress: &fsmpb.SyncProgress{TagsDone: 1}})
	if _, err := c.Apply(context.Background(), cmd); err == nil {
		t.Fatal("the old node's report was accepted after the job moved")
	}
}

func without(ids []string, drop string) []string {
	var out []string
	for _, id := range ids {
		if id != drop {
			out = append(out, id)
		}
	}
	return out
}
