// Command wharf is the one binary of the wharf container registry: it runs a
// node (wharf serve) and is the operators' command-line client of the admin
// API (wharf status, wharf repos).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "wharf:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "wharf",
		Short:         "wharf is a distributed OCI container registry",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	c := &clientOptions{}
	c.registerGlobal(root)
	root.AddCommand(
		newServeCommand(),
		newStatusCommand(c),
		newReposCommand(c),
		newVersionCommand(),
		newKeygenCommand(),
		newClusterCommand(c),
		newLoginCommand(c),
		newUserCommand(c),
		newGroupCommand(c),
		newRoleCommand(c),
		newRepoCommand(c),
		newTokenCommand(c),
		newWhoAmICommand(c),
	)
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print wharf's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version)
		},
	}
}
