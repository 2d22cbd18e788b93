package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// taskLog records where a leader task runs.
type taskLog struct {
	mu      sync.Mutex
	running map[string]int // node ID → running instances
	starts  map[string]int // node ID → starts
}

func newTaskLog() *taskLog {
	return &taskLog{running: map[string]int{}, starts: map[string]int{}}
}

// task returns node n's instance of the task: it counts itself running
// until its context ends, and checks that n leads while it runs.
func (l *taskLog) task(t *testing.T, n *Node) LeaderTask {
	return func(ctx context.Context) {
		if !n.IsLeader() {
			t.Errorf("leader task started on %s, which does not lead", n.id)
		}
		l.mu.Lock()
		l.running[n.id]++
		l.starts[n.id]++
		l.mu.Unlock()
		<-ctx.Done()
		l.mu.Lock()
		l.running[n.id]--
		l.mu.Unlock()
	}
}

// only reports an error unless the task runs once, on node id, and
// nowhere else.
func (l *taskLog) only(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for node, n := range l.running {
		want := 0
		if node == id {
			want = 1
		}
		if n != want {
			return fmt.Errorf("task runs %d times on %s, want %d (running: %v)", n, node, want, l.running)
		}
	}
	if l.running[id] != 1 {
		return fmt.Errorf("task does not run on the leader %s (running: %v)", id, l.running)
	}
	return nil
}

// TestLeaderTasksFollowLeadership: a task registered on every node runs on
// the leader alone, moves with leadership, starts at once when registered
// on a node that already leads, and stops for good with StopLeaderTasks.
func TestLeaderTasksFollowLeadership(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{deadNodeTimeout: time.Hour})
	leader := tc.leader()
	early, late := newTaskLog(), newTaskLog()
	for _, n := range tc.nodes {
		n.RunOnLeader("early", early.task(t, n))
	}
	waitFor(t, 5*time.Second, func() error { return early.only(leader.id) })

	// Leadership moves: the task stops on the old leader and starts on
	// the new one, never running on two nodes at once.
	ctx := ctxTimeout(t, 10*time.Second)
	if err := leader.TransferLeadership(ctx); err != nil {
		t.Fatal(err)
	}
	next := tc.leader()
	if next == leader {
		t.Fatal("leadership did not move")
	}
	waitFor(t, 5*time.Second, func() error { return early.only(next.id) })

	// Registered while leading: it starts at once, on the leader only.
	for _, n := range tc.nodes {
		n.RunOnLeader("late", late.task(t, n))
	}
	waitFor(t, 5*time.Second, func() error { return late.only(next.id) })

	// Stopped: it returns, and no longer starts on this node.
	next.StopLeaderTasks()
	early.mu.Lock()
	running, starts := early.running[next.id], early.starts[next.id]
	early.mu.Unlock()
	if running != 0 {
		t.Fatalf("%d instances still run after StopLeaderTasks", running)
	}
	next.RunOnLeader("early", early.task(t, next))
	time.Sleep(200 * time.Millisecond)
	early.mu.Lock()
	defer early.mu.Unlock()
	if early.starts[next.id] != starts {
		t.Fatalf("a task started after StopLeaderTasks")
	}
}
