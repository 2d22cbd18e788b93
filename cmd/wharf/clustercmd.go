package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/cluster"
)

func newKeygenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new cluster key for --cluster-key",
		Long: `Print a new random cluster key. Every node of a cluster is started with the
same key: gossip is encrypted with a key derived from it, and the nodes'
mutual-TLS certificates chain to a CA derived from it. Keep it secret.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, err := cluster.GenerateKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), key)
			return nil
		},
	}
}

func newClusterCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect and operate the cluster",
	}
	cmd.AddCommand(
		newClusterStatusCommand(c),
		newClusterMembersCommand(c),
		newClusterLeaveCommand(c),
		newClusterTransferCommand(c),
		newClusterRemoveCommand(c),
	)
	return cmd
}

func (c *clientOptions) clusterClient() wharfv1connect.ClusterServiceClient {
	return wharfv1connect.NewClusterServiceClient(c.httpClient(), c.baseURL())
}

func newClusterStatusCommand(c *clientOptions) *cobra.Command {
	return clientCommand(c, &cobra.Command{
		Use:   "status",
		Short: "Summarise the cluster: leader, members, under-replicated blobs",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		resp, err := c.clusterClient().Members(cmd.Context(), connect.NewRequest(&wharfv1.MembersRequest{}))
		if err != nil {
			return fmt.Errorf("members of %s: %w", c.server, err)
		}
		counts := map[string]int{}
		leader := "none"
		for _, m := range resp.Msg.Members {
			counts[m.State]++
			if m.RaftRole == "leader" {
				leader = fmt.Sprintf("%s (%s)", m.NodeName, m.NodeId)
			}
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintf(w, "Leader:\t%s\n", leader)
		fmt.Fprintf(w, "Members:\t%d (%d alive, %d suspect, %d dead, %d left)\n", len(resp.Msg.Members),
			counts["alive"], counts["suspect"], counts["dead"], counts["left"])
		fmt.Fprintf(w, "Under-replicated blobs:\t%d\n", resp.Msg.UnderReplicatedBlobs)
		return w.Flush()
	})
}

func newClusterMembersCommand(c *clientOptions) *cobra.Command {
	return clientCommand(c, &cobra.Command{
		Use:   "members",
		Short: "List the cluster's nodes with their state, role, indexes and disk",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		resp, err := c.clusterClient().Members(cmd.Context(), connect.NewRequest(&wharfv1.MembersRequest{}))
		if err != nil {
			return fmt.Errorf("members of %s: %w", c.server, err)
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "NAME\tID\tSTATE\tROLE\tCLUSTER ADDRESS\tGOSSIP ADDRESS\tLAST CONTACT\tAPPLIED\tBLOBS\tDISK USED\tDISK FREE")
		for _, m := range resp.Msg.Members {
			fmt.Fprintln(w, memberRow(m))
		}
		return w.Flush()
	})
}

func memberRow(m *wharfv1.Member) string {
	contact := "-"
	if m.LastContactUnixNanos > 0 {
		contact = time.Since(time.Unix(0, m.LastContactUnixNanos)).Round(time.Millisecond).String() + " ago"
	}
	applied, blobs, used, free := "?", "?", "?", "?"
	if st := m.Status; st != nil {
		applied = fmt.Sprint(st.FsmAppliedIndex)
		blobs = fmt.Sprintf("%d (%s)", st.BlobCount, humanBytes(st.BlobBytes))
		used, free = humanBytes(int64(st.DiskUsedBytes)), humanBytes(int64(st.DiskFreeBytes))
	}
	return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", m.NodeName, m.NodeId, m.State, m.RaftRole,
		m.ClusterAddress, m.GossipAddress, contact, applied, blobs, used, free)
}

func newClusterLeaveCommand(c *clientOptions) *cobra.Command {
	return clientCommand(c, &cobra.Command{
		Use:   "leave",
		Short: "Make the node named by --server leave the cluster and stop",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		if _, err := c.clusterClient().Leave(cmd.Context(), connect.NewRequest(&wharfv1.LeaveRequest{})); err != nil {
			return fmt.Errorf("leave %s: %w", c.server, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s is leaving the cluster\n", c.server)
		return nil
	})
}

func newClusterTransferCommand(c *clientOptions) *cobra.Command {
	return clientCommand(c, &cobra.Command{
		Use:   "transfer-leadership",
		Short: "Make the leader named by --server hand leadership to another voter",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		resp, err := c.clusterClient().TransferLeadership(cmd.Context(), connect.NewRequest(&wharfv1.TransferLeadershipRequest{}))
		if err != nil {
			return fmt.Errorf("transfer leadership from %s: %w", c.server, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "leadership moved to %s\n", resp.Msg.NewLeaderId)
		return nil
	})
}

func newClusterRemoveCommand(c *clientOptions) *cobra.Command {
	var force bool
	cmd := clientCommand(c, &cobra.Command{
		Use:   "remove NODE [--force]",
		Short: "Remove a dead node (by ID or name) from the cluster now",
		Long: `Remove a node from the cluster now: from the Raft configuration and from the
registered nodes, as the leader does by itself once a node has been dead for
--dead-node-timeout. Any node may be asked; a follower asks the leader.

A node gossip sees alive is refused unless --force is given (a running node
whose cluster port still answers is added back at once: stop it first). A
voter whose removal would leave too few alive voters for a quorum is always
refused. To take a live node out, use 'wharf cluster leave' on it.`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.clusterClient().RemoveMember(cmd.Context(), connect.NewRequest(&wharfv1.RemoveMemberRequest{Node: args[0], Force: force}))
		if err != nil {
			return fmt.Errorf("remove %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "removed node %s (%s) from the cluster\n", resp.Msg.NodeName, resp.Msg.NodeId)
		return nil
	})
	cmd.Flags().BoolVar(&force, "force", false, "remove the node even though gossip sees it alive")
	return cmd
}
