package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// mirrorService implements wharf.v1.MirrorService: mirrored repositories.
// Changing one needs the right to manage its namespace, reading one pull
// on it.
type mirrorService struct {
	wharfv1connect.UnimplementedMirrorServiceHandler
	cfg Config
}

// mirrorFieldError turns a refusal of fsm.CheckMirror (or of a validator
// of its fields) into invalid_argument naming the API's field.
func mirrorFieldError(err error) error {
	fe, ok := fsm.AsFieldError(err)
	if !ok {
		return stateError(err)
	}
	return invalidArgument(fe.Field, errors.New(fe.Rule))
}

// mirrorStateError maps the FSM's refusals of mirror commands: a mirrored
// repository refuses what would change its content.
func mirrorStateError(err error) error {
	if errors.Is(err, fsm.ErrMirroredRepository) {
		return connect.NewError(connect.CodeFailedPrecondition, err)
	}
	if _, ok := fsm.AsFieldError(err); ok {
		return mirrorFieldError(err)
	}
	return stateError(err)
}

// applyMirror commits a mirror command and writes its audit line.
func (cfg Config) applyMirror(ctx context.Context, c auth.Caller, event, target string, cmd *fsmpb.Command, args ...any) (*fsmpb.Result, error) {
	res, err := cfg.Apply(ctx, cmd)
	if err != nil {
		return nil, mirrorStateError(err)
	}
	auth.Audit(cfg.log(), event, c.User, target, args...)
	return res, nil
}

// requireManageNamespace refuses callers that may not manage the namespace
// of repo: its owners and superusers may (they hold manage_roles on it);
// for a namespace that does not exist yet, whoever may create it by
// pushing.
func (cfg Config) requireManageNamespace(ctx context.Context, repo string) (auth.Caller, error) {
	c, err := requireLogin(ctx)
	if _, on := caller(ctx); err != nil || !on {
		return c, err
	}
	st, err := cfg.Auth.Store.Access(ctx, c.User, repo)
	if err != nil {
		return c, stateError(err)
	}
	a := auth.ActionManageRoles
	if !st.NamespaceExists {
		a = auth.ActionPush // needs create_namespace
	}
	if !auth.Decide(c, a, repo, st) {
		return c, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("user %q may not manage namespace %q, so not its mirrors%s", c.User, st.Namespace, viaToken(c)))
	}
	return c, nil
}

// requireSync refuses callers that may neither push to repo nor manage its
// namespace.
func (cfg Config) requireSync(ctx context.Context, repo string) (auth.Caller, error) {
	c, err := requireLogin(ctx)
	if _, on := caller(ctx); err != nil || !on {
		return c, err
	}
	st, err := cfg.Auth.Store.Access(ctx, c.User, repo)
	if err != nil {
		return c, stateError(err)
	}
	if !auth.Decide(c, auth.ActionPush, repo, st) && !auth.Decide(c, auth.ActionManageRoles, repo, st) {
		return c, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("user %q may not push to %q, so not sync it%s", c.User, repo, viaToken(c)))
	}
	return c, nil
}

// remoteOf reads the remote a mirror names: not_found naming it.
func remoteOf(f *fsm.FSM, field, name string) (*fsmpb.Remote, error) {
	if name == "" {
		return nil, invalidArgument(field, errors.New("is required"))
	}
	if err := fsm.ValidateRemoteName(name); err != nil {
		fe, _ := fsm.AsFieldError(err)
		return nil, invalidArgument(field, errors.New(fe.Rule))
	}
	r, err := f.Remote(name)
	if errors.Is(err, fsm.ErrNotFound) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("%s: remote registry %q does not exist (see wharf remote ls)", field, name))
	}
	if err != nil {
		return nil, stateError(err)
	}
	return r, nil
}

// CreateMirror stores a new mirrored repository.
func (s *mirrorService) CreateMirror(ctx context.Context, req *connect.Request[wharfv1.CreateMirrorRequest]) (*connect.Response[wharfv1.CreateMirrorResponse], error) {
	m := req.Msg
	if err := checkRepository("repository", m.Repository); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireManageNamespace(ctx, m.Repository)
	if err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	remote, err := remoteOf(f, "remote", m.Remote)
	if err != nil {
		return nil, err
	}
	if m.Upstream == "" {
		return nil, invalidArgument("upstream", errors.New("is required: the repository at the remote, such as library/nginx"))
	}
	rec := &fsmpb.Mirror{
		Repository: m.Repository, Remote: m.Remote,
		Upstream:    fsm.NormalizeUpstream(remote.GetUrl(), m.Upstream),
		IncludeTags: m.IncludeTags, ExcludeTags: m.ExcludeTags, Platforms: m.Platforms,
		Schedule: m.Schedule, MirrorMode: m.MirrorMode == nil || *m.MirrorMode, AllowPush: m.AllowPush,
		CreatedBy: c.User, UpdatedBy: c.User,
	}
	if err := fsm.CheckMirror(rec); err != nil {
		return nil, mirrorFieldError(err)
	}
	cmd := fsm.NewCommand(&fsmpb.CreateMirror{Mirror: rec})
	if _, err := s.cfg.applyMirror(ctx, c, "mirror.create", rec.Repository, cmd,
		"remote", rec.Remote, "upstream", rec.Upstream, "schedule", rec.Schedule); err != nil {
		return nil, err
	}
	out, err := s.describe(ctx, rec.Repository)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.CreateMirrorResponse{Mirror: out}), nil
}

// describe reads mirror repo as the API shows it.
func (s *mirrorService) describe(ctx context.Context, repo string) (*wharfv1.Mirror, error) {
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := f.Mirror(repo)
	if err != nil {
		return nil, mirrorNotFound(repo, err)
	}
	return mirrorMessage(f, rec)
}

// mirrorNotFound says which repository is no mirror.
func mirrorNotFound(repo string, err error) error {
	if errors.Is(err, fsm.ErrNotFound) {
		return connect.NewError(connect.CodeNotFound, fmt.Errorf("repository %q is not a mirror (see wharf mirror ls)", repo))
	}
	return stateError(err)
}

// mirrorMessage shows a record with its next run and its jobs.
func mirrorMessage(f *fsm.FSM, r *fsmpb.Mirror) (*wharfv1.Mirror, error) {
	out := &wharfv1.Mirror{
		Repository: r.GetRepository(), Remote: r.GetRemote(), Upstream: r.GetUpstream(),
		IncludeTags: r.GetIncludeTags(), ExcludeTags: r.GetExcludeTags(), Platforms: r.GetPlatforms(),
		Schedule: r.GetSchedule(), MirrorMode: r.GetMirrorMode(), AllowPush: r.GetAllowPush(),
		CreatedUnixNanos: r.GetCreatedUnixNanos(), UpdatedUnixNanos: r.GetUpdatedUnixNanos(),
		CreatedBy: r.GetCreatedBy(), UpdatedBy: r.GetUpdatedBy(),
		LastScheduledUnixNanos: r.GetLastScheduledUnixNanos(),
		ActiveJobId:            r.GetActiveJobId(),
	}
	if r.GetSchedule() != "" {
		after := r.GetLastScheduledUnixNanos()
		if after == 0 {
			after = r.GetCreatedUnixNanos()
		}
		if next, ok := fsm.NextScheduledRun(r.GetSchedule(), time.Unix(0, after).UTC()); ok {
			out.NextRunUnixNanos = next.UnixNano()
		}
	}
	if id := r.GetLastJobId(); id != "" {
		j, err := f.SyncJob(id)
		switch {
		case err == nil:
			out.LastJob = &wharfv1.SyncJobSummary{
				Id: j.GetId(), State: wharfv1.SyncJobState(j.GetState()),
				FinishedUnixNanos: j.GetFinishedUnixNanos(), Error: j.GetError(),
			}
		case !errors.Is(err, fsm.ErrNotFound):
			return nil, stateError(err)
		}
	}
	return out, nil
}

// GetMirror describes one mirrored repository.
func (s *mirrorService) GetMirror(ctx context.Context, req *connect.Request[wharfv1.GetMirrorRequest]) (*connect.Response[wharfv1.GetMirrorResponse], error) {
	repo := req.Msg.Repository
	if err := checkRepository("repository", repo); err != nil {
		return nil, err
	}
	if _, err := s.cfg.requireOn(ctx, auth.ActionPull, repo); err != nil {
		return nil, err
	}
	out, err := s.describe(ctx, repo)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.GetMirrorResponse{Mirror: out}), nil
}

// ListMirrors pages through the mirrors the caller may pull, in name
// order.
func (s *mirrorService) ListMirrors(ctx context.Context, req *connect.Request[wharfv1.ListMirrorsRequest]) (*connect.Response[wharfv1.ListMirrorsResponse], error) {
	if _, err := requireLogin(ctx); err != nil {
		return nil, err
	}
	n, err := pageSize(req.Msg.PageSize)
	if err != nil {
		return nil, err
	}
	last := req.Msg.PageToken
	if last != "" && fsm.ValidateRepositoryName(last) != nil {
		return nil, invalidArgument("page_token", errors.New("is not a token of this listing"))
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	// next returns the mirrors after last, a batch at a time.
	next := func(last string) ([]*fsmpb.Mirror, error) { return f.Mirrors(last, n+1) }
	if r := req.Msg.Remote; r != "" {
		if _, err := remoteOf(f, "remote", r); err != nil {
			return nil, err
		}
		all, err := f.MirrorsOfRemote(r)
		if err != nil {
			return nil, stateError(err)
		}
		slices.SortFunc(all, func(a, b *fsmpb.Mirror) int { return strings.Compare(a.GetRepository(), b.GetRepository()) })
		next = func(last string) ([]*fsmpb.Mirror, error) {
			i, _ := slices.BinarySearchFunc(all, last, func(m *fsmpb.Mirror, s string) int {
				if m.GetRepository() <= s {
					return -1
				}
				return 1
			})
			return all[i:min(i+n+1, len(all))], nil
		}
	}
	v := s.cfg.viewer(ctx, f)
	out := &wharfv1.ListMirrorsResponse{}
	for {
		batch, err := next(last)
		if err != nil {
			return nil, stateError(err)
		}
		for _, rec := range batch {
			last = rec.GetRepository()
			ok, err := v.may(auth.ActionPull, last)
			if err != nil {
				return nil, stateError(err)
			}
			if !ok {
				continue
			}
			if len(out.Mirrors) == n {
				out.NextPageToken = out.Mirrors[n-1].Repository
				return connect.NewResponse(out), nil
			}
			msg, err := mirrorMessage(f, rec)
			if err != nil {
				return nil, err
			}
			out.Mirrors = append(out.Mirrors, msg)
		}
		if len(batch) <= n {
			return connect.NewResponse(out), nil
		}
	}
}

// UpdateMirror changes the fields a request sets.
func (s *mirrorService) UpdateMirror(ctx context.Context, req *connect.Request[wharfv1.UpdateMirrorRequest]) (*connect.Response[wharfv1.UpdateMirrorResponse], error) {
	m := req.Msg
	if err := checkRepository("repository", m.Repository); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireManageNamespace(ctx, m.Repository)
	if err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	old, err := f.Mirror(m.Repository)
	if err != nil {
		return nil, mirrorNotFound(m.Repository, err)
	}
	op := &fsmpb.UpdateMirror{
		Repository: m.Repository, Remote: m.Remote,
		SetIncludeTags: m.SetIncludeTags, IncludeTags: m.IncludeTags,
		SetExcludeTags: m.SetExcludeTags, ExcludeTags: m.ExcludeTags,
		SetPlatforms: m.SetPlatforms, Platforms: m.Platforms,
		Schedule: m.Schedule, MirrorMode: m.MirrorMode, AllowPush: m.AllowPush,
	}
	next := applyMirrorUpdate(old, op)
	if m.Remote != nil || m.Upstream != nil {
		remote, err := remoteOf(f, "remote", next.GetRemote())
		if err != nil {
			return nil, err
		}
		up := m.GetUpstream()
		if m.Upstream == nil {
			up = old.GetUpstream()
		} else if up == "" {
			return nil, invalidArgument("upstream", errors.New("must not be empty"))
		}
		up = fsm.NormalizeUpstream(remote.GetUrl(), up)
		op.Upstream, next.Upstream = &up, up
	}
	if err := fsm.CheckMirror(next); err != nil {
		return nil, mirrorFieldError(err)
	}
	var changed []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"remote", op.Remote != nil}, {"upstream", op.Upstream != nil},
		{"include_tags", op.SetIncludeTags}, {"exclude_tags", op.SetExcludeTags}, {"platforms", op.SetPlatforms},
		{"schedule", op.Schedule != nil}, {"mirror_mode", op.MirrorMode != nil}, {"allow_push", op.AllowPush != nil},
	} {
		if f.set {
			changed = append(changed, f.name)
		}
	}
	if len(changed) == 0 {
		return nil, invalidArgument("repository", errors.New("the request changes nothing: set at least one field"))
	}
	if _, err := s.cfg.applyMirror(ctx, c, "mirror.update", m.Repository, fsm.NewCommand(op), "fields", strings.Join(changed, ",")); err != nil {
		return nil, err
	}
	out, err := s.describe(ctx, m.Repository)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&wharfv1.UpdateMirrorResponse{Mirror: out}), nil
}

// DeleteMirror ends the mirroring of a repository.
func (s *mirrorService) DeleteMirror(ctx context.Context, req *connect.Request[wharfv1.DeleteMirrorRequest]) (*connect.Response[wharfv1.DeleteMirrorResponse], error) {
	repo := req.Msg.Repository
	if err := checkRepository("repository", repo); err != nil {
		return nil, err
	}
	c, err := s.cfg.requireManageNamespace(ctx, repo)
	if err != nil {
		return nil, err
	}
	if _, err := s.cfg.applyMirror(ctx, c, "mirror.delete", repo, fsm.NewCommand(&fsmpb.DeleteMirror{Repository: repo})); err != nil {
		if connect.CodeOf(err) == connect.CodeNotFound {
			return nil, mirrorNotFound(repo, fsm.ErrNotFound)
		}
		return nil, err
	}
	return connect.NewResponse(&wharfv1.DeleteMirrorResponse{}), nil
}

// applyMirrorUpdate returns old with op's changes, to check them before
// they are proposed.
func applyMirrorUpdate(old *fsmpb.Mirror, op *fsmpb.UpdateMirror) *fsmpb.Mirror {
	next := proto.Clone(old).(*fsmpb.Mirror)
	if op.Remote != nil {
		next.Remote = op.GetRemote()
	}
	if op.Upstream != nil {
		next.Upstream = op.GetUpstream()
	}
	if op.SetIncludeTags {
		next.IncludeTags = op.IncludeTags
	}
	if op.SetExcludeTags {
		next.ExcludeTags = op.ExcludeTags
	}
	if op.SetPlatforms {
		next.Platforms = op.Platforms
	}
	if op.Schedule != nil {
		next.Schedule = op.GetSchedule()
	}
	if op.MirrorMode != nil {
		next.MirrorMode = op.GetMirrorMode()
	}
	if op.AllowPush != nil {
		next.AllowPush = op.GetAllowPush()
	}
	return next
}

// repositoryOrigin says where a repository's content comes from: "" for a
// pushed one, "mirror of REMOTE/UPSTREAM" for a mirrored one.
func repositoryOrigin(f *fsm.FSM, repo string) (string, bool, error) {
	m, err := f.Mirror(repo)
	switch {
	case errors.Is(err, fsm.ErrNotFound):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	return "mirror of " + m.GetRemote() + "/" + m.GetUpstream(), true, nil
}
