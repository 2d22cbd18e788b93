package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// The commands of remote registries: wharf remote ls, show, add, update,
// rm and test. Each needs the admin role. Secrets are read from stdin or
// the environment, never from the command line, and never printed.

// remotePasswordEnv holds a remote's password or token for add and update.
const remotePasswordEnv = "WHARF_REMOTE_PASSWORD"

func (c *clientOptions) remoteClient() wharfv1connect.RemoteServiceClient {
	return wharfv1connect.NewRemoteServiceClient(c.httpClient(), c.baseURL())
}

// remoteFlags are the settings add and update take.
type remoteFlags struct {
	username                  string
	passwordStdin, noPassword bool
	insecure                  bool
	caFile                    string
	clientCert, clientKey     string
	proxy                     string
	rateLimit                 float64
	concurrency               int32
	requestTimeout            time.Duration
}

func (f *remoteFlags) register(fs *pflag.FlagSet, update bool) {
	fs.StringVar(&f.username, "username", "", "user name at the remote registry (the caller's own comes from 'wharf login' or WHARF_USERNAME)")
	fs.BoolVar(&f.passwordStdin, "password-stdin", false, "read the remote's password or token from the first line of stdin (else env "+remotePasswordEnv+")")
	fs.BoolVar(&f.insecure, "insecure-skip-tls-verify", false, "do not verify the remote's TLS certificate")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM file of CA certificates the remote's certificate is verified against, besides the system's")
	fs.StringVar(&f.clientCert, "client-cert", "", "PEM file of a TLS client certificate (with --client-key)")
	fs.StringVar(&f.clientKey, "client-key", "", "PEM file of the client certificate's private key")
	fs.StringVar(&f.proxy, "proxy", "", "HTTP(S) or SOCKS5 proxy URL; credentials in it (http://user:pass@host:3128) are stored sealed")
	fs.Float64Var(&f.rateLimit, "rate-limit", 0, "requests per second to the remote, shared by every node; 0 for no limit")
	fs.Int32Var(&f.concurrency, "concurrency", 0, "parallel downloads, 1 to 64 (default 4)")
	fs.DurationVar(&f.requestTimeout, "request-timeout", 0, "time limit of each request to the remote, 1s to 10m (default 60s)")
	if update {
		fs.BoolVar(&f.noPassword, "clear-password", false, "remove the stored password or token")
	}
}

// password returns the remote's password from stdin or the environment.
func (f *remoteFlags) password(cmd *cobra.Command) (string, error) {
	if f.passwordStdin {
		pw, err := readSecretLine(cmd.InOrStdin())
		if err != nil {
			return "", fmt.Errorf("read the remote's password from stdin: %w", err)
		}
		return pw, nil
	}
	return os.Getenv(remotePasswordEnv), nil
}

func readPEMFlag(flag, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", usageError(fmt.Errorf("--%s: %w", flag, err))
	}
	return string(data), nil
}

func newRemoteCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "remote",
		Short: "Manage remote registries, the upstreams syncs read from (admin)",
		Long: `A remote registry is an upstream wharf will sync images from: its URL, the
credentials to log in with, TLS settings, a proxy, a rate limit shared by
every node, the download concurrency and a per-request time limit.

Secrets (the password or token, the client key, the proxy's password) are
read from stdin, the environment or files, never from the command line. The
node seals them before they enter the replicated state, and no command
prints them: 'show' says only which are set. Every command needs the admin
role; the caller's own credentials come from 'wharf login' or the
environment (WHARF_USERNAME, WHARF_PASSWORD), since --username and
--password-stdin of add and update are the remote's.`,
	}

	ls := clientCommand(c, &cobra.Command{
		Use:   "ls",
		Short: "List remote registries, every page",
		Example: `  wharf remote ls
  wharf remote ls -o json | jq -r '.remotes[].name'`,
		Args: cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		m := &wharfv1.ListRemotesResponse{}
		for {
			resp, err := c.remoteClient().ListRemotes(cmd.Context(), connect.NewRequest(&wharfv1.ListRemotesRequest{PageToken: m.NextPageToken}))
			if err != nil {
				return fmt.Errorf("list remote registries: %w", err)
			}
			m.Remotes, m.NextPageToken = append(m.Remotes, resp.Msg.Remotes...), resp.Msg.NextPageToken
			if m.NextPageToken == "" {
				break
			}
		}
		return c.emit(cmd, m, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "NAME\tURL\tUSERNAME\tPASSWORD\tRATE LIMIT\tCONCURRENCY\tUPDATED")
			for _, r := range m.Remotes {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", r.Name, r.Url, orDash(r.Username), setOrDash(r.PasswordSet),
					rateString(r.RateLimit), r.Concurrency, when(r.UpdatedUnixNanos))
			}
		})
	})

	show := clientCommand(c, &cobra.Command{
		Use:   "show NAME",
		Short: "Show a remote registry's settings (secrets only as set or not)",
		Example: `  wharf remote show hub
  wharf remote show hub -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.remoteClient().GetRemote(cmd.Context(), connect.NewRequest(&wharfv1.GetRemoteRequest{Name: args[0]}))
		if err != nil {
			return fmt.Errorf("remote %s: %w", args[0], err)
		}
		r := resp.Msg.Remote
		return c.emit(cmd, r, func(w *tabwriter.Writer) { printRemote(w, r) })
	})

	var addFlags remoteFlags
	add := clientCommand(c, &cobra.Command{
		Use:   "add NAME URL",
		Short: "Add a remote registry",
		Long: `Add a remote registry named NAME (1 to 63 of a-z, 0-9, '.', '_', '-') at URL
(http or https, a host and port, no path). The password or token comes from
stdin with --password-stdin, or from the environment variable
WHARF_REMOTE_PASSWORD.`,
		Example: `  echo "$HUB_TOKEN" | wharf remote add hub https://registry-1.docker.io --username bob --password-stdin
  WHARF_REMOTE_PASSWORD=s3cret wharf remote add quay https://quay.io --username bot --rate-limit 5
  wharf remote add lab https://registry.lab:5000 --ca-file lab-ca.pem --client-cert me.pem --client-key me-key.pem
  wharf remote add hub https://registry-1.docker.io --proxy http://proxy.corp:3128 --concurrency 8 --request-timeout 2m -o json`,
		Args: cobra.ExactArgs(2),
	}, func(cmd *cobra.Command, args []string) error {
		f := &addFlags
		pw, err := f.password(cmd)
		if err != nil {
			return err
		}
		ca, err := readPEMFlag("ca-file", f.caFile)
		if err != nil {
			return err
		}
		cert, err := readPEMFlag("client-cert", f.clientCert)
		if err != nil {
			return err
		}
		key, err := readPEMFlag("client-key", f.clientKey)
		if err != nil {
			return err
		}
		if (cert == "") != (key == "") {
			return usageError(errors.New("give --client-cert and --client-key together"))
		}
		resp, err := c.remoteClient().CreateRemote(cmd.Context(), connect.NewRequest(&wharfv1.CreateRemoteRequest{
			Name: args[0], Url: args[1], Username: f.username, Password: pw,
			InsecureSkipTlsVerify: f.insecure, CaCertificatePem: ca, ClientCertificatePem: cert, ClientKeyPem: key,
			ProxyUrl: f.proxy, RateLimit: f.rateLimit, Concurrency: f.concurrency, TimeoutNanos: int64(f.requestTimeout),
		}))
		if err != nil {
			return fmt.Errorf("add remote %s: %w", args[0], err)
		}
		r := resp.Msg.Remote
		return c.emit(cmd, r, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "added remote %s (%s)\n", r.Name, r.Url)
		})
	})
	addFlags.register(add.Flags(), false)

	var upFlags remoteFlags
	var noCA, noClientCert, noProxy bool
	update := clientCommand(c, &cobra.Command{
		Use:   "update NAME",
		Short: "Change the settings of a remote registry; those not given are kept",
		Long: `Change the settings given and keep the others. The password changes only
with --password-stdin (or WHARF_REMOTE_PASSWORD set and not empty), and is
removed with --clear-password; --proxy replaces the proxy with the
credentials in its URL.`,
		Example: `  wharf remote update hub --rate-limit 10 --concurrency 8
  echo "$NEW_TOKEN" | wharf remote update hub --password-stdin
  wharf remote update hub --clear-password --username ""
  wharf remote update lab --ca-file new-ca.pem --insecure-skip-tls-verify=false`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		req, err := updateRequest(cmd, args[0], &upFlags, noCA, noClientCert, noProxy)
		if err != nil {
			return err
		}
		resp, err := c.remoteClient().UpdateRemote(cmd.Context(), connect.NewRequest(req))
		if err != nil {
			return fmt.Errorf("update remote %s: %w", args[0], err)
		}
		r := resp.Msg.Remote
		return c.emit(cmd, r, func(w *tabwriter.Writer) { fmt.Fprintf(w, "updated remote %s\n", r.Name) })
	})
	upFlags.register(update.Flags(), true)
	update.Flags().BoolVar(&noCA, "clear-ca", false, "remove the CA certificates")
	update.Flags().BoolVar(&noClientCert, "clear-client-cert", false, "remove the client certificate and its key")
	update.Flags().BoolVar(&noProxy, "clear-proxy", false, "remove the proxy and its credentials")

	rm := clientCommand(c, &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a remote registry",
		Example: `  wharf remote rm hub
  wharf remote rm hub -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.remoteClient().DeleteRemote(cmd.Context(), connect.NewRequest(&wharfv1.DeleteRemoteRequest{Name: args[0]}))
		if err != nil {
			return fmt.Errorf("remove remote %s: %w", args[0], err)
		}
		return c.emit(cmd, resp.Msg, func(w *tabwriter.Writer) { fmt.Fprintf(w, "removed remote %s\n", args[0]) })
	})

	test := clientCommand(c, &cobra.Command{
		Use:   "test NAME",
		Short: "Ping a remote registry's /v2/ with its settings and credentials, from the node that answers",
		Long: `Ping the remote's /v2/ anonymously, then log in with the stored
credentials as a sync would, and report the HTTP status, the auth scheme
(basic, bearer or none), the token realm and service, and whether the login
worked. A remote that cannot be reached or refuses the login exits 1 with
the report; the report never holds a secret.`,
		Example: `  wharf remote test hub
  wharf remote test hub -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.remoteClient().TestRemote(cmd.Context(), connect.NewRequest(&wharfv1.TestRemoteRequest{Name: args[0]}))
		if err != nil {
			return fmt.Errorf("test remote %s: %w", args[0], err)
		}
		m := resp.Msg
		if err := c.emit(cmd, m, func(w *tabwriter.Writer) { printRemoteTest(w, m) }); err != nil {
			return err
		}
		if !m.Authenticated {
			return fmt.Errorf("remote %s: the test failed: %s", args[0], orDash(m.Error))
		}
		return nil
	})
	cmd.AddCommand(ls, show, add, update, rm, test)
	return cmd
}

// updateRequest builds an UpdateRemoteRequest of the flags the command
// line set.
func updateRequest(cmd *cobra.Command, name string, f *remoteFlags, noCA, noClientCert, noProxy bool) (*wharfv1.UpdateRemoteRequest, error) {
	fl := cmd.Flags()
	req := &wharfv1.UpdateRemoteRequest{Name: name}
	if fl.Changed("username") {
		req.Username = &f.username
	}
	pw, err := f.password(cmd)
	if err != nil {
		return nil, err
	}
	switch {
	case f.noPassword && (f.passwordStdin || pw != ""):
		return nil, usageError(errors.New("--clear-password with a new password: give one or the other"))
	case f.noPassword:
		req.Password = &wharfv1.SecretUpdate{Change: &wharfv1.SecretUpdate_Clear{Clear: true}}
	case pw != "":
		req.Password = &wharfv1.SecretUpdate{Change: &wharfv1.SecretUpdate_Value{Value: pw}}
	case f.passwordStdin:
		return nil, usageError(errors.New("--password-stdin read an empty password: use --clear-password to remove it"))
	}
	if fl.Changed("insecure-skip-tls-verify") {
		req.InsecureSkipTlsVerify = &f.insecure
	}
	if fl.Changed("ca-file") || noCA {
		ca, err := readPEMFlag("ca-file", f.caFile)
		if err != nil {
			return nil, err
		}
		req.CaCertificatePem = &ca
	}
	if fl.Changed("client-cert") != fl.Changed("client-key") {
		return nil, usageError(errors.New("give --client-cert and --client-key together"))
	}
	switch {
	case noClientCert:
		empty := ""
		req.ClientCertificatePem = &empty
		req.ClientKeyPem = &wharfv1.SecretUpdate{Change: &wharfv1.SecretUpdate_Clear{Clear: true}}
	case fl.Changed("client-cert"):
		cert, err := readPEMFlag("client-cert", f.clientCert)
		if err != nil {
			return nil, err
		}
		key, err := readPEMFlag("client-key", f.clientKey)
		if err != nil {
			return nil, err
		}
		req.ClientCertificatePem = &cert
		req.ClientKeyPem = &wharfv1.SecretUpdate{Change: &wharfv1.SecretUpdate_Value{Value: key}}
	}
	if fl.Changed("proxy") || noProxy {
		p := f.proxy
		if noProxy {
			p = ""
		}
		req.ProxyUrl = &p
	}
	if fl.Changed("rate-limit") {
		req.RateLimit = &f.rateLimit
	}
	if fl.Changed("concurrency") {
		req.Concurrency = &f.concurrency
	}
	if fl.Changed("request-timeout") {
		t := int64(f.requestTimeout)
		req.TimeoutNanos = &t
	}
	return req, nil
}

func setOrDash(set bool) string {
	if set {
		return "set"
	}
	return "-"
}

func rateString(r float64) string {
	if r == 0 {
		return "unlimited"
	}
	return strconv.FormatFloat(r, 'g', -1, 64) + "/s"
}

func printRemote(w *tabwriter.Writer, r *wharfv1.Remote) {
	fmt.Fprintf(w, "Name:\t%s\n", r.Name)
	fmt.Fprintf(w, "URL:\t%s\n", r.Url)
	fmt.Fprintf(w, "Username:\t%s\n", orDash(r.Username))
	fmt.Fprintf(w, "Password:\t%s\n", setOrDash(r.PasswordSet))
	fmt.Fprintf(w, "TLS verify:\t%v\n", !r.InsecureSkipTlsVerify)
	fmt.Fprintf(w, "CA certificates:\t%s\n", setOrDash(r.CaCertificatePem != ""))
	fmt.Fprintf(w, "Client certificate:\t%s\n", setOrDash(r.ClientCertificatePem != ""))
	fmt.Fprintf(w, "Client key:\t%s\n", setOrDash(r.ClientKeySet))
	fmt.Fprintf(w, "Proxy:\t%s\n", orDash(r.ProxyUrl))
	if r.ProxyUrl != "" {
		fmt.Fprintf(w, "Proxy username:\t%s\n", orDash(r.ProxyUsername))
		fmt.Fprintf(w, "Proxy password:\t%s\n", setOrDash(r.ProxyPasswordSet))
	}
	fmt.Fprintf(w, "Rate limit:\t%s\n", rateString(r.RateLimit))
	fmt.Fprintf(w, "Concurrency:\t%d\n", r.Concurrency)
	fmt.Fprintf(w, "Request timeout:\t%s\n", time.Duration(r.TimeoutNanos))
	fmt.Fprintf(w, "Created:\t%s by %s\n", when(r.CreatedUnixNanos), orDash(r.CreatedBy))
	fmt.Fprintf(w, "Updated:\t%s by %s\n", when(r.UpdatedUnixNanos), orDash(r.UpdatedBy))
	for _, f := range r.KeyMismatch {
		fmt.Fprintf(w, "Warning:\t%s was sealed under another key than this node's: set it again\n", f)
	}
}

func printRemoteTest(w *tabwriter.Writer, m *wharfv1.TestRemoteResponse) {
	fmt.Fprintf(w, "Reachable:\t%v\n", m.Reachable)
	if m.Reachable {
		fmt.Fprintf(w, "GET /v2/:\t%d\n", m.HttpStatus)
	}
	fmt.Fprintf(w, "Auth scheme:\t%s\n", orDash(m.AuthScheme))
	if m.Realm != "" || m.Service != "" {
		fmt.Fprintf(w, "Token realm:\t%s\n", orDash(m.Realm))
		fmt.Fprintf(w, "Token service:\t%s\n", orDash(m.Service))
	}
	fmt.Fprintf(w, "Credentials used:\t%v\n", m.CredentialsUsed)
	fmt.Fprintf(w, "Authenticated:\t%v", m.Authenticated)
	if m.AuthenticatedStatus != 0 {
		fmt.Fprintf(w, " (%d)", m.AuthenticatedStatus)
	}
	fmt.Fprintln(w)
	if m.Error != "" {
		fmt.Fprintf(w, "Error:\t%s\n", m.Error)
	}
	fmt.Fprintf(w, "Took:\t%s\n", time.Duration(m.ElapsedNanos).Round(time.Millisecond))
}
