package fsm

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/cockroachdb/pebble"
	"github.com/robfig/cron/v3"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Mirrored repositories and their sync jobs (issue 14).
//
//	mirror/<repository>                      fsmpb.Mirror
//	mirror-remote/<remote>\x00<repository>   empty; the mirrors of a remote
//	syncjob/<id>                             fsmpb.SyncJob
//	syncjob-repo/<repository>\x00<id>        empty; the jobs of a repository, in id order
//	syncjob-active/<id>                      empty; the queued and running jobs
//	m/syncjob-seq                            last assigned job number, 8 bytes big endian
//
// A job's id is its number, zero-padded to 12 digits, so that ids sort in
// creation order in every index.
const (
	prefixMirror        = "mirror/"
	prefixMirrorRemote  = "mirror-remote/"
	prefixSyncJob       = "syncjob/"
	prefixSyncJobRepo   = "syncjob-repo/"
	prefixSyncJobActive = "syncjob-active/"
)

var keySyncJobSeq = []byte("m/syncjob-seq")

func mirrorKey(repo string) []byte               { return key(prefixMirror, repo) }
func mirrorRemoteKey(remote, repo string) []byte { return key(prefixMirrorRemote, remote, repo) }
func mirrorRemotePrefix(remote string) []byte    { return key(prefixMirrorRemote, remote, "") }
func syncJobKey(id string) []byte                { return key(prefixSyncJob, id) }
func syncJobRepoKey(repo, id string) []byte      { return key(prefixSyncJobRepo, repo, id) }
func syncJobRepoPrefix(repo string) []byte       { return key(prefixSyncJobRepo, repo, "") }
func syncJobActiveKey(id string) []byte          { return key(prefixSyncJobActive, id) }

// Bounds of a mirror's settings and of a job's record.
const (
	// MaxMirrorListEntries bounds include_tags, exclude_tags and platforms.
	MaxMirrorListEntries = 100
	// MaxMirrorEntryBytes bounds each entry of those lists.
	MaxMirrorEntryBytes = 128
	// MinScheduleInterval is the shortest interval schedule.
	MinScheduleInterval = time.Minute
	// MaxSyncTagErrors bounds a job's tag_errors.
	MaxSyncTagErrors = 100
	// MaxSyncErrorBytes bounds a job's error text and each tag error.
	MaxSyncErrorBytes = 4 << 10
	// SyncJobRetention is how many finished jobs of a repository are kept.
	SyncJobRetention = 50
	// syncJobIDDigits is the width of a job id.
	syncJobIDDigits = 12
)

// Triggers of a sync job.
const (
	SyncTriggerManual   = "manual"
	SyncTriggerSchedule = "schedule"
)

var (
	tagGlobRE  = regexp.MustCompile(`^[A-Za-z0-9_.*?-]{1,128}$`)
	digestRE   = regexp.MustCompile(`^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
	platformRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)?$`)
	syncJobRE  = regexp.MustCompile(`^[0-9]{12}$`)
)

// ValidateTagPattern checks a tag filter: a glob of tag characters with '*'
// and '?', at most 128 bytes, or a digest.
func ValidateTagPattern(p string) error {
	if digestRE.MatchString(p) || tagGlobRE.MatchString(p) {
		return nil
	}
	return fmt.Errorf("%w: invalid tag pattern %q: use 1 to 128 of A-Z, a-z, 0-9, '_', '.', '-', '*' and '?', or a digest sha256:<64 hex>", ErrInvalid, p)
}

// cronParser reads five-field expressions and descriptors (@daily, @every 6h).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// parseSchedule returns the interval of an interval schedule, or the cron
// schedule of any other; an error for an invalid one.
func parseSchedule(s string) (time.Duration, cron.Schedule, error) {
	if s == "" {
		return 0, nil, fmt.Errorf("no schedule")
	}
	if iv, ok := strings.CutPrefix(s, "@every "); ok {
		s = strings.TrimSpace(iv)
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < MinScheduleInterval {
			return 0, nil, fmt.Errorf("interval %v is shorter than %v", d, MinScheduleInterval)
		}
		return d, nil, nil
	}
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return 0, nil, fmt.Errorf("schedules are evaluated in UTC: no time zone")
	}
	sched, err := cronParser.Parse(s)
	if err != nil {
		return 0, nil, err
	}
	return 0, sched, nil
}

// ValidateSchedule checks a mirror's schedule: empty (manual only), an
// interval of at least a minute ("30m", "@every 6h"), a five-field cron
// expression or a descriptor such as "@daily", evaluated in UTC.
func ValidateSchedule(s string) error {
	if s == "" {
		return nil
	}
	if len(s) > MaxMirrorEntryBytes {
		return fieldError("schedule", "must be at most %d bytes", MaxMirrorEntryBytes)
	}
	if _, _, err := parseSchedule(s); err != nil {
		return fieldError("schedule", "must be an interval of at least %v (\"30m\", \"6h\"), a five-field cron expression or a descriptor such as \"@daily\": %v", MinScheduleInterval, err)
	}
	return nil
}

// NextScheduledRun returns the first run of schedule strictly after after,
// in UTC; false for an empty or invalid schedule.
func NextScheduledRun(schedule string, after time.Time) (time.Time, bool) {
	if schedule == "" {
		return time.Time{}, false
	}
	iv, sched, err := parseSchedule(schedule)
	if err != nil {
		return time.Time{}, false
	}
	after = after.UTC()
	if sched == nil {
		return after.Add(iv), true
	}
	next := sched.Next(after)
	if next.IsZero() {
		return time.Time{}, false
	}
	return next.UTC(), true
}

// NormalizeUpstream returns upstream as the remote at remoteURL names it:
// Docker Hub's official images live under library/.
func NormalizeUpstream(remoteURL, upstream string) string {
	u, err := url.Parse(remoteURL)
	if err != nil || strings.Contains(upstream, "/") {
		return upstream
	}
	switch strings.ToLower(u.Hostname()) {
	case "docker.io", "registry-1.docker.io", "index.docker.io":
		return "library/" + upstream
	}
	return upstream
}

// SyncJobActive reports whether a job in state s is queued or running.
func SyncJobActive(s fsmpb.SyncJobState) bool {
	return s == fsmpb.SyncJobState_SYNC_JOB_STATE_QUEUED || s == fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING
}

func syncJobFinished(s fsmpb.SyncJobState) bool {
	switch s {
	case fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, fsmpb.SyncJobState_SYNC_JOB_STATE_PARTIAL,
		fsmpb.SyncJobState_SYNC_JOB_STATE_FAILED, fsmpb.SyncJobState_SYNC_JOB_STATE_CANCELLED:
		return true
	}
	return false
}

func validateMirrorList(field string, list []string, check func(string) error) error {
	if len(list) > MaxMirrorListEntries {
		return fieldError(field, "must have at most %d entries, got %d", MaxMirrorListEntries, len(list))
	}
	for i, e := range list {
		if len(e) > MaxMirrorEntryBytes {
			return fieldError(field, "entry %d must be at most %d bytes", i, MaxMirrorEntryBytes)
		}
		if err := check(e); err != nil {
			return fieldError(field, "entry %d: %s", i, ruleOf(err))
		}
	}
	return nil
}

func validatePlatform(p string) error {
	if !platformRE.MatchString(p) {
		return fmt.Errorf("%w: invalid platform %q: use lowercase os/arch or os/arch/variant, such as linux/arm64/v8", ErrInvalid, p)
	}
	return nil
}

// CheckMirror checks a mirrored repository's record as it would be
// stored; the error is a *FieldError.
func CheckMirror(m *fsmpb.Mirror) error {
	if err := ValidateRepositoryName(m.GetRepository()); err != nil {
		return fieldError("repository", "%s", ruleOf(err))
	}
	if err := ValidateRemoteName(m.GetRemote()); err != nil {
		fe, _ := AsFieldError(err)
		return fieldError("remote", "%s", fe.Rule)
	}
	if m.GetUpstream() == "" {
		return fieldError("upstream", "is required: the repository at the remote, such as library/alpine")
	}
	if err := ValidateRepositoryName(m.GetUpstream()); err != nil {
		return fieldError("upstream", "%s", ruleOf(err))
	}
	if err := validateMirrorList("include_tags", m.GetIncludeTags(), ValidateTagPattern); err != nil {
		return err
	}
	if err := validateMirrorList("exclude_tags", m.GetExcludeTags(), ValidateTagPattern); err != nil {
		return err
	}
	if err := validateMirrorList("platforms", m.GetPlatforms(), validatePlatform); err != nil {
		return err
	}
	return ValidateSchedule(m.GetSchedule())
}

// SyncJobID formats job number n as its id.
func SyncJobID(n uint64) string { return fmt.Sprintf("%0*d", syncJobIDDigits, n) }

func validateSyncJobID(id string) *fsmpb.Result {
	if !syncJobRE.MatchString(id) {
		return invalid("id: must be a sync job id of %d digits, got %q", syncJobIDDigits, id)
	}
	return nil
}

// --- reads ---

// Mirror returns the mirror of repository repo.
func (f *FSM) Mirror(repo string) (*fsmpb.Mirror, error) {
	if err := ValidateRepositoryName(repo); err != nil {
		return nil, err
	}
	var rec fsmpb.Mirror
	if err := f.getRecord(mirrorKey(repo), &rec, "mirror of %q", repo); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Mirrors returns up to n mirrors in repository name order, starting
// after the repository last ("" from the first).
func (f *FSM) Mirrors(last string, n int) ([]*fsmpb.Mirror, error) {
	lower := []byte(prefixMirror)
	if last != "" {
		lower = after(mirrorKey(last))
	}
	var out []*fsmpb.Mirror
	err := f.view(func(r pebble.Reader) error {
		return scan(r, lower, prefixEnd([]byte(prefixMirror)), func(k, v []byte) (bool, error) {
			if len(out) >= n {
				return false, nil
			}
			var rec fsmpb.Mirror
			if err := unmarshalRecord(k, v, &rec); err != nil {
				return false, err
			}
			out = append(out, &rec)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list mirrors: %w", err)
	}
	return out, nil
}

// MirrorsOfRemote returns the mirrors that read from remote, in
// repository name order.
func (f *FSM) MirrorsOfRemote(remote string) ([]*fsmpb.Mirror, error) {
	if err := ValidateRemoteName(remote); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var out []*fsmpb.Mirror
	err := f.view(func(r pebble.Reader) error {
		repos, err := suffixes(r, mirrorRemotePrefix(remote))
		if err != nil {
			return err
		}
		for _, repo := range repos {
			var rec fsmpb.Mirror
			found, err := getProto(r, mirrorKey(repo), &rec)
			if err != nil {
				return err
			}
			if found {
				out = append(out, &rec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list mirrors of remote %q: %w", remote, err)
	}
	return out, nil
}

// SyncJob returns sync job id.
func (f *FSM) SyncJob(id string) (*fsmpb.SyncJob, error) {
	if res := validateSyncJobID(id); res != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, res.GetMessage())
	}
	var rec fsmpb.SyncJob
	if err := f.getRecord(syncJobKey(id), &rec, "sync job %s", id); err != nil {
		return nil, err
	}
	return &rec, nil
}

// SyncJobs returns up to n sync jobs, newest first, whose ids sort before
// before ("" from the newest): those of repository repo, or of every
// repository for "".
func (f *FSM) SyncJobs(repo, before string, n int) ([]*fsmpb.SyncJob, error) {
	prefix := []byte(prefixSyncJob)
	if repo != "" {
		if err := ValidateRepositoryName(repo); err != nil {
			return nil, err
		}
		prefix = syncJobRepoPrefix(repo)
	}
	upper := prefixEnd(prefix)
	if before != "" {
		upper = append(append([]byte(nil), prefix...), before...)
	}
	var out []*fsmpb.SyncJob
	err := f.view(func(r pebble.Reader) error {
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
		if err != nil {
			return fmt.Errorf("iterate %q: %w", prefix, err)
		}
		defer it.Close()
		for ok := it.Last(); ok && len(out) < n; ok = it.Prev() {
			var rec fsmpb.SyncJob
			if repo == "" {
				if err := unmarshalRecord(it.Key(), it.Value(), &rec); err != nil {
					return err
				}
			} else {
				id := string(it.Key()[len(prefix):])
				found, err := getProto(r, syncJobKey(id), &rec)
				if err != nil {
					return err
				}
				if !found {
					continue
				}
			}
			out = append(out, &rec)
		}
		return it.Error()
	})
	if err != nil {
		return nil, fmt.Errorf("list sync jobs of %q before %q: %w", repo, before, err)
	}
	return out, nil
}

// ActiveSyncJobs returns the queued and running sync jobs in id order.
func (f *FSM) ActiveSyncJobs() ([]*fsmpb.SyncJob, error) {
	var out []*fsmpb.SyncJob
	err := f.view(func(r pebble.Reader) error {
		ids, err := suffixes(r, []byte(prefixSyncJobActive))
		if err != nil {
			return err
		}
		for _, id := range ids {
			var rec fsmpb.SyncJob
			found, err := getProto(r, syncJobKey(id), &rec)
			if err != nil {
				return err
			}
			if found {
				out = append(out, &rec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list active sync jobs: %w", err)
	}
	return out, nil
}

// CheckPushable returns an error wrapping ErrMirroredRepository when repo
// is a mirror that takes no pushes, nil otherwise. It writes nothing.
func (f *FSM) CheckPushable(repo string) error {
	var res *fsmpb.Result
	err := f.view(func(r pebble.Reader) (err error) {
		res, err = refuseMirrored(r, repo, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("check whether %q takes pushes: %w", repo, err)
	}
	return ResultError(res)
}

// refuseMirrored returns a MIRRORED result when repo is a mirror that
// takes no pushes and the write is not a sync's.
func refuseMirrored(r pebble.Reader, repo string, synced bool) (*fsmpb.Result, error) {
	if synced {
		return nil, nil
	}
	if res, err := refuseCached(r, repo); res != nil || err != nil {
		return res, err
	}
	var m fsmpb.Mirror
	found, err := getProto(r, mirrorKey(repo), &m)
	if err != nil || !found || m.GetAllowPush() {
		return nil, err
	}
	return mirrored("repository %s mirrors %s/%s; only its sync writes into it: push to another repository, or ask its owner to allow pushes (wharf mirror update --allow-push)", repo, m.GetRemote(), m.GetUpstream()), nil
}

// --- apply ---

func applyCreateMirror(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	if cmd.GetCreateMirror().GetMirror() == nil {
		return invalid("mirror: is required"), nil
	}
	rec := proto.Clone(cmd.GetCreateMirror().GetMirror()).(*fsmpb.Mirror)
	now := cmd.GetUnixNanos()
	rec.CreatedUnixNanos, rec.UpdatedUnixNanos = now, now
	rec.CreatedBy, rec.UpdatedBy = cmd.GetActor(), cmd.GetActor()
	rec.LastScheduledUnixNanos, rec.LastJobId, rec.ActiveJobId = 0, "", ""
	if err := CheckMirror(rec); err != nil {
		return invalid("%v", err), nil
	}
	repo := rec.GetRepository()
	exists, err := has(b, mirrorKey(repo))
	if err != nil {
		return nil, err
	}
	if exists {
		return alreadyExists("repository %q is already a mirror", repo), nil
	}
	var remote fsmpb.Remote
	found, err := getProto(b, remoteKey(rec.GetRemote()), &remote)
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("remote registry %q not found: create it first", rec.GetRemote()), nil
	}
	rec.Upstream = NormalizeUpstream(remote.GetUrl(), rec.GetUpstream())
	for _, prefix := range [][]byte{manifestPrefix(repo), tagPrefix(repo)} {
		full, err := hasAny(b, prefix)
		if err != nil {
			return nil, err
		}
		if full {
			return failedPrecondition("repository %q already holds manifests or tags: a mirror starts empty", repo), nil
		}
	}
	ns, _ := splitNamespace(repo)
	known, err := namespaceKnown(b, ns)
	if err != nil {
		return nil, err
	}
	if res, err := ensureRepository(b, repo, now); res != nil || err != nil {
		return res, err
	}
	if !known {
		if err := claimFor(b, ns, rec.GetCreatedBy(), now); err != nil {
			return nil, err
		}
	}
	if err := b.Delete(repositoryPublicKey(repo), nil); err != nil {
		return nil, err
	}
	if err := b.Set(mirrorRemoteKey(rec.GetRemote(), repo), nil, nil); err != nil {
		return nil, err
	}
	return success(), setProto(b, mirrorKey(repo), rec)
}

// claimFor records user, if it is an account, as the creator of the new
// namespace ns, as the claim before a first push does.
func claimFor(b *pebble.Batch, ns, user string, now int64) error {
	if user == "" {
		return nil
	}
	var u fsmpb.User
	found, err := getProto(b, userKey(user), &u)
	if err != nil || !found {
		return err
	}
	own := &fsmpb.NamespaceOwner{Namespace: ns, User: u.GetName(), UserId: u.GetId(), CreatedUnixNanos: now}
	return setProto(b, namespaceOwnerKey(ns), own)
}

// ApplyMirrorUpdate returns old changed by op, without its times: what
// UpdateMirror would store (before the upstream is normalized).
func ApplyMirrorUpdate(old *fsmpb.Mirror, op *fsmpb.UpdateMirror) *fsmpb.Mirror {
	rec := proto.Clone(old).(*fsmpb.Mirror)
	if op.Remote != nil {
		rec.Remote = op.GetRemote()
	}
	if op.Upstream != nil {
		rec.Upstream = op.GetUpstream()
	}
	if op.GetSetIncludeTags() {
		rec.IncludeTags = append([]string(nil), op.GetIncludeTags()...)
	}
	if op.GetSetExcludeTags() {
		rec.ExcludeTags = append([]string(nil), op.GetExcludeTags()...)
	}
	if op.GetSetPlatforms() {
		rec.Platforms = append([]string(nil), op.GetPlatforms()...)
	}
	if op.Schedule != nil {
		rec.Schedule = op.GetSchedule()
	}
	if op.MirrorMode != nil {
		rec.MirrorMode = op.GetMirrorMode()
	}
	if op.AllowPush != nil {
		rec.AllowPush = op.GetAllowPush()
	}
	return rec
}

func applyUpdateMirror(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetUpdateMirror()
	repo := op.GetRepository()
	if res := validateRepository(repo); res != nil {
		return res, nil
	}
	var old fsmpb.Mirror
	found, err := getProto(b, mirrorKey(repo), &old)
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("repository %q is not a mirror", repo), nil
	}
	rec := ApplyMirrorUpdate(&old, op)
	rec.UpdatedUnixNanos, rec.UpdatedBy = max(cmd.GetUnixNanos(), old.GetUpdatedUnixNanos()), cmd.GetActor()
	if err := CheckMirror(rec); err != nil {
		return invalid("%v", err), nil
	}
	var remote fsmpb.Remote
	found, err = getProto(b, remoteKey(rec.GetRemote()), &remote)
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("remote registry %q not found: create it first", rec.GetRemote()), nil
	}
	rec.Upstream = NormalizeUpstream(remote.GetUrl(), rec.GetUpstream())
	if rec.GetRemote() != old.GetRemote() {
		if err := b.Delete(mirrorRemoteKey(old.GetRemote(), repo), nil); err != nil {
			return nil, err
		}
		if err := b.Set(mirrorRemoteKey(rec.GetRemote(), repo), nil, nil); err != nil {
			return nil, err
		}
	}
	return success(), setProto(b, mirrorKey(repo), rec)
}

func applyDeleteMirror(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	repo := cmd.GetDeleteMirror().GetRepository()
	if res := validateRepository(repo); res != nil {
		return res, nil
	}
	found, err := dropMirror(b, cmd, repo)
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("repository %q is not a mirror", repo), nil
	}
	return success(), nil
}

// dropMirror deletes the mirror of repo, if any, with its index entry, and
// cancels its active job.
func dropMirror(b *pebble.Batch, cmd *fsmpb.Command, repo string) (bool, error) {
	var m fsmpb.Mirror
	found, err := getProto(b, mirrorKey(repo), &m)
	if err != nil || !found {
		return false, err
	}
	if id := m.GetActiveJobId(); id != "" {
		var job fsmpb.SyncJob
		ok, err := getProto(b, syncJobKey(id), &job)
		if err != nil {
			return false, err
		}
		if ok && SyncJobActive(job.GetState()) {
			job.CancelledBy = cmd.GetActor()
			if err := finishJob(b, &job, fsmpb.SyncJobState_SYNC_JOB_STATE_CANCELLED, "mirror deleted", cmd.GetUnixNanos()); err != nil {
				return false, err
			}
		}
	}
	return true, deleteKeys(b, mirrorKey(repo), mirrorRemoteKey(m.GetRemote(), repo))
}

// finishJob ends job in state at now: it leaves the active index, its
// mirror's active job is cleared, and the repository's oldest finished
// jobs beyond the retention go.
func finishJob(b *pebble.Batch, job *fsmpb.SyncJob, state fsmpb.SyncJobState, errText string, now int64) error {
	job.State = state
	job.Error = truncateText(errText, MaxSyncErrorBytes)
	job.FinishedUnixNanos = max(now, job.GetCreatedUnixNanos())
	job.UpdatedUnixNanos = job.FinishedUnixNanos
	if err := setProto(b, syncJobKey(job.GetId()), job); err != nil {
		return err
	}
	if err := b.Delete(syncJobActiveKey(job.GetId()), nil); err != nil {
		return err
	}
	var m fsmpb.Mirror
	found, err := getProto(b, mirrorKey(job.GetRepository()), &m)
	if err != nil {
		return err
	}
	if found && m.GetActiveJobId() == job.GetId() {
		m.ActiveJobId = ""
		if err := setProto(b, mirrorKey(job.GetRepository()), &m); err != nil {
			return err
		}
	}
	return pruneSyncJobs(b, job.GetRepository())
}

// pruneSyncJobs deletes the oldest finished job of repo beyond the
// SyncJobRetention newest finished ones. Every finish prunes, so at most
// one is beyond: the walk goes back from the newest, never into the
// deleted range, and stops at the first it deletes.
func pruneSyncJobs(b *pebble.Batch, repo string) error {
	prefix := syncJobRepoPrefix(repo)
	it, err := b.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("iterate %q: %w", prefix, err)
	}
	var victim string
	finished := 0
	for ok := it.Last(); ok; ok = it.Prev() {
		id := string(it.Key()[len(prefix):])
		var job fsmpb.SyncJob
		found, err := getProto(b, syncJobKey(id), &job)
		if err != nil {
			it.Close()
			return err
		}
		if found && !syncJobFinished(job.GetState()) {
			continue
		}
		if finished++; finished > SyncJobRetention {
			victim = id
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("iterate %q: %w", prefix, err)
	}
	if victim == "" {
		return nil
	}
	return deleteKeys(b, syncJobKey(victim), syncJobRepoKey(repo, victim), syncJobActiveKey(victim))
}

// truncateText cuts s to at most n bytes of valid UTF-8.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// appendTagErrors appends errs to have, up to MaxSyncTagErrors, each
// bounded.
func appendTagErrors(have, errs []*fsmpb.SyncTagError) []*fsmpb.SyncTagError {
	for _, e := range errs {
		if len(have) >= MaxSyncTagErrors {
			break
		}
		have = append(have, &fsmpb.SyncTagError{
			Tag:   truncateText(e.GetTag(), MaxMirrorEntryBytes),
			Error: truncateText(e.GetError(), MaxSyncErrorBytes),
		})
	}
	return have
}

func applyRequestSync(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetRequestSync()
	repo := op.GetRepository()
	if res := validateRepository(repo); res != nil {
		return res, nil
	}
	trigger := op.GetTrigger()
	if trigger != SyncTriggerManual && trigger != SyncTriggerSchedule {
		return invalid("trigger: must be %q or %q, got %q", SyncTriggerManual, SyncTriggerSchedule, trigger), nil
	}
	var m fsmpb.Mirror
	found, err := getProto(b, mirrorKey(repo), &m)
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("repository %q is not a mirror", repo), nil
	}
	if id := m.GetActiveJobId(); id != "" {
		if trigger == SyncTriggerManual {
			res := success()
			res.Value = id
			return res, nil
		}
		return failedPrecondition("mirror %q has an active sync job %s", repo, id), nil
	}
	due := op.GetDueUnixNanos()
	if trigger == SyncTriggerSchedule && due <= m.GetLastScheduledUnixNanos() {
		return alreadyExists("the run of mirror %q due at %d was already scheduled", repo, due), nil
	}
	seq, err := getUint64(b, keySyncJobSeq)
	if err != nil {
		return nil, err
	}
	seq++
	id, now := SyncJobID(seq), cmd.GetUnixNanos()
	requester := op.GetRequestedBy()
	if requester == "" {
		requester = cmd.GetActor()
	}
	job := &fsmpb.SyncJob{
		Id: id, Repository: repo, Remote: m.GetRemote(), Trigger: trigger, RequestedBy: requester,
		State: fsmpb.SyncJobState_SYNC_JOB_STATE_QUEUED, CreatedUnixNanos: now, UpdatedUnixNanos: now,
		Progress: &fsmpb.SyncProgress{},
	}
	if trigger == SyncTriggerSchedule {
		job.DueUnixNanos, m.LastScheduledUnixNanos = due, due
	}
	m.ActiveJobId, m.LastJobId = id, id
	if err := b.Set(keySyncJobSeq, encodeUint64(seq), nil); err != nil {
		return nil, err
	}
	if err := setProto(b, syncJobKey(id), job); err != nil {
		return nil, err
	}
	for _, k := range [][]byte{syncJobRepoKey(repo, id), syncJobActiveKey(id)} {
		if err := b.Set(k, nil, nil); err != nil {
			return nil, err
		}
	}
	if err := setProto(b, mirrorKey(repo), &m); err != nil {
		return nil, err
	}
	res := success()
	res.Value = id
	return res, nil
}

// loadJob reads job id, or returns the refusal of a malformed or unknown id.
func loadJob(r pebble.Reader, id string) (*fsmpb.SyncJob, *fsmpb.Result, error) {
	if res := validateSyncJobID(id); res != nil {
		return nil, res, nil
	}
	var job fsmpb.SyncJob
	found, err := getProto(r, syncJobKey(id), &job)
	if err != nil {
		return nil, nil, err
	}
	if !found {
		return nil, notFound("sync job %s not found", id), nil
	}
	return &job, nil, nil
}

// fenced loads a running job and refuses a report whose node and attempt
// are not the job's.
func fenced(r pebble.Reader, id, node string, attempt int64) (*fsmpb.SyncJob, *fsmpb.Result, error) {
	job, res, err := loadJob(r, id)
	if res != nil || err != nil {
		return nil, res, err
	}
	if job.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING {
		return nil, failedPrecondition("sync job %s is %s, not running", id, job.GetState()), nil
	}
	if job.GetNode() != node || job.GetAttempt() != attempt {
		return nil, failedPrecondition("sync job %s runs as attempt %d on node %q, not attempt %d on %q", id, job.GetAttempt(), job.GetNode(), attempt, node), nil
	}
	return job, nil, nil
}

func applyAssignSyncJob(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetAssignSyncJob()
	job, res, err := loadJob(b, op.GetId())
	if res != nil || err != nil {
		return res, err
	}
	if !SyncJobActive(job.GetState()) {
		return failedPrecondition("sync job %s is %s: only a queued or running job is assigned", job.GetId(), job.GetState()), nil
	}
	if op.GetAttempt() != job.GetAttempt()+1 {
		return failedPrecondition("sync job %s is at attempt %d: the next assignment is attempt %d, not %d", job.GetId(), job.GetAttempt(), job.GetAttempt()+1, op.GetAttempt()), nil
	}
	if op.GetNode() == "" {
		return failedPrecondition("sync job %s: assign it to a node", job.GetId()), nil
	}
	registered, err := has(b, nodeKey(op.GetNode()))
	if err != nil {
		return nil, err
	}
	if !registered {
		return failedPrecondition("node %q is not registered", op.GetNode()), nil
	}
	now := cmd.GetUnixNanos()
	job.State, job.Node, job.Attempt = fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING, op.GetNode(), op.GetAttempt()
	if job.GetStartedUnixNanos() == 0 {
		job.StartedUnixNanos = now
	}
	job.UpdatedUnixNanos = max(now, job.GetUpdatedUnixNanos())
	return success(), setProto(b, syncJobKey(job.GetId()), job)
}

func applySyncJobProgress(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetSyncJobProgress()
	job, res, err := fenced(b, op.GetId(), op.GetNode(), op.GetAttempt())
	if res != nil || err != nil {
		return res, err
	}
	if op.GetProgress() != nil {
		job.Progress = op.GetProgress()
	}
	job.TagErrors = appendTagErrors(job.GetTagErrors(), op.GetTagErrors())
	job.UpdatedUnixNanos = max(cmd.GetUnixNanos(), job.GetUpdatedUnixNanos())
	return success(), setProto(b, syncJobKey(job.GetId()), job)
}

func applyFinishSyncJob(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetFinishSyncJob()
	if !syncJobFinished(op.GetState()) {
		return invalid("state: must be SUCCEEDED, PARTIAL, FAILED or CANCELLED, got %s", op.GetState()), nil
	}
	job, res, err := fenced(b, op.GetId(), op.GetNode(), op.GetAttempt())
	if res != nil || err != nil {
		return res, err
	}
	if op.GetProgress() != nil {
		job.Progress = op.GetProgress()
	}
	job.TagErrors = appendTagErrors(job.GetTagErrors(), op.GetTagErrors())
	return success(), finishJob(b, job, op.GetState(), op.GetError(), max(cmd.GetUnixNanos(), job.GetUpdatedUnixNanos()))
}

func applyCancelSyncJob(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetCancelSyncJob()
	job, res, err := loadJob(b, op.GetId())
	if res != nil || err != nil {
		return res, err
	}
	by := op.GetCancelledBy()
	if by == "" {
		by = cmd.GetActor()
	}
	switch job.GetState() {
	case fsmpb.SyncJobState_SYNC_JOB_STATE_QUEUED:
		job.CancelledBy, job.CancelRequested = by, true
		return success(), finishJob(b, job, fsmpb.SyncJobState_SYNC_JOB_STATE_CANCELLED, "", cmd.GetUnixNanos())
	case fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING:
		job.CancelledBy, job.CancelRequested = by, true
		job.UpdatedUnixNanos = max(cmd.GetUnixNanos(), job.GetUpdatedUnixNanos())
		return success(), setProto(b, syncJobKey(job.GetId()), job)
	}
	return failedPrecondition("sync job %s already finished as %s", job.GetId(), job.GetState()), nil
}
