package cluster

import (
	"context"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"
)

// Leader tasks are the work only the leader does: blob repair, garbage
// collection, the access-control bootstrap, and whatever else a package
// registers with RunOnLeader. The leader loop starts them once leadership
// is established (the new leader's barrier is committed, so the FSM holds
// every entry of earlier terms) and cancels them when the node steps down
// or shuts down, waiting for them to return; they start again at the next
// term this node leads. A task is a loop that reconciles the state until
// its context ends, as the membership reconciler does (Consul's
// leaderRoutineManager is the model).

// LeaderTask is one task: it returns when ctx ends, or earlier when it has
// nothing more to do in this term.
type LeaderTask func(ctx context.Context)

// leaderTasks holds the registered tasks and runs them while this node
// leads.
type leaderTasks struct {
	mu      sync.Mutex
	tasks   map[string]LeaderTask
	leading context.Context // while leading; nil otherwise
	running map[string]*runningLoop
	closed  bool // no task starts any more
	logger  *slog.Logger
}

func newLeaderTasks(logger *slog.Logger) *leaderTasks {
	return &leaderTasks{tasks: map[string]LeaderTask{}, running: map[string]*runningLoop{}, logger: logger}
}

// add registers task under name, and starts it at once if this node leads.
// A second task of the same name replaces the first (after it stopped).
func (lt *leaderTasks) add(name string, task LeaderTask) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if old := lt.running[name]; old != nil {
		old.stop()
		delete(lt.running, name)
	}
	lt.tasks[name] = task
	if lt.leading != nil && !lt.closed {
		lt.startLocked(name, task)
	}
}

// start runs every task with ctx, which ends when leadership does.
func (lt *leaderTasks) start(ctx context.Context) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.closed {
		return
	}
	lt.leading = ctx
	for name, task := range lt.tasks {
		lt.startLocked(name, task)
	}
}

func (lt *leaderTasks) startLocked(name string, task LeaderTask) {
	lt.logger.Info("starting leader task", "task", name)
	lt.running[name] = startLoop(lt.leading, task)
}

// stop cancels every running task and waits until each has returned;
// close does too, and keeps any from starting again.
func (lt *leaderTasks) stop()  { lt.end(false) }
func (lt *leaderTasks) close() { lt.end(true) }

func (lt *leaderTasks) end(closing bool) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.closed = lt.closed || closing
	lt.leading = nil
	for name, l := range lt.running {
		l.stop()
		delete(lt.running, name)
	}
}

// RunOnLeader registers task to run, under name, in every term this node
// leads: see LeaderTask. Register each task once, on every node, before or
// after the node starts; a task registered while the node leads starts at
// once.
func (n *Node) RunOnLeader(name string, task LeaderTask) { n.leaderTasks.add(name, task) }

// StopLeaderTasks cancels the running leader tasks, waits for them, and
// keeps them from starting again: call it before closing what they use.
// Shutdown calls it too.
func (n *Node) StopLeaderTasks() { n.leaderTasks.close() }

// IsLeader reports whether this node is the Raft leader and has
// established its leadership (committed its barrier), the condition under
// which leader tasks run.
func (n *Node) IsLeader() bool {
	return n.raft.State() == raft.Leader && n.leaderReadyTerm.Load() == n.raft.CurrentTerm()
}
