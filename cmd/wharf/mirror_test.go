package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

func mirrorsAs(n *accNode, user, password string) (wharfv1connect.MirrorServiceClient, wharfv1connect.SyncServiceClient) {
	c := &http.Client{Transport: basicTransport{user, password}}
	return wharfv1connect.NewMirrorServiceClient(c, n.url), wharfv1connect.NewSyncServiceClient(c, n.url)
}

// The MirrorService and SyncService through a real node: who may do what,
// validation by field, one active job per repository, cancelling, and a
// remote in use kept. No sync worker runs here: jobs stay queued.
func TestMirrorServiceRoles(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	ctx := context.Background()
	access := accAccess(n, "admin", accAdminPassword)
	for _, u := range []string{"alice", "bob", "carol"} {
		if _, err := access.CreateUser(ctx, req(&wharfv1.CreateUserRequest{Name: u, Password: u + "-password"})); err != nil {
			t.Fatal(err)
		}
	}
	// alice may create namespaces (publisher, which holds owner rights
	// everywhere); bob and carol hold no role.
	if _, err := access.GrantRole(ctx, req(&wharfv1.GrantRoleRequest{Grant: &wharfv1.RoleGrant{Role: "publisher", User: "alice"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := remotesAs(n, "admin", accAdminPassword).CreateRemote(ctx, req(&wharfv1.CreateRemoteRequest{Name: "hub", Url: "https://registry-1.docker.io"})); err != nil {
		t.Fatal(err)
	}
	aliceM, aliceS := mirrorsAs(n, "alice", "alice-password")
	bobM, bobS := mirrorsAs(n, "bob", "bob-password")
	carolM, _ := mirrorsAs(n, "carol", "carol-password")
	anonM, anonS := mirrorsAs(n, "", "")
	adminM, adminS := mirrorsAs(n, "admin", accAdminPassword)

	created, err := aliceM.CreateMirror(ctx, req(&wharfv1.CreateMirrorRequest{Repository: "alice/nginx", Remote: "hub", Upstream: "nginx", IncludeTags: []string{"1.*"}}))
	if err != nil {
		t.Fatal(err)
	}
	m := created.Msg.Mirror
	if m.Upstream != "library/nginx" || !m.MirrorMode || m.CreatedBy != "alice" || m.NextRunUnixNanos != 0 || m.LastJob != nil {
		t.Errorf("created %v", m)
	}
	if own, err := n.reg.node.FSM().NamespaceOwner("alice"); err != nil || own.GetUser() != "alice" {
		t.Errorf("namespace alice: owner %v, %v", own, err)
	}
	repos := wharfv1connect.NewRepositoryServiceClient(&http.Client{Transport: basicTransport{"alice", "alice-password"}}, n.url)
	got, err := repos.GetRepository(ctx, req(&wharfv1.GetRepositoryRequest{Name: "alice/nginx"}))
	if err != nil {
		t.Fatal(err)
	}
	if r := got.Msg.Repository; r.Origin != "mirror of hub/library/nginx" || !r.Mirrored || r.Public {
		t.Errorf("repository %v", r)
	}
	list, err := repos.ListRepositories(ctx, req(&wharfv1.ListRepositoriesRequest{}))
	if err != nil || len(list.Msg.Repositories) != 1 || list.Msg.Repositories[0].Origin != "mirror of hub/library/nginx" {
		t.Errorf("list repositories: %v, %v", list, err)
	}
	scheduled, err := aliceM.CreateMirror(ctx, req(&wharfv1.CreateMirrorRequest{Repository: "alice/alpine", Remote: "hub", Upstream: "library/alpine", Schedule: "6h"}))
	if err != nil || scheduled.Msg.Mirror.NextRunUnixNanos == 0 {
		t.Errorf("scheduled mirror: %v, %v", scheduled, err)
	}

	for _, tt := range []struct {
		name string
		c    wharfv1connect.MirrorServiceClient
		m    *wharfv1.CreateMirrorRequest
		code connect.Code
		want string
	}{
		{"bad glob", aliceM, &wharfv1.CreateMirrorRequest{Repository: "alice/a", Remote: "hub", Upstream: "a", IncludeTags: []string{"[0-9]"}}, connect.CodeInvalidArgument, "include_tags: "},
		{"bad schedule", aliceM, &wharfv1.CreateMirrorRequest{Repository: "alice/a", Remote: "hub", Upstream: "a", Schedule: "often"}, connect.CodeInvalidArgument, "schedule: "},
		{"bad platform", aliceM, &wharfv1.CreateMirrorRequest{Repository: "alice/a", Remote: "hub", Upstream: "a", Platforms: []string{"linux"}}, connect.CodeInvalidArgument, "platforms: "},
		{"bad repository", aliceM, &wharfv1.CreateMirrorRequest{Repository: "Alice/A", Remote: "hub", Upstream: "a"}, connect.CodeInvalidArgument, "repository: "},
		{"no upstream", aliceM, &wharfv1.CreateMirrorRequest{Repository: "alice/a", Remote: "hub"}, connect.CodeInvalidArgument, "upstream: "},
		{"unknown remote", aliceM, &wharfv1.CreateMirrorRequest{Repository: "alice/a", Remote: "nosuch", Upstream: "a"}, connect.CodeNotFound, `"nosuch"`},
		{"twice", aliceM, &wharfv1.CreateMirrorRequest{Repository: "alice/nginx", Remote: "hub", Upstream: "nginx"}, connect.CodeAlreadyExists, ""},
		{"another's namespace", bobM, &wharfv1.CreateMirrorRequest{Repository: "alice/x", Remote: "hub", Upstream: "x"}, connect.CodePermissionDenied, "alice"},
		{"no create_namespace", carolM, &wharfv1.CreateMirrorRequest{Repository: "carol/x", Remote: "hub", Upstream: "x"}, connect.CodePermissionDenied, ""},
		{"anonymous", anonM, &wharfv1.CreateMirrorRequest{Repository: "anon/x", Remote: "hub", Upstream: "x"}, connect.CodeUnauthenticated, ""},
	} {
		_, err := tt.c.CreateMirror(ctx, req(tt.m))
		if codeOf(err) != tt.code || !strings.Contains(errString(err), tt.want) {
			t.Errorf("%s: %v, want %v saying %q", tt.name, err, tt.code, tt.want)
		}
	}
	if _, err := bobM.CreateMirror(ctx, req(&wharfv1.CreateMirrorRequest{Repository: "bob/redis", Remote: "hub", Upstream: "redis"})); codeOf(err) != connect.CodePermissionDenied {
		t.Errorf("bob creates a namespace without create_namespace: %v", err)
	}
	if _, err := adminM.CreateMirror(ctx, req(&wharfv1.CreateMirrorRequest{Repository: "bob/redis", Remote: "hub", Upstream: "redis"})); err != nil {
		t.Errorf("admin's mirror: %v", err)
	}

	// Jobs: queued (no worker), one per repository at a time.
	first, err := aliceS.SyncRepository(ctx, req(&wharfv1.SyncRepositoryRequest{Repository: "alice/nginx"}))
	if err != nil {
		t.Fatal(err)
	}
	job := first.Msg.Job
	if job.State != wharfv1.SyncJobState_SYNC_JOB_STATE_QUEUED || job.RequestedBy != "alice" || job.Trigger != "manual" {
		t.Errorf("job %v", job)
	}
	again, err := aliceS.SyncRepository(ctx, req(&wharfv1.SyncRepositoryRequest{Repository: "alice/nginx"}))
	if err != nil || again.Msg.Job.Id != job.Id {
		t.Errorf("second request: %v, %v; want job %s", again, err, job.Id)
	}
	for name, call := range map[string]func() error{
		"bob syncs": func() error {
			_, err := bobS.SyncRepository(ctx, req(&wharfv1.SyncRepositoryRequest{Repository: "alice/nginx"}))
			return err
		},
		"bob cancels": func() error {
			_, err := bobS.CancelSync(ctx, req(&wharfv1.CancelSyncRequest{JobId: job.Id}))
			return err
		},
		"bob reads": func() error {
			_, err := bobS.GetSyncJob(ctx, req(&wharfv1.GetSyncJobRequest{JobId: job.Id}))
			return err
		},
		"bob mirror": func() error {
			_, err := bobM.GetMirror(ctx, req(&wharfv1.GetMirrorRequest{Repository: "alice/nginx"}))
			return err
		},
		"bob deletes": func() error {
			_, err := bobM.DeleteMirror(ctx, req(&wharfv1.DeleteMirrorRequest{Repository: "alice/nginx"}))
			return err
		},
		"bob syncs the remote": func() error {
			_, err := bobS.SyncRemote(ctx, req(&wharfv1.SyncRemoteRequest{Remote: "hub"}))
			return err
		},
	} {
		if code := codeOf(call()); code != connect.CodePermissionDenied {
			t.Errorf("%s: %v, want permission_denied", name, code)
		}
	}
	if _, err := anonS.SyncRepository(ctx, req(&wharfv1.SyncRepositoryRequest{Repository: "alice/nginx"})); codeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("anonymous sync: %v", err)
	}
	bobList, err := bobM.ListMirrors(ctx, req(&wharfv1.ListMirrorsRequest{}))
	if err != nil || len(bobList.Msg.Mirrors) != 0 {
		t.Errorf("bob's listing: %v, %v", bobList, err)
	}
	aliceList, err := aliceM.ListMirrors(ctx, req(&wharfv1.ListMirrorsRequest{Remote: "hub", PageSize: 1}))
	if err != nil || len(aliceList.Msg.Mirrors) != 1 || aliceList.Msg.Mirrors[0].Repository != "alice/alpine" || aliceList.Msg.NextPageToken == "" {
		t.Errorf("alice's first page: %v, %v", aliceList, err)
	}
	shown, err := aliceM.GetMirror(ctx, req(&wharfv1.GetMirrorRequest{Repository: "alice/nginx"}))
	if err != nil || shown.Msg.Mirror.ActiveJobId != job.Id {
		t.Errorf("mirror with an active job: %v, %v", shown, err)
	}
	all, err := adminS.SyncRemote(ctx, req(&wharfv1.SyncRemoteRequest{Remote: "hub"}))
	if err != nil || len(all.Msg.Jobs) != 3 {
		t.Fatalf("sync remote: %v, %v", all, err)
	}
	cancelled, err := aliceS.CancelSync(ctx, req(&wharfv1.CancelSyncRequest{JobId: job.Id}))
	if err != nil || cancelled.Msg.Job.State != wharfv1.SyncJobState_SYNC_JOB_STATE_CANCELLED || cancelled.Msg.Job.CancelledBy != "alice" {
		t.Errorf("cancel: %v, %v", cancelled, err)
	}
	active, err := aliceS.ListSyncJobs(ctx, req(&wharfv1.ListSyncJobsRequest{ActiveOnly: true}))
	// alice, a publisher, may pull bob/redis too; newest first.
	if err != nil || len(active.Msg.Jobs) != 2 || active.Msg.Jobs[0].Repository != "bob/redis" || active.Msg.Jobs[1].Repository != "alice/alpine" {
		t.Errorf("alice's active jobs: %v, %v", active, err)
	}
	jobs, err := aliceS.ListSyncJobs(ctx, req(&wharfv1.ListSyncJobsRequest{Repository: "alice/nginx"}))
	if err != nil || len(jobs.Msg.Jobs) != 1 || jobs.Msg.Jobs[0].Id != job.Id {
		t.Errorf("alice/nginx's jobs: %v, %v", jobs, err)
	}

	up := "library/httpd"
	updated, err := aliceM.UpdateMirror(ctx, req(&wharfv1.UpdateMirrorRequest{Repository: "alice/nginx", Upstream: &up, SetIncludeTags: true}))
	if err != nil || updated.Msg.Mirror.Upstream != "library/httpd" || len(updated.Msg.Mirror.IncludeTags) != 0 {
		t.Errorf("update: %v, %v", updated, err)
	}
	bad := "every day"
	if _, err := aliceM.UpdateMirror(ctx, req(&wharfv1.UpdateMirrorRequest{Repository: "alice/nginx", Schedule: &bad})); codeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("update with a bad schedule: %v", err)
	}

	// A remote in use stays.
	remotes := remotesAs(n, "admin", accAdminPassword)
	if _, err := remotes.DeleteRemote(ctx, req(&wharfv1.DeleteRemoteRequest{Name: "hub"})); codeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("delete a remote in use: %v", err)
	}
	for _, r := range []string{"alice/nginx", "alice/alpine", "bob/redis"} {
		if _, err := adminM.DeleteMirror(ctx, req(&wharfv1.DeleteMirrorRequest{Repository: r})); err != nil {
			t.Fatalf("delete mirror %s: %v", r, err)
		}
	}
	if _, err := aliceM.GetMirror(ctx, req(&wharfv1.GetMirrorRequest{Repository: "alice/nginx"})); codeOf(err) != connect.CodeNotFound {
		t.Errorf("get after delete: %v", err)
	}
	if _, err := remotes.DeleteRemote(ctx, req(&wharfv1.DeleteRemoteRequest{Name: "hub"})); err != nil {
		t.Errorf("delete the remote no mirror uses: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// wharf mirror and wharf sync against a real node.
func TestMirrorSyncCLI(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	cli := newCLIEnv(t)
	if out, err := cli.run(accAdminPassword+"\n", "login", n.url, "-u", adminUser); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	cli.must("added remote hub", "remote", "add", "hub", "https://registry-1.docker.io")
	out := cli.must("", "mirror", "add", "team/nginx", "--remote", "hub", "--upstream", "nginx", "--include", "1.*", "--exclude", "*-alpine",
		"--platform", "linux/amd64", "--schedule", "6h", "-o", "json")
	var added struct {
		Repository, Upstream, Schedule string
		MirrorMode                     bool   `json:"mirrorMode"`
		NextRun                        string `json:"nextRunUnixNanos"`
	}
	if err := json.Unmarshal([]byte(out), &added); err != nil || added.Upstream != "library/nginx" || !added.MirrorMode || added.NextRun == "" {
		t.Fatalf("mirror add -o json: %+v, %v\n%s", added, err, out)
	}
	cli.must("added mirror team/app of hub/org/app (manual)", "mirror", "add", "team/app", "--remote", "hub", "--upstream", "org/app", "--no-mirror-mode")
	ls := cli.must("team/nginx", "mirror", "ls", "--remote", "hub")
	if !strings.Contains(ls, "library/nginx") || !strings.Contains(ls, "team/app") || !strings.Contains(ls, "never") {
		t.Errorf("mirror ls:\n%s", ls)
	}
	show := cli.must("Upstream:", "mirror", "show", "team/app")
	if !strings.Contains(show, "Mirror mode:  false") && !strings.Contains(show, "false") {
		t.Errorf("mirror show:\n%s", show)
	}
	cli.must("Origin", "repo", "show", "team/nginx")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"mirror", "add", "team/x", "--remote", "hub", "--upstream", "x", "--include", "[a]"}, exitUsage, "include_tags: "},
		{[]string{"mirror", "add", "team/x", "--remote", "hub", "--upstream", "x", "--schedule", "sometimes"}, exitUsage, "schedule: "},
		{[]string{"mirror", "add", "team/x", "--remote", "nosuch", "--upstream", "x"}, exitNotFound, "nosuch"},
		{[]string{"mirror", "add", "team/x", "--remote", "hub"}, exitUsage, "--upstream"},
		{[]string{"mirror", "add", "team/nginx", "--remote", "hub", "--upstream", "x"}, exitConflict, ""},
		{[]string{"mirror", "update", "team/nginx"}, exitUsage, "nothing to change"},
		{[]string{"mirror", "update", "team/nginx", "--include", "a", "--clear-include"}, exitUsage, "--clear-include"},
		{[]string{"mirror", "show", "team/none"}, exitNotFound, "not a mirror"},
		{[]string{"sync", "status", "team/app"}, exitNotFound, "no sync job yet"},
		{[]string{"sync", "cancel", "42"}, exitUsage, "job_id: "},
		{[]string{"remote", "rm", "hub"}, exitConflict, ""},
	} {
		if code, msg := cli.exitOf(tt.args...); code != tt.code || !strings.Contains(msg, tt.want) {
			t.Errorf("wharf %s: exit %d, %s; want %d saying %q", strings.Join(tt.args, " "), code, msg, tt.code, tt.want)
		}
	}
	cli.must("updated mirror team/nginx", "mirror", "update", "team/nginx", "--include", "2.*", "--include", "3.*", "--clear-platforms", "--schedule", "")
	if show := cli.must("Include tags:", "mirror", "show", "team/nginx"); !strings.Contains(show, "2.*, 3.*") || !strings.Contains(show, "manual") {
		t.Errorf("after update:\n%s", show)
	}

	out = cli.must("", "sync", "repo", "team/nginx", "-o", "json")
	var synced struct {
		Job struct{ ID, State string } `json:"job"`
	}
	if err := json.Unmarshal([]byte(out), &synced); err != nil || synced.Job.State != "SYNC_JOB_STATE_QUEUED" || synced.Job.ID == "" {
		t.Fatalf("sync repo -o json: %+v, %v\n%s", synced, err, out)
	}
	id := synced.Job.ID
	cli.must("sync job "+id+" of team/nginx: queued", "sync", "repo", "team/nginx")
	if st := cli.must("State:", "sync", "status", "team/nginx"); !strings.Contains(st, "queued") || !strings.Contains(st, id) {
		t.Errorf("sync status team/nginx:\n%s", st)
	}
	cli.must(id, "sync", "ls", "--active")
	cli.must("sync job "+id+" of team/nginx: cancelled", "sync", "cancel", id)
	if st := cli.must("State:", "sync", "status", id); !strings.Contains(st, "cancelled") {
		t.Errorf("sync status %s:\n%s", id, st)
	}
	if ls := cli.must(id, "sync", "ls", "team/nginx"); !strings.Contains(ls, "cancelled") {
		t.Errorf("sync ls:\n%s", ls)
	}
	if ls := cli.must("", "sync", "ls", "--active", "-o", "json"); strings.Contains(ls, id) {
		t.Errorf("sync ls --active after cancel:\n%s", ls)
	}
	cli.must("Last job:", "mirror", "show", "team/nginx")
	cli.must("removed mirror team/nginx", "mirror", "rm", "team/nginx")
	cli.must("removed mirror team/app", "mirror", "rm", "team/app")
	cli.must("removed remote hub", "remote", "rm", "hub")
}

// --wait's outcome: exit codes by state, the progress line and bar.
func TestSyncWaitOutcome(t *testing.T) {
	for _, tt := range []struct {
		state wharfv1.SyncJobState
		code  int
	}{
		{wharfv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED, 0},
		{wharfv1.SyncJobState_SYNC_JOB_STATE_PARTIAL, exitSyncPartial},
		{wharfv1.SyncJobState_SYNC_JOB_STATE_FAILED, exitSyncFailed},
		{wharfv1.SyncJobState_SYNC_JOB_STATE_CANCELLED, exitSyncCancelled},
	} {
		if got := jobExit(tt.state); got != tt.code {
			t.Errorf("%v: exit %d, want %d", tt.state, got, tt.code)
		}
		if got := exitCode(jobEndErr{code: tt.code}); tt.code != 0 && got != tt.code {
			t.Errorf("exitCode of %v: %d", tt.state, got)
		}
	}
	for _, tt := range []struct {
		done, total int64
		want        string
	}{{0, 0, "[....................]"}, {5, 10, "[##########..........]"}, {10, 10, "[####################]"}, {12, 10, "[####################]"}} {
		if got := progressBar(tt.done, tt.total); got != tt.want {
			t.Errorf("progressBar(%d, %d) = %s", tt.done, tt.total, got)
		}
	}
	j := &wharfv1.SyncJob{Id: "000000000007", Repository: "team/nginx", State: wharfv1.SyncJobState_SYNC_JOB_STATE_RUNNING,
		Progress: &wharfv1.SyncProgress{TagsDone: 3, TagsTotal: 6, TagsFailed: 1, BytesFetched: 2048}}
	if line := progressLine(j, time.Now()); !strings.Contains(line, "running") || !strings.Contains(line, "tags 3/6") || !strings.Contains(line, "1 failed") {
		t.Errorf("progress line: %s", line)
	}
}
