package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// clientOptions are the global flags of the admin-API subcommands: which
// node to ask and as whom.
type clientOptions struct {
	server        string
	username      string
	passwordStdin bool
	timeout       time.Duration
	// output is the format of listings: table or json.
	output string

	// password is read from stdin, WHARF_PASSWORD (WHARF_TOKEN) or the
	// credentials file.
	password       string
	storedPassword bool // password came from the credentials file
	resolved       bool
}

// registerGlobal adds the client flags to the root command.
func (c *clientOptions) registerGlobal(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&c.server, "server", "", "wharf node to ask (env WHARF_SERVER or WHARF_URL; default: the server of 'wharf login', else http://localhost:5001)")
	f.StringVarP(&c.username, "username", "u", "", "user to authenticate as (env WHARF_USERNAME)")
	f.BoolVar(&c.passwordStdin, "password-stdin", false, "read the password (or an API token) from the first line of stdin (else env WHARF_PASSWORD, or WHARF_TOKEN for an API token)")
	f.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for an answer")
	f.StringVarP(&c.output, "output", "o", "table", "output format of listings and descriptions: table or json")
	cmd.PersistentPreRunE = func(*cobra.Command, []string) error {
		if c.output != "table" && c.output != "json" {
			return usageError(fmt.Errorf("--output %q: use table or json", c.output))
		}
		return nil
	}
}

// resolve fills in the server and credentials: flags first, then the
// environment, then the file 'wharf login' wrote.
func (c *clientOptions) resolve(cmd *cobra.Command) error {
	if c.resolved {
		return nil
	}
	c.resolved = true
	if c.server == "" {
		c.server = cmp.Or(os.Getenv("WHARF_SERVER"), os.Getenv("WHARF_URL"))
	}
	if c.username == "" {
		c.username = os.Getenv("WHARF_USERNAME")
	}
	if c.passwordStdin {
		pw, err := readSecretLine(cmd.InOrStdin())
		if err != nil {
			return fmt.Errorf("--password-stdin: %w", err)
		}
		c.password = pw
	} else {
		c.password = cmp.Or(os.Getenv("WHARF_PASSWORD"), os.Getenv("WHARF_TOKEN"))
	}
	creds, err := loadCredentials()
	if err != nil {
		return err
	}
	if c.server == "" {
		c.server = creds.Current
	}
	if c.server == "" {
		c.server = defaultServer
	}
	// Only a command without a password of its own uses a stored one, and
	// only then asks a server which cluster it belongs to.
	identify := c.identify
	if c.password != "" {
		identify = nil
	}
	if key, ok := creds.find(cmd.Context(), c.server, identify); ok {
		stored := creds.Servers[key]
		if c.username == "" {
			c.username = stored.Username
		}
		if c.password == "" && c.username == stored.Username {
			c.password, c.storedPassword = stored.Password, true
		}
	}
	return nil
}

// defaultServer is the node the CLI asks when nothing names one.
const defaultServer = "http://localhost:5001"

// identify asks server, without credentials, for the public URL of its
// cluster.
func (c *clientOptions) identify(ctx context.Context, server string) (string, error) {
	client := wharfv1connect.NewClusterServiceClient(&http.Client{Timeout: c.timeout}, normalizeServer(server))
	resp, err := client.Identity(ctx, connect.NewRequest(&wharfv1.IdentityRequest{}))
	if err != nil {
		return "", fmt.Errorf("ask %s which cluster it belongs to: %w", server, err)
	}
	return resp.Msg.PublicUrl, nil
}

// readSecretLine reads the first line of r, without its line ending.
func readSecretLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("stdin is empty")
	}
	return line, nil
}

// promptSecret asks for a secret on the terminal without echoing it; when
// stdin is not a terminal it reads the first line of stdin instead.
func promptSecret(cmd *cobra.Command, prompt string) (string, error) {
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return readSecretLine(cmd.InOrStdin())
	}
	fmt.Fprint(cmd.ErrOrStderr(), prompt)
	b, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(cmd.ErrOrStderr())
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", errors.New("no password given")
	}
	return string(b), nil
}

func normalizeServer(s string) string {
	s = strings.TrimSuffix(s, "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return s
}

func (c *clientOptions) baseURL() string { return normalizeServer(c.server) }

// httpClient sends the credentials, if any, as HTTP Basic.
func (c *clientOptions) httpClient() *http.Client {
	return &http.Client{Timeout: c.timeout, Transport: basicAuth{c.username, c.password}}
}

type basicAuth struct{ user, password string }

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.user != "" {
		r = r.Clone(r.Context())
		r.SetBasicAuth(b.user, b.password)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// clientCommand wraps a subcommand's RunE so that the server and the
// credentials are resolved first.
func clientCommand(c *clientOptions, cmd *cobra.Command, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := c.resolve(cmd); err != nil {
			return err
		}
		return run(cmd, args)
	}
	return cmd
}

func newStatusCommand(c *clientOptions) *cobra.Command {
	return clientCommand(c, &cobra.Command{
		Use:   "status",
		Short: "Show the status of a wharf node",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		client := wharfv1connect.NewClusterServiceClient(c.httpClient(), c.baseURL())
		resp, err := client.Status(cmd.Context(), connect.NewRequest(&wharfv1.StatusRequest{}))
		if err != nil {
			return fmt.Errorf("status of %s: %w", c.server, err)
		}
		printStatus(cmd, resp.Msg)
		return nil
	})
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
