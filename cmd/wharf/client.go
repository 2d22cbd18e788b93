package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// clientOptions are the flags shared by the admin-API subcommands.
type clientOptions struct {
	server  string
	timeout time.Duration
}

func (c *clientOptions) register(cmd *cobra.Command) {
	server := os.Getenv("WHARF_SERVER")
	if server == "" {
		server = "http://localhost:5001"
	}
	cmd.Flags().StringVar(&c.server, "server", server, "wharf node to ask (env WHARF_SERVER)")
	cmd.Flags().DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for an answer")
}

func (c *clientOptions) baseURL() string {
	s := strings.TrimSuffix(c.server, "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return s
}

func (c *clientOptions) httpClient() *http.Client {
	return &http.Client{Timeout: c.timeout}
}

func newStatusCommand() *cobra.Command {
	var c clientOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the status of a wharf node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := wharfv1connect.NewClusterServiceClient(c.httpClient(), c.baseURL())
			resp, err := client.Status(cmd.Context(), connect.NewRequest(&wharfv1.StatusRequest{}))
			if err != nil {
				return fmt.Errorf("status of %s: %w", c.server, err)
			}
			printStatus(cmd, resp.Msg)
			return nil
		},
	}
	c.register(cmd)
	return cmd
}

func printStatus(cmd *cobra.Command, s *wharfv1.StatusResponse) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	rows := [][2]string{
		{"Node", fmt.Sprintf("%s (%s)", s.NodeName, s.NodeId)},
		{"Version", s.Version},
		{"Raft state", s.RaftState},
		{"Leader", fmt.Sprintf("%s (%s)", s.LeaderId, s.LeaderAddress)},
		{"Raft term", fmt.Sprint(s.RaftTerm)},
		{"Raft last index", fmt.Sprint(s.RaftLastIndex)},
		{"Raft commit index", fmt.Sprint(s.RaftCommitIndex)},
		{"FSM applied index", fmt.Sprint(s.FsmAppliedIndex)},
		{"Blobs", fmt.Sprintf("%d (%s)", s.BlobCount, humanBytes(s.BlobBytes))},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", r[0], r[1])
	}
	_ = w.Flush()
}

func newReposCommand() *cobra.Command {
	var c clientOptions
	var namespace string
	cmd := &cobra.Command{
		Use:   "repos",
		Short: "List repositories",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client := wharfv1connect.NewRegistryServiceClient(c.httpClient(), c.baseURL())
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "REPOSITORY\tNAMESPACE\tTAGS\tMANIFESTS\tCREATED")
			token := ""
			for {
				resp, err := client.ListRepositories(cmd.Context(), connect.NewRequest(&wharfv1.ListRepositoriesRequest{
					Namespace: namespace, PageSize: 500, PageToken: token,
				}))
				if err != nil {
					return fmt.Errorf("list repositories on %s: %w", c.server, err)
				}
				for _, r := range resp.Msg.Repositories {
					created := time.Unix(0, r.CreatedUnixNanos).UTC().Format(time.RFC3339)
					fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\n", r.Name, r.Namespace, r.TagCount, r.ManifestCount, created)
				}
				if token = resp.Msg.NextPageToken; token == "" {
					break
				}
			}
			return w.Flush()
		},
	}
	c.register(cmd)
	cmd.Flags().StringVar(&namespace, "namespace", "", "list only this namespace's repositories")
	return cmd
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
