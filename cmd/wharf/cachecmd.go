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

// The commands of pull-through caches: wharf cache create, get, list,
// update and delete. Changing a cache needs a superuser; reading one a
// login.

func (c *clientOptions) cacheClient() wharfv1connect.CacheServiceClient {
	return wharfv1connect.NewCacheServiceClient(c.httpClient(), c.baseURL())
}

// cacheFlags are the settings create and update take.
type cacheFlags struct {
	remote, upstreamPrefix string
	tagTTL                 time.Duration
}

func (f *cacheFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.remote, "remote", "", "the remote registry to pull through (see wharf remote ls)")
	fs.StringVar(&f.upstreamPrefix, "upstream-prefix", "", "prepended, with a slash, to the path pulled from the remote (on Docker Hub without one, nginx is library/nginx)")
	fs.DurationVar(&f.tagTTL, "tag-ttl", 0, "how long a cached tag is served before the remote is asked again, in whole seconds from 1s to 720h (0: the default, 10m)")
}

// cacheTagTTLSeconds converts --tag-ttl to the API's seconds; a fraction of
// a second would be lost, so it is refused.
func cacheTagTTLSeconds(d time.Duration) (int64, error) {
	if d%time.Second != 0 {
		return 0, usageError(fmt.Errorf("--tag-ttl %v: give whole seconds", d))
	}
	return int64(d / time.Second), nil
}

func newCacheCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Manage pull-through caches, namespaces filled from remote registries",
		Long: `A pull-through cache binds a namespace to a remote registry (wharf remote):
a pull of NAMESPACE/PATH reads the remote's repository UPSTREAM-PREFIX/PATH
(PATH without a prefix; on Docker Hub a PATH without a slash is
library/PATH), and what it fetched is kept. Only those pulls write into the
namespace: pushes are refused. A cached tag is served for its tag TTL before
the remote is asked again where it points.

Creating, changing or deleting a cache needs a superuser, since a cache lets
whoever may pull from its namespace make this registry fetch from the remote
with the remote's credentials. The namespace must hold no repository; it is
created, owned by the superuser, when it does not exist, and stays private
until made public. Reading caches needs a login; wharf cache list shows the
caches of the namespaces you may pull from.`,
	}

	list := clientCommand(c, &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the pull-through caches of the namespaces you may pull from",
		Example: `  wharf cache list
  wharf cache list -o json | jq -r '.caches[].namespace'`,
		Args: cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		resp, err := c.cacheClient().ListCaches(cmd.Context(), connect.NewRequest(&wharfv1.ListCachesRequest{}))
		if err != nil {
			return fmt.Errorf("list caches: %w", err)
		}
		return c.emit(cmd, resp.Msg, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "NAMESPACE\tREMOTE\tUPSTREAM-PREFIX\tTAG-TTL")
			for _, r := range resp.Msg.Caches {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Namespace, r.Remote, orDash(r.UpstreamPrefix), ttlString(r.TagTtlSeconds))
			}
		})
	})

	get := clientCommand(c, &cobra.Command{
		Use:     "get NAMESPACE",
		Aliases: []string{"show"},
		Short:   "Show a pull-through cache's settings",
		Example: `  wharf cache get hub
  wharf cache get hub -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.cacheClient().GetCache(cmd.Context(), connect.NewRequest(&wharfv1.GetCacheRequest{Namespace: args[0]}))
		if err != nil {
			return fmt.Errorf("cache %s: %w", args[0], err)
		}
		r := resp.Msg.Cache
		return c.emit(cmd, r, func(w *tabwriter.Writer) { printCache(w, r) })
	})

	var createFlags cacheFlags
	create := clientCommand(c, &cobra.Command{
		Use:     "create NAMESPACE --remote R",
		Aliases: []string{"add"},
		Short:   "Make NAMESPACE a pull-through cache of a remote registry (superuser)",
		Long: `Make the namespace NAMESPACE (holding no repository yet) a pull-through cache
of the remote registry --remote: its repositories fill when they are pulled.`,
		Example: `  wharf cache create hub --remote dockerhub
  wharf cache create quay --remote quay --upstream-prefix myorg --tag-ttl 1h
  wharf cache create ghcr --remote ghcr -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		f := &createFlags
		if f.remote == "" {
			return usageError(errors.New("give --remote"))
		}
		ttl, err := cacheTagTTLSeconds(f.tagTTL)
		if err != nil {
			return err
		}
		resp, err := c.cacheClient().CreateCache(cmd.Context(), connect.NewRequest(&wharfv1.CreateCacheRequest{
			Namespace: args[0], Remote: f.remote, UpstreamPrefix: f.upstreamPrefix, TagTtlSeconds: ttl,
		}))
		if err != nil {
			return fmt.Errorf("create cache %s: %w", args[0], err)
		}
		r := resp.Msg.Cache
		return c.emit(cmd, r, func(w *tabwriter.Writer) {
			fmt.Fprintf(w, "created cache %s of remote %s (tag TTL %s)\n", r.Namespace, r.Remote, ttlString(r.TagTtlSeconds))
		})
	})
	createFlags.register(create.Flags())

	var upFlags cacheFlags
	update := clientCommand(c, &cobra.Command{
		Use:   "update NAMESPACE",
		Short: "Change a pull-through cache's settings; those not given are kept (superuser)",
		Long: `Change the settings given and keep the others. --upstream-prefix "" drops
the prefix; --tag-ttl 0 takes the default again.`,
		Example: `  wharf cache update hub --tag-ttl 30m
  wharf cache update quay --remote quay-mirror --upstream-prefix ""`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		req, err := cacheUpdateRequest(cmd.Flags(), args[0], &upFlags)
		if err != nil {
			return err
		}
		resp, err := c.cacheClient().UpdateCache(cmd.Context(), connect.NewRequest(req))
		if err != nil {
			return fmt.Errorf("update cache %s: %w", args[0], err)
		}
		r := resp.Msg.Cache
		return c.emit(cmd, r, func(w *tabwriter.Writer) { fmt.Fprintf(w, "updated cache %s\n", r.Namespace) })
	})
	upFlags.register(update.Flags())

	del := clientCommand(c, &cobra.Command{
		Use:     "delete NAMESPACE",
		Aliases: []string{"rm"},
		Short:   "End a pull-through cache; what it fetched stays, as plain repositories (superuser)",
		Example: `  wharf cache delete hub
  wharf cache delete hub -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.cacheClient().DeleteCache(cmd.Context(), connect.NewRequest(&wharfv1.DeleteCacheRequest{Namespace: args[0]}))
		if err != nil {
			return fmt.Errorf("delete cache %s: %w", args[0], err)
		}
		return c.emit(cmd, resp.Msg, func(w *tabwriter.Writer) { fmt.Fprintf(w, "deleted cache %s\n", args[0]) })
	})
	cmd.AddCommand(list, get, create, update, del)
	return cmd
}

// cacheUpdateRequest builds an UpdateCacheRequest of the flags set.
func cacheUpdateRequest(fl *pflag.FlagSet, ns string, f *cacheFlags) (*wharfv1.UpdateCacheRequest, error) {
	req := &wharfv1.UpdateCacheRequest{Namespace: ns}
	if fl.Changed("remote") {
		req.Remote = &f.remote
	}
	if fl.Changed("upstream-prefix") {
		req.UpstreamPrefix = &f.upstreamPrefix
	}
	if fl.Changed("tag-ttl") {
		ttl, err := cacheTagTTLSeconds(f.tagTTL)
		if err != nil {
			return nil, err
		}
		req.TagTtlSeconds = &ttl
	}
	if req.Remote == nil && req.UpstreamPrefix == nil && req.TagTtlSeconds == nil {
		return nil, usageError(errors.New("nothing to change: give at least one setting"))
	}
	return req, nil
}

// ttlString shows a TTL in seconds as a short duration: 10m, 1h30m, 45s.
func ttlString(seconds int64) string {
	s := (time.Duration(seconds) * time.Second).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func printCache(w *tabwriter.Writer, r *wharfv1.Cache) {
	fmt.Fprintf(w, "Namespace:\t%s\n", r.Namespace)
	fmt.Fprintf(w, "Remote:\t%s\n", r.Remote)
	fmt.Fprintf(w, "Upstream prefix:\t%s\n", orDash(r.UpstreamPrefix))
	fmt.Fprintf(w, "Tag TTL:\t%s\n", ttlString(r.TagTtlSeconds))
	fmt.Fprintf(w, "Created:\t%s by %s\n", when(r.CreatedUnixNanos), orDash(r.CreatedBy))
	fmt.Fprintf(w, "Updated:\t%s by %s\n", when(r.UpdatedUnixNanos), orDash(r.UpdatedBy))
}
