package fsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const (
	codePrecond  = fsmpb.ResultCode_RESULT_CODE_FAILED_PRECONDITION
	codeMirrored = fsmpb.ResultCode_RESULT_CODE_MIRRORED
)

func goodMirror() *fsmpb.Mirror {
	return &fsmpb.Mirror{Repository: "acme/alpine", Remote: "hub", Upstream: "alpine", IncludeTags: []string{"3.*"}, Platforms: []string{"linux/amd64"}, Schedule: "6h", MirrorMode: true}
}

func mirrorWith(edit func(m *fsmpb.Mirror)) *fsmpb.Mirror {
	m := goodMirror()
	edit(m)
	return m
}

func createMirror(m *fsmpb.Mirror) *fsmpb.Command {
	return by("alice", at(100, NewCommand(&fsmpb.CreateMirror{Mirror: m})))
}

func requestSync(repo, trigger string, due int64) *fsmpb.Command {
	return at(200, NewCommand(&fsmpb.RequestSync{Repository: repo, Trigger: trigger, RequestedBy: "alice", DueUnixNanos: due}))
}

func assignJob(id, node string, attempt int64) *fsmpb.Command {
	return at(300, NewCommand(&fsmpb.AssignSyncJob{Id: id, Node: node, Attempt: attempt}))
}

func finishJob1(id, node string, attempt int64, state fsmpb.SyncJobState) *fsmpb.Command {
	return at(400, NewCommand(&fsmpb.FinishSyncJob{Id: id, Node: node, Attempt: attempt, State: state, Error: "boom"}))
}

func mirrorSetup() []*fsmpb.Command {
	return []*fsmpb.Command{createUser("alice", false), createRemote(1, goodRemote()), registerNode("n1", "10.0.0.1:7000", 1), registerNode("n2", "10.0.0.2:7000", 1)}
}

func TestMirrorCommands(t *testing.T) {
	const job1 = "000000000001"
	running := append(mirrorSetup(), createMirror(goodMirror()), requestSync("acme/alpine", "manual", 0), assignJob(job1, "n1", 1))
	tests := []struct {
		name     string
		setup    []*fsmpb.Command
		cmd      *fsmpb.Command
		want     fsmpb.ResultCode
		value    string
		contains string
		check    func(t *testing.T, f *FSM)
	}{
		{name: "create", setup: mirrorSetup(), cmd: createMirror(goodMirror()), want: codeOK, check: func(t *testing.T, f *FSM) {
			m, err := f.Mirror("acme/alpine")
			if err != nil || m.GetUpstream() != "library/alpine" || m.GetCreatedBy() != "alice" || m.GetCreatedUnixNanos() != 100 {
				t.Fatalf("mirror = %v, %v", m, err)
			}
			if ok, err := f.RepositoryExists("acme/alpine"); !ok || err != nil {
				t.Fatalf("repository exists = %v, %v", ok, err)
			}
			if err := f.CheckPushable("acme/alpine"); !errors.Is(err, ErrMirroredRepository) || !strings.Contains(err.Error(), "mirrors hub/library/alpine") {
				t.Fatalf("CheckPushable = %v", err)
			}
			if err := f.CheckRepositoryName("acme/alpine"); err != nil {
				t.Fatalf("CheckRepositoryName = %v", err)
			}
			if ms, err := f.MirrorsOfRemote("hub"); err != nil || len(ms) != 1 {
				t.Fatalf("MirrorsOfRemote = %v, %v", ms, err)
			}
			if _, err := f.Namespace("acme"); err != nil {
				t.Fatalf("namespace: %v", err)
			}
		}},
		{name: "create invalid", setup: mirrorSetup(), cmd: createMirror(mirrorWith(func(m *fsmpb.Mirror) { m.Schedule = "10s" })), want: codeInvalid, contains: "schedule"},
		{name: "create twice", setup: append(mirrorSetup(), createMirror(goodMirror())), cmd: createMirror(goodMirror()), want: codeExists},
		{name: "create without remote", setup: mirrorSetup(), cmd: createMirror(mirrorWith(func(m *fsmpb.Mirror) { m.Remote = "nope" })), want: codeNotFound, contains: `remote registry "nope"`},
		{name: "create over content", setup: append(mirrorSetup(), putManifest("acme/alpine", "m1", "v1")), cmd: createMirror(goodMirror()), want: codePrecond},
		{name: "create breaks namespace rule", setup: append(mirrorSetup(), putManifest("acme", "m1")), cmd: createMirror(goodMirror()), want: codeConflict},
		{name: "update", setup: append(mirrorSetup(), createMirror(goodMirror()), createRemote(2, remoteWith(func(r *fsmpb.Remote) { r.Name = "quay"; r.Url = "https://quay.io" }))),
			cmd: by("bob", NewCommand(&fsmpb.UpdateMirror{Repository: "acme/alpine", Remote: ptr("quay"), Upstream: ptr("x/y"), SetIncludeTags: true, AllowPush: ptr(true)})), want: codeOK,
			check: func(t *testing.T, f *FSM) {
				m, _ := f.Mirror("acme/alpine")
				if m.GetRemote() != "quay" || m.GetUpstream() != "x/y" || len(m.GetIncludeTags()) != 0 || !m.GetAllowPush() || m.GetUpdatedBy() != "bob" {
					t.Fatalf("mirror = %v", m)
				}
				if ms, _ := f.MirrorsOfRemote("hub"); len(ms) != 0 {
					t.Fatalf("hub still indexes %v", ms)
				}
				if ms, _ := f.MirrorsOfRemote("quay"); len(ms) != 1 {
					t.Fatalf("quay indexes %v", ms)
				}
				if err := f.CheckPushable("acme/alpine"); err != nil {
					t.Fatalf("CheckPushable = %v", err)
				}
			}},
		{name: "update missing", setup: mirrorSetup(), cmd: NewCommand(&fsmpb.UpdateMirror{Repository: "acme/alpine"}), want: codeNotFound},
		{name: "update to missing remote", setup: append(mirrorSetup(), createMirror(goodMirror())), cmd: NewCommand(&fsmpb.UpdateMirror{Repository: "acme/alpine", Remote: ptr("nope")}), want: codeNotFound},
		{name: "update invalid", setup: append(mirrorSetup(), createMirror(goodMirror())), cmd: NewCommand(&fsmpb.UpdateMirror{Repository: "acme/alpine", SetPlatforms: true, Platforms: []string{"Linux"}}), want: codeInvalid},
		{name: "delete cancels the active job", setup: running, cmd: NewCommand(&fsmpb.DeleteMirror{Repository: "acme/alpine"}), want: codeOK, check: func(t *testing.T, f *FSM) {
			if _, err := f.Mirror("acme/alpine"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("mirror: %v", err)
			}
			j, _ := f.SyncJob(job1)
			if j.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_CANCELLED || j.GetError() != "mirror deleted" || j.GetFinishedUnixNanos() == 0 {
				t.Fatalf("job = %v", j)
			}
			if a, _ := f.ActiveSyncJobs(); len(a) != 0 {
				t.Fatalf("active = %v", a)
			}
		}},
		{name: "delete missing", setup: mirrorSetup(), cmd: NewCommand(&fsmpb.DeleteMirror{Repository: "acme/alpine"}), want: codeNotFound},
		{name: "delete remote in use", setup: append(mirrorSetup(), createMirror(goodMirror())), cmd: NewCommand(&fsmpb.DeleteRemote{Name: "hub"}), want: codePrecond, contains: `"acme/alpine"`},
		{name: "delete repository drops mirror", setup: running, cmd: deleteRepository("acme/alpine"), want: codeOK, check: func(t *testing.T, f *FSM) {
			if _, err := f.Mirror("acme/alpine"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("mirror: %v", err)
			}
			if j, _ := f.SyncJob(job1); j.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_CANCELLED {
				t.Fatalf("job = %v", j)
			}
		}},
		{name: "empty mirror is not removed", setup: append(mirrorSetup(), createMirror(goodMirror()), linkBlob("acme/alpine", "b", 1)), cmd: at(1e18, removeEmpty("acme/alpine", 0)), want: fsmpb.ResultCode_RESULT_CODE_REPOSITORY_NOT_EMPTY},
		{name: "push refused", setup: append(mirrorSetup(), createMirror(goodMirror())), cmd: putManifest("acme/alpine", "m1", "v1"), want: codeMirrored, contains: "repository acme/alpine mirrors hub/library/alpine; only its sync writes into it"},
		{name: "synced push", setup: append(mirrorSetup(), createMirror(goodMirror())), cmd: func() *fsmpb.Command {
			c := putManifest("acme/alpine", "m1", "v1")
			c.GetPutManifest().Synced = true
			return c
		}(), want: codeOK},
		{name: "tag refused", setup: append(mirrorSetup(), createMirror(goodMirror()), func() *fsmpb.Command {
			c := putManifest("acme/alpine", "m1")
			c.GetPutManifest().Synced = true
			return c
		}()), cmd: tagManifest("acme/alpine", "v2", "m1"), want: codeMirrored},
		{name: "synced tag", setup: append(mirrorSetup(), createMirror(goodMirror()), func() *fsmpb.Command {
			c := putManifest("acme/alpine", "m1")
			c.GetPutManifest().Synced = true
			return c
		}()), cmd: func() *fsmpb.Command {
			c := tagManifest("acme/alpine", "v2", "m1")
			c.GetTagManifest().Synced = true
			return c
		}(), want: codeOK},
		{name: "push allowed", setup: append(mirrorSetup(), createMirror(mirrorWith(func(m *fsmpb.Mirror) { m.AllowPush = true }))), cmd: putManifest("acme/alpine", "m1", "v1"), want: codeOK},
		{name: "request", setup: append(mirrorSetup(), createMirror(goodMirror())), cmd: requestSync("acme/alpine", "manual", 0), want: codeOK, value: job1, check: func(t *testing.T, f *FSM) {
			j, err := f.SyncJob(job1)
			if err != nil || j.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_QUEUED || j.GetRemote() != "hub" || j.GetCreatedUnixNanos() != 200 {
				t.Fatalf("job = %v, %v", j, err)
			}
			m, _ := f.Mirror("acme/alpine")
			if m.GetActiveJobId() != job1 || m.GetLastJobId() != job1 {
				t.Fatalf("mirror = %v", m)
			}
			if js, _ := f.SyncJobs("acme/alpine", "", 10); len(js) != 1 {
				t.Fatalf("jobs = %v", js)
			}
		}},
		{name: "request of no mirror", setup: mirrorSetup(), cmd: requestSync("acme/alpine", "manual", 0), want: codeNotFound},
		{name: "request bad trigger", setup: append(mirrorSetup(), createMirror(goodMirror())), cmd: requestSync("acme/alpine", "cron", 0), want: codeInvalid},
		{name: "manual request coalesces", setup: running, cmd: requestSync("acme/alpine", "manual", 0), want: codeOK, value: job1},
		{name: "scheduled request while active", setup: running, cmd: requestSync("acme/alpine", "schedule", 500), want: codePrecond},
		{name: "scheduled request once", setup: append(mirrorSetup(), createMirror(goodMirror()), requestSync("acme/alpine", "schedule", 500), NewCommand(&fsmpb.CancelSyncJob{Id: job1})),
			cmd: requestSync("acme/alpine", "schedule", 500), want: codeExists},
		{name: "scheduled request later", setup: append(mirrorSetup(), createMirror(goodMirror()), requestSync("acme/alpine", "schedule", 500), NewCommand(&fsmpb.CancelSyncJob{Id: job1})),
			cmd: requestSync("acme/alpine", "schedule", 501), want: codeOK, value: "000000000002"},
		{name: "assign", setup: append(mirrorSetup(), createMirror(goodMirror()), requestSync("acme/alpine", "manual", 0)), cmd: assignJob(job1, "n1", 1), want: codeOK, check: func(t *testing.T, f *FSM) {
			if j, _ := f.SyncJob(job1); j.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING || j.GetNode() != "n1" || j.GetStartedUnixNanos() != 300 {
				t.Fatalf("job = %v", j)
			}
		}},
		{name: "assign wrong attempt", setup: running, cmd: assignJob(job1, "n2", 1), want: codePrecond},
		{name: "assign unknown node", setup: append(mirrorSetup(), createMirror(goodMirror()), requestSync("acme/alpine", "manual", 0)), cmd: assignJob(job1, "n9", 1), want: codePrecond},
		{name: "assign no node", setup: append(mirrorSetup(), createMirror(goodMirror()), requestSync("acme/alpine", "manual", 0)), cmd: assignJob(job1, "", 1), want: codePrecond},
		{name: "assign missing job", setup: mirrorSetup(), cmd: assignJob(job1, "n1", 1), want: codeNotFound},
		{name: "progress", setup: running, cmd: NewCommand(&fsmpb.SyncJobProgress{Id: job1, Node: "n1", Attempt: 1, Progress: &fsmpb.SyncProgress{TagsDone: 3}, TagErrors: []*fsmpb.SyncTagError{{Tag: "a", Error: "x"}}}), want: codeOK,
			check: func(t *testing.T, f *FSM) {
				if j, _ := f.SyncJob(job1); j.GetProgress().GetTagsDone() != 3 || len(j.GetTagErrors()) != 1 {
					t.Fatalf("job = %v", j)
				}
			}},
		{name: "progress of an old attempt", setup: append(running, assignJob(job1, "n2", 2)), cmd: NewCommand(&fsmpb.SyncJobProgress{Id: job1, Node: "n1", Attempt: 1}), want: codePrecond},
		{name: "finish", setup: running, cmd: finishJob1(job1, "n1", 1, fsmpb.SyncJobState_SYNC_JOB_STATE_FAILED), want: codeOK, check: func(t *testing.T, f *FSM) {
			j, _ := f.SyncJob(job1)
			if j.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_FAILED || j.GetError() != "boom" || j.GetFinishedUnixNanos() != 400 {
				t.Fatalf("job = %v", j)
			}
			if m, _ := f.Mirror("acme/alpine"); m.GetActiveJobId() != "" || m.GetLastJobId() != job1 {
				t.Fatalf("mirror = %v", m)
			}
			if a, _ := f.ActiveSyncJobs(); len(a) != 0 {
				t.Fatalf("active = %v", a)
			}
		}},
		{name: "finish of an old attempt", setup: append(running, assignJob(job1, "n2", 2)), cmd: finishJob1(job1, "n1", 1, fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED), want: codePrecond},
		{name: "finish bad state", setup: running, cmd: finishJob1(job1, "n1", 1, fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING), want: codeInvalid},
		{name: "finish queued", setup: append(mirrorSetup(), createMirror(goodMirror()), requestSync("acme/alpine", "manual", 0)), cmd: finishJob1(job1, "n1", 1, fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED), want: codePrecond},
		{name: "cancel queued", setup: append(mirrorSetup(), createMirror(goodMirror()), requestSync("acme/alpine", "manual", 0)), cmd: NewCommand(&fsmpb.CancelSyncJob{Id: job1, CancelledBy: "bob"}), want: codeOK,
			check: func(t *testing.T, f *FSM) {
				if j, _ := f.SyncJob(job1); j.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_CANCELLED || j.GetCancelledBy() != "bob" {
					t.Fatalf("job = %v", j)
				}
				if m, _ := f.Mirror("acme/alpine"); m.GetActiveJobId() != "" {
					t.Fatalf("mirror = %v", m)
				}
			}},
		{name: "cancel running", setup: running, cmd: NewCommand(&fsmpb.CancelSyncJob{Id: job1, CancelledBy: "bob"}), want: codeOK, check: func(t *testing.T, f *FSM) {
			if j, _ := f.SyncJob(job1); j.GetState() != fsmpb.SyncJobState_SYNC_JOB_STATE_RUNNING || !j.GetCancelRequested() {
				t.Fatalf("job = %v", j)
			}
		}},
		{name: "cancel finished", setup: append(running, finishJob1(job1, "n1", 1, fsmpb.SyncJobState_SYNC_JOB_STATE_SUCCEEDED)), cmd: NewCommand(&fsmpb.CancelSyncJob{Id: job1}), want: codePrecond, contains: "already finished"},
		{name: "cancel missing", setup: mirrorSetup(), cmd: NewCommand(&fsmpb.CancelSyncJob{Id: job1}), want: codeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openTest(t)
			f.mustApply(tt.setup...)
			res := f.apply(tt.cmd)
			if res.GetCode() != tt.want || !strings.Contains(res.GetMessage(), tt.contains) || res.GetValue() != tt.value {
				t.Fatalf("result = %v; want %v containing %q, value %q", res, tt.want, tt.contains, tt.value)
			}
			if tt.check != nil {
				tt.check(t, f.FSM)
			}
		})
	}
}

func TestSyncJobRetention(t *testing.T) {
	f := openTest(t)
	f.mustApply(append(mirrorSetup(), createMirror(goodMirror()))...)
	const n = SyncJobRetention + 5
	for i := 1; i <= n; i++ {
		f.mustApply(requestSync("acme/alpine", "manual", 0), NewCommand(&fsmpb.CancelSyncJob{Id: SyncJobID(uint64(i))}))
	}
	jobs, err := f.SyncJobs("acme/alpine", "", 1000)
	if err != nil || len(jobs) != SyncJobRetention {
		t.Fatalf("kept %d jobs, %v; want %d", len(jobs), err, SyncJobRetention)
	}
	if jobs[0].GetId() != SyncJobID(n) || jobs[len(jobs)-1].GetId() != SyncJobID(n-SyncJobRetention+1) {
		t.Fatalf("kept %s..%s", jobs[0].GetId(), jobs[len(jobs)-1].GetId())
	}
	if _, err := f.SyncJob(SyncJobID(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("oldest job: %v", err)
	}
	if all, _ := f.SyncJobs("", SyncJobID(n), 3); len(all) != 3 || all[0].GetId() != SyncJobID(n-1) {
		t.Fatalf("page before %s = %v", SyncJobID(n), all)
	}
}

func TestNextScheduledRun(t *testing.T) {
	base := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	tests := []struct {
		schedule string
		want     time.Time
		ok       bool
	}{
		{"", time.Time{}, false},
		{"30m", base.Add(30 * time.Minute), true},
		{"@every 6h", base.Add(6 * time.Hour), true},
		{"0 * * * *", time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC), true},
		{"30 10 * * *", time.Date(2026, 12, 8, 10, 30, 0, 0, time.UTC), true},
		{"@hourly", time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC), true},
		{"@daily", time.Date(2026, 12, 8, 0, 0, 0, 0, time.UTC), true},
		{"10s", time.Time{}, false},
		{"not a schedule", time.Time{}, false},
		{"* * * * * *", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := NextScheduledRun(tt.schedule, base)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("NextScheduledRun(%q) = %v, %v; want %v, %v", tt.schedule, got, ok, tt.want, tt.ok)
		}
		if err := ValidateSchedule(tt.schedule); (err == nil) != (tt.ok || tt.schedule == "") {
			t.Errorf("ValidateSchedule(%q) = %v", tt.schedule, err)
		}
	}
}

func TestNormalizeUpstream(t *testing.T) {
	tests := []struct{ url, upstream, want string }{
		{"https://registry-1.docker.io", "alpine", "library/alpine"},
		{"https://docker.io", "alpine", "library/alpine"},
		{"https://index.docker.io", "alpine", "library/alpine"},
		{"https://registry-1.docker.io", "bitnami/redis", "bitnami/redis"},
		{"https://quay.io", "alpine", "alpine"},
	}
	for _, tt := range tests {
		if got := NormalizeUpstream(tt.url, tt.upstream); got != tt.want {
			t.Errorf("NormalizeUpstream(%q, %q) = %q; want %q", tt.url, tt.upstream, got, tt.want)
		}
	}
}

func TestCheckMirror(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(m *fsmpb.Mirror)
		field string
	}{
		{"good", func(*fsmpb.Mirror) {}, ""},
		{"repository", func(m *fsmpb.Mirror) { m.Repository = "Acme" }, "repository"},
		{"remote", func(m *fsmpb.Mirror) { m.Remote = "" }, "remote"},
		{"upstream", func(m *fsmpb.Mirror) { m.Upstream = "" }, "upstream"},
		{"include glob", func(m *fsmpb.Mirror) { m.IncludeTags = []string{"v[1]"} }, "include_tags"},
		{"exclude digest", func(m *fsmpb.Mirror) { m.ExcludeTags = []string{"sha256:" + strings.Repeat("a", 64)} }, ""},
		{"too many", func(m *fsmpb.Mirror) { m.ExcludeTags = make([]string, 101) }, "exclude_tags"},
		{"long entry", func(m *fsmpb.Mirror) { m.IncludeTags = []string{strings.Repeat("a", 129)} }, "include_tags"},
		{"platform", func(m *fsmpb.Mirror) { m.Platforms = []string{"linux"} }, "platforms"},
		{"platform variant", func(m *fsmpb.Mirror) { m.Platforms = []string{"linux/arm64/v8"} }, ""},
		{"schedule", func(m *fsmpb.Mirror) { m.Schedule = "sometimes" }, "schedule"},
	}
	for _, tt := range tests {
		err := CheckMirror(mirrorWith(tt.edit))
		fe, _ := AsFieldError(err)
		if (tt.field == "") != (err == nil) || (err != nil && fe.Field != tt.field) {
			t.Errorf("%s: CheckMirror = %v; want field %q", tt.name, err, tt.field)
		}
	}
}

func FuzzValidateTagPattern(f *testing.F) {
	for _, s := range []string{"", "v1.*", "sha256:" + strings.Repeat("0", 64), "a?b", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateTagPattern(s) == nil && len(s) > 135 {
			t.Fatalf("accepted %d bytes", len(s))
		}
	})
}

func FuzzCheckMirror(f *testing.F) {
	f.Add("acme/alpine", "hub", "alpine", "3.*", "linux/amd64", "6h")
	f.Fuzz(func(t *testing.T, repo, remote, upstream, tag, platform, schedule string) {
		m := &fsmpb.Mirror{Repository: repo, Remote: remote, Upstream: upstream, IncludeTags: []string{tag}, Platforms: []string{platform}, Schedule: schedule}
		if err := CheckMirror(m); err != nil {
			if _, ok := AsFieldError(err); !ok {
				t.Fatalf("not a field error: %v", err)
			}
		}
		_, _ = NextScheduledRun(schedule, time.Unix(0, 0))
		_ = fmt.Sprint(NormalizeUpstream(remote, upstream))
	})
}
