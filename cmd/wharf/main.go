// Command wharf is the one binary of the wharf container registry: it runs a
// node (wharf serve) and is the operators' command-line client of the admin
// API (wharf status, wharf repo ls, wharf image show, ...).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
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
		stop()
		os.Exit(exitCode(err))
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
		newVersionCommand(),
		newKeygenCommand(),
		newClusterCommand(c),
		newLoginCommand(c),
		newLogoutCommand(c),
		newUserCommand(c),
		newGroupCommand(c),
		newRoleCommand(c),
		newRepoCommand(c),
		newTokenCommand(c),
		newWhoAmICommand(c),
		newImageCommand(c),
		newTagCommand(c),
		newNamespaceCommand(c),
		newActivityCommand(c),
		newGCCommand(c),
		newRemoteCommand(c),
		newMirrorCommand(c),
		newCacheCommand(c),
		newSyncCommand(c),
	)
	refuseUnknownSubcommands(root)
	markUsageErrors(root)
	return root
}

// refuseUnknownSubcommands makes every command group below cmd (a command
// with subcommands and nothing to run of its own) fail on an unknown
// subcommand with a usage error (exit 2). cobra refuses one at the root only,
// with a plain error; for a group it prints the
// help and exits 0, so 'wharf repo delete X' looked like a success.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if cmd.HasSubCommands() && !cmd.Runnable() {
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = unknownSubcommand
	}
}

// unknownSubcommand is the RunE of a command group: without arguments it
// prints the group's help, else it refuses the first as an unknown command.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if suggestions := cmd.SuggestionsFor(args[0]); len(suggestions) > 0 {
		msg += "; did you mean " + strings.Join(suggestions, " or ") + "?"
	}
	return usageError(fmt.Errorf("%s (run '%s --help' for its commands)", msg, cmd.CommandPath()))
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
