package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
)

// manageClients are the management services as one caller sees them
// through one node.
type manageClients struct {
	repos    wharfv1connect.RepositoryServiceClient
	images   wharfv1connect.ImageServiceClient
	ns       wharfv1connect.NamespaceServiceClient
	activity wharfv1connect.ActivityServiceClient
}

func manageAs(base, user, password string) manageClients {
	c := &http.Client{Transport: basicTransport{user, password}}
	return manageClients{
		repos:    wharfv1connect.NewRepositoryServiceClient(c, base),
		images:   wharfv1connect.NewImageServiceClient(c, base),
		ns:       wharfv1connect.NewNamespaceServiceClient(c, base),
		activity: wharfv1connect.NewActivityServiceClient(c, base),
	}
}

// req wraps a message in a Connect request.
func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

// manageOp is one management RPC a role table tries: call makes it as
// the caller for the objects named after the role, unchanged (run only
// when the call was refused) checks through the admin that it left them
// as they were.
type manageOp struct {
	name      string
	allowed   []string // the roles that may; every other is refused
	call      func(ctx context.Context, c manageClients, role string) error
	unchanged func(ctx context.Context, admin manageClients, role string) error
}

// TestManagementRoles checks every management RPC against every role,
// through a real node: who may, that the others get PermissionDenied (or
// Unauthenticated), and that a refused mutation changes nothing.
func TestManagementRoles(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	ctx := context.Background()
	access := accAccess(n, "admin", accAdminPassword)
	roles := []string{"anonymous", "none", "collaborator", "owner", "publisher", "admin", "pull-token", "other-token"}
	password := func(role string) string { return "u-" + role + "-password" }
	for _, role := range []string{"none", "collaborator", "owner", "publisher", "admin"} {
		if _, err := access.CreateUser(ctx, req(&wharfv1.CreateUserRequest{Name: "u-" + role, Password: password(role)})); err != nil {
			t.Fatal(err)
		}
	}
	adminAuth := keychainOf("admin", accAdminPassword)
	img := accImage(t)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// The superuser pushes acme/app:v1, a tag to remove for each role, a
	// repository with an image to delete for each role, and a namespace
	// emptied for each role to delete.
	if err := remote.Write(accRef(t, n, "acme/app:v1"), img, adminAuth); err != nil {
		t.Fatal(err)
	}
	admin := manageAs(n.url, "admin", accAdminPassword)
	for _, role := range roles {
		if err := remote.Tag(accRef(t, n, "acme/app:u-"+role).(name.Tag), img, adminAuth); err != nil {
			t.Fatal(err)
		}
		for _, repo := range []string{"acme/img-" + role, "acme/rm-" + role, "empty-" + role + "/app"} {
			if err := remote.Write(accRef(t, n, repo+":v1"), img, adminAuth); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := admin.repos.DeleteRepository(ctx, req(&wharfv1.DeleteRepositoryRequest{Name: "empty-" + role + "/app"})); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []*wharfv1.RoleGrant{
		{Role: "collaborator", Namespace: "acme", User: "u-collaborator"},
		{Role: "owner", Namespace: "acme", User: "u-owner"},
		{Role: "publisher", User: "u-publisher"},
		{Role: "admin", User: "u-admin"},
	} {
		if _, err := access.GrantRole(ctx, req(&wharfv1.GrantRoleRequest{Grant: g})); err != nil {
			t.Fatal(err)
		}
	}
	// The collaborator's API tokens: one that may only pull in acme, one
	// confined to another namespace.
	_, pullToken := createToken(t, n, "u-collaborator", password("collaborator"), []string{"acme"}, []string{"pull"})
	_, otherToken := createToken(t, n, "u-collaborator", password("collaborator"), []string{"elsewhere"}, []string{"pull", "push", "delete"})
	callers := map[string]manageClients{
		"anonymous":   manageAs(n.url, "", ""),
		"pull-token":  manageAs(n.url, "u-collaborator", pullToken),
		"other-token": manageAs(n.url, "u-collaborator", otherToken),
	}
	for _, role := range []string{"none", "collaborator", "owner", "publisher", "admin"} {
		callers[role] = manageAs(n.url, "u-"+role, password(role))
	}

	readers := []string{"collaborator", "owner", "publisher", "admin", "pull-token"}
	editors := []string{"collaborator", "owner", "publisher", "admin"}
	admins := []string{"admin"}
	tagPoints := func(ctx context.Context, admin manageClients, repo, tag string, want bool) error {
		_, err := admin.images.GetImage(ctx, req(&wharfv1.GetImageRequest{Repository: repo, Reference: tag}))
		switch {
		case want && err != nil:
			return fmt.Errorf("%s:%s is gone: %v", repo, tag, err)
		case !want && connect.CodeOf(err) != connect.CodeNotFound:
			return fmt.Errorf("%s:%s: want NotFound, got %v", repo, tag, err)
		}
		return nil
	}
	ops := []manageOp{
		{name: "GetRepository", allowed: readers, call: func(ctx context.Context, c manageClients, _ string) error {
			_, err := c.repos.GetRepository(ctx, req(&wharfv1.GetRepositoryRequest{Name: "acme/app"}))
			return err
		}},
		{name: "ListImages", allowed: readers, call: func(ctx context.Context, c manageClients, _ string) error {
			_, err := c.images.ListImages(ctx, req(&wharfv1.ListImagesRequest{Repository: "acme/app"}))
			return err
		}},
		{name: "GetImage", allowed: readers, call: func(ctx context.Context, c manageClients, _ string) error {
			_, err := c.images.GetImage(ctx, req(&wharfv1.GetImageRequest{Repository: "acme/app", Reference: "v1"}))
			return err
		}},
		{name: "GetNamespace", allowed: readers, call: func(ctx context.Context, c manageClients, _ string) error {
			_, err := c.ns.GetNamespace(ctx, req(&wharfv1.GetNamespaceRequest{Name: "acme"}))
			return err
		}},
		{name: "ListActivity of a repository", allowed: readers, call: func(ctx context.Context, c manageClients, _ string) error {
			_, err := c.activity.ListActivity(ctx, req(&wharfv1.ListActivityRequest{Repository: "acme/app"}))
			return err
		}},
		{name: "ListActivity of a namespace", allowed: admins, call: func(ctx context.Context, c manageClients, _ string) error {
			_, err := c.activity.ListActivity(ctx, req(&wharfv1.ListActivityRequest{Namespace: "acme"}))
			return err
		}},
		{name: "ListActivity of the registry", allowed: admins, call: func(ctx context.Context, c manageClients, _ string) error {
			_, err := c.activity.ListActivity(ctx, req(&wharfv1.ListActivityRequest{}))
			return err
		}},
		{name: "TagImage", allowed: editors,
			call: func(ctx context.Context, c manageClients, role string) error {
				_, err := c.images.TagImage(ctx, req(&wharfv1.TagImageRequest{Repository: "acme/app", Tag: "t-" + role, Reference: "v1"}))
				return err
			},
			unchanged: func(ctx context.Context, admin manageClients, role string) error {
				return tagPoints(ctx, admin, "acme/app", "t-"+role, false)
			}},
		{name: "UntagImage", allowed: editors,
			call: func(ctx context.Context, c manageClients, role string) error {
				_, err := c.images.UntagImage(ctx, req(&wharfv1.UntagImageRequest{Repository: "acme/app", Tag: "u-" + role}))
				return err
			},
			unchanged: func(ctx context.Context, admin manageClients, role string) error {
				return tagPoints(ctx, admin, "acme/app", "u-"+role, true)
			}},
		{name: "SetRepositoryInfo", allowed: editors,
			call: func(ctx context.Context, c manageClients, role string) error {
				desc := "described by " + role
				_, err := c.repos.SetRepositoryInfo(ctx, req(&wharfv1.SetRepositoryInfoRequest{Name: "acme/img-" + role, Description: &desc}))
				return err
			},
			unchanged: func(ctx context.Context, admin manageClients, role string) error {
				resp, err := admin.repos.GetRepository(ctx, req(&wharfv1.GetRepositoryRequest{Name: "acme/img-" + role}))
				if err != nil {
					return err
				}
				if got := resp.Msg.Repository.Description; got != "" {
					return fmt.Errorf("description is %q, want none", got)
				}
				return nil
			}},
		{name: "DeleteImage", allowed: admins,
			call: func(ctx context.Context, c manageClients, role string) error {
				_, err := c.images.DeleteImage(ctx, req(&wharfv1.DeleteImageRequest{Repository: "acme/img-" + role, Reference: d.String()}))
				return err
			},
			unchanged: func(ctx context.Context, admin manageClients, role string) error {
				return tagPoints(ctx, admin, "acme/img-"+role, "v1", true)
			}},
		{name: "DeleteRepository", allowed: admins,
			call: func(ctx context.Context, c manageClients, role string) error {
				_, err := c.repos.DeleteRepository(ctx, req(&wharfv1.DeleteRepositoryRequest{Name: "acme/rm-" + role}))
				return err
			},
			unchanged: func(ctx context.Context, admin manageClients, role string) error {
				return tagPoints(ctx, admin, "acme/rm-"+role, "v1", true)
			}},
		{name: "DeleteNamespace", allowed: admins,
			call: func(ctx context.Context, c manageClients, role string) error {
				_, err := c.ns.DeleteNamespace(ctx, req(&wharfv1.DeleteNamespaceRequest{Name: "empty-" + role}))
				return err
			},
			unchanged: func(ctx context.Context, admin manageClients, role string) error {
				_, err := admin.ns.GetNamespace(ctx, req(&wharfv1.GetNamespaceRequest{Name: "empty-" + role}))
				return err
			}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			for _, role := range roles {
				err := op.call(ctx, callers[role], role)
				want := connect.CodePermissionDenied
				if role == "anonymous" {
					want = connect.CodeUnauthenticated
				}
				switch allowed := slices.Contains(op.allowed, role); {
				case allowed && err != nil:
					t.Errorf("%s: %v, want success", role, err)
				case !allowed && connect.CodeOf(err) != want:
					t.Errorf("%s: %v, want %v", role, err, want)
				case !allowed && op.unchanged != nil:
					if err := op.unchanged(ctx, admin, role); err != nil {
						t.Errorf("%s: refused, but changed state: %v", role, err)
					}
				}
			}
		})
	}

	// Listings answer everyone who logged in, with what each may see.
	for _, role := range roles[1:] {
		resp, err := callers[role].repos.ListRepositories(ctx, req(&wharfv1.ListRepositoriesRequest{Namespace: "acme", NameContains: "app"}))
		if err != nil {
			t.Fatalf("%s: list repositories: %v", role, err)
		}
		var got []string
		for _, r := range resp.Msg.Repositories {
			got = append(got, r.Name)
		}
		sees := slices.Contains(readers, role)
		if sees != (len(got) == 1 && got[0] == "acme/app") || !sees && len(got) != 0 {
			t.Errorf("%s lists %v in acme; sees acme/app: %v", role, got, sees)
		}
	}
	// Anonymous callers list the public repositories (TestAnonymousReads);
	// none is public here.
	if resp, err := callers["anonymous"].repos.ListRepositories(ctx, req(&wharfv1.ListRepositoriesRequest{})); err != nil || len(resp.Msg.Repositories) != 0 {
		t.Errorf("anonymous list: %v, want no repositories", err)
	}
}

// TestManagementBadInput: a bad argument answers InvalidArgument naming
// the field and the rule, an unknown object NotFound, a namespace that is
// not empty FailedPrecondition; none of them writes anything.
func TestManagementBadInput(t *testing.T) {
	n := startAccessNodes(t, 1)[0]
	ctx := context.Background()
	img := accImage(t)
	if err := remote.Write(accRef(t, n, "acme/app:v1"), img, keychainOf("admin", accAdminPassword)); err != nil {
		t.Fatal(err)
	}
	admin := manageAs(n.url, "admin", accAdminPassword)
	before := latestActivity(t, admin)
	long := strings.Repeat("x", 2049)
	tests := []struct {
		name string
		call func() error
		code connect.Code
		want string // in the message
	}{
		{"upper-case repository", func() error {
			_, err := admin.repos.GetRepository(ctx, req(&wharfv1.GetRepositoryRequest{Name: "Acme/App"}))
			return err
		}, connect.CodeInvalidArgument, "name"},
		{"negative page size", func() error {
			_, err := admin.repos.ListRepositories(ctx, req(&wharfv1.ListRepositoriesRequest{PageSize: -1}))
			return err
		}, connect.CodeInvalidArgument, "page_size"},
		{"garbage page token", func() error {
			_, err := admin.repos.ListRepositories(ctx, req(&wharfv1.ListRepositoriesRequest{PageToken: "%%%"}))
			return err
		}, connect.CodeInvalidArgument, "page_token"},
		{"unknown permission filter", func() error {
			_, err := admin.repos.ListRepositories(ctx, req(&wharfv1.ListRepositoriesRequest{Permission: "fly"}))
			return err
		}, connect.CodeInvalidArgument, "permission"},
		{"description over 2 KiB", func() error {
			_, err := admin.repos.SetRepositoryInfo(ctx, req(&wharfv1.SetRepositoryInfoRequest{Name: "acme/app", Description: &long}))
			return err
		}, connect.CodeInvalidArgument, "description"},
		{"neither description nor readme", func() error {
			_, err := admin.repos.SetRepositoryInfo(ctx, req(&wharfv1.SetRepositoryInfoRequest{Name: "acme/app"}))
			return err
		}, connect.CodeInvalidArgument, "description"},
		{"tag starting with a dash", func() error {
			_, err := admin.images.TagImage(ctx, req(&wharfv1.TagImageRequest{Repository: "acme/app", Tag: "-v2", Reference: "v1"}))
			return err
		}, connect.CodeInvalidArgument, "tag"},
		{"tag of 129 characters", func() error {
			_, err := admin.images.TagImage(ctx, req(&wharfv1.TagImageRequest{Repository: "acme/app", Tag: strings.Repeat("a", 129), Reference: "v1"}))
			return err
		}, connect.CodeInvalidArgument, "128"},
		{"malformed digest", func() error {
			_, err := admin.images.GetImage(ctx, req(&wharfv1.GetImageRequest{Repository: "acme/app", Reference: "sha256:abc"}))
			return err
		}, connect.CodeInvalidArgument, "reference"},
		{"namespace with a slash", func() error {
			_, err := admin.ns.GetNamespace(ctx, req(&wharfv1.GetNamespaceRequest{Name: "acme/app"}))
			return err
		}, connect.CodeInvalidArgument, "one path component"},
		{"activity of a repository and a namespace", func() error {
			_, err := admin.activity.ListActivity(ctx, req(&wharfv1.ListActivityRequest{Repository: "acme/app", Namespace: "acme"}))
			return err
		}, connect.CodeInvalidArgument, "namespace"},
		{"unknown repository", func() error {
			_, err := admin.repos.GetRepository(ctx, req(&wharfv1.GetRepositoryRequest{Name: "acme/nothing"}))
			return err
		}, connect.CodeNotFound, "acme/nothing"},
		{"unknown tag", func() error {
			_, err := admin.images.GetImage(ctx, req(&wharfv1.GetImageRequest{Repository: "acme/app", Reference: "v9"}))
			return err
		}, connect.CodeNotFound, "v9"},
		{"tag an unknown digest", func() error {
			_, err := admin.images.TagImage(ctx, req(&wharfv1.TagImageRequest{Repository: "acme/app", Tag: "v2", Reference: "sha256:" + strings.Repeat("0", 64)}))
			return err
		}, connect.CodeNotFound, ""},
		{"untag an unknown tag", func() error {
			_, err := admin.images.UntagImage(ctx, req(&wharfv1.UntagImageRequest{Repository: "acme/app", Tag: "v9"}))
			return err
		}, connect.CodeNotFound, "v9"},
		{"delete an unknown repository", func() error {
			_, err := admin.repos.DeleteRepository(ctx, req(&wharfv1.DeleteRepositoryRequest{Name: "acme/nothing"}))
			return err
		}, connect.CodeNotFound, ""},
		{"unknown namespace", func() error {
			_, err := admin.ns.GetNamespace(ctx, req(&wharfv1.GetNamespaceRequest{Name: "nowhere"}))
			return err
		}, connect.CodeNotFound, "nowhere"},
		{"delete a namespace that is not empty", func() error {
			_, err := admin.ns.DeleteNamespace(ctx, req(&wharfv1.DeleteNamespaceRequest{Name: "acme"}))
			return err
		}, connect.CodeFailedPrecondition, "acme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if connect.CodeOf(err) != tt.code || !strings.Contains(fmt.Sprint(err), tt.want) {
				t.Errorf("got %v, want %v naming %q", err, tt.code, tt.want)
			}
		})
	}
	if after := latestActivity(t, admin); after != before {
		t.Errorf("the refused calls wrote activity: newest seq %d, was %d", after, before)
	}
}

// latestActivity returns the seq of the registry's newest activity.
func latestActivity(t *testing.T, admin manageClients) uint64 {
	t.Helper()
	resp, err := admin.activity.ListActivity(context.Background(), req(&wharfv1.ListActivityRequest{PageSize: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Msg.Activity) == 0 {
		return 0
	}
	return resp.Msg.Activity[0].Seq
}

// TestManagementThroughFollowers tags through one follower and reads
// through the other at once: reads see every write acknowledged before
// them, whichever node took it, and the activity names the actor and the
// node the change went through.
func TestManagementThroughFollowers(t *testing.T) {
	h := startHarness(t, harnessOpts{deadNodeTimeout: time.Hour, gcInterval: time.Hour})
	ctx := context.Background()
	img := accImage(t)
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(h.lbURL(), "http://")+"/acme/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, asAdmin()); err != nil {
		t.Fatal(err)
	}
	leader := h.leader()
	var followers []*testNode
	for _, n := range h.nodes {
		if n.idx != leader {
			followers = append(followers, n)
		}
	}
	writer, reader := followers[0], followers[1]
	via, at := manageAs(writer.baseURL, adminUser, harnessAdminPassword), manageAs(reader.baseURL, adminUser, harnessAdminPassword)
	for i := range 20 {
		tag := fmt.Sprintf("r%d", i)
		if _, err := via.images.TagImage(ctx, req(&wharfv1.TagImageRequest{Repository: "acme/app", Tag: tag, Reference: "v1"})); err != nil {
			t.Fatalf("tag %s through node %d: %v", tag, writer.idx, err)
		}
		got, err := at.images.GetImage(ctx, req(&wharfv1.GetImageRequest{Repository: "acme/app", Reference: tag}))
		if err != nil || got.Msg.Image.Digest != d.String() {
			t.Fatalf("read %s through node %d right after the tag: %v %v", tag, reader.idx, got, err)
		}
	}
	desc := "written through a follower"
	if _, err := at.repos.SetRepositoryInfo(ctx, req(&wharfv1.SetRepositoryInfoRequest{Name: "acme/app", Description: &desc})); err != nil {
		t.Fatal(err)
	}
	repo, err := via.repos.GetRepository(ctx, req(&wharfv1.GetRepositoryRequest{Name: "acme/app"}))
	if err != nil || repo.Msg.Repository.Description != desc || repo.Msg.Repository.TagCount != 21 {
		t.Fatalf("repository through node %d: %v %v; want the description and 21 tags", writer.idx, repo, err)
	}
	if _, err := via.images.UntagImage(ctx, req(&wharfv1.UntagImageRequest{Repository: "acme/app", Tag: "r0"})); err != nil {
		t.Fatal(err)
	}
	if _, err := at.images.GetImage(ctx, req(&wharfv1.GetImageRequest{Repository: "acme/app", Reference: "r0"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("an untagged tag through node %d: %v, want NotFound", reader.idx, err)
	}
	act, err := at.activity.ListActivity(ctx, req(&wharfv1.ListActivityRequest{Repository: "acme/app", PageSize: 3}))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind wharfv1.ActivityKind
		tag  string
		node string
	}{
		{wharfv1.ActivityKind_ACTIVITY_KIND_TAG_REMOVED, "r0", writer.id},
		{wharfv1.ActivityKind_ACTIVITY_KIND_DESCRIPTION_SET, "", reader.id},
		{wharfv1.ActivityKind_ACTIVITY_KIND_TAG_ADDED, "r19", writer.id},
	}
	if len(act.Msg.Activity) != len(want) {
		t.Fatalf("activity: %v", act.Msg.Activity)
	}
	for i, w := range want {
		a := act.Msg.Activity[i]
		if a.Kind != w.kind || a.Tag != w.tag || a.NodeId != w.node || a.Actor != adminUser || a.UnixNanos == 0 {
			t.Errorf("activity %d: %v; want %v %q through %s by %s", i, a, w.kind, w.tag, w.node, adminUser)
		}
	}
}

// putRaw stores manifest m of mediaType in repo under ref through base,
// and returns its digest.
func putRaw(t *testing.T, base, repo, ref, mediaType string, m []byte) string {
	t.Helper()
	code, _, body := doRequest(t, http.MethodPut, base+"/v2/"+repo+"/manifests/"+ref,
		http.Header{"Content-Type": {mediaType}}, bytes.NewReader(m))
	if code != http.StatusCreated {
		t.Fatalf("put %s:%s: HTTP %d %s", repo, ref, code, body)
	}
	return digest.FromBytes(m).String()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestImageDescriptions pushes an index of two platforms, an image with a
// config, a signature that refers to it and a layer shared with another
// repository, and checks what ListImages, GetImage and GetRepository say
// of them.
func TestImageDescriptions(t *testing.T) {
	h := startHarness(t, harnessOpts{nodes: 1, replicas: 1, writeQuorum: 1, gcInterval: time.Hour})
	base := h.nodes[0].baseURL
	ctx := context.Background()
	admin := manageAs(base, adminUser, harnessAdminPassword)
	const (
		ociManifest = "application/vnd.oci.image.manifest.v1+json"
		ociIndex    = "application/vnd.oci.image.index.v1+json"
		ociLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
		ociConfig   = "application/vnd.oci.image.config.v1+json"
		sigType     = "application/vnd.dev.cosign.artifact.sig.v1+json"
	)
	desc := func(mt string, b []byte) map[string]any {
		return map[string]any{"mediaType": mt, "digest": digest.FromBytes(b).String(), "size": len(b)}
	}
	shared, own := randomBytes(t, 3000, 1), randomBytes(t, 5000, 2)
	config := mustJSON(t, map[string]any{
		"created": "2026-12-01T10:00:00Z", "author": "wharf tests", "architecture": "amd64", "os": "linux",
		"config":  map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"/app", "--serve"}, "Labels": map[string]string{"team": "registry"}},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{digest.FromBytes(shared).String(), digest.FromBytes(own).String()}},
		"history": []map[string]any{{"created_by": "ADD shared /"}, {"created_by": "ADD own /", "comment": "the app"}},
	})
	for _, b := range [][]byte{shared, own, config} {
		pushBlobMonolithic(t, base, "acme/app", b)
	}
	pushBlobMonolithic(t, base, "other/app", shared)
	imageManifest := mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": ociManifest, "config": desc(ociConfig, config),
		"layers": []any{desc(ociLayer, shared), desc(ociLayer, own)},
	})
	image := putRaw(t, base, "acme/app", "v1", ociManifest, imageManifest)
	imageSize := int64(len(config) + len(shared) + len(own))
	// The other repository's image shares the first layer.
	otherConfig := randomBytes(t, 100, 4)
	pushBlobMonolithic(t, base, "other/app", otherConfig)
	putRaw(t, base, "other/app", "v1", ociManifest, manifestFor(otherConfig, shared))

	// Two platform images and their index.
	var children []map[string]any
	var childSizes int64
	for i, p := range []map[string]any{{"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64", "variant": "v8"}} {
		cfg := mustJSON(t, map[string]any{"architecture": p["architecture"], "os": "linux", "rootfs": map[string]any{"type": "layers"}, "seed": i})
		layer := randomBytes(t, 1000+i, byte(10+i))
		pushBlobMonolithic(t, base, "acme/app", cfg)
		pushBlobMonolithic(t, base, "acme/app", layer)
		m := mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": ociManifest, "config": desc(ociConfig, cfg), "layers": []any{desc(ociLayer, layer)}})
		putRaw(t, base, "acme/app", digest.FromBytes(m).String(), ociManifest, m)
		d := desc(ociManifest, m)
		d["platform"] = p
		children = append(children, d)
		childSizes += int64(len(cfg) + len(layer))
	}
	index := putRaw(t, base, "acme/app", "multi", ociIndex, mustJSON(t, map[string]any{"schemaVersion": 2, "mediaType": ociIndex, "manifests": children}))

	// The repository is not signed until a signature refers to the image.
	repo, err := admin.repos.GetRepository(ctx, req(&wharfv1.GetRepositoryRequest{Name: "acme/app"}))
	if err != nil || repo.Msg.Signed {
		t.Fatalf("before the signature: %v %v; want unsigned", repo, err)
	}
	sigPayload, empty := randomBytes(t, 200, 3), []byte("{}")
	pushBlobMonolithic(t, base, "acme/app", sigPayload)
	pushBlobMonolithic(t, base, "acme/app", empty)
	sigManifest := mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": ociManifest, "artifactType": sigType,
		"config": desc("application/vnd.oci.empty.v1+json", empty), "layers": []any{desc("application/vnd.dev.cosign.simplesigning.v1+json", sigPayload)},
		"subject": desc(ociManifest, imageManifest),
	})
	signature := putRaw(t, base, "acme/app", digest.FromBytes(sigManifest).String(), ociManifest, sigManifest)

	images := map[string]*wharfv1.Image{}
	list, err := admin.images.ListImages(ctx, req(&wharfv1.ListImagesRequest{Repository: "acme/app"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range list.Msg.Images {
		images[im.Digest] = im
	}
	if len(images) != 5 {
		t.Fatalf("ListImages: %d images, want the image, the index, its 2 children and the signature: %v", len(images), list.Msg.Images)
	}
	img := images[image]
	if img.SizeBytes != imageSize || len(img.Layers) != 2 || img.Layers[1].Digest != digest.FromBytes(own).String() || !slices.Equal(img.Tags, []string{"v1"}) {
		t.Errorf("the image: %v; want size %d, its 2 layers and tag v1", img, imageSize)
	}
	if len(img.Referrers) != 1 || img.Referrers[0].Kind != wharfv1.ReferrerKind_REFERRER_KIND_SIGNATURE || !slices.Equal(img.Referrers[0].Digests, []string{signature}) {
		t.Errorf("the image's referrers: %v; want the signature %s", img.Referrers, signature)
	}
	if sig := images[signature]; sig.ArtifactType != sigType || sig.Subject != image {
		t.Errorf("the signature: %v; want artifact type %s and subject %s", sig, sigType, image)
	}
	idx := images[index]
	if idx.SizeBytes != childSizes || len(idx.Platforms) != 2 || idx.Platforms[1].Architecture != "arm64" || idx.Platforms[1].Variant != "v8" || idx.Platforms[0].Os != "linux" {
		t.Errorf("the index: %v; want size %d and linux/amd64, linux/arm64/v8", idx, childSizes)
	}
	for _, p := range idx.Platforms {
		if c := images[p.Digest]; c == nil || !c.Child {
			t.Errorf("platform %v: child %v, want a listed child", p, c)
		}
	}
	filtered := []struct {
		name string
		q    *wharfv1.ListImagesRequest
		want []string
	}{
		{"tag contains", &wharfv1.ListImagesRequest{Repository: "acme/app", TagContains: "ult"}, []string{index}},
		{"digest prefix", &wharfv1.ListImagesRequest{Repository: "acme/app", DigestPrefix: image[:16]}, []string{image}},
		{"hide children", &wharfv1.ListImagesRequest{Repository: "acme/app", HideChildren: true}, []string{image, index, signature}},
	}
	for _, tt := range filtered {
		resp, err := admin.images.ListImages(ctx, req(tt.q))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []string
		for _, im := range resp.Msg.Images {
			got = append(got, im.Digest)
		}
		slices.Sort(got)
		slices.Sort(tt.want)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}

	got, err := admin.images.GetImage(ctx, req(&wharfv1.GetImageRequest{Repository: "acme/app", Reference: "v1"}))
	if err != nil {
		t.Fatal(err)
	}
	cfg := got.Msg.Config
	if got.Msg.ConfigError != "" || cfg.GetAuthor() != "wharf tests" || cfg.GetLabels()["team"] != "registry" || !slices.Equal(cfg.GetCmd(), []string{"/app", "--serve"}) ||
		!slices.Equal(cfg.GetEnv(), []string{"PATH=/bin"}) || len(cfg.GetHistory()) != 2 || cfg.GetHistory()[1].Comment != "the app" ||
		cfg.GetCreatedUnixNanos() != time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).UnixNano() {
		t.Errorf("the image's config: %v (error %q)", cfg, got.Msg.ConfigError)
	}
	if !bytes.Equal(got.Msg.Manifest, imageManifest) {
		t.Errorf("GetImage returned another manifest:\n%s", got.Msg.Manifest)
	}

	repo, err = admin.repos.GetRepository(ctx, req(&wharfv1.GetRepositoryRequest{Name: "acme/app"}))
	if err != nil {
		t.Fatal(err)
	}
	var all int64
	for _, b := range [][]byte{shared, own, config, sigPayload, empty} {
		all += int64(len(b))
	}
	all += childSizes
	st := repo.Msg.Storage
	if !repo.Msg.Signed || st.Bytes != all || st.UniqueBytes != all-int64(len(shared)) || repo.Msg.Repository.TagCount != 2 || repo.Msg.Repository.ManifestCount != 5 {
		t.Errorf("the repository: signed %v, storage %v, %d tags, %d manifests; want signed, %d bytes of which %d unique, 2 tags, 5 manifests",
			repo.Msg.Signed, st, repo.Msg.Repository.TagCount, repo.Msg.Repository.ManifestCount, all, all-int64(len(shared)))
	}
}
