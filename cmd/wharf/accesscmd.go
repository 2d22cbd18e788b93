package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

func (c *clientOptions) accessClient() wharfv1connect.AccessServiceClient {
	return wharfv1connect.NewAccessServiceClient(c.httpClient(), c.baseURL())
}

func table(cmd *cobra.Command) *tabwriter.Writer {
	return tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newLoginCommand(c *clientOptions) *cobra.Command {
	return clientCommand(c, &cobra.Command{
		Use:   "login [SERVER]",
		Short: "Check credentials and store them for the next commands",
		Long: `Log in to a wharf node or cluster: the user (--username) and the password
(or an API token: asked for without echo on a terminal, else the first line of
stdin, or WHARF_PASSWORD / WHARF_TOKEN) are checked, then
stored with the server in $XDG_CONFIG_HOME/wharf/credentials.json
(~/.config/wharf/ by default, mode 0600). Later commands use them when no
other credentials are given.

One login serves a whole cluster: the credential is stored with the
cluster's public URL (--public-url of its nodes), and is used for the public
URL and for every server that reports the same public URL, so --server may
name any node. A new login to the same cluster replaces the old one.`,
		Args: cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			c.server = args[0]
		}
		if c.storedPassword {
			c.password = ""
		}
		if c.username == "" {
			return errors.New("give the user with --username (or WHARF_USERNAME)")
		}
		if c.password == "" {
			pw, err := promptSecret(cmd, fmt.Sprintf("Password for %s at %s: ", c.username, c.baseURL()))
			if err != nil {
				return fmt.Errorf("read the password: %w", err)
			}
			c.password = pw
		}
		resp, err := c.accessClient().WhoAmI(cmd.Context(), connect.NewRequest(&wharfv1.WhoAmIRequest{}))
		if err != nil {
			return fmt.Errorf("log in to %s: %w", c.baseURL(), err)
		}
		public, err := c.identify(cmd.Context(), c.baseURL())
		if err != nil && connect.CodeOf(err) != connect.CodeUnimplemented { // older nodes cannot say
			return err
		}
		creds, err := loadCredentials()
		if err != nil {
			return err
		}
		cred := serverCredential{Username: c.username, Password: c.password}
		if _, _, isToken := auth.ParseAPIToken(c.password); !isToken {
			// A password is not stored: a login session stands for it.
			host, _ := os.Hostname()
			sess, err := c.accessClient().CreateToken(cmd.Context(), connect.NewRequest(&wharfv1.CreateTokenRequest{
				Session: true, Description: "wharf login from " + cmp.Or(host, "an unnamed host"),
			}))
			if err != nil {
				return fmt.Errorf("create a login session on %s: %w", c.baseURL(), err)
			}
			cred.Password, cred.Session = sess.Msg.Secret, sess.Msg.Token.GetId()
		}
		if public != "" {
			cred.PublicURL = normalizeServer(public)
		}
		creds.store(c.baseURL(), cred)
		path, err := saveCredentials(creds)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Login Succeeded: %s as %s (saved in %s)\n", c.baseURL(), resp.Msg.User, path)
		if cred.Session != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "The password is not stored: login session %s stands for it for 30 days, until 'wharf logout' or a new password.\n", cred.Session)
		}
		if cred.PublicURL != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "It serves every node of the cluster at %s.\n", cred.PublicURL)
		}
		return nil
	})
}

func newLogoutCommand(c *clientOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "logout [SERVER | --all]",
		Short: "Remove a stored login",
		Long: `Remove the credential 'wharf login' stored for SERVER (default: --server,
WHARF_SERVER, else the server of the last login), which is the credential of
that server's whole cluster; --all removes every stored credential.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if all && len(args) > 0 {
				return errors.New("give a server or --all, not both")
			}
			creds, err := loadCredentials()
			if err != nil {
				return err
			}
			if all {
				return logoutAll(cmd, c, creds)
			}
			server := c.server
			if len(args) == 1 {
				server = args[0]
			}
			return logout(cmd, c, creds, cmp.Or(server, os.Getenv("WHARF_SERVER"), creds.Current))
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove every stored login")
	return cmd
}

// logout removes the credential that serves server.
func logout(cmd *cobra.Command, c *clientOptions, creds credentials, server string) error {
	if server == "" {
		fmt.Fprintln(cmd.OutOrStdout(), "not logged in")
		return nil
	}
	key, ok := creds.find(cmd.Context(), server, c.identify)
	if !ok {
		fmt.Fprintf(cmd.OutOrStdout(), "not logged in to %s\n", normalizeServer(server))
		return nil
	}
	cred := creds.Servers[key]
	revokeSession(cmd, c, key, cred)
	creds.remove(key)
	if _, err := saveCredentials(creds); err != nil {
		return err
	}
	what := key
	if cred.PublicURL != "" && cred.PublicURL != key {
		what += " (cluster " + cred.PublicURL + ")"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "removed the login of %s to %s\n", cred.Username, what)
	return nil
}

// revokeSession revokes the login session of cred, stored for server, on
// the server; a server that cannot be reached only costs a warning, and
// the session then ends when it expires.
func revokeSession(cmd *cobra.Command, c *clientOptions, server string, cred serverCredential) {
	if cred.Session == "" {
		return
	}
	o := *c
	o.server, o.username, o.password, o.resolved = server, cred.Username, cred.Password, true
	_, err := o.accessClient().RevokeToken(cmd.Context(), connect.NewRequest(&wharfv1.RevokeTokenRequest{Id: cred.Session}))
	if err != nil && connect.CodeOf(err) != connect.CodeUnauthenticated { // already revoked or expired: nothing to do
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: could not revoke login session %s on %s (it ends when it expires): %v\n", cred.Session, server, err)
	}
}

func logoutAll(cmd *cobra.Command, c *clientOptions, creds credentials) error {
	for server, cred := range creds.Servers {
		revokeSession(cmd, c, server, cred)
	}
	n := len(creds.Servers)
	if _, err := saveCredentials(credentials{Servers: map[string]serverCredential{}}); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "removed %d stored login(s)\n", n)
	return nil
}

func newWhoAmICommand(c *clientOptions) *cobra.Command {
	return clientCommand(c, &cobra.Command{
		Use:   "whoami",
		Short: "Show who the server takes you for, and your permissions",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		who, err := c.accessClient().WhoAmI(cmd.Context(), connect.NewRequest(&wharfv1.WhoAmIRequest{}))
		if err != nil {
			return err
		}
		w := table(cmd)
		fmt.Fprintf(w, "User:\t%s\n", orDash(who.Msg.User))
		fmt.Fprintf(w, "Superuser:\t%v\n", who.Msg.Superuser)
		fmt.Fprintf(w, "Groups:\t%s\n", orDash(strings.Join(who.Msg.Groups, ", ")))
		fmt.Fprintf(w, "Global roles:\t%s\n", orDash(strings.Join(who.Msg.GlobalRoles, ", ")))
		if who.Msg.TokenId != "" {
			fmt.Fprintf(w, "API token:\t%s\n", who.Msg.TokenId)
		}
		if who.Msg.User != "" {
			perms, err := c.accessClient().MyPermissions(cmd.Context(), connect.NewRequest(&wharfv1.MyPermissionsRequest{}))
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "Global permissions:\t%s\n", orDash(strings.Join(perms.Msg.Global, ", ")))
			for _, ns := range perms.Msg.Namespaces {
				fmt.Fprintf(w, "Namespace %s:\t%s (%s)\n", ns.Namespace, strings.Join(ns.Permissions, ", "), strings.Join(ns.Roles, ", "))
			}
		}
		return w.Flush()
	})
}

func newUserCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users (superusers only)"}
	var fromStdin, superuser bool
	create := clientCommand(c, &cobra.Command{
		Use:   "create NAME --password-stdin",
		Short: "Create a user; the password is read from stdin",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		if !fromStdin {
			return errors.New("give the new user's password on stdin with --password-stdin")
		}
		pw, err := readSecretLine(cmd.InOrStdin())
		if err != nil {
			return fmt.Errorf("read the password from stdin: %w", err)
		}
		_, err = c.accessClient().CreateUser(cmd.Context(), connect.NewRequest(&wharfv1.CreateUserRequest{Name: args[0], Password: pw, Superuser: superuser}))
		if err != nil {
			return fmt.Errorf("create user %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "created user %s\n", args[0])
		return nil
	})
	// The local --password-stdin is the new user's password; the caller's
	// credentials come from the environment or 'wharf login'.
	create.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the new user's password from the first line of stdin")
	create.Flags().BoolVar(&superuser, "superuser", false, "make the user a superuser")
	list := clientCommand(c, &cobra.Command{Use: "list", Short: "List users", Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string) error {
			resp, err := c.accessClient().ListUsers(cmd.Context(), connect.NewRequest(&wharfv1.ListUsersRequest{}))
			if err != nil {
				return fmt.Errorf("list users: %w", err)
			}
			w := table(cmd)
			fmt.Fprintln(w, "NAME\tSUPERUSER\tGROUPS\tCREATED")
			for _, u := range resp.Msg.Users {
				fmt.Fprintf(w, "%s\t%v\t%s\t%s\n", u.Name, u.Superuser, orDash(strings.Join(u.Groups, ",")), timeString(u.CreatedUnixNanos))
			}
			return w.Flush()
		})
	del := clientCommand(c, &cobra.Command{Use: "delete NAME", Short: "Delete a user with its grants and tokens", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string) error {
			if _, err := c.accessClient().DeleteUser(cmd.Context(), connect.NewRequest(&wharfv1.DeleteUserRequest{Name: args[0]})); err != nil {
				return fmt.Errorf("delete user %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted user %s\n", args[0])
			return nil
		})
	var pwStdin bool
	passwd := clientCommand(c, &cobra.Command{Use: "set-password [NAME] --password-stdin", Short: "Change a password (yours without NAME)", Args: cobra.MaximumNArgs(1)},
		func(cmd *cobra.Command, args []string) error {
			if !pwStdin {
				return errors.New("give the new password on stdin with --password-stdin")
			}
			pw, err := readSecretLine(cmd.InOrStdin())
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			if _, err := c.accessClient().SetPassword(cmd.Context(), connect.NewRequest(&wharfv1.SetPasswordRequest{Name: name, Password: pw})); err != nil {
				return fmt.Errorf("set password: %w", err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "password changed")
			return nil
		})
	passwd.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the new password from the first line of stdin")
	cmd.AddCommand(create, list, del, passwd)
	return cmd
}

func timeString(nanos int64) string {
	if nanos == 0 {
		return "-"
	}
	return time.Unix(0, nanos).UTC().Format(time.RFC3339)
}

func newGroupCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "group", Short: "Manage groups (superusers only)"}
	create := clientCommand(c, &cobra.Command{Use: "create NAME", Short: "Create a group", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string) error {
			if _, err := c.accessClient().CreateGroup(cmd.Context(), connect.NewRequest(&wharfv1.CreateGroupRequest{Name: args[0]})); err != nil {
				return fmt.Errorf("create group %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created group %s\n", args[0])
			return nil
		})
	list := clientCommand(c, &cobra.Command{Use: "list", Short: "List groups and their members", Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string) error {
			resp, err := c.accessClient().ListGroups(cmd.Context(), connect.NewRequest(&wharfv1.ListGroupsRequest{}))
			if err != nil {
				return fmt.Errorf("list groups: %w", err)
			}
			w := table(cmd)
			fmt.Fprintln(w, "GROUP\tMEMBERS")
			for _, g := range resp.Msg.Groups {
				fmt.Fprintf(w, "%s\t%s\n", g.Name, orDash(strings.Join(g.Members, ",")))
			}
			return w.Flush()
		})
	add := clientCommand(c, &cobra.Command{Use: "add-member GROUP USER", Short: "Put a user in a group", Args: cobra.ExactArgs(2)},
		func(cmd *cobra.Command, args []string) error {
			if _, err := c.accessClient().AddGroupMember(cmd.Context(), connect.NewRequest(&wharfv1.AddGroupMemberRequest{Group: args[0], User: args[1]})); err != nil {
				return fmt.Errorf("add %s to group %s: %w", args[1], args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %s to group %s\n", args[1], args[0])
			return nil
		})
	remove := clientCommand(c, &cobra.Command{Use: "remove-member GROUP USER", Short: "Take a user out of a group", Args: cobra.ExactArgs(2)},
		func(cmd *cobra.Command, args []string) error {
			if _, err := c.accessClient().RemoveGroupMember(cmd.Context(), connect.NewRequest(&wharfv1.RemoveGroupMemberRequest{Group: args[0], User: args[1]})); err != nil {
				return fmt.Errorf("remove %s from group %s: %w", args[1], args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %s from group %s\n", args[1], args[0])
			return nil
		})
	del := clientCommand(c, &cobra.Command{Use: "delete NAME", Short: "Delete a group", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string) error {
			if _, err := c.accessClient().DeleteGroup(cmd.Context(), connect.NewRequest(&wharfv1.DeleteGroupRequest{Name: args[0]})); err != nil {
				return fmt.Errorf("delete group %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted group %s\n", args[0])
			return nil
		})
	cmd.AddCommand(create, list, add, remove, del)
	return cmd
}

func newRoleCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "Grant, revoke and list roles"}
	var user, group, namespace string
	grantArgs := func(role string) (*wharfv1.RoleGrant, error) {
		if (user == "") == (group == "") {
			return nil, errors.New("name exactly one of --user and --group")
		}
		return &wharfv1.RoleGrant{Role: role, Namespace: namespace, User: user, Group: group}, nil
	}
	target := func(g *wharfv1.RoleGrant) string {
		s := "user " + g.User
		if g.Group != "" {
			s = "group " + g.Group
		}
		if g.Namespace != "" {
			s += " on namespace " + g.Namespace
		}
		return s
	}
	grant := clientCommand(c, &cobra.Command{
		Use:   "grant ROLE (--user U | --group G) [--namespace NS]",
		Short: "Grant collaborator or owner on a namespace, or publisher or admin globally",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		g, err := grantArgs(args[0])
		if err != nil {
			return err
		}
		if _, err := c.accessClient().GrantRole(cmd.Context(), connect.NewRequest(&wharfv1.GrantRoleRequest{Grant: g})); err != nil {
			return fmt.Errorf("grant %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "granted %s to %s\n", args[0], target(g))
		return nil
	})
	revoke := clientCommand(c, &cobra.Command{
		Use:   "revoke ROLE (--user U | --group G) [--namespace NS]",
		Short: "Revoke a role",
		Args:  cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		g, err := grantArgs(args[0])
		if err != nil {
			return err
		}
		if _, err := c.accessClient().RevokeRole(cmd.Context(), connect.NewRequest(&wharfv1.RevokeRoleRequest{Grant: g})); err != nil {
			return fmt.Errorf("revoke %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "revoked %s from %s\n", args[0], target(g))
		return nil
	})
	for _, sub := range []*cobra.Command{grant, revoke} {
		sub.Flags().StringVar(&user, "user", "", "user to grant the role to")
		sub.Flags().StringVar(&group, "group", "", "group to grant the role to")
		sub.Flags().StringVar(&namespace, "namespace", "", "namespace of a collaborator or owner role")
	}
	list := clientCommand(c, &cobra.Command{
		Use:   "list [--namespace NS]",
		Short: "List the grants on a namespace (its creator included), or the global grants",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		resp, err := c.accessClient().ListRoles(cmd.Context(), connect.NewRequest(&wharfv1.ListRolesRequest{Namespace: namespace}))
		if err != nil {
			return fmt.Errorf("list roles: %w", err)
		}
		w := table(cmd)
		fmt.Fprintln(w, "ROLE\tNAMESPACE\tUSER\tGROUP\tNOTE")
		for _, g := range resp.Msg.Grants {
			note := ""
			if g.Creator {
				note = "creator (irrevocable)"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", g.Role, orDash(g.Namespace), orDash(g.User), orDash(g.Group), note)
		}
		return w.Flush()
	})
	list.Flags().StringVar(&namespace, "namespace", "", "namespace whose grants to list; none lists the global grants")
	perms := clientCommand(c, &cobra.Command{Use: "permissions [ROLE]", Short: "List the permissions of each role", Args: cobra.MaximumNArgs(1)},
		func(cmd *cobra.Command, args []string) error {
			role := ""
			if len(args) == 1 {
				role = args[0]
			}
			resp, err := c.accessClient().ListRolePermissions(cmd.Context(), connect.NewRequest(&wharfv1.ListRolePermissionsRequest{Role: role}))
			if err != nil {
				return err
			}
			w := table(cmd)
			fmt.Fprintln(w, "ROLE\tPERMISSIONS")
			for _, r := range resp.Msg.Roles {
				fmt.Fprintf(w, "%s\t%s\n", r.Role, strings.Join(r.Permissions, ", "))
			}
			return w.Flush()
		})
	cmd.AddCommand(grant, revoke, list, perms)
	return cmd
}

func newRepoCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "repo", Short: "Manage repositories"}
	vis := clientCommand(c, &cobra.Command{
		Use:   "set-visibility NAME public|private",
		Short: "Make a repository (a name with a '/') or a whole namespace public or private",
		Example: `  wharf repo set-visibility acme/app public   # anyone may pull acme/app
  wharf repo set-visibility acme private      # every repository of acme, unless made public itself`,
		Args: cobra.ExactArgs(2),
	}, func(cmd *cobra.Command, args []string) error {
		var public bool
		switch args[1] {
		case "public":
			public = true
		case "private":
		default:
			return fmt.Errorf("visibility %q: use public or private", args[1])
		}
		req := &wharfv1.SetVisibilityRequest{Public: public}
		what := "repository"
		if strings.Contains(args[0], "/") {
			req.Repository = args[0]
		} else {
			req.Namespace, what = args[0], "namespace"
		}
		if _, err := c.accessClient().SetVisibility(cmd.Context(), connect.NewRequest(req)); err != nil {
			return fmt.Errorf("set visibility of %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s %s is now %s\n", what, args[0], args[1])
		return nil
	})
	cmd.AddCommand(vis)
	addRepositoryCommands(c, cmd)
	return cmd
}

func newTokenCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Manage API tokens for robots and CI"}
	var namespaces, actions []string
	var expires time.Duration
	var description string
	create := clientCommand(c, &cobra.Command{
		Use:   "create [--namespace NS]... --actions pull,push [--expires 720h]",
		Short: "Create an API token; use it as the password of your user name",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		resp, err := c.accessClient().CreateToken(cmd.Context(), connect.NewRequest(&wharfv1.CreateTokenRequest{
			Description: description, Namespaces: namespaces, Actions: actions, ExpiresInSeconds: int64(expires / time.Second),
		}))
		if err != nil {
			return fmt.Errorf("create token: %w", err)
		}
		t := resp.Msg.Token
		fmt.Fprintf(cmd.ErrOrStderr(), "created token %s for %s (expires %s); it is shown only once:\n", t.Id, t.Owner, timeString(t.ExpiresUnixNanos))
		fmt.Fprintln(cmd.OutOrStdout(), resp.Msg.Secret)
		return nil
	})
	create.Flags().StringSliceVar(&namespaces, "namespace", nil, "limit the token to these namespaces (repeat or separate with commas); none: every namespace")
	create.Flags().StringSliceVar(&actions, "actions", []string{"pull"}, "registry actions the token allows: pull, push, delete")
	create.Flags().DurationVar(&expires, "expires", 30*24*time.Hour, "lifetime of the token")
	create.Flags().StringVar(&description, "description", "", "what the token is for")
	list := clientCommand(c, &cobra.Command{Use: "list", Short: "List your API tokens (every token for a superuser)", Args: cobra.NoArgs},
		func(cmd *cobra.Command, _ []string) error {
			resp, err := c.accessClient().ListTokens(cmd.Context(), connect.NewRequest(&wharfv1.ListTokensRequest{}))
			if err != nil {
				return fmt.Errorf("list tokens: %w", err)
			}
			w := table(cmd)
			fmt.Fprintln(w, "ID\tOWNER\tNAMESPACES\tACTIONS\tEXPIRES\tDESCRIPTION")
			for _, t := range resp.Msg.Tokens {
				actions := strings.Join(t.Actions, ",")
				if t.Session {
					actions = "login session: all"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Id, t.Owner, orDash(strings.Join(t.Namespaces, ",")),
					actions, timeString(t.ExpiresUnixNanos), t.Description)
			}
			return w.Flush()
		})
	revoke := clientCommand(c, &cobra.Command{Use: "revoke ID", Short: "Revoke an API token", Args: cobra.ExactArgs(1)},
		func(cmd *cobra.Command, args []string) error {
			if _, err := c.accessClient().RevokeToken(cmd.Context(), connect.NewRequest(&wharfv1.RevokeTokenRequest{Id: args[0]})); err != nil {
				return fmt.Errorf("revoke token %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked token %s\n", args[0])
			return nil
		})
	rotate := clientCommand(c, &cobra.Command{
		Use:   "rotate-signing-key",
		Short: "Replace the key that signs registry tokens (superusers); tokens signed with the previous key stay valid until they expire",
		Args:  cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		resp, err := c.accessClient().RotateSigningKey(cmd.Context(), connect.NewRequest(&wharfv1.RotateSigningKeyRequest{}))
		if err != nil {
			return fmt.Errorf("rotate signing key: %w", err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "tokens are now signed with key %s (previous: %s)\n", resp.Msg.KeyId, resp.Msg.PreviousKeyId)
		return nil
	})
	cmd.AddCommand(create, list, revoke, rotate)
	return cmd
}
