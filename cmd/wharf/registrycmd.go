package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// The commands of what the registry holds: wharf repo, image, tag, ns and
// activity. Each prints a table, or with -o json the API's answer as
// protojson, for scripts.

func (c *clientOptions) repositoryClient() wharfv1connect.RepositoryServiceClient {
	return wharfv1connect.NewRepositoryServiceClient(c.httpClient(), c.baseURL())
}

func (c *clientOptions) imageClient() wharfv1connect.ImageServiceClient {
	return wharfv1connect.NewImageServiceClient(c.httpClient(), c.baseURL())
}

func (c *clientOptions) namespaceClient() wharfv1connect.NamespaceServiceClient {
	return wharfv1connect.NewNamespaceServiceClient(c.httpClient(), c.baseURL())
}

func (c *clientOptions) activityClient() wharfv1connect.ActivityServiceClient {
	return wharfv1connect.NewActivityServiceClient(c.httpClient(), c.baseURL())
}

// emit prints msg as JSON with -o json, else runs the table printer.
func (c *clientOptions) emit(cmd *cobra.Command, msg proto.Message, table func(w *tabwriter.Writer)) error {
	switch c.output {
	case "json":
		data, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: false}.Marshal(msg)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(cmd.OutOrStdout(), string(data))
		return err
	case "", "table":
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		table(w)
		return w.Flush()
	}
	return usageError(fmt.Errorf("--output %q: use table or json", c.output))
}

// when formats a time for a table; "-" for none.
func when(nanos int64) string {
	if nanos == 0 {
		return "-"
	}
	return time.Unix(0, nanos).UTC().Format(time.RFC3339)
}

// shortDigest abbreviates a digest for a table.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

// clip shortens text to n runes for a table cell, on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// imageRef is a repository with a tag or a digest: REPO:TAG or
// REPO@DIGEST.
type imageRef struct{ repository, reference string }

func (r imageRef) String() string {
	if strings.Contains(r.reference, ":") {
		return r.repository + "@" + r.reference
	}
	return r.repository + ":" + r.reference
}

// parseImageRef splits REPO:TAG or REPO@DIGEST; with optional, a bare
// REPO is accepted too.
func parseImageRef(s string, optional bool) (imageRef, error) {
	if repo, d, ok := strings.Cut(s, "@"); ok {
		return imageRef{repo, d}, nil
	}
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		return imageRef{s[:i], s[i+1:]}, nil
	}
	if optional {
		return imageRef{repository: s}, nil
	}
	return imageRef{}, usageError(fmt.Errorf("%q: name an image as REPOSITORY:TAG or REPOSITORY@DIGEST", s))
}

// readInput reads a file's content, or stdin for "-".
func readInput(cmd *cobra.Command, name string) (string, error) {
	var r io.Reader = cmd.InOrStdin()
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	return string(data), err
}

// --- repositories ---

func addRepositoryCommands(c *clientOptions, repo *cobra.Command) {
	var q wharfv1.ListRepositoriesRequest
	var sortBy string
	var all bool
	ls := clientCommand(c, &cobra.Command{
		Use:   "ls",
		Short: "List the repositories you may pull",
		Example: `  wharf repo ls
  wharf repo ls --namespace acme --sort pushed --desc
  wharf repo ls --name web --permission push -o json`,
		Args: cobra.NoArgs,
	}, func(cmd *cobra.Command, _ []string) error {
		order, ok := map[string]wharfv1.RepositoryOrder{
			"name": wharfv1.RepositoryOrder_REPOSITORY_ORDER_NAME, "created": wharfv1.RepositoryOrder_REPOSITORY_ORDER_CREATED,
			"updated": wharfv1.RepositoryOrder_REPOSITORY_ORDER_UPDATED, "pushed": wharfv1.RepositoryOrder_REPOSITORY_ORDER_PUSHED,
		}[sortBy]
		if !ok {
			return usageError(fmt.Errorf("--sort %q: use name, created, updated or pushed", sortBy))
		}
		q.Order = order
		out := &wharfv1.ListRepositoriesResponse{}
		for {
			resp, err := c.repositoryClient().ListRepositories(cmd.Context(), connect.NewRequest(&q))
			if err != nil {
				return fmt.Errorf("list repositories: %w", err)
			}
			out.Repositories = append(out.Repositories, resp.Msg.Repositories...)
			q.PageToken = resp.Msg.NextPageToken
			if q.PageToken == "" || !all && len(out.Repositories) >= int(q.PageSize) {
				break
			}
		}
		out.NextPageToken = q.PageToken
		return c.emit(cmd, out, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "REPOSITORY\tTAGS\tMANIFESTS\tPUSHED\tBY\tDESCRIPTION")
			for _, r := range out.Repositories {
				fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\t%s\n", r.Name, r.TagCount, r.ManifestCount, when(r.PushedUnixNanos), orDash(r.PushedBy), orDash(clip(r.Description, 50)))
			}
		})
	})
	f := ls.Flags()
	f.StringVar(&q.Namespace, "namespace", "", "only this namespace's repositories")
	f.StringVar(&q.NameContains, "name", "", "only names containing this text")
	f.StringVar(&q.DescriptionContains, "description", "", "only descriptions containing this text")
	f.StringVar(&q.Permission, "permission", "", "only repositories you hold this permission on (push, change_tags, edit_metadata, ...)")
	f.StringVar(&sortBy, "sort", "name", "order: name, created, updated or pushed")
	f.BoolVar(&q.Descending, "desc", false, "reverse the order")
	f.Int32Var(&q.PageSize, "limit", 100, "list at most this many (at most 100 per request)")
	f.BoolVar(&all, "all", false, "list every repository, page after page")

	show := clientCommand(c, &cobra.Command{
		Use:     "show REPOSITORY",
		Short:   "Describe a repository: owners, counts, storage, signatures, readme",
		Example: "  wharf repo show acme/web",
		Args:    cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.repositoryClient().GetRepository(cmd.Context(), connect.NewRequest(&wharfv1.GetRepositoryRequest{Name: args[0]}))
		if err != nil {
			return fmt.Errorf("show %s: %w", args[0], err)
		}
		m := resp.Msg
		return c.emit(cmd, m, func(w *tabwriter.Writer) { printRepository(w, m) })
	})

	describe := clientCommand(c, &cobra.Command{
		Use:     "describe REPOSITORY TEXT",
		Short:   "Set a repository's description (plain text, at most 2 KiB; \"\" clears it)",
		Example: `  wharf repo describe acme/web "The storefront, built nightly"`,
		Args:    cobra.ExactArgs(2),
	}, func(cmd *cobra.Command, args []string) error {
		_, err := c.repositoryClient().SetRepositoryInfo(cmd.Context(), connect.NewRequest(&wharfv1.SetRepositoryInfoRequest{Name: args[0], Description: &args[1]}))
		if err != nil {
			return fmt.Errorf("describe %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "description of %s set\n", args[0])
		return nil
	})

	readme := &cobra.Command{Use: "readme", Short: "Read or write a repository's readme (markdown)"}
	readmeGet := clientCommand(c, &cobra.Command{
		Use:     "get REPOSITORY",
		Short:   "Print a repository's readme",
		Example: "  wharf repo readme get acme/web > README.md",
		Args:    cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		resp, err := c.repositoryClient().GetRepository(cmd.Context(), connect.NewRequest(&wharfv1.GetRepositoryRequest{Name: args[0]}))
		if err != nil {
			return fmt.Errorf("readme of %s: %w", args[0], err)
		}
		_, err = io.WriteString(cmd.OutOrStdout(), resp.Msg.Readme)
		return err
	})
	readmeSet := clientCommand(c, &cobra.Command{
		Use:   "set REPOSITORY FILE",
		Short: "Set a repository's readme from FILE (- for stdin; at most 1 MiB; an empty file removes it)",
		Example: `  wharf repo readme set acme/web README.md
  echo "# Web" | wharf repo readme set acme/web -`,
		Args: cobra.ExactArgs(2),
	}, func(cmd *cobra.Command, args []string) error {
		text, err := readInput(cmd, args[1])
		if err != nil {
			return fmt.Errorf("read %s: %w", args[1], err)
		}
		_, err = c.repositoryClient().SetRepositoryInfo(cmd.Context(), connect.NewRequest(&wharfv1.SetRepositoryInfoRequest{Name: args[0], Readme: &text}))
		if err != nil {
			return fmt.Errorf("set readme of %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "readme of %s set (%d bytes)\n", args[0], len(text))
		return nil
	})
	readme.AddCommand(readmeGet, readmeSet)

	rm := clientCommand(c, &cobra.Command{
		Use:   "rm REPOSITORY",
		Short: "Delete a repository: its tags, manifests and readme (admin); garbage collection frees its unshared blobs",
		Example: `  wharf repo rm acme/old-app
  wharf repo rm acme/old-app && wharf ns rm acme   # then the namespace, once empty`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		if _, err := c.repositoryClient().DeleteRepository(cmd.Context(), connect.NewRequest(&wharfv1.DeleteRepositoryRequest{Name: args[0]})); err != nil {
			return fmt.Errorf("delete %s: %w", args[0], err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "repository %s deleted\n", args[0])
		return nil
	})
	repo.AddCommand(ls, show, describe, readme, rm)
}

func printRepository(w *tabwriter.Writer, m *wharfv1.GetRepositoryResponse) {
	r := m.Repository
	var owners []string
	for _, g := range m.Owners {
		if g.Group != "" {
			owners = append(owners, "group "+g.Group)
		} else {
			owners = append(owners, g.User)
		}
	}
	visibility := "private"
	if r.Public {
		visibility = "public"
	}
	rows := [][2]string{
		{"Repository", r.Name},
		{"Namespace", r.Namespace},
		{"Owners", orDash(strings.Join(owners, ", "))},
		{"Description", orDash(r.Description)},
		{"Visibility", visibility},
		{"Tags", fmt.Sprint(r.TagCount)},
		{"Manifests", fmt.Sprint(r.ManifestCount)},
		{"Created", when(r.CreatedUnixNanos)},
		{"Updated", when(r.UpdatedUnixNanos)},
		{"Last push", fmt.Sprintf("%s by %s", when(r.PushedUnixNanos), orDash(r.PushedBy))},
		{"Storage", fmt.Sprintf("%s in %d blobs, %s unique to it", humanBytes(m.Storage.GetBytes()), m.Storage.GetBlobs(), humanBytes(m.Storage.GetUniqueBytes()))},
		{"Signed", fmt.Sprint(m.Signed)},
		{"Origin", orDash(m.Origin)},
		{"Readme", fmt.Sprintf("%d bytes", len(m.Readme))},
	}
	for _, row := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", row[0], row[1])
	}
}

// --- images and tags ---

func newImageCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "List, describe and delete a repository's images"}
	var q wharfv1.ListImagesRequest
	ls := clientCommand(c, &cobra.Command{
		Use:   "ls REPOSITORY",
		Short: "List a repository's images (manifests and indexes)",
		Example: `  wharf image ls acme/web
  wharf image ls acme/web --hide-children --tag 1.
  wharf image ls acme/web --digest sha256:ab -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		q.Repository = args[0]
		out := &wharfv1.ListImagesResponse{}
		for {
			resp, err := c.imageClient().ListImages(cmd.Context(), connect.NewRequest(&q))
			if err != nil {
				return fmt.Errorf("list images of %s: %w", args[0], err)
			}
			out.Images = append(out.Images, resp.Msg.Images...)
			if q.PageToken = resp.Msg.NextPageToken; q.PageToken == "" {
				break
			}
		}
		return c.emit(cmd, out, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "DIGEST\tTAGS\tKIND\tSIZE\tPLATFORMS\tREFERRERS\tPUSHED")
			for _, img := range out.Images {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortDigest(img.Digest), orDash(strings.Join(img.Tags, ",")),
					imageKind(img), humanBytes(img.SizeBytes), orDash(platforms(img)), orDash(referrers(img)), when(img.PushedUnixNanos))
			}
		})
	})
	f := ls.Flags()
	f.StringVar(&q.TagContains, "tag", "", "only images with a tag containing this text")
	f.StringVar(&q.DigestPrefix, "digest", "", "only digests starting with this (sha256:ab)")
	f.BoolVar(&q.HideChildren, "hide-children", false, "leave out the platform images an index lists")

	show := clientCommand(c, &cobra.Command{
		Use:   "show REPOSITORY:TAG|REPOSITORY@DIGEST",
		Short: "Describe an image: layers, platforms, referrers and its configuration",
		Example: `  wharf image show acme/web:latest
  wharf image show acme/web@sha256:0123... -o json`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		ref, err := parseImageRef(args[0], false)
		if err != nil {
			return err
		}
		resp, err := c.imageClient().GetImage(cmd.Context(), connect.NewRequest(&wharfv1.GetImageRequest{Repository: ref.repository, Reference: ref.reference}))
		if err != nil {
			return fmt.Errorf("show %s: %w", ref, err)
		}
		return c.emit(cmd, resp.Msg, func(w *tabwriter.Writer) { printImage(w, resp.Msg) })
	})

	rm := clientCommand(c, &cobra.Command{
		Use:   "rm REPOSITORY:TAG|REPOSITORY@DIGEST",
		Short: "Delete an image with its tags, referrers and unshared platform images (admin); garbage collection frees the blobs only it used",
		Example: `  wharf image rm acme/web:v1          # the manifest v1 points at, and every tag on it
  wharf image rm acme/web@sha256:3f1c...`,
		Args: cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		ref, err := parseImageRef(args[0], false)
		if err != nil {
			return err
		}
		resp, err := c.imageClient().DeleteImage(cmd.Context(), connect.NewRequest(&wharfv1.DeleteImageRequest{Repository: ref.repository, Reference: ref.reference}))
		if err != nil {
			return fmt.Errorf("delete %s: %w", ref, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "image %s@%s deleted\n", ref.repository, resp.Msg.Digest)
		return nil
	})
	cmd.AddCommand(ls, show, rm)
	return cmd
}

func imageKind(img *wharfv1.Image) string {
	switch {
	case len(img.Platforms) > 0 || strings.Contains(img.MediaType, "index") || strings.Contains(img.MediaType, "list"):
		return "index"
	case img.Subject != "":
		return "referrer"
	case img.Child:
		return "platform"
	}
	return "image"
}

func platforms(img *wharfv1.Image) string {
	var out []string
	for _, p := range img.Platforms {
		s := p.Os + "/" + p.Architecture
		if p.Variant != "" {
			s += "/" + p.Variant
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func referrers(img *wharfv1.Image) string {
	var out []string
	for _, g := range img.Referrers {
		kind := strings.ToLower(strings.TrimPrefix(g.Kind.String(), "REFERRER_KIND_"))
		if g.Kind == wharfv1.ReferrerKind_REFERRER_KIND_UNSPECIFIED {
			kind = orDash(g.ArtifactType)
		}
		out = append(out, fmt.Sprintf("%d %s", len(g.Digests), kind))
	}
	return strings.Join(out, ", ")
}

func printImage(w *tabwriter.Writer, m *wharfv1.GetImageResponse) {
	img := m.Image
	rows := [][2]string{
		{"Digest", img.Digest},
		{"Media type", img.MediaType},
		{"Artifact type", orDash(img.ArtifactType)},
		{"Tags", orDash(strings.Join(img.Tags, ", "))},
		{"Pushed", when(img.PushedUnixNanos)},
		{"Size", humanBytes(img.SizeBytes)},
		{"Subject", orDash(img.Subject)},
		{"Referrers", orDash(referrers(img))},
	}
	for _, row := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", row[0], row[1])
	}
	for _, p := range img.Platforms {
		fmt.Fprintf(w, "Platform:\t%s %s\n", platforms(&wharfv1.Image{Platforms: []*wharfv1.Platform{p}}), p.Digest)
	}
	for _, l := range img.Layers {
		fmt.Fprintf(w, "Layer:\t%s %s %s\n", l.Digest, humanBytes(l.Size), l.MediaType)
	}
	if m.ConfigError != "" {
		fmt.Fprintf(w, "Config:\tunavailable: %s\n", m.ConfigError)
	}
	if cfg := m.Config; cfg != nil {
		fmt.Fprintf(w, "Created:\t%s\n", when(cfg.CreatedUnixNanos))
		platform := "-" // a signature or another artifact names none
		if cfg.Os != "" || cfg.Architecture != "" {
			platform = cfg.Os + "/" + cfg.Architecture
		}
		fmt.Fprintf(w, "Platform:\t%s\n", platform)
		fmt.Fprintf(w, "Author:\t%s\n", orDash(cfg.Author))
		fmt.Fprintf(w, "Entrypoint:\t%s\n", orDash(strings.Join(cfg.Entrypoint, " ")))
		fmt.Fprintf(w, "Cmd:\t%s\n", orDash(strings.Join(cfg.Cmd, " ")))
		for _, e := range cfg.Env {
			fmt.Fprintf(w, "Env:\t%s\n", e)
		}
		for k, v := range cfg.Labels {
			fmt.Fprintf(w, "Label:\t%s=%s\n", k, v)
		}
		for _, h := range cfg.History {
			fmt.Fprintf(w, "History:\t%s %s\n", when(h.CreatedUnixNanos), clip(h.CreatedBy, 80))
		}
	}
}

func newTagCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "tag", Short: "Add, move and remove tags"}
	add := clientCommand(c, &cobra.Command{
		Use:   "add REPOSITORY:TAG|REPOSITORY@DIGEST NEWTAG",
		Short: "Point NEWTAG at an image the repository holds, creating or moving it",
		Example: `  wharf tag add acme/web:1.4.2 stable
  wharf tag add acme/web@sha256:0123... latest`,
		Args: cobra.ExactArgs(2),
	}, func(cmd *cobra.Command, args []string) error {
		ref, err := parseImageRef(args[0], false)
		if err != nil {
			return err
		}
		resp, err := c.imageClient().TagImage(cmd.Context(), connect.NewRequest(&wharfv1.TagImageRequest{Repository: ref.repository, Tag: args[1], Reference: ref.reference}))
		if err != nil {
			return fmt.Errorf("tag %s as %s: %w", ref, args[1], err)
		}
		if p := resp.Msg.PreviousDigest; p != "" && p != resp.Msg.Digest {
			fmt.Fprintf(cmd.OutOrStdout(), "%s:%s moved from %s to %s\n", ref.repository, args[1], p, resp.Msg.Digest)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "%s:%s points at %s\n", ref.repository, args[1], resp.Msg.Digest)
		}
		return nil
	})
	rm := clientCommand(c, &cobra.Command{
		Use:     "rm REPOSITORY:TAG",
		Short:   "Remove a tag; the image stays pullable by digest",
		Example: "  wharf tag rm acme/web:old",
		Args:    cobra.ExactArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		ref, err := parseImageRef(args[0], false)
		if err != nil {
			return err
		}
		if strings.Contains(ref.reference, ":") {
			return usageError(fmt.Errorf("%q names a digest: name the tag to remove, REPOSITORY:TAG", args[0]))
		}
		resp, err := c.imageClient().UntagImage(cmd.Context(), connect.NewRequest(&wharfv1.UntagImageRequest{Repository: ref.repository, Tag: ref.reference}))
		if err != nil {
			return fmt.Errorf("untag %s: %w", ref, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "tag %s removed; %s@%s stays\n", ref, ref.repository, resp.Msg.Digest)
		return nil
	})
	cmd.AddCommand(add, rm)
	return cmd
}

// --- namespaces ---

func newNamespaceCommand(c *clientOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "ns", Aliases: []string{"namespace"}, Short: "List, describe and delete namespaces"}
	ls := clientCommand(c, &cobra.Command{Use: "ls", Short: "List the namespaces you may see", Args: cobra.NoArgs,
		Example: "  wharf ns ls\n  wharf ns ls -o json | jq -r '.namespaces[].name'"},
		func(cmd *cobra.Command, _ []string) error {
			out := &wharfv1.ListNamespacesResponse{}
			req := &wharfv1.ListNamespacesRequest{}
			for {
				resp, err := c.namespaceClient().ListNamespaces(cmd.Context(), connect.NewRequest(req))
				if err != nil {
					return fmt.Errorf("list namespaces: %w", err)
				}
				out.Namespaces = append(out.Namespaces, resp.Msg.Namespaces...)
				if req.PageToken = resp.Msg.NextPageToken; req.PageToken == "" {
					break
				}
			}
			return c.emit(cmd, out, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAMESPACE\tCREATOR\tPUBLIC\tFLAT\tCREATED")
				for _, n := range out.Namespaces {
					fmt.Fprintf(w, "%s\t%s\t%v\t%v\t%s\n", n.Name, orDash(n.Creator), n.Public, n.Flat, when(n.CreatedUnixNanos))
				}
			})
		})
	show := clientCommand(c, &cobra.Command{Use: "show NAMESPACE", Short: "Describe a namespace: its grants and repositories", Args: cobra.ExactArgs(1),
		Example: "  wharf ns show acme"},
		func(cmd *cobra.Command, args []string) error {
			resp, err := c.namespaceClient().GetNamespace(cmd.Context(), connect.NewRequest(&wharfv1.GetNamespaceRequest{Name: args[0]}))
			if err != nil {
				return fmt.Errorf("show namespace %s: %w", args[0], err)
			}
			m := resp.Msg
			return c.emit(cmd, m, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "Namespace:\t%s\nCreator:\t%s\nPublic:\t%v\n", m.Namespace.Name, orDash(m.Namespace.Creator), m.Namespace.Public)
				for _, g := range m.Grants {
					who := "user " + g.User
					if g.Group != "" {
						who = "group " + g.Group
					}
					fmt.Fprintf(w, "Grant:\t%s %s\n", g.Role, who)
				}
				for _, r := range m.Repositories {
					fmt.Fprintf(w, "Repository:\t%s (%s)\n", r.Name, plural(r.TagCount, "tag"))
				}
				if m.NextRepositoryToken != "" {
					fmt.Fprintf(w, "Repository:\t... (wharf repo ls --namespace %s --all)\n", m.Namespace.Name)
				}
			})
		})
	rm := clientCommand(c, &cobra.Command{Use: "rm NAMESPACE", Short: "Delete an empty namespace with its grants (admin)", Args: cobra.ExactArgs(1),
		Example: "  wharf ns rm acme   # exit 6 while it holds repositories"},
		func(cmd *cobra.Command, args []string) error {
			if _, err := c.namespaceClient().DeleteNamespace(cmd.Context(), connect.NewRequest(&wharfv1.DeleteNamespaceRequest{Name: args[0]})); err != nil {
				return fmt.Errorf("delete namespace %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "namespace %s deleted\n", args[0])
			return nil
		})
	cmd.AddCommand(ls, show, rm)
	return cmd
}

// --- activity ---

func newActivityCommand(c *clientOptions) *cobra.Command {
	var req wharfv1.ListActivityRequest
	var limit int
	cmd := clientCommand(c, &cobra.Command{
		Use:   "activity [REPOSITORY]",
		Short: "Show what changed a repository, newest first (a namespace's or the registry's for admins)",
		Example: `  wharf activity acme/web
  wharf activity --namespace acme --limit 500
  wharf activity -o json`,
		Args: cobra.MaximumNArgs(1),
	}, func(cmd *cobra.Command, args []string) error {
		if len(args) == 1 {
			req.Repository = args[0]
		}
		out := &wharfv1.ListActivityResponse{}
		for {
			req.PageSize = int32(min(max(limit-len(out.Activity), 1), 100))
			resp, err := c.activityClient().ListActivity(cmd.Context(), connect.NewRequest(&req))
			if err != nil {
				return fmt.Errorf("list activity: %w", err)
			}
			out.Activity = append(out.Activity, resp.Msg.Activity...)
			req.PageToken = resp.Msg.NextPageToken
			if req.PageToken == "" || len(out.Activity) >= limit {
				break
			}
		}
		out.NextPageToken = req.PageToken
		return c.emit(cmd, out, func(w *tabwriter.Writer) {
			fmt.Fprintln(w, "TIME\tACTOR\tNODE\tREPOSITORY\tEVENT")
			for _, a := range out.Activity {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", when(a.UnixNanos), orDash(a.Actor), orDash(a.NodeId), a.Repository, describeActivity(a))
			}
		})
	})
	cmd.Flags().StringVar(&req.Namespace, "namespace", "", "a namespace's activity (admins)")
	cmd.Flags().IntVar(&limit, "limit", 50, "show at most this many events")
	return cmd
}

func describeActivity(a *wharfv1.Activity) string {
	switch a.Kind {
	case wharfv1.ActivityKind_ACTIVITY_KIND_MANIFEST_ADDED:
		return "pushed " + a.Digest
	case wharfv1.ActivityKind_ACTIVITY_KIND_MANIFEST_REMOVED:
		return "deleted " + a.Digest
	case wharfv1.ActivityKind_ACTIVITY_KIND_TAG_ADDED:
		return fmt.Sprintf("tagged %s as %s", a.Digest, a.Tag)
	case wharfv1.ActivityKind_ACTIVITY_KIND_TAG_MOVED:
		return fmt.Sprintf("moved %s from %s to %s", a.Tag, a.PreviousDigest, a.Digest)
	case wharfv1.ActivityKind_ACTIVITY_KIND_TAG_REMOVED:
		return fmt.Sprintf("untagged %s (was %s)", a.Tag, a.Digest)
	case wharfv1.ActivityKind_ACTIVITY_KIND_DESCRIPTION_SET:
		return "set the description"
	case wharfv1.ActivityKind_ACTIVITY_KIND_README_SET:
		return "set the readme"
	case wharfv1.ActivityKind_ACTIVITY_KIND_REPOSITORY_DELETED:
		return "deleted the repository"
	}
	return a.Kind.String()
}

// --- exit codes ---

// Exit codes scripts can rely on.
const (
	exitError       = 1 // anything else
	exitUsage       = 2 // a bad command line or argument
	exitNotFound    = 3 // no such repository, image, tag, namespace, user...
	exitDenied      = 4 // not logged in, or the role does not allow it
	exitUnavailable = 5 // the cluster cannot answer now (no quorum, unreachable)
	exitConflict    = 6 // it exists already, or its state forbids it (a namespace not empty)
)

type usageErr struct{ error }

func (e usageErr) Unwrap() error { return e.error }

// plural is "1 tag", "2 tags".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// usageError marks err as a bad command line.
func usageError(err error) error { return usageErr{err} }

// exitCode is the exit status for err.
func exitCode(err error) int {
	if errors.As(err, new(usageErr)) {
		return exitUsage
	}
	var je jobEndErr
	if errors.As(err, &je) {
		return je.code
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return exitError
	}
	switch ce.Code() {
	case connect.CodeInvalidArgument, connect.CodeOutOfRange:
		return exitUsage
	case connect.CodeNotFound:
		return exitNotFound
	case connect.CodePermissionDenied, connect.CodeUnauthenticated:
		return exitDenied
	case connect.CodeUnavailable, connect.CodeDeadlineExceeded:
		return exitUnavailable
	case connect.CodeAlreadyExists, connect.CodeFailedPrecondition:
		return exitConflict
	}
	return exitError
}

// markUsageErrors makes the argument checks of cmd and the commands below
// it, and their flag parsing, return usage errors.
func markUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	if args := cmd.Args; args != nil {
		cmd.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return usageError(err)
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		markUsageErrors(sub)
	}
}
