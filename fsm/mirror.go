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
	var m fsmpb.Mirror
	found, err := getProto(r, mirrorKey(repo), &m)
	if err != nil || !found || m.GetAllowPush() {
		return nil, err
	}
	return mirrored("repository %s mirrors %s/%s; only its sync writes into it", repo, m.GetRemote(), m.GetUpstream()), nil
}

var _ = proto.Clone
