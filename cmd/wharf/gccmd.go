package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// The commands of garbage collection and storage: wharf gc status, run,
// why and storage. Each needs the admin role.

func (c *clientOptions) gcClient() wharfv1connect.GCServiceClient {
	return wharfv1connect.NewGCServiceClient(c.httpClient(), c.baseURL())
}

func newGCCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Show and run garbage collection, and see what the registry stores (admin)",
		Long: `Garbage collection removes blobs that no manifest or repository has
referenced for the grace period (--gc-grace): the leader collects them every
--gc-interval, and every node then deletes its copies, the files it no longer
holds and orphan files, and purges abandoned upload sessions.`,
	}
	status := clientCommand(c, &cobra.Command{
		Use:   "status",
		Short: "Show the last collection run, the next, and each node's last sweep",
		Example: `  wharf gc status
  wharf gc status -o json`,
		Args: cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		resp, err := c.gcClient().GetStatus(cmd.Context(), connect.NewRequest(&wharfv1.GetStatusRequest{}))
		if err != nil {
			return fmt.Errorf("gc status: %w", err)
		}
		m := resp.Msg
		return c.emit(cmd, m, func(w *tabwriter.Writer) { printGCStatus(w, m) })
	})

	var dryRun bool
	run := clientCommand(c, &cobra.Command{
		Use:   "run",
		Short: "Collect unreferenced blobs now, on the node that answers, or list them with --dry-run",
		Long: `Collect now every blob unreferenced for longer than the grace period, as
the leader's periodic run does; the nodes delete their copies at their next
sweep. Progress goes to stderr, the summary to stdout. With --dry-run
nothing changes: each blob a run would collect is listed. With -o json
every candidate and the summary are printed as one JSON object a line.
A run over many blobs may need a longer --timeout.`,
		Example: `  wharf gc run --dry-run
  wharf gc run --timeout 10m
  wharf gc run --dry-run -o json | jq -r 'select(.candidate) | .candidate.digest'`,
		Args: cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		return runCollection(cmd, c, dryRun)
	})
	run.Flags().BoolVar(&dryRun, "dry-run", false, "change nothing: list the blobs a run would collect")

	why := clientCommand(c, &cobra.Command{
		Use:   "why DIGEST",
		Short: "Say what keeps a blob: the repositories and manifests that reference it, or its grace period",
		Example: `  wharf gc why sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
  wharf gc why sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.gcClient().WhyKept(cmd.Context(), connect.NewRequest(&wharfv1.WhyKeptRequest{Digest: args[0]}))
		if err != nil {
			return fmt.Errorf("why is %s kept: %w", args[0], err)
		}
		m := resp.Msg
		return c.emit(cmd, m, func(w *tabwriter.Writer) { printWhyKept(w, m) })
	})

	storage := clientCommand(c, &cobra.Command{
		Use:   "storage",
		Short: "Show the bytes stored: per namespace, for the cluster and on each node",
		Long: `Show the logical bytes of each namespace (every blob its repositories
link or its manifests list, counted once per namespace), of the cluster (each
blob once) and the bytes each node's holder records say it holds. It reads
every blob record once: on a large registry it takes a while.`,
		Example: `  wharf gc storage
  wharf gc storage -o json`,
		Args: cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		resp, err := c.gcClient().GetStorage(cmd.Context(), connect.NewRequest(&wharfv1.GetStorageRequest{}))
		if err != nil {
			return fmt.Errorf("storage: %w", err)
		}
		m := resp.Msg
		return c.emit(cmd, m, func(w *tabwriter.Writer) { printStorage(w, m) })
	})
	cmd.AddCommand(status, run, why, storage)
	return cmd
}

// ago formats a duration between two times for a table, e.g. "3m ago".
func ago(nanos int64, now time.Time) string {
	if nanos == 0 {
		return "-"
	}
	d := now.Sub(time.Unix(0, nanos)).Round(time.Second)
	if d < 0 {
		return "in " + (-d).String()
	}
	return d.String() + " ago"
}

func printGCStatus(w *tabwriter.Writer, m *wharfv1.GetStatusResponse) {
	now := time.Now()
	fmt.Fprintf(w, "Grace period:\t%s\n", time.Duration(m.GraceNanos))
	fmt.Fprintf(w, "Interval:\t%s\n", time.Duration(m.IntervalNanos))
	if r := m.LastRun; r != nil {
		kind := "periodic"
		if r.Manual {
			kind = "manual"
		}
		fmt.Fprintf(w, "Last run:\t%s (%s), %s on %s, took %s\n", when(r.EndedUnixNanos), ago(r.EndedUnixNanos, now), kind, r.NodeId,
			time.Duration(r.EndedUnixNanos-r.StartedUnixNanos).Round(time.Millisecond))
		fmt.Fprintf(w, "\t%s\n", runTotals(r))
		fmt.Fprintf(w, "Next run:\t%s (%s)\n", when(m.NextRunUnixNanos), ago(m.NextRunUnixNanos, now))
	} else {
		fmt.Fprintf(w, "Last run:\tnone recorded yet\n")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "NODE\tSWEPT\tCOLLECTED\tTRIMMED\tORPHANS\tKEPT REFERENCED\tUPLOADS PURGED\tERRORS")
	for _, s := range m.Sweeps {
		purged := "-"
		if s.UploadsPurgedUnixNanos != 0 {
			purged = fmt.Sprintf("%d %s", s.UploadsPurged, ago(s.UploadsPurgedUnixNanos, now))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\n", s.NodeId, ago(s.EndedUnixNanos, now),
			files(s.CollectedFiles, s.CollectedBytes), files(s.TrimmedFiles, s.TrimmedBytes), files(s.OrphanFiles, s.OrphanBytes),
			s.OrphansReferenced, purged, s.Errors)
	}
}

// files formats a count of files and their bytes.
func files(n, bytes int64) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", n, humanBytes(bytes))
}

func runTotals(r *wharfv1.GCRun) string {
	return fmt.Sprintf("examined %d, collected %d (%s), kept %d, empty repositories removed %d, errors %d",
		r.Examined, r.Collected, humanBytes(r.BytesCollected), r.Kept, r.RepositoriesRemoved, r.Errors)
}

// runCollection streams a run: progress on stderr (one line, rewritten),
// candidates and the summary on stdout.
func runCollection(cmd *cobra.Command, c *clientOptions, dryRun bool) error {
	stream, err := c.gcClient().RunCollection(cmd.Context(), connect.NewRequest(&wharfv1.RunCollectionRequest{DryRun: dryRun}))
	if err != nil {
		return fmt.Errorf("gc run: %w", err)
	}
	defer stream.Close()
	out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
	jsonLines := c.output == "json"
	var candidates []*wharfv1.CollectionCandidate
	var summary *wharfv1.GCRun
	progressed := false
	for stream.Receive() {
		m := stream.Msg()
		switch ev := m.Event.(type) {
		case *wharfv1.RunCollectionResponse_Progress:
			p := ev.Progress
			fmt.Fprintf(errOut, "\rexamined %d, collected %d (%s)", p.Examined, p.Collected, humanBytes(p.BytesCollected))
			progressed = true
			continue
		case *wharfv1.RunCollectionResponse_Candidate:
			candidates = append(candidates, ev.Candidate)
		case *wharfv1.RunCollectionResponse_Summary:
			summary = ev.Summary
		}
		if jsonLines {
			data, err := protojson.Marshal(m)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, string(data))
		}
	}
	if progressed {
		fmt.Fprintln(errOut)
	}
	if err := stream.Err(); err != nil {
		return fmt.Errorf("gc run: %w", err)
	}
	if summary == nil {
		return errors.New("gc run: the stream ended without a summary")
	}
	if jsonLines {
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	printRun(w, dryRun, candidates, summary)
	return w.Flush()
}

func printRun(w io.Writer, dryRun bool, candidates []*wharfv1.CollectionCandidate, s *wharfv1.GCRun) {
	if dryRun {
		fmt.Fprintln(w, "DIGEST\tSIZE\tUNREFERENCED SINCE")
		for _, cd := range candidates {
			fmt.Fprintf(w, "%s\t%s\t%s\n", cd.Digest, humanBytes(cd.Size), when(cd.UnreferencedSinceUnixNanos))
		}
		fmt.Fprintf(w, "\ndry run on %s: %d blob(s), %s, would be collected; nothing changed\n", s.NodeId, s.Collected, humanBytes(s.BytesCollected))
		return
	}
	fmt.Fprintf(w, "run on %s took %s: %s\n", s.NodeId, time.Duration(s.EndedUnixNanos-s.StartedUnixNanos).Round(time.Millisecond), runTotals(s))
	if s.Collected > 0 {
		fmt.Fprintln(w, "every node deletes its copies of the collected blobs at its next sweep")
	}
}

func printWhyKept(w *tabwriter.Writer, m *wharfv1.WhyKeptResponse) {
	fmt.Fprintf(w, "Blob:\t%s (%s)\n", m.Digest, humanBytes(m.Size))
	fmt.Fprintf(w, "Held by:\t%s\n", orDash(strings.Join(m.HolderNodeIds, ", ")))
	if len(m.Repositories)+len(m.Manifests) == 0 {
		fmt.Fprintf(w, "Referenced by:\tnothing\n")
	}
	for _, r := range m.Repositories {
		fmt.Fprintf(w, "Linked into:\t%s\n", r)
	}
	for _, man := range m.Manifests {
		tags := ""
		if len(man.Tags) > 0 {
			tags = " (" + strings.Join(man.Tags, ", ") + ")"
		}
		fmt.Fprintf(w, "Listed by:\t%s@%s%s\n", man.Repository, man.ManifestDigest, tags)
	}
	if m.Truncated {
		fmt.Fprintf(w, "\tand more, not listed\n")
	}
	if m.UnreferencedSinceUnixNanos != 0 {
		fmt.Fprintf(w, "Unreferenced since:\t%s\n", when(m.UnreferencedSinceUnixNanos))
		fmt.Fprintf(w, "Kept until:\t%s (the grace period), then collected\n", when(m.GraceUntilUnixNanos))
	}
}

func printStorage(w *tabwriter.Writer, m *wharfv1.GetStorageResponse) {
	fmt.Fprintln(w, "NAMESPACE\tBLOBS\tSIZE")
	for _, ns := range m.Namespaces {
		fmt.Fprintf(w, "%s\t%d\t%s\n", ns.Namespace, ns.Blobs, humanBytes(ns.Bytes))
	}
	if m.Truncated {
		fmt.Fprintln(w, "...\t\t(more namespaces, not listed)")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Referenced:\t%d blobs\t%s (each blob once)\n", m.ReferencedBlobs, humanBytes(m.ReferencedBytes))
	fmt.Fprintf(w, "Held:\t%d blobs\t%s (each blob once, referenced or not)\n", m.HeldBlobs, humanBytes(m.HeldBytes))
	fmt.Fprintln(w)
	fmt.Fprintln(w, "NODE\tBLOBS\tSIZE")
	for _, n := range m.Nodes {
		fmt.Fprintf(w, "%s\t%d\t%s\n", n.NodeId, n.Blobs, humanBytes(n.Bytes))
	}
}
