package main

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// TestAnonymousReads: anonymous callers read public repositories through
// the admin API as they pull them through the OCI API, and nothing else.
// A private or unknown repository answers them Unauthenticated (log in;
// nothing says whether it exists), every write needs a login, and a
// caller who logged in without roles gets what it got before.
func TestAnonymousReads(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	ctx := context.Background()
	access := accAccess(n, "admin", accAdminPassword)
	if _, err := access.CreateUser(ctx, req(&wharfv1.CreateUserRequest{Name: "u-none", Password: "u-none-password"})); err != nil {
		t.Fatal(err)
	}
	img := accImage(t)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	adminAuth := keychainOf("admin", accAdminPassword)
	// pub/app is public in a private namespace, open/app in a public
	// namespace, priv/app private.
	for _, repo := range []string{"pub/app", "pub/private", "open/app", "priv/app"} {
		if err := remote.Write(accRef(t, n, repo+":v1"), img, adminAuth); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []*wharfv1.SetVisibilityRequest{
		{Repository: "pub/app", Public: true},
		{Namespace: "open", Public: true},
	} {
		if _, err := access.SetVisibility(ctx, req(v)); err != nil {
			t.Fatal(err)
		}
	}
	anon := manageClients{
		repos:    wharfv1connect.NewRepositoryServiceClient(http.DefaultClient, n.url),
		images:   wharfv1connect.NewImageServiceClient(http.DefaultClient, n.url),
		ns:       wharfv1connect.NewNamespaceServiceClient(http.DefaultClient, n.url),
		activity: wharfv1connect.NewActivityServiceClient(http.DefaultClient, n.url),
	}
	none := manageAs(n.url, "u-none", "u-none-password")
	admin := manageAs(n.url, "admin", accAdminPassword)

	reads := []struct {
		name string
		call func(c manageClients, repo string) error
	}{
		{"GetRepository", func(c manageClients, repo string) error {
			_, err := c.repos.GetRepository(ctx, req(&wharfv1.GetRepositoryRequest{Name: repo}))
			return err
		}},
		{"ListImages", func(c manageClients, repo string) error {
			_, err := c.images.ListImages(ctx, req(&wharfv1.ListImagesRequest{Repository: repo}))
			return err
		}},
		{"GetImage", func(c manageClients, repo string) error {
			_, err := c.images.GetImage(ctx, req(&wharfv1.GetImageRequest{Repository: repo, Reference: "v1"}))
			return err
		}},
		{"ListActivity", func(c manageClients, repo string) error {
			_, err := c.activity.ListActivity(ctx, req(&wharfv1.ListActivityRequest{Repository: repo}))
			return err
		}},
	}
	ok := connect.Code(0)
	cases := []struct {
		caller string
		repo   string
		want   connect.Code
	}{
		{"anonymous", "pub/app", ok},
		{"anonymous", "open/app", ok},
		{"anonymous", "pub/private", connect.CodeUnauthenticated},
		{"anonymous", "priv/app", connect.CodeUnauthenticated},
		{"anonymous", "priv/unknown", connect.CodeUnauthenticated},
		{"anonymous", "nowhere/unknown", connect.CodeUnauthenticated},
		// Everything in a public namespace is public, so what it does not
		// hold is simply not found.
		{"anonymous", "open/unknown", connect.CodeNotFound},
		// A caller who logged in without roles, as before.
		{"u-none", "pub/app", ok},
		{"u-none", "priv/app", connect.CodePermissionDenied},
		{"u-none", "priv/unknown", connect.CodePermissionDenied},
		{"admin", "priv/unknown", connect.CodeNotFound},
	}
	callers := map[string]manageClients{"anonymous": anon, "u-none": none, "admin": admin}
	for _, r := range reads {
		t.Run(r.name, func(t *testing.T) {
			for _, tc := range cases {
				want := tc.want
				if r.name == "ListActivity" && want == connect.CodeNotFound {
					want = ok // an unknown repository has no activity
				}
				err := r.call(callers[tc.caller], tc.repo)
				got := ok
				if err != nil {
					got = connect.CodeOf(err)
				}
				if got != want {
					t.Errorf("%s on %s: %v, want code %v (0: success)", tc.caller, tc.repo, err, want)
				}
			}
		})
	}

	t.Run("ListRepositories", func(t *testing.T) {
		names := func(c manageClients, m *wharfv1.ListRepositoriesRequest) ([]string, error) {
			resp, err := c.repos.ListRepositories(ctx, req(m))
			if err != nil {
				return nil, err
			}
			var got []string
			for _, r := range resp.Msg.Repositories {
				if !r.Public {
					t.Errorf("%s is listed as private", r.Name)
				}
				got = append(got, r.Name)
			}
			return got, nil
		}
		public := []string{"open/app", "pub/app"}
		for _, tc := range []struct {
			name   string
			caller manageClients
			m      *wharfv1.ListRepositoriesRequest
			want   []string
		}{
			{"anonymous, all", anon, &wharfv1.ListRepositoriesRequest{}, public},
			{"anonymous, namespace pub", anon, &wharfv1.ListRepositoriesRequest{Namespace: "pub"}, []string{"pub/app"}},
			{"anonymous, namespace priv", anon, &wharfv1.ListRepositoriesRequest{Namespace: "priv"}, nil},
			{"anonymous, permission pull", anon, &wharfv1.ListRepositoriesRequest{Permission: "pull"}, public},
			// An anonymous caller holds no other permission anywhere.
			{"anonymous, permission push", anon, &wharfv1.ListRepositoriesRequest{Permission: "push"}, nil},
			{"anonymous, permission delete_repository", anon, &wharfv1.ListRepositoriesRequest{Permission: "delete_repository"}, nil},
			{"u-none, all", none, &wharfv1.ListRepositoriesRequest{}, public},
			{"u-none, permission push", none, &wharfv1.ListRepositoriesRequest{Permission: "push"}, nil},
		} {
			got, err := names(tc.caller, tc.m)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, %v; want %v", tc.name, got, err, tc.want)
			}
		}
		if _, err := anon.repos.ListRepositories(ctx, req(&wharfv1.ListRepositoriesRequest{Permission: "bogus"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("anonymous, unknown permission: %v, want InvalidArgument", err)
		}
	})

	t.Run("admin-only and write RPCs", func(t *testing.T) {
		desc := "set anonymously"
		for _, tc := range []struct {
			name string
			call func() error
		}{
			{"ListActivity of a namespace", func() error {
				_, err := anon.activity.ListActivity(ctx, req(&wharfv1.ListActivityRequest{Namespace: "open"}))
				return err
			}},
			{"ListActivity of the registry", func() error {
				_, err := anon.activity.ListActivity(ctx, req(&wharfv1.ListActivityRequest{}))
				return err
			}},
			{"ListNamespaces", func() error {
				_, err := anon.ns.ListNamespaces(ctx, req(&wharfv1.ListNamespacesRequest{}))
				return err
			}},
			{"GetNamespace", func() error {
				_, err := anon.ns.GetNamespace(ctx, req(&wharfv1.GetNamespaceRequest{Name: "open"}))
				return err
			}},
			{"SetRepositoryInfo", func() error {
				_, err := anon.repos.SetRepositoryInfo(ctx, req(&wharfv1.SetRepositoryInfoRequest{Name: "pub/app", Description: &desc}))
				return err
			}},
			{"TagImage", func() error {
				_, err := anon.images.TagImage(ctx, req(&wharfv1.TagImageRequest{Repository: "pub/app", Tag: "anon", Reference: "v1"}))
				return err
			}},
			{"UntagImage", func() error {
				_, err := anon.images.UntagImage(ctx, req(&wharfv1.UntagImageRequest{Repository: "open/app", Tag: "v1"}))
				return err
			}},
			{"DeleteImage", func() error {
				_, err := anon.images.DeleteImage(ctx, req(&wharfv1.DeleteImageRequest{Repository: "pub/app", Reference: d.String()}))
				return err
			}},
			{"DeleteRepository", func() error {
				_, err := anon.repos.DeleteRepository(ctx, req(&wharfv1.DeleteRepositoryRequest{Name: "open/app"}))
				return err
			}},
		} {
			if err := tc.call(); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("anonymous %s: %v, want Unauthenticated", tc.name, err)
			}
		}
		// Nothing changed.
		for _, repo := range []string{"pub/app", "open/app"} {
			resp, err := admin.repos.GetRepository(ctx, req(&wharfv1.GetRepositoryRequest{Name: repo}))
			if err != nil {
				t.Fatal(err)
			}
			if r := resp.Msg.Repository; r.Description != "" || r.TagCount != 1 || r.ManifestCount != 1 {
				t.Errorf("%s changed: description %q, %d tags, %d manifests", repo, r.Description, r.TagCount, r.ManifestCount)
			}
		}
	})
}
