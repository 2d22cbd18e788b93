package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/spf13/cobra"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
)

// runMainEnv makes the test binary run wharf's main instead of the tests,
// so that tests can check the exit status of real command lines.
const runMainEnv = "WHARF_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runWharf runs wharf with args in a child process and returns its exit
// status and combined output. The child has no stored credentials.
func runWharf(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "XDG_CONFIG_HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("run wharf %v: %v", args, err)
	return -1, ""
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"repo", "delete", "acme/app"}, exitUsage, `unknown command "delete" for "wharf repo"`},
		{[]string{"cluster", "foo"}, exitUsage, `unknown command "foo" for "wharf cluster"`},
		{[]string{"cluster", "member"}, exitUsage, "did you mean members?"},
		{[]string{"nosuch"}, exitUsage, `unknown command "nosuch" for "wharf"`},
		{[]string{"cluster", "status", "extra"}, exitUsage, "unknown command"},
		{[]string{"cluster", "--nosuchflag"}, exitUsage, "unknown flag"},
		{[]string{"repo", "show"}, exitUsage, "accepts 1 arg"},
		{[]string{"image", "show", "acme/app"}, exitUsage, "name an image as REPOSITORY:TAG or REPOSITORY@DIGEST"},
		{[]string{"tag", "rm", "acme/app@sha256:" + strings.Repeat("a", 64)}, exitUsage, "name the tag to remove"},
		{[]string{"repo", "ls", "-o", "yaml"}, exitUsage, `--output "yaml": use table or json`},
		{[]string{"repo", "ls", "--sort", "size"}, exitUsage, `--sort "size"`},
		{[]string{"repo", "ls"}, exitUnavailable, "connection refused"},
		{[]string{}, 0, "Available Commands"},
		{[]string{"cluster"}, 0, "Available Commands"},
		{[]string{"version"}, 0, "dev"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out := runWharf(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tt.code, tt.want)
			}
		})
	}
}

// Every command group refuses an unknown subcommand, whatever its place in
// the tree.
func TestEveryGroupRefusesUnknownSubcommands(t *testing.T) {
	groups := 0
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
		if !cmd.HasSubCommands() {
			return
		}
		groups++
		path := strings.Fields(cmd.CommandPath())[1:]
		root := newRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(path, "no-such-command"))
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("%s no-such-command: err = %v, want an unknown command error (output %q)", cmd.CommandPath(), err, out.String())
		}
	}
	walk(newRootCommand())
	if groups < 7 {
		t.Errorf("found %d command groups, want the root and at least cluster, user, group, role, repo and token", groups)
	}
}

// Every management command shows examples in its --help.
func TestManagementCommandsHaveExamples(t *testing.T) {
	root := newRootCommand()
	var walk func(cmd *cobra.Command)
	checked := 0
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
		if cmd.Runnable() && !cmd.HasSubCommands() && cmd.RunE != nil {
			checked++
			if cmd.Example == "" {
				t.Errorf("%q has no examples", cmd.CommandPath())
			}
		}
	}
	for _, name := range []string{"repo", "image", "tag", "ns", "activity", "remote", "mirror", "cache", "sync"} {
		cmd, _, err := root.Find([]string{name})
		if err != nil || cmd.Name() != name {
			t.Fatalf("find %s: %v", name, err)
		}
		walk(cmd)
	}
	if checked < 14 {
		t.Fatalf("checked %d commands, want the 14 management commands at least", checked)
	}
}

// A configuration without a platform (a cosign signature's) shows none,
// not "/".
func TestPrintImageWithoutPlatform(t *testing.T) {
	for _, tt := range []struct {
		cfg  *wharfv1.ImageConfig
		want string
	}{
		{&wharfv1.ImageConfig{}, "Platform: -"},
		{&wharfv1.ImageConfig{Os: "linux", Architecture: "arm64"}, "Platform: linux/arm64"},
	} {
		var buf bytes.Buffer
		w := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
		printImage(w, &wharfv1.GetImageResponse{Image: &wharfv1.Image{Digest: "sha256:00"}, Config: tt.cfg})
		w.Flush()
		if !strings.Contains(strings.Join(strings.Fields(buf.String()), " "), tt.want+" Author:") {
			t.Errorf("printImage with config %v:\n%s\nwant a line %q", tt.cfg, buf.String(), tt.want)
		}
	}
}
