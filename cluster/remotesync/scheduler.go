package remotesync

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"time"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// The scheduler is a leader task: it turns due schedules into sync jobs
// and gives every queued job, and every running job whose node is gone,
// to a live node. Each step is a Raft command the FSM fences: a scheduled
// run is requested with its due time, and a due time already scheduled is
// refused, so a new leader that looks at the same schedule schedules
// nothing twice; an assignment names the attempt it makes, so two leaders
// racing cannot both assign a job.

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	// Interval is how often the scheduler looks for jobs to assign, in the
	// index of active jobs (default 250ms).
	Interval time.Duration
	// ScheduleInterval is how often it looks at every mirror's schedule
	// (default 2s).
	ScheduleInterval time.Duration
	// DeadAfter is how long a running job's node may be missing from the
	// live nodes before its job is given to another (default 10s).
	DeadAfter time.Duration
	// Now is the clock (default time.Now); tests move it.
	Now    func() time.Time
	Logger *slog.Logger
}

// Scheduler schedules and assigns sync jobs on the leader.
type Scheduler struct {
	c       Cluster
	cfg     SchedulerConfig
	missing map[string]time.Time // node ID -> first seen missing
}

// NewScheduler returns a scheduler over c.
func NewScheduler(c Cluster, cfg SchedulerConfig) *Scheduler {
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.ScheduleInterval <= 0 {
		cfg.ScheduleInterval = 2 * time.Second
	}
	if cfg.DeadAfter <= 0 {
		cfg.DeadAfter = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Scheduler{c: c, cfg: cfg, missing: map[string]time.Time{}}
}

// Run schedules until ctx ends: the leader task.
func (s *Scheduler) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	var scheduled time.Time
	for {
		if time.Since(scheduled) >= s.cfg.ScheduleInterval {
			scheduled = time.Now()
			if err := s.scheduleDue(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("sync scheduler: schedules", "error", err)
			}
		}
		if err := s.assign(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("sync scheduler: assignments", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick does one round: schedules what is due, then assigns jobs.
func (s *Scheduler) Tick(ctx context.Context) {
	if err := s.scheduleDue(ctx); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("sync scheduler: schedules", "error", err)
	}
	if err := s.assign(ctx); err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("sync scheduler: assignments", "error", err)
	}
}

// mirrorPage is how many mirrors a round reads at a time.
const mirrorPage = 500

// scheduleDue requests a run of every mirror whose schedule is due.
func (s *Scheduler) scheduleDue(ctx context.Context) error {
	now := s.cfg.Now().UTC()
	for last := ""; ; {
		ms, err := s.c.State().Mirrors(last, mirrorPage)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			due, ok := LatestDue(m, now)
			if !ok || m.GetActiveJobId() != "" {
				continue
			}
			s.request(ctx, m, due)
		}
		if len(ms) < mirrorPage {
			return nil
		}
		last = ms[len(ms)-1].GetRepository()
	}
}

// maxCatchUp bounds the schedule times LatestDue steps over.
const maxCatchUp = 100000

// LatestDue returns the latest run time of m's schedule that is due at now
// and not yet scheduled: runs missed while no leader looked collapse into
// one. False when nothing is due.
func LatestDue(m *fsmpb.Mirror, now time.Time) (time.Time, bool) {
	if m.GetSchedule() == "" {
		return time.Time{}, false
	}
	from := m.GetLastScheduledUnixNanos()
	if from == 0 {
		from = m.GetCreatedUnixNanos()
	}
	next, ok := fsm.NextScheduledRun(m.GetSchedule(), time.Unix(0, from).UTC())
	if !ok || next.After(now) {
		return time.Time{}, false
	}
	due := next
	for i := 0; i < maxCatchUp; i++ {
		n, ok := fsm.NextScheduledRun(m.GetSchedule(), due)
		if !ok || n.After(now) {
			break
		}
		due = n
	}
	return due, true
}

func (s *Scheduler) request(ctx context.Context, m *fsmpb.Mirror, due time.Time) {
	cmd := fsm.NewCommand(&fsmpb.RequestSync{
		Repository: m.GetRepository(), Trigger: fsm.SyncTriggerSchedule,
		RequestedBy: SchedulerActor, DueUnixNanos: due.UnixNano(),
	})
	cmd.Actor = SchedulerActor
	res, err := s.c.Apply(ctx, cmd)
	switch {
	case err == nil:
		s.cfg.Logger.Info("sync scheduled", "repository", m.GetRepository(), "job", res.GetValue(), "due", due)
	case errors.Is(err, fsm.ErrAlreadyExists), errors.Is(err, fsm.ErrFailedPrecondition):
		// Scheduled already, or a job is active: nothing to do.
	default:
		s.cfg.Logger.Warn("sync scheduler: request", "repository", m.GetRepository(), "error", err)
	}
}

// SchedulerActor is the actor of the scheduler's commands.
const SchedulerActor = "wharf-scheduler"

// assign gives queued jobs, and running jobs whose node is gone, to the
// live node running the fewest jobs.
func (s *Scheduler) assign(ctx context.Context) error {
	jobs, err := s.c.State().ActiveSyncJobs()
	if err != nil {
		return err
	}
	live := s.c.LiveNodes()
	if len(live) == 0 {
		return nil
	}
	alive := map[string]bool{}
	load := map[string]int{}
	for _, id := range live {
		alive[id] = true
		load[id] = 0
	}
	now := s.cfg.Now()
	for id := range s.missing {
		if alive[id] {
			delete(s.missing, id)
		}
	}
	var todo []*fsmpb.SyncJob
	for _, j := range jobs {
		switch j.GetState() {
		case fsmpb.SyncJobState_SYNC_JOB_STATE_QUEUED:
			todo = append(todo, j)
		case fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING:
			if alive[j.GetNode()] {
				load[j.GetNode()]++
				continue
			}
			first, seen := s.missing[j.GetNode()]
			if !seen {
				s.missing[j.GetNode()] = now
				continue
			}
			if now.Sub(first) >= s.cfg.DeadAfter {
				todo = append(todo, j)
			}
		}
	}
	for _, j := range todo {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		node := leastLoaded(load)
		cmd := fsm.NewCommand(&fsmpb.AssignSyncJob{Id: j.GetId(), Node: node, Attempt: j.GetAttempt() + 1})
		cmd.Actor = SchedulerActor
		if _, err := s.c.Apply(ctx, cmd); err != nil {
			if !errors.Is(err, fsm.ErrFailedPrecondition) && !errors.Is(err, fsm.ErrNotFound) {
				s.cfg.Logger.Warn("sync scheduler: assign", "job", j.GetId(), "node", node, "error", err)
			}
			continue
		}
		load[node]++
		s.cfg.Logger.Info("sync job assigned", "job", j.GetId(), "repository", j.GetRepository(),
			"node", node, "attempt", j.GetAttempt()+1, "previous_node", j.GetNode())
	}
	return nil
}

// leastLoaded returns the node with the fewest jobs, the lowest ID among
// equals.
func leastLoaded(load map[string]int) string {
	ids := make([]string, 0, len(load))
	for id := range load {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	best := ids[0]
	for _, id := range ids[1:] {
		if load[id] < load[best] {
			best = id
		}
	}
	return best
}
