package admin

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// syncService implements wharf.v1.SyncService: it requests, reads and
// cancels sync jobs; the nodes' sync workers run them.
type syncService struct {
	wharfv1connect.UnimplementedSyncServiceHandler
	cfg Config
}

// syncJobIDRE is the form of a job id (fsm.SyncJobID).
var syncJobIDRE = regexp.MustCompile(`^[0-9]{12}$`)

// checkJobID refuses what is not a job id in field.
func checkJobID(field, id string) error {
	if id == "" {
		return invalidArgument(field, errors.New("is required"))
	}
	if !syncJobIDRE.MatchString(id) {
		return invalidArgument(field, fmt.Errorf("must be a sync job id of 12 digits, got %q", id))
	}
	return nil
}

// syncJobMessage shows a job.
func syncJobMessage(j *fsmpb.SyncJob) *wharfv1.SyncJob {
	p := j.GetProgress()
	out := &wharfv1.SyncJob{
		Id: j.GetId(), Repository: j.GetRepository(), Remote: j.GetRemote(),
		Trigger: j.GetTrigger(), RequestedBy: j.GetRequestedBy(),
		State: wharfv1.SyncJobState(j.GetState()),
		Node:  j.GetNode(), Attempt: j.GetAttempt(),
		CreatedUnixNanos: j.GetCreatedUnixNanos(), StartedUnixNanos: j.GetStartedUnixNanos(),
		UpdatedUnixNanos: j.GetUpdatedUnixNanos(), FinishedUnixNanos: j.GetFinishedUnixNanos(),
		Progress: &wharfv1.SyncProgress{
			TagsTotal: p.GetTagsTotal(), TagsDone: p.GetTagsDone(), TagsUnchanged: p.GetTagsUnchanged(),
			TagsFailed: p.GetTagsFailed(), TagsDeleted: p.GetTagsDeleted(),
			ManifestsFetched: p.GetManifestsFetched(), BlobsFetched: p.GetBlobsFetched(),
			BytesFetched: p.GetBytesFetched(), UpstreamRequests: p.GetUpstreamRequests(),
		},
		Error: j.GetError(), CancelRequested: j.GetCancelRequested(), CancelledBy: j.GetCancelledBy(),
		DueUnixNanos: j.GetDueUnixNanos(),
	}
	for _, e := range j.GetTagErrors() {
		out.TagErrors = append(out.TagErrors, &wharfv1.SyncTagError{Tag: e.GetTag(), Error: e.GetError()})
	}
	return out
}

// request queues a manual job for mirror repo, or finds its active one.
func (s *syncService) request(ctx context.Context, c auth.Caller, repo string) (*wharfv1.SyncJob, error) {
	cmd := fsm.NewCommand(&fsmpb.RequestSync{Repository: repo, Trigger: fsm.SyncTriggerManual, RequestedBy: c.User})
	res, err := s.cfg.applyMirror(ctx, c, "sync.request", repo, cmd)
	if err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound {
			return nil, mirrorNotFound(repo, fsm.ErrNotFound)
		}
		return nil, err
	}
	return s.job(ctx, res.GetValue())
}

// job reads job id as the API shows it.
func (s *syncService) job(ctx context.Context, id string) (*wharfv1.SyncJob, error) {
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	j, err := f.SyncJob(id)
	if err != nil {
		return nil, stateError(err)
	}
	return syncJobMessage(j), nil
}

// SyncRepository queues a job for a mirrored repository.
func (s *syncService) SyncRepository(ctx context.Context, req *connect.Request[wharfv1.SyncRepositoryRequest]) (*connect.Response[wharfv1.SyncRepositoryResponse], error) {
	repo := req.Msg.Repository
	if err := checkRepository("repository", repo); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireSync(ctx, repo)
	if err != nil {
		return nil, err
	}
	j, err := s.request(ctx, c, repo)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.SyncRepositoryResponse{Job: j}), nil
}

// SyncRemote queues a job for every mirror of a remote.
func (s *syncService) SyncRemote(ctx context.Context, req *connect.Request[wharfv1.SyncRemoteRequest]) (*connect.Response[wharfv1.SyncRemoteResponse], error) {
	c, err := requireLogin(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.cfg.requireSuperuser(ctx, c, "syncing every mirror of a remote"); err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := remoteOf(f, "remote", req.Msg.Remote); err != nil {
		return nil, err
	}
	mirrors, err := f.MirrorsOfRemote(req.Msg.Remote)
	if err != nil {
		return nil, stateError(err)
	}
	out := &wharfv1.SyncRemoteResponse{}
	for _, m := range mirrors {
		j, err := s.request(ctx, c, m.GetRepository())
		if err != nil {
			return nil, fmt.Errorf("sync %s: %w", m.GetRepository(), err)
		}
		out.Jobs = append(out.Jobs, j)
	}
	return connect.NewResponse(out), nil
}

// requireSuperuser refuses callers that are not superusers, or act through
// an API token; what names the operation.
func (cfg Config) requireSuperuser(ctx context.Context, c auth.Caller, what string) error {
	if _, on := caller(ctx); !on {
		return nil
	}
	pr, err := cfg.Auth.Store.Principal(ctx, c.User)
	if err != nil {
		return stateError(err)
	}
	if c.Token != nil || pr.User == nil || !pr.User.GetSuperuser() {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("%s needs a superuser; user %q is not one%s", what, c.User, viaToken(c)))
	}
	return nil
}

// CancelSync cancels a job.
func (s *syncService) CancelSync(ctx context.Context, req *connect.Request[wharfv1.CancelSyncRequest]) (*connect.Response[wharfv1.CancelSyncResponse], error) {
	id := req.Msg.JobId
	if err := checkJobID("job_id", id); err != nil {
		return nil, err
	}
	if _, err := requireLogin(ctx); err != nil {
		return nil, err
	}
	j, err := s.job(ctx, id)
	if err != nil {
		return nil, err
	}
	c, err := s.cfg.requireSync(ctx, j.Repository)
	if err != nil {
		return nil, err
	}
	cmd := fsm.NewCommand(&fsmpb.CancelSyncJob{Id: id, CancelledBy: c.User})
	if _, err := s.cfg.applyMirror(ctx, c, "sync.cancel", j.Repository, cmd, "job", id); err != nil {
		return nil, err
	}
	if j, err = s.job(ctx, id); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.CancelSyncResponse{Job: j}), nil
}

// GetSyncJob describes one job.
func (s *syncService) GetSyncJob(ctx context.Context, req *connect.Request[wharfv1.GetSyncJobRequest]) (*connect.Response[wharfv1.GetSyncJobResponse], error) {
	id := req.Msg.JobId
	if err := checkJobID("job_id", id); err != nil {
		return nil, err
	}
	if _, err := requireLogin(ctx); err != nil {
		return nil, err
	}
	j, err := s.job(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, err := s.cfg.requireOn(ctx, auth.ActionPull, j.Repository); err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.GetSyncJobResponse{Job: j}), nil
}

// ListSyncJobs pages through the jobs the caller may see, newest first.
func (s *syncService) ListSyncJobs(ctx context.Context, req *connect.Request[wharfv1.ListSyncJobsRequest]) (*connect.Response[wharfv1.ListSyncJobsResponse], error) {
	m := req.Msg
	if _, err := requireLogin(ctx); err != nil {
		return nil, err
	}
	n, err := pageSize(m.PageSize)
	if err != nil {
		return nil, err
	}
	if m.Repository != "" {
		if err := checkRepository("repository", m.Repository); err != nil {
			return nil, err
		}
	}
	before := m.PageToken
	if before != "" && !syncJobIDRE.MatchString(before) {
		return nil, invalidArgument("page_token", errors.New("is not a token of this listing"))
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	next := func(before string) ([]*fsmpb.SyncJob, error) { return f.SyncJobs(m.Repository, before, n+1) }
	if m.ActiveOnly {
		active, err := f.ActiveSyncJobs()
		if err != nil {
			return nil, stateError(err)
		}
		var keep []*fsmpb.SyncJob // newest first (active is in id order), of the repository asked for
		for i := len(active) - 1; i >= 0; i-- {
			if j := active[i]; m.Repository == "" || j.GetRepository() == m.Repository {
				keep = append(keep, j)
			}
		}
		next = func(before string) ([]*fsmpb.SyncJob, error) {
			i := 0
			for before != "" && i < len(keep) && keep[i].GetId() >= before {
				i++
			}
			return keep[i:min(i+n+1, len(keep))], nil
		}
	}
	v := s.cfg.viewer(ctx, f)
	out := &wharfv1.ListSyncJobsResponse{}
	for {
		batch, err := next(before)
		if err != nil {
			return nil, stateError(err)
		}
		for _, j := range batch {
			before = j.GetId()
			ok, err := v.may(auth.ActionPull, j.GetRepository())
			if err != nil {
				return nil, stateError(err)
			}
			if !ok {
				continue
			}
			if len(out.Jobs) == n {
				out.NextPageToken = out.Jobs[n-1].Id
				return connect.NewResponse(out), nil
			}
			out.Jobs = append(out.Jobs, syncJobMessage(j))
		}
		if len(batch) <= n {
			return connect.NewResponse(out), nil
		}
	}
}
