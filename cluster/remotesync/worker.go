package remotesync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// The worker runs on every node: it runs the jobs the leader assigned to
// this node, reports their progress and their end through Raft, and stops
// a job that was cancelled or given to another node. Its reports carry the
// job's node and attempt, which the FSM checks, so a node that lost its
// job (it was thought dead) can no longer write into it.

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Sink is where synced content goes.
	Sink Sink
	// Secrets opens remotes' secrets.
	Secrets Secrets
	// Interval is how often the worker looks for its jobs in the index of
	// active jobs (default 250ms).
	Interval time.Duration
	// ReportEvery bounds how often progress is written (default 2s).
	ReportEvery time.Duration
	Logger      *slog.Logger
	// Registerer receives the worker's metrics; nil registers none.
	Registerer prometheus.Registerer
}

// Worker runs this node's sync jobs.
type Worker struct {
	c   Cluster
	cfg WorkerConfig

	mu      sync.Mutex
	running map[string]*runningJob // job ID -> its run
	wg      sync.WaitGroup
	metrics *workerMetrics
}

type runningJob struct {
	attempt int64
	cancel  context.CancelFunc
	// cancelled is set when the job was cancelled by a user, rather than
	// taken away.
	cancelled bool
}

// NewWorker returns a worker over c.
func NewWorker(c Cluster, cfg WorkerConfig) *Worker {
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.ReportEvery <= 0 {
		cfg.ReportEvery = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{c: c, cfg: cfg, running: map[string]*runningJob{}}
	w.metrics = newWorkerMetrics(cfg.Registerer, func() float64 { return float64(len(w.Running())) })
	return w
}

// Run looks for this node's jobs until ctx ends, then waits for the jobs
// it started to stop. A job stopped that way stays running in the FSM,
// on this node: when the node comes back it runs the job again (its
// content so far is kept, so it continues), and when it does not the
// leader gives the job to another node.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		w.poll(ctx)
		select {
		case <-ctx.Done():
			w.stopAll()
			w.wg.Wait()
			return
		case <-t.C:
		}
	}
}

// Running returns the IDs of the jobs this worker runs now.
func (w *Worker) Running() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.running))
	for id := range w.running {
		ids = append(ids, id)
	}
	return ids
}

func (w *Worker) stopAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.running {
		r.cancel()
	}
}

// poll starts the jobs assigned to this node that do not run here, and
// stops those that were cancelled or are no longer this node's.
func (w *Worker) poll(ctx context.Context) {
	jobs, err := w.c.State().ActiveSyncJobs()
	if err != nil {
		w.cfg.Logger.Warn("sync worker: read jobs", "error", err)
		return
	}
	me := w.c.NodeID()
	mine := map[string]*fsmpb.SyncJob{}
	for _, j := range jobs {
		if j.GetState() == fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING && j.GetNode() == me {
			mine[j.GetId()] = j
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, r := range w.running {
		j, ok := mine[id]
		switch {
		case !ok || j.GetAttempt() != r.attempt:
			r.cancel() // finished elsewhere, or given to another node
		case j.GetCancelRequested() && !r.cancelled:
			r.cancelled = true
			r.cancel()
		}
	}
	for id, j := range mine {
		if _, ok := w.running[id]; ok || ctx.Err() != nil {
			continue
		}
		jctx, cancel := context.WithCancel(ctx)
		r := &runningJob{attempt: j.GetAttempt(), cancel: cancel, cancelled: j.GetCancelRequested()}
		w.running[id] = r
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer cancel()
			w.runJob(jctx, ctx, j, r)
			w.mu.Lock()
			if w.running[id] == r {
				delete(w.running, id)
			}
			w.mu.Unlock()
		}()
	}
}

// runJob runs job j and records its end, unless the worker is stopping
// (ctx ended) or the job was taken away.
func (w *Worker) runJob(jctx, ctx context.Context, j *fsmpb.SyncJob, r *runningJob) {
	log := w.cfg.Logger.With("job", j.GetId(), "repository", j.GetRepository(), "attempt", j.GetAttempt())
	log.Info("sync job started")
	if r.cancelled {
		w.finish(ctx, j, fsmpb.SyncJobState_SYNC_JOB_STATE_CANCELLED, nil, nil, "cancelled")
		return
	}
	progress, tagErrs, err := w.sync(jctx, j, log)
	w.mu.Lock()
	cancelled := r.cancelled
	w.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		log.Info("sync job interrupted: the node is stopping; it resumes when the node returns or on another node")
		return
	case cancelled:
		w.finish(ctx, j, fsmpb.SyncJobState_SYNC_JOB_STATE_CANCELLED, progress, tagErrs, "cancelled")
	case jctx.Err() != nil:
		log.Info("sync job stopped: it is no longer this node's")
		return
	case err != nil:
		w.finish(ctx, j, fsmpb.SyncJobState_SYNC_JOB_STATE_FAILED, progress, tagErrs, err.Error())
	case progress.GetTagsFailed() > 0:
		w.finish(ctx, j, fsmpb.SyncJobState_SYNC_JOB_STATE_PARTIAL, progress, tagErrs, "")
	default:
		w.finish(ctx, j, fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, progress, tagErrs, "")
	}
}

// sync prepares the upstream of job j and runs it, reporting progress.
func (w *Worker) sync(ctx context.Context, j *fsmpb.SyncJob, log *slog.Logger) (*fsmpb.SyncProgress, []*fsmpb.SyncTagError, error) {
	state := w.c.State()
	m, err := state.Mirror(j.GetRepository())
	if err != nil {
		return nil, nil, fmt.Errorf("mirror %s: %w", j.GetRepository(), err)
	}
	remote, err := state.Remote(m.GetRemote())
	if err != nil {
		return nil, nil, fmt.Errorf("remote %s: %w", m.GetRemote(), err)
	}
	password, clientKey, proxyPassword, err := w.cfg.Secrets(remote)
	if err != nil {
		return nil, nil, fmt.Errorf("open the secrets of remote %s: %w", remote.GetName(), err)
	}
	t, err := TransportFor(remote, password, clientKey, proxyPassword)
	if err != nil {
		return nil, nil, fmt.Errorf("remote %s: %w", remote.GetName(), err)
	}
	defer t.CloseIdleConnections()
	up := UpstreamFor(remote, password, t, nodesSharing(state, remote.GetName(), w.c.NodeID()))
	syncer, err := NewSyncer(up, w.cfg.Sink, log)
	if err != nil {
		return nil, nil, err
	}
	job := Job{
		Repository: m.GetRepository(), Upstream: m.GetUpstream(),
		Include: m.GetIncludeTags(), Exclude: m.GetExcludeTags(),
		Platforms: m.GetPlatforms(), MirrorMode: m.GetMirrorMode(),
	}
	var lastReport time.Time
	var pending []*fsmpb.SyncTagError
	report := func(p *fsmpb.SyncProgress, fresh []*fsmpb.SyncTagError) {
		pending = append(pending, fresh...)
		if time.Since(lastReport) < w.cfg.ReportEvery {
			return
		}
		lastReport = time.Now()
		cmd := fsm.NewCommand(&fsmpb.SyncJobProgress{
			Id: j.GetId(), Node: w.c.NodeID(), Attempt: j.GetAttempt(), Progress: p, TagErrors: pending,
		})
		if _, err := w.c.Apply(ctx, cmd); err != nil {
			if ctx.Err() == nil {
				log.Warn("sync job: report progress", "error", err)
			}
			return
		}
		pending = nil
	}
	p, tagErrs, err := syncer.Sync(ctx, job, report)
	w.metrics.bytes.Add(float64(p.GetBytesFetched()))
	w.metrics.blobs.Add(float64(p.GetBlobsFetched()))
	w.metrics.requests.Add(float64(p.GetUpstreamRequests()))
	return p, tagErrs, err
}

// nodesSharing counts the nodes that run jobs of remote now, this one
// included: the remote's rate limit is divided between them.
func nodesSharing(state *fsm.FSM, remote, me string) int {
	jobs, err := state.ActiveSyncJobs()
	if err != nil {
		return 1
	}
	nodes := map[string]bool{me: true}
	for _, j := range jobs {
		if j.GetRemote() == remote && j.GetState() == fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING && j.GetNode() != "" {
			nodes[j.GetNode()] = true
		}
	}
	return len(nodes)
}

// maxJobError bounds the error text a job records.
const maxJobError = 4 << 10

// finish records the end of job j, retrying while the cluster has no
// leader; it gives up when ctx ends (the job then runs again).
func (w *Worker) finish(ctx context.Context, j *fsmpb.SyncJob, state fsmpb.SyncJobState, p *fsmpb.SyncProgress, tagErrs []*fsmpb.SyncTagError, msg string) {
	if len(msg) > maxJobError {
		msg = strings.ToValidUTF8(msg[:maxJobError], "")
	}
	cmd := fsm.NewCommand(&fsmpb.FinishSyncJob{
		Id: j.GetId(), Node: w.c.NodeID(), Attempt: j.GetAttempt(),
		State: state, Progress: p, TagErrors: tagErrs, Error: msg,
	})
	for delay := 200 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		_, err := w.c.Apply(ctx, cmd)
		if err == nil {
			w.metrics.finished.WithLabelValues(strings.ToLower(strings.TrimPrefix(state.String(), "SYNC_JOB_STATE_"))).Inc()
			w.cfg.Logger.Info("sync job finished", "job", j.GetId(), "repository", j.GetRepository(),
				"state", state.String(), "tags_done", p.GetTagsDone(), "tags_unchanged", p.GetTagsUnchanged(),
				"tags_failed", p.GetTagsFailed(), "bytes", p.GetBytesFetched(), "error", msg)
			return
		}
		if errors.Is(err, fsm.ErrFailedPrecondition) || errors.Is(err, fsm.ErrNotFound) {
			return // no longer this node's job
		}
		w.cfg.Logger.Warn("sync job: record its end", "job", j.GetId(), "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}
