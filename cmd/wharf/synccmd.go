package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// The commands of sync jobs: wharf sync repo, remote, status, ls and
// cancel. A node's sync worker runs the jobs; these only request, read and
// cancel them.

// The exit codes of --wait for a job that did not succeed.
const (
	exitSyncPartial   = 7 // the job finished, but some tags failed
	exitSyncFailed    = 8 // the job failed
	exitSyncCancelled = 9 // the job was cancelled
)

// syncPollInterval is how often --wait asks for a job.
const syncPollInterval = 500 * time.Millisecond

// jobEndErr is a waited-for job that ended other than SUCCEEDED.
type jobEndErr struct {
	code int
	msg  string
}

func (e jobEndErr) Error() string { return e.msg }

var jobIDRE = regexp.MustCompile(`^[0-9]{12}$`)

func (c *clientOptions) syncClient() wharfv1connect.SyncServiceClient {
	return wharfv1connect.NewSyncServiceClient(c.httpClient(), c.baseURL())
}

func newSyncCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Sync mirrored repositories now, and follow or cancel their sync jobs",
		Long: `A sync job copies what changed in a mirror's upstream repository into the
local one. 'sync repo' and 'sync remote' queue jobs (a repository with a
queued or running job gets that job back, not a second one); a node's sync
worker runs them.

With --wait the command follows the job until it ends, every 500 ms: a live
progress line on a terminal, a line per change otherwise. It exits 0 when
the job SUCCEEDED, 7 when it finished PARTIAL (some tags failed), 8 when it
FAILED and 9 when it was CANCELLED (for several jobs, the highest). Ctrl-C
stops waiting and exits 1; the job goes on (wharf sync cancel stops it).

Syncing a repository and cancelling its jobs needs push on it (or owning its
namespace); 'sync remote' needs a superuser; reading jobs needs pull.`,
	}

	var waitRepo bool
	repo := clientCommand(c, &cobra.Command{
		Use:   "repo LOCAL",
		Short: "Queue a sync job for a mirrored repository",
		Example: `  wharf sync repo team/nginx
  wharf sync repo team/nginx --wait
  wharf sync repo team/nginx -o json | jq -r .job.id`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.syncClient().SyncRepository(cmd.Context(), connect.NewRequest(&wharfv1.SyncRepositoryRequest{Repository: args[0]}))
		if err != nil {
			return fmt.Errorf("sync %s: %w", args[0], err)
		}
		j := resp.Msg.Job
		if waitRepo {
			return c.wait(cmd, []*wharfv1.SyncJob{j})
		}
		return c.emit(cmd, resp.Msg, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "sync job %s of %s: %s\n", j.Id, j.Repository, jobState(j.State))
		})
	})
	repo.Flags().BoolVar(&waitRepo, "wait", false, "follow the job until it ends; the exit code says how it ended")

	var waitRemote bool
	remote := clientCommand(c, &cobra.Command{
		Use:   "remote R",
		Short: "Queue a sync job for every mirror of a remote registry (superuser)",
		Example: `  wharf sync remote hub
  wharf sync remote hub --wait
  wharf sync remote hub -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.syncClient().SyncRemote(cmd.Context(), connect.NewRequest(&wharfv1.SyncRemoteRequest{Remote: args[0]}))
		if err != nil {
			return fmt.Errorf("sync remote %s: %w", args[0], err)
		}
		if waitRemote {
			return c.wait(cmd, resp.Msg.Jobs)
		}
		return c.emit(cmd, resp.Msg, func(w *tabwriter.Writer) { printJobs(w, resp.Msg.Jobs) })
	})
	remote.Flags().BoolVar(&waitRemote, "wait", false, "follow the jobs until they end; the exit code says how they ended")

	status := clientCommand(c, &cobra.Command{
		Use:   "status JOB_ID|LOCAL",
		Short: "Show a sync job, or a mirrored repository's active or last job",
		Example: `  wharf sync status 000000000042
  wharf sync status team/nginx
  wharf sync status team/nginx -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		id := args[0]
		if !jobIDRE.MatchString(id) {
			resp, err := c.mirrorClient().GetMirror(cmd.Context(), connect.NewRequest(&wharfv1.GetMirrorRequest{Repository: id}))
			if err != nil {
				return fmt.Errorf("mirror %s: %w", args[0], err)
			}
			m := resp.Msg.Mirror
			switch {
			case m.ActiveJobId != "":
				id = m.ActiveJobId
			case m.LastJob != nil:
				id = m.LastJob.Id
			default:
				return connect.NewError(connect.CodeNotFound, fmt.Errorf("mirror %s has no sync job yet: run wharf sync repo %s", args[0], args[0]))
			}
		}
		resp, err := c.syncClient().GetSyncJob(cmd.Context(), connect.NewRequest(&wharfv1.GetSyncJobRequest{JobId: id}))
		if err != nil {
			return fmt.Errorf("sync job %s: %w", id, err)
		}
		j := resp.Msg.Job
		return c.emit(cmd, j, func(w *tabwriter.Writer) { printJob(w, j) })
	})

	var active bool
	var limit int
	ls := clientCommand(c, &cobra.Command{
		Use:   "ls [LOCAL]",
		Short: "List sync jobs, newest first: of one repository or of every one you may pull",
		Example: `  wharf sync ls
  wharf sync ls team/nginx
  wharf sync ls --active -o json`,
		Args: cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		req := &wharfv1.ListSyncJobsRequest{ActiveOnly: active}
		if len(args) == 1 {
			req.Repository = args[0]
		}
		if limit < 1 {
			return usageError(fmt.Errorf("--limit must be at least 1, got %d", limit))
		}
		m := &wharfv1.ListSyncJobsResponse{}
		for {
			req.PageToken = m.NextPageToken
			resp, err := c.syncClient().ListSyncJobs(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return fmt.Errorf("list sync jobs: %w", err)
			}
			m.Jobs, m.NextPageToken = append(m.Jobs, resp.Msg.Jobs...), resp.Msg.NextPageToken
			if len(m.Jobs) >= limit {
				m.Jobs, m.NextPageToken = m.Jobs[:limit], m.Jobs[limit-1].Id
				break
			}
			if m.NextPageToken == "" {
				break
			}
		}
		return c.emit(cmd, m, func(w *tabwriter.Writer) { printJobs(w, m.Jobs) })
	})
	ls.Flags().BoolVar(&active, "active", false, "only queued and running jobs")
	ls.Flags().IntVar(&limit, "limit", 100, "list at most this many jobs")

	cancel := clientCommand(c, &cobra.Command{
		Use:   "cancel JOB_ID",
		Short: "Cancel a sync job: a queued one at once, a running one at its node's next step",
		Example: `  wharf sync cancel 000000000042
  wharf sync cancel "$(wharf sync repo team/nginx -o json | jq -r .job.id)"`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.syncClient().CancelSync(cmd.Context(), connect.NewRequest(&wharfv1.CancelSyncRequest{JobId: args[0]}))
		if err != nil {
			return fmt.Errorf("cancel sync job %s: %w", args[0], err)
		}
		j := resp.Msg.Job
		return c.emit(cmd, j, func(w *tabwriter.Writer) {
			if j.State == wharfv1.SyncJobState_SYNC_JOB_STATE_RUNNING {
				fmt.Fprintf(w, "asked node %s to stop sync job %s of %s\n", j.Node, j.Id, j.Repository)
				return
			}
			fmt.Fprintf(w, "sync job %s of %s: %s\n", j.Id, j.Repository, jobState(j.State))
		})
	})
	cmd.AddCommand(repo, remote, status, ls, cancel)
	return cmd
}

// jobEnded reports whether a job is no longer queued or running.
func jobEnded(s wharfv1.SyncJobState) bool {
	return s != wharfv1.SyncJobState_SYNC_JOB_STATE_QUEUED && s != wharfv1.SyncJobState_SYNC_JOB_STATE_RUNNING
}

// jobExit is the exit code of a job that ended in state s.
func jobExit(s wharfv1.SyncJobState) int {
	switch s {
	case wharfv1.SyncJobState_SYNC_JOB_STATE_SUCCEEDED:
		return 0
	case wharfv1.SyncJobState_SYNC_JOB_STATE_PARTIAL:
		return exitSyncPartial
	case wharfv1.SyncJobState_SYNC_JOB_STATE_CANCELLED:
		return exitSyncCancelled
	}
	return exitSyncFailed
}

// wait follows jobs until each has ended, then emits them; the error
// carries the exit code of the worst end.
func (c *clientOptions) wait(cmd *cobra.Command, jobs []*wharfv1.SyncJob) error {
	out := cmd.OutOrStdout()
	live := false
	if f, ok := out.(*os.File); ok && c.output != "json" {
		live = term.IsTerminal(int(f.Fd()))
	}
	quiet := c.output == "json"
	ticker := time.NewTicker(syncPollInterval)
	defer ticker.Stop()
	last := make([]string, len(jobs))
	for {
		pending := 0
		for i, j := range jobs {
			if !jobEnded(j.State) {
				resp, err := c.syncClient().GetSyncJob(cmd.Context(), connect.NewRequest(&wharfv1.GetSyncJobRequest{JobId: j.Id}))
				if err != nil {
					if errors.Is(cmd.Context().Err(), context.Canceled) {
						return c.stoppedWaiting(out, live, jobs)
					}
					return fmt.Errorf("sync job %s: %w", j.Id, err)
				}
				jobs[i] = resp.Msg.Job
			}
			j = jobs[i]
			if !jobEnded(j.State) {
				pending++
			}
			line := progressLine(j, time.Now())
			switch {
			case quiet:
			case live && len(jobs) == 1:
				fmt.Fprintf(out, "\r\033[K%s", line)
			case line != last[i]:
				fmt.Fprintln(out, line)
			}
			last[i] = line
		}
		if pending == 0 {
			break
		}
		select {
		case <-cmd.Context().Done():
			return c.stoppedWaiting(out, live, jobs)
		case <-ticker.C:
		}
	}
	if live && len(jobs) == 1 && !quiet {
		fmt.Fprintln(out)
	}
	code := 0
	var bad []string
	for _, j := range jobs {
		if e := jobExit(j.State); e != 0 {
			code = max(code, e)
			bad = append(bad, fmt.Sprintf("%s %s", j.Id, jobState(j.State)))
		}
	}
	if quiet {
		var err error
		if len(jobs) == 1 {
			err = c.emit(cmd, jobs[0], nil)
		} else {
			err = c.emit(cmd, &wharfv1.SyncRemoteResponse{Jobs: jobs}, nil)
		}
		if err != nil {
			return err
		}
	}
	if code != 0 {
		return jobEndErr{code: code, msg: "sync did not succeed: " + strings.Join(bad, ", ")}
	}
	return nil
}

// stoppedWaiting is the end of a --wait that Ctrl-C interrupted.
func (c *clientOptions) stoppedWaiting(out io.Writer, live bool, jobs []*wharfv1.SyncJob) error {
	if live {
		fmt.Fprintln(out)
	}
	var ids []string
	for _, j := range jobs {
		if !jobEnded(j.State) {
			ids = append(ids, j.Id)
		}
	}
	return fmt.Errorf("stopped waiting; sync job %s goes on (wharf sync status, wharf sync cancel)", strings.Join(ids, ", "))
}

// progressLine is a job's state, tags done of total, bytes and time.
func progressLine(j *wharfv1.SyncJob, now time.Time) string {
	p := j.Progress
	total := "?"
	if p.GetTagsTotal() > 0 {
		total = fmt.Sprint(p.GetTagsTotal())
	}
	line := fmt.Sprintf("%s %s %-9s %s tags %d/%s, %s fetched, %s", j.Id, j.Repository, jobState(j.State),
		progressBar(p.GetTagsDone(), p.GetTagsTotal()), p.GetTagsDone(), total, humanBytes(p.GetBytesFetched()), elapsed(j, now))
	if n := p.GetTagsFailed(); n > 0 {
		line += fmt.Sprintf(", %d failed", n)
	}
	if j.Error != "" {
		line += ": " + j.Error
	}
	return line
}

// progressBar draws done of total in 20 cells.
func progressBar(done, total int64) string {
	const width = 20
	n := 0
	if total > 0 {
		n = int(min(done, total) * width / total)
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func printJobs(w *tabwriter.Writer, jobs []*wharfv1.SyncJob) {
	fmt.Fprintln(w, "JOB\tREPOSITORY\tSTATE\tTRIGGER\tTAGS\tBYTES\tCREATED\tFINISHED")
	for _, j := range jobs {
		p := j.Progress
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.Id, j.Repository, jobState(j.State), j.Trigger,
			p.GetTagsDone(), p.GetTagsTotal(), humanBytes(p.GetBytesFetched()), when(j.CreatedUnixNanos), when(j.FinishedUnixNanos))
	}
}

func printJob(w *tabwriter.Writer, j *wharfv1.SyncJob) {
	p := j.Progress
	fmt.Fprintf(w, "Job:\t%s\n", j.Id)
	fmt.Fprintf(w, "Repository:\t%s\n", j.Repository)
	fmt.Fprintf(w, "Remote:\t%s\n", j.Remote)
	fmt.Fprintf(w, "State:\t%s\n", jobState(j.State))
	fmt.Fprintf(w, "Trigger:\t%s by %s\n", j.Trigger, orDash(j.RequestedBy))
	fmt.Fprintf(w, "Node:\t%s (attempt %d)\n", orDash(j.Node), j.Attempt)
	fmt.Fprintf(w, "Created:\t%s\n", when(j.CreatedUnixNanos))
	fmt.Fprintf(w, "Started:\t%s\n", when(j.StartedUnixNanos))
	fmt.Fprintf(w, "Finished:\t%s\n", when(j.FinishedUnixNanos))
	fmt.Fprintf(w, "Tags:\t%d/%d done, %d unchanged, %d failed, %d deleted\n", p.GetTagsDone(), p.GetTagsTotal(),
		p.GetTagsUnchanged(), p.GetTagsFailed(), p.GetTagsDeleted())
	fmt.Fprintf(w, "Fetched:\t%d manifests, %d blobs, %s, %d upstream requests\n", p.GetManifestsFetched(), p.GetBlobsFetched(),
		humanBytes(p.GetBytesFetched()), p.GetUpstreamRequests())
	if j.CancelRequested || j.CancelledBy != "" {
		fmt.Fprintf(w, "Cancelled by:\t%s\n", orDash(j.CancelledBy))
	}
	if j.Error != "" {
		fmt.Fprintf(w, "Error:\t%s\n", j.Error)
	}
	for _, e := range j.TagErrors {
		fmt.Fprintf(w, "Tag error:\t%s: %s\n", e.Tag, e.Error)
	}
}
