package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// The commands of mirrored repositories: wharf mirror add, ls, show,
// update and rm. Changing a mirror needs the right to manage its
// namespace; reading one, pull on it.

func (c *clientOptions) mirrorClient() wharfv1connect.MirrorServiceClient {
	return wharfv1connect.NewMirrorServiceClient(c.httpClient(), c.baseURL())
}

// mirrorFlags are the settings add and update take.
type mirrorFlags struct {
	remote, upstream            string
	include, exclude, platforms []string
	schedule                    string
	noMirrorMode, allowPush     bool
}

func (f *mirrorFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.remote, "remote", "", "the remote registry to mirror from (see wharf remote ls)")
	fs.StringVar(&f.upstream, "upstream", "", "the repository at the remote, such as library/nginx (on Docker Hub, nginx is library/nginx)")
	fs.StringArrayVar(&f.include, "include", nil, "sync only tags matching this glob (* and ?) or digest; repeat for more")
	fs.StringArrayVar(&f.exclude, "exclude", nil, "skip tags matching this glob or digest; repeat for more (*-source is always skipped)")
	fs.StringArrayVar(&f.platforms, "platform", nil, "keep only this platform of multi-platform images, os/arch or os/arch/variant; repeat for more")
	fs.StringVar(&f.schedule, "schedule", "", `sync on a schedule: an interval such as 6h (at least 1m) or a cron expression such as "0 3 * * *" (UTC); empty: only on request`)
	fs.BoolVar(&f.noMirrorMode, "no-mirror-mode", false, "keep local tags whose upstream tag is gone (by default they are deleted)")
	fs.BoolVar(&f.allowPush, "allow-push", false, "let users push into the mirrored repository too")
}

func newMirrorCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Manage mirrored repositories, synced from remote registries",
		Long: `A mirrored repository is a local repository whose tags are synced from a
repository of a remote registry (wharf remote): on request (wharf sync) or on
a schedule, keeping the tags the include and exclude globs select (a *-source
tag never), and of multi-platform images the platforms given.

Adding, changing or removing a mirror needs the right to manage its
namespace: its owner or a superuser, or, for a namespace that does not exist
yet, any user who may create one by pushing; the namespace is then created,
owned by that user. The repository is private. Reading a mirror needs pull
on it.`,
	}

	var remote string
	ls := clientCommand(c, &cobra.Command{
		Use:   "ls",
		Short: "List the mirrored repositories you may pull, every page",
		Example: `  wharf mirror ls
  wharf mirror ls --remote hub
  wharf mirror ls -o json | jq -r '.mirrors[].repository'`,
		Args: cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		m := &wharfv1.ListMirrorsResponse{}
		for {
			resp, err := c.mirrorClient().ListMirrors(cmd.Context(), connect.NewRequest(&wharfv1.ListMirrorsRequest{PageToken: m.NextPageToken, Remote: remote}))
			if err != nil {
				return fmt.Errorf("list mirrors: %w", err)
			}
			m.Mirrors, m.NextPageToken = append(m.Mirrors, resp.Msg.Mirrors...), resp.Msg.NextPageToken
			if m.NextPageToken == "" {
				break
			}
		}
		return c.emit(cmd, m, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "REPOSITORY\tREMOTE\tUPSTREAM\tSCHEDULE\tNEXT RUN\tLAST SYNC")
			for _, r := range m.Mirrors {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Repository, r.Remote, r.Upstream, scheduleString(r.Schedule),
					when(r.NextRunUnixNanos), lastSync(r))
			}
		})
	})
	ls.Flags().StringVar(&remote, "remote", "", "only the mirrors of this remote registry")

	show := clientCommand(c, &cobra.Command{
		Use:   "show LOCAL",
		Short: "Show a mirrored repository's settings, next run and jobs",
		Example: `  wharf mirror show team/nginx
  wharf mirror show team/nginx -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.mirrorClient().GetMirror(cmd.Context(), connect.NewRequest(&wharfv1.GetMirrorRequest{Repository: args[0]}))
		if err != nil {
			return fmt.Errorf("mirror %s: %w", args[0], err)
		}
		r := resp.Msg.Mirror
		return c.emit(cmd, r, func(w *tabwriter.Writer) { printMirror(w, r) })
	})

	var addFlags mirrorFlags
	add := clientCommand(c, &cobra.Command{
		Use:   "add LOCAL --remote R --upstream U",
		Short: "Make LOCAL a mirror of a repository at a remote registry",
		Long: `Make the local repository LOCAL (namespace/name, holding no image yet) a
mirror of the repository --upstream at the remote registry --remote. Nothing
is copied until a sync: run 'wharf sync repo LOCAL', or give --schedule.`,
		Example: `  wharf mirror add team/nginx --remote hub --upstream nginx --include '1.2*' --exclude '*-alpine'
  wharf mirror add team/alpine --remote hub --upstream library/alpine --platform linux/amd64 --platform linux/arm64 --schedule 6h
  wharf mirror add team/app --remote quay --upstream org/app --schedule "0 3 * * *" --no-mirror-mode --allow-push -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		f := &addFlags
		if f.remote == "" || f.upstream == "" {
			return usageError(errors.New("give --remote and --upstream"))
		}
		mode := !f.noMirrorMode
		resp, err := c.mirrorClient().CreateMirror(cmd.Context(), connect.NewRequest(&wharfv1.CreateMirrorRequest{
			Repository: args[0], Remote: f.remote, Upstream: f.upstream,
			IncludeTags: f.include, ExcludeTags: f.exclude, Platforms: f.platforms,
			Schedule: f.schedule, MirrorMode: &mode, AllowPush: f.allowPush,
		}))
		if err != nil {
			return fmt.Errorf("add mirror %s: %w", args[0], err)
		}
		r := resp.Msg.Mirror
		return c.emit(cmd, r, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "added mirror %s of %s/%s (%s)\n", r.Repository, r.Remote, r.Upstream, scheduleString(r.Schedule))
		})
	})
	addFlags.register(add.Flags())

	var upFlags mirrorFlags
	var mirrorMode bool
	var clearInclude, clearExclude, clearPlatforms bool
	update := clientCommand(c, &cobra.Command{
		Use:   "update LOCAL",
		Short: "Change a mirror's settings; those not given are kept",
		Long: `Change the settings given and keep the others. --include, --exclude and
--platform replace their whole list with the values given; --clear-include,
--clear-exclude and --clear-platforms empty it. --schedule "" makes the
mirror manual; --mirror-mode and --allow-push take =true or =false.`,
		Example: `  wharf mirror update team/nginx --include '1.2*' --include '1.3*'
  wharf mirror update team/nginx --clear-exclude --schedule 12h
  wharf mirror update team/nginx --schedule "" --mirror-mode=false --allow-push=true`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		req, err := mirrorUpdateRequest(cmd.Flags(), args[0], &upFlags, mirrorMode, clearInclude, clearExclude, clearPlatforms)
		if err != nil {
			return err
		}
		resp, err := c.mirrorClient().UpdateMirror(cmd.Context(), connect.NewRequest(req))
		if err != nil {
			return fmt.Errorf("update mirror %s: %w", args[0], err)
		}
		r := resp.Msg.Mirror
		return c.emit(cmd, r, func(w *tabwriter.Writer) { fmt.Fprintf(w, "updated mirror %s\n", r.Repository) })
	})
	upFlags.register(update.Flags())
	_ = update.Flags().MarkHidden("no-mirror-mode")
	update.Flags().BoolVar(&mirrorMode, "mirror-mode", true, "delete local tags whose upstream tag is gone")
	update.Flags().BoolVar(&clearInclude, "clear-include", false, "include every tag again")
	update.Flags().BoolVar(&clearExclude, "clear-exclude", false, "exclude no tag (but *-source)")
	update.Flags().BoolVar(&clearPlatforms, "clear-platforms", false, "keep every platform")

	rm := clientCommand(c, &cobra.Command{
		Use:   "rm LOCAL",
		Short: "Stop mirroring a repository; its images stay, as a plain repository",
		Example: `  wharf mirror rm team/nginx
  wharf mirror rm team/nginx -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.mirrorClient().DeleteMirror(cmd.Context(), connect.NewRequest(&wharfv1.DeleteMirrorRequest{Repository: args[0]}))
		if err != nil {
			return fmt.Errorf("remove mirror %s: %w", args[0], err)
		}
		return c.emit(cmd, resp.Msg, func(w *tabwriter.Writer) { fmt.Fprintf(w, "removed mirror %s\n", args[0]) })
	})
	cmd.AddCommand(ls, show, add, update, rm)
	return cmd
}

// mirrorUpdateRequest builds an UpdateMirrorRequest of the flags set.
func mirrorUpdateRequest(fl *pflag.FlagSet, repo string, f *mirrorFlags, mirrorMode, clearInclude, clearExclude, clearPlatforms bool) (*wharfv1.UpdateMirrorRequest, error) {
	req := &wharfv1.UpdateMirrorRequest{Repository: repo}
	if fl.Changed("remote") {
		req.Remote = &f.remote
	}
	if fl.Changed("upstream") {
		req.Upstream = &f.upstream
	}
	for _, l := range []struct {
		flag, clear string
		cleared     bool
		values      []string
		set         *bool
		dst         *[]string
	}{
		{"include", "clear-include", clearInclude, f.include, &req.SetIncludeTags, &req.IncludeTags},
		{"exclude", "clear-exclude", clearExclude, f.exclude, &req.SetExcludeTags, &req.ExcludeTags},
		{"platform", "clear-platforms", clearPlatforms, f.platforms, &req.SetPlatforms, &req.Platforms},
	} {
		if l.cleared && fl.Changed(l.flag) {
			return nil, usageError(fmt.Errorf("--%s with --%s: give one or the other", l.clear, l.flag))
		}
		if l.cleared || fl.Changed(l.flag) {
			*l.set, *l.dst = true, l.values
		}
	}
	if fl.Changed("schedule") {
		req.Schedule = &f.schedule
	}
	if fl.Changed("mirror-mode") {
		req.MirrorMode = &mirrorMode
	}
	if fl.Changed("allow-push") {
		req.AllowPush = &f.allowPush
	}
	if req.Remote == nil && req.Upstream == nil && !req.SetIncludeTags && !req.SetExcludeTags && !req.SetPlatforms &&
		req.Schedule == nil && req.MirrorMode == nil && req.AllowPush == nil {
		return nil, usageError(errors.New("nothing to change: give at least one setting"))
	}
	return req, nil
}

func scheduleString(s string) string {
	if s == "" {
		return "manual"
	}
	return s
}

// lastSync is the last job's state and end, for a table.
func lastSync(m *wharfv1.Mirror) string {
	if m.ActiveJobId != "" {
		return "active (" + m.ActiveJobId + ")"
	}
	if m.LastJob == nil {
		return "never"
	}
	return jobState(m.LastJob.State) + " " + when(m.LastJob.FinishedUnixNanos)
}

// jobState is a job state's short name: queued, running, succeeded...
func jobState(s wharfv1.SyncJobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SYNC_JOB_STATE_"))
}

func listOrAll(l []string, all string) string {
	if len(l) == 0 {
		return all
	}
	return strings.Join(l, ", ")
}

func printMirror(w *tabwriter.Writer, r *wharfv1.Mirror) {
	fmt.Fprintf(w, "Repository:\t%s\n", r.Repository)
	fmt.Fprintf(w, "Remote:\t%s\n", r.Remote)
	fmt.Fprintf(w, "Upstream:\t%s\n", r.Upstream)
	fmt.Fprintf(w, "Include tags:\t%s\n", listOrAll(r.IncludeTags, "all"))
	fmt.Fprintf(w, "Exclude tags:\t%s\n", listOrAll(append(r.ExcludeTags, "*-source"), ""))
	fmt.Fprintf(w, "Platforms:\t%s\n", listOrAll(r.Platforms, "all"))
	fmt.Fprintf(w, "Schedule:\t%s\n", scheduleString(r.Schedule))
	fmt.Fprintf(w, "Next run:\t%s\n", when(r.NextRunUnixNanos))
	fmt.Fprintf(w, "Mirror mode:\t%v\n", r.MirrorMode)
	fmt.Fprintf(w, "Allow push:\t%v\n", r.AllowPush)
	fmt.Fprintf(w, "Active job:\t%s\n", orDash(r.ActiveJobId))
	if j := r.LastJob; j != nil {
		fmt.Fprintf(w, "Last job:\t%s %s, finished %s\n", j.Id, jobState(j.State), when(j.FinishedUnixNanos))
		if j.Error != "" {
			fmt.Fprintf(w, "Last error:\t%s\n", j.Error)
		}
	} else {
		fmt.Fprintf(w, "Last job:\t-\n")
	}
	fmt.Fprintf(w, "Created:\t%s by %s\n", when(r.CreatedUnixNanos), orDash(r.CreatedBy))
	fmt.Fprintf(w, "Updated:\t%s by %s\n", when(r.UpdatedUnixNanos), orDash(r.UpdatedBy))
}

// elapsed is how long a job has run, or ran.
func elapsed(j *wharfv1.SyncJob, now time.Time) time.Duration {
	start := j.StartedUnixNanos
	if start == 0 {
		start = j.CreatedUnixNanos
	}
	end := now.UnixNano()
	if j.FinishedUnixNanos != 0 {
		end = j.FinishedUnixNanos
	}
	return time.Duration(max(end-start, 0)).Round(time.Second)
}
