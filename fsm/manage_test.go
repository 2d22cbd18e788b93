package fsm

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

func tagManifest(repo, tag, content string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_TagManifest{TagManifest: &fsmpb.TagManifest{
		Repository: repo, Tag: tag, Digest: dgst(content),
	}}}
}

func setInfo(repo string, description, readme *string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_SetRepositoryInfo{SetRepositoryInfo: &fsmpb.SetRepositoryInfo{
		Repository: repo, Description: description, Readme: readme,
	}}}
}

func deleteRepository(repo string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_DeleteRepository{DeleteRepository: &fsmpb.DeleteRepository{Repository: repo}}}
}

func deleteNamespace(ns string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_DeleteNamespace{DeleteNamespace: &fsmpb.DeleteNamespace{Namespace: ns}}}
}

func deleteImage(repo, content string) *fsmpb.Command {
	cmd := deleteManifest(repo, content)
	cmd.GetDeleteManifest().Image = true
	return cmd
}

// putIndex is an image index of repo listing the manifests children.
func putIndex(repo, content string, children []string, tags ...string) *fsmpb.Command {
	cmd := putManifest(repo, content, tags...)
	cmd.GetPutManifest().MediaType = "application/vnd.oci.image.index.v1+json"
	for _, c := range children {
		cmd.GetPutManifest().Manifests = append(cmd.GetPutManifest().Manifests, dgst(c))
	}
	return cmd
}

func by(actor string, cmd *fsmpb.Command) *fsmpb.Command {
	cmd.Actor, cmd.NodeId = actor, "node-1"
	return cmd
}

func ptr[T any](v T) *T { return &v }

func wantRecord(t *testing.T, f *FSM, repo string, tags, manifests int64) *fsmpb.Repository {
	t.Helper()
	rec, err := f.Repository(repo)
	if err != nil {
		t.Fatalf("Repository(%q): %v", repo, err)
	}
	if rec.GetTagCount() != tags || rec.GetManifestCount() != manifests {
		t.Fatalf("%s counts: %d tags, %d manifests; want %d, %d", repo, rec.GetTagCount(), rec.GetManifestCount(), tags, manifests)
	}
	return rec
}

func wantManifests(t *testing.T, f *FSM, repo string, want ...string) {
	t.Helper()
	page, err := f.ListImages(ImageQuery{Repository: repo, Limit: 100})
	if err != nil {
		t.Fatalf("ListImages(%q): %v", repo, err)
	}
	var got []string
	for _, img := range page.Images {
		got = append(got, img.Manifest.GetDigest())
	}
	var digests []string
	for _, w := range want {
		digests = append(digests, dgst(w))
	}
	slices.Sort(digests)
	if !slices.Equal(got, digests) {
		t.Fatalf("manifests of %s = %q, want %q (%q)", repo, got, digests, want)
	}
}

func TestManagementCommands(t *testing.T) {
	tooLong := strings.Repeat("x", MaxDescriptionBytes+1)
	tests := []struct {
		name     string
		setup    []*fsmpb.Command
		cmd      *fsmpb.Command
		want     fsmpb.ResultCode
		contains string
		check    func(t *testing.T, f *FSM)
	}{
		{
			name:  "tag a manifest",
			setup: []*fsmpb.Command{putManifest("acme/app", "m1", "v1")},
			cmd:   tagManifest("acme/app", "stable", "m1"),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				wantTags(t, f, "acme/app", "stable", "v1")
				wantRecord(t, f, "acme/app", 2, 1)
			},
		},
		{
			name:  "move a tag",
			setup: []*fsmpb.Command{putManifest("acme/app", "m1", "v1"), putManifest("acme/app", "m2")},
			cmd:   tagManifest("acme/app", "v1", "m2"),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				wantTag(t, f, "acme/app", "v1", dgst("m2"))
				wantRecord(t, f, "acme/app", 1, 2)
				img, err := f.Image("acme/app", dgst("m1"))
				if err != nil || len(img.Tags) != 0 {
					t.Fatalf("m1 = %v, %v; want no tags", img, err)
				}
			},
		},
		{
			name:     "tag a manifest the repository lacks",
			setup:    []*fsmpb.Command{putManifest("acme/app", "m1", "v1"), putManifest("acme/other", "m2")},
			cmd:      tagManifest("acme/app", "v2", "m2"),
			want:     codeNotFound,
			contains: "manifest",
			check:    func(t *testing.T, f *FSM) { wantTags(t, f, "acme/app", "v1") },
		},
		{
			name:     "tag name breaks the OCI rule",
			setup:    []*fsmpb.Command{putManifest("acme/app", "m1")},
			cmd:      tagManifest("acme/app", "-bad", "m1"),
			want:     codeInvalid,
			contains: "tag",
			check:    func(t *testing.T, f *FSM) { wantRecord(t, f, "acme/app", 0, 1) },
		},
		{
			name:  "untag keeps the manifest",
			setup: []*fsmpb.Command{putManifest("acme/app", "m1", "v1", "v2")},
			cmd:   deleteTag("acme/app", "v1"),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				wantTags(t, f, "acme/app", "v2")
				wantManifests(t, f, "acme/app", "m1")
				wantRecord(t, f, "acme/app", 1, 1)
			},
		},
		{
			name:  "set description and readme",
			setup: []*fsmpb.Command{putManifest("acme/app", "m1")},
			cmd:   setInfo("acme/app", ptr("an app"), ptr("# App\n")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				rec := wantRecord(t, f, "acme/app", 0, 1)
				readme, err := f.Readme("acme/app")
				if rec.GetDescription() != "an app" || rec.GetReadmeBytes() != 6 || readme != "# App\n" || err != nil {
					t.Fatalf("record %v, readme %q, %v", rec, readme, err)
				}
			},
		},
		{
			name:  "clear the readme, keep the description",
			setup: []*fsmpb.Command{putManifest("acme/app", "m1"), setInfo("acme/app", ptr("kept"), ptr("# App"))},
			cmd:   setInfo("acme/app", nil, ptr("")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				rec := wantRecord(t, f, "acme/app", 0, 1)
				readme, err := f.Readme("acme/app")
				if rec.GetDescription() != "kept" || rec.GetReadmeBytes() != 0 || readme != "" || err != nil {
					t.Fatalf("record %v, readme %q, %v", rec, readme, err)
				}
			},
		},
		{
			name:     "description too long",
			setup:    []*fsmpb.Command{putManifest("acme/app", "m1"), setInfo("acme/app", ptr("kept"), nil)},
			cmd:      setInfo("acme/app", &tooLong, ptr("# new")),
			want:     codeInvalid,
			contains: "description: must be UTF-8 text of at most 2048 bytes",
			check: func(t *testing.T, f *FSM) {
				if rec := wantRecord(t, f, "acme/app", 0, 1); rec.GetDescription() != "kept" || rec.GetReadmeBytes() != 0 {
					t.Fatalf("record changed: %v", rec)
				}
			},
		},
		{
			name:     "readme too long",
			setup:    []*fsmpb.Command{putManifest("acme/app", "m1")},
			cmd:      setInfo("acme/app", nil, ptr(strings.Repeat("#", MaxReadmeBytes+1))),
			want:     codeInvalid,
			contains: "readme: must be UTF-8 text of at most 1048576 bytes",
		},
		{
			name:     "info without a field",
			setup:    []*fsmpb.Command{putManifest("acme/app", "m1")},
			cmd:      setInfo("acme/app", nil, nil),
			want:     codeInvalid,
			contains: "set a description",
		},
		{
			name:     "info of an unknown repository",
			cmd:      setInfo("acme/none", ptr("x"), nil),
			want:     codeNotFound,
			contains: "acme/none",
		},
		{
			name: "delete a repository; shared blobs keep their other references",
			setup: []*fsmpb.Command{
				putImage("acme/app", "m1", "shared", "own"), tagManifest("acme/app", "v1", "m1"),
				linkBlob("acme/app", "shared", 1), linkBlob("acme/app", "own", 1),
				setInfo("acme/app", ptr("d"), ptr("r")),
				putImage("acme/db", "m2", "shared"), linkBlob("acme/db", "shared", 1),
			},
			cmd:  deleteRepository("acme/app"),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantNoRepository("acme/app")(t, f)
				wantNoKeys(t, f, "tag/acme/app\x00", "readme/acme/app", "mtag/acme/app\x00", "man/acme/app\x00", "mchild/acme/app\x00", "ref/acme/app\x00")
				for _, k := range dumpKeys(t, f, prefixRepoIdx, prefixRepoNsIx) {
					if strings.HasSuffix(k, "acme/app") {
						t.Fatalf("index key %q outlives the repository", k)
					}
				}
				if _, err := f.Readme("acme/app"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("Readme after delete: %v", err)
				}
				if links, manifests, err := f.BlobReferences(digest.Digest(dgst("own"))); err != nil || links+manifests != 0 {
					t.Fatalf("own blob: %d links, %d manifests, %v; want none", links, manifests, err)
				}
				if links, manifests, err := f.BlobReferences(digest.Digest(dgst("shared"))); err != nil || links != 1 || manifests != 1 {
					t.Fatalf("shared blob: %d links, %d manifests, %v; want acme/db's 1 and 1", links, manifests, err)
				}
				page, err := f.ListRepositoryPage(RepositoryQuery{Order: ByUpdated, Limit: 10})
				if err != nil || len(page.Repositories) != 1 || page.Repositories[0].GetName() != "acme/db" {
					t.Fatalf("repositories by update = %v, %v", page.Repositories, err)
				}
			},
		},
		{
			name:     "delete an unknown repository",
			cmd:      deleteRepository("acme/none"),
			want:     codeNotFound,
			contains: "acme/none",
		},
		{
			name:     "delete a namespace that holds repositories",
			setup:    []*fsmpb.Command{putManifest("acme/app", "m1")},
			cmd:      deleteNamespace("acme"),
			want:     codePrecondition,
			contains: `such as "acme/app"`,
			check:    func(t *testing.T, f *FSM) { wantRecord(t, f, "acme/app", 0, 1) },
		},
		{
			name: "delete an empty namespace with its grants",
			setup: []*fsmpb.Command{
				createUser("alice", false), claim("acme", "alice"),
				grant(userGrant(fsmpb.Role_ROLE_COLLABORATOR, "acme", "alice")),
				putManifest("acme/app", "m1"), deleteRepository("acme/app"),
			},
			cmd:  deleteNamespace("acme"),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantNoKeys(t, f, "grant/acme", "ns/acme", "nsowner/acme")
				names, err := f.ListNamespaces("", 0)
				if err != nil || len(names) != 0 {
					t.Fatalf("namespaces = %q, %v", names, err)
				}
			},
		},
		{
			name:     "delete an unknown namespace",
			cmd:      deleteNamespace("none"),
			want:     codeNotFound,
			contains: "none",
		},
		{
			name: "delete an image: its cosign signature and attestation tags go with it",
			setup: []*fsmpb.Command{
				putManifest("acme/app", "img", "v1"), putManifest("acme/app", "other", "v2"),
				putManifest("acme/app", "sig", cosignTags(dgst("img"))[0]),
				putManifest("acme/app", "att", cosignTags(dgst("img"))[1]),
				putManifest("acme/app", "other-sig", cosignTags(dgst("other"))[0]),
			},
			cmd:  deleteImage("acme/app", "img"),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantManifests(t, f, "acme/app", "other", "other-sig")
				wantTags(t, f, "acme/app", cosignTags(dgst("other"))[0], "v2")
			},
		},
		{
			name: "delete an image: its referrers and unshared children go",
			setup: []*fsmpb.Command{
				putManifest("acme/app", "amd64"), putManifest("acme/app", "arm64"), putManifest("acme/app", "s390x", "s390x"),
				putIndex("acme/app", "index", []string{"amd64", "arm64", "s390x"}, "v1"),
				putIndex("acme/app", "other-index", []string{"arm64"}),
				putReferrer("acme/app", "sig", "index"),
				putReferrer("acme/app", "sig-of-sig", "sig"),
			},
			cmd:  deleteImage("acme/app", "index"),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				// arm64 is listed by another index, s390x is tagged.
				wantManifests(t, f, "acme/app", "arm64", "s390x", "other-index")
				wantTags(t, f, "acme/app", "s390x")
				wantRecord(t, f, "acme/app", 1, 3)
				if refs, err := f.Referrers("acme/app", digest.Digest(dgst("index"))); err != nil || len(refs) != 0 {
					t.Fatalf("referrers of the deleted index = %v, %v", refs, err)
				}
			},
		},
		{
			name: "delete one manifest of an index: the children stay",
			setup: []*fsmpb.Command{
				putManifest("acme/app", "amd64"), putIndex("acme/app", "index", []string{"amd64"}, "v1"),
			},
			cmd:  deleteManifest("acme/app", "index"),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantManifests(t, f, "acme/app", "amd64")
				wantRecord(t, f, "acme/app", 0, 1)
				img, err := f.Image("acme/app", dgst("amd64"))
				if err != nil || img.Child {
					t.Fatalf("amd64 = %+v, %v; want no longer a child", img, err)
				}
			},
		},
		{
			name:     "delete an unknown image",
			setup:    []*fsmpb.Command{putManifest("acme/app", "m1")},
			cmd:      deleteImage("acme/app", "none"),
			want:     codeNotFound,
			contains: "not found",
			check:    func(t *testing.T, f *FSM) { wantRecord(t, f, "acme/app", 0, 1) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openTest(t)
			f.mustApply(tt.setup...)
			res := f.apply(tt.cmd)
			if res.GetCode() != tt.want || !strings.Contains(res.GetMessage(), tt.contains) {
				t.Fatalf("result = %v, want code %v with message containing %q", res, tt.want, tt.contains)
			}
			if tt.check != nil {
				tt.check(t, f.FSM)
			}
		})
	}
}

func TestActivity(t *testing.T) {
	f := openTest(t)
	f.mustApply(
		by("alice", at(1, putManifest("acme/app", "m1", "v1"))),
		by("alice", at(2, putManifest("acme/app", "m2", "v1"))),
		by("bob", at(3, tagManifest("acme/app", "stable", "m2"))),
		by("bob", at(4, putManifest("acme/db", "d1"))),
		by("carol", at(5, deleteTag("acme/app", "stable"))),
		by("carol", at(6, deleteManifest("acme/app", "m1"))),
		by("dave", at(7, setInfo("acme/app", ptr("d"), nil))),
		by("dave", at(8, putManifest("other/x", "x1"))),
	)
	type event struct {
		at    int64
		actor string
		kind  fsmpb.ActivityKind
		tag   string
		dgst  string
	}
	const (
		added   = fsmpb.ActivityKind_ACTIVITY_KIND_MANIFEST_ADDED
		removed = fsmpb.ActivityKind_ACTIVITY_KIND_MANIFEST_REMOVED
		tagged  = fsmpb.ActivityKind_ACTIVITY_KIND_TAG_ADDED
		moved   = fsmpb.ActivityKind_ACTIVITY_KIND_TAG_MOVED
		untag   = fsmpb.ActivityKind_ACTIVITY_KIND_TAG_REMOVED
		desc    = fsmpb.ActivityKind_ACTIVITY_KIND_DESCRIPTION_SET
	)
	app := []event{
		{7, "dave", desc, "", ""},
		{6, "carol", removed, "", dgst("m1")},
		{5, "carol", untag, "stable", dgst("m2")},
		{3, "bob", tagged, "stable", dgst("m2")},
		{2, "alice", moved, "v1", dgst("m2")},
		{2, "alice", added, "", dgst("m2")},
		{1, "alice", tagged, "v1", dgst("m1")},
		{1, "alice", added, "", dgst("m1")},
	}
	tests := []struct {
		name  string
		query ActivityQuery
		want  []event
	}{
		{"repository", ActivityQuery{Repository: "acme/app"}, app},
		{"namespace", ActivityQuery{Namespace: "acme"}, slices.Insert(slices.Clone(app), 3, event{4, "bob", added, "", dgst("d1")})},
		{"registry", ActivityQuery{}, slices.Insert(slices.Insert(slices.Clone(app), 3, event{4, "bob", added, "", dgst("d1")}), 0, event{8, "dave", added, "", dgst("x1")})},
		{"unknown repository", ActivityQuery{Repository: "acme/none"}, nil},
	}
	for _, tt := range tests {
		for _, pageSize := range []int{1, 3, 100} {
			t.Run(fmt.Sprintf("%s/page %d", tt.name, pageSize), func(t *testing.T) {
				q := tt.query
				q.Limit = pageSize
				var got []event
				for range 20 {
					page, err := f.ListActivity(q)
					if err != nil {
						t.Fatal(err)
					}
					for _, a := range page.Activity {
						if a.GetNodeId() != "node-1" {
							t.Fatalf("activity %v lacks the node", a)
						}
						got = append(got, event{a.GetUnixNanos(), a.GetActor(), a.GetKind(), a.GetTag(), a.GetDigest()})
					}
					if page.Next == 0 {
						break
					}
					q.Before = page.Next
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("activity =\n%v\nwant\n%v", got, tt.want)
				}
			})
		}
	}
	if _, err := f.ListActivity(ActivityQuery{Repository: "a/b", Namespace: "a"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("both repository and namespace: %v, want ErrInvalid", err)
	}
}

// The moved tag's activity names where it pointed before.
func TestActivityOfAMovedTag(t *testing.T) {
	f := openTest(t)
	f.mustApply(putManifest("a/b", "m1", "v1"), putManifest("a/b", "m2", "v1"))
	page, err := f.ListActivity(ActivityQuery{Repository: "a/b", Limit: 1})
	if err != nil || len(page.Activity) != 1 {
		t.Fatalf("activity = %v, %v", page, err)
	}
	if a := page.Activity[0]; a.GetKind() != fsmpb.ActivityKind_ACTIVITY_KIND_TAG_MOVED || a.GetPreviousDigest() != dgst("m1") {
		t.Fatalf("latest activity = %v, want v1 moved from m1", a)
	}
}

// listAll pages through q and returns the names in order.
func listAll(t *testing.T, f *FSM, q RepositoryQuery) []string {
	t.Helper()
	var names []string
	for range 1000 {
		page, err := f.ListRepositoryPage(q)
		if err != nil {
			t.Fatalf("ListRepositoryPage(%+v): %v", q, err)
		}
		for _, r := range page.Repositories {
			names = append(names, r.GetName())
		}
		if page.Next == "" {
			return names
		}
		q.Token = page.Next
	}
	t.Fatal("listing did not end")
	return nil
}

func TestListRepositoryPage(t *testing.T) {
	f := openTest(t)
	// Created in the order c, a, b, acme-x; pushed in the order a, c, b;
	// updated last: c (its description).
	f.mustApply(
		at(1, putManifest("acme/c", "c1")),
		at(2, linkBlob("acme/a", "blob", 1)),
		at(3, linkBlob("beta/b", "blob", 1)),
		at(4, linkBlob("acme-x", "blob", 1)),
		at(5, putManifest("acme/a", "a1")),
		at(6, putManifest("acme/c", "c2")),
		at(7, putManifest("beta/b", "b1")),
		at(8, setInfo("acme/c", ptr("the c"), nil)),
	)
	tests := []struct {
		name string
		q    RepositoryQuery
		want []string
	}{
		{"name", RepositoryQuery{}, []string{"acme-x", "acme/a", "acme/c", "beta/b"}},
		{"name descending", RepositoryQuery{Descending: true}, []string{"beta/b", "acme/c", "acme/a", "acme-x"}},
		{"created", RepositoryQuery{Order: ByCreated}, []string{"acme/c", "acme/a", "beta/b", "acme-x"}},
		{"pushed descending", RepositoryQuery{Order: ByPushed, Descending: true}, []string{"beta/b", "acme/c", "acme/a", "acme-x"}},
		{"updated descending", RepositoryQuery{Order: ByUpdated, Descending: true}, []string{"acme/c", "beta/b", "acme/a", "acme-x"}},
		{"namespace by name", RepositoryQuery{Namespace: "acme"}, []string{"acme/a", "acme/c"}},
		{"namespace of a flat repository", RepositoryQuery{Namespace: "acme-x"}, []string{"acme-x"}},
		{"namespace by creation", RepositoryQuery{Namespace: "acme", Order: ByCreated, Descending: true}, []string{"acme/a", "acme/c"}},
		{"namespace by push", RepositoryQuery{Namespace: "acme", Order: ByPushed}, []string{"acme/a", "acme/c"}},
		{"namespace by update", RepositoryQuery{Namespace: "acme", Order: ByUpdated, Descending: true}, []string{"acme/c", "acme/a"}},
		{"flat repository by push", RepositoryQuery{Namespace: "acme-x", Order: ByPushed}, []string{"acme-x"}},
		{"kept by a filter", RepositoryQuery{Keep: func(r *fsmpb.Repository) bool { return strings.Contains(r.GetDescription(), "c") }}, []string{"acme/c"}},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 2, 100} {
			t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
				q := tt.q
				q.Limit = limit
				if got := listAll(t, f.FSM, q); !slices.Equal(got, tt.want) {
					t.Fatalf("repositories = %q, want %q", got, tt.want)
				}
			})
		}
	}
	if _, err := f.ListRepositoryPage(RepositoryQuery{Token: "zz"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad token: %v, want ErrInvalid", err)
	}
	if _, err := f.ListRepositoryPage(RepositoryQuery{Order: ByCreated, Token: "00"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("token outside the order's keys: %v, want ErrInvalid", err)
	}
}

// A page reads at most Scan keys: a filter that keeps little gives short
// pages, each with a token, and the listing still ends with every match.
func TestListRepositoryPageBoundsItsScan(t *testing.T) {
	f := openTest(t)
	for i := range 50 {
		f.mustApply(putManifest(fmt.Sprintf("ns/r%02d", i), "m"))
	}
	keep := func(r *fsmpb.Repository) bool { return strings.HasSuffix(r.GetName(), "7") }
	page, err := f.ListRepositoryPage(RepositoryQuery{Keep: keep, Limit: 10, Scan: 5})
	if err != nil || len(page.Repositories) != 0 || page.Next == "" {
		t.Fatalf("first page = %v, next %q, %v; want empty with a token", page.Repositories, page.Next, err)
	}
	got := listAll(t, f.FSM, RepositoryQuery{Keep: keep, Limit: 10, Scan: 5})
	if want := []string{"ns/r07", "ns/r17", "ns/r27", "ns/r37", "ns/r47"}; !slices.Equal(got, want) {
		t.Fatalf("kept = %q, want %q", got, want)
	}
}

// A namespace's listing in time order reads only that namespace's keys:
// however many repositories other namespaces hold, its pages are full.
func TestListRepositoryPageOfANamespaceReadsOnlyItsKeys(t *testing.T) {
	f := openTest(t)
	for i := range 60 {
		repo := fmt.Sprintf("big/r%02d", i)
		if i%20 == 0 {
			repo = fmt.Sprintf("acme/r%02d", i)
		}
		f.mustApply(at(int64(i+1), putManifest(repo, "m")))
	}
	for _, order := range []RepositoryOrder{ByCreated, ByUpdated, ByPushed} {
		page, err := f.ListRepositoryPage(RepositoryQuery{Namespace: "acme", Order: order, Descending: true, Limit: 3, Scan: 3})
		var got []string
		for _, r := range page.Repositories {
			got = append(got, r.GetName())
		}
		if want := []string{"acme/r40", "acme/r20", "acme/r00"}; err != nil || !slices.Equal(got, want) || page.Next != "" {
			t.Errorf("order %v: %q, next %q, %v; want %q in one page of 3 keys read", order, got, page.Next, err, want)
		}
	}
}

// Repositories added while a listing pages through are neither repeated
// nor do they make the listing skip any that were there when it began.
func TestListRepositoryPageIsStableUnderInserts(t *testing.T) {
	for _, order := range []RepositoryOrder{ByName, ByCreated, ByPushed} {
		t.Run(fmt.Sprint(order), func(t *testing.T) {
			f := openTest(t)
			var before []string
			for i := range 20 {
				repo := fmt.Sprintf("ns/r%02d", i*2)
				before = append(before, repo)
				f.mustApply(at(int64(i+1), putManifest(repo, "m")))
			}
			q := RepositoryQuery{Order: order, Limit: 3}
			seen := map[string]int{}
			for i := 0; ; i++ {
				page, err := f.ListRepositoryPage(q)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range page.Repositories {
					seen[r.GetName()]++
				}
				if page.Next == "" {
					break
				}
				q.Token = page.Next
				f.mustApply(at(int64(100+i), putManifest(fmt.Sprintf("ns/r%02d", i*2+1), "m")))
			}
			for name, n := range seen {
				if n != 1 {
					t.Errorf("%s listed %d times", name, n)
				}
			}
			for _, name := range before {
				if seen[name] == 0 {
					t.Errorf("%s, there from the start, was skipped", name)
				}
			}
		})
	}
}

func TestListImages(t *testing.T) {
	f := openTest(t)
	f.mustApply(
		putManifest("acme/app", "amd64"), putManifest("acme/app", "arm64"),
		putIndex("acme/app", "index", []string{"amd64", "arm64"}, "v1", "latest"),
		putReferrer("acme/app", "sbom", "index"),
	)
	all := []string{"amd64", "arm64", "index", "sbom"}
	slices.SortFunc(all, func(a, b string) int { return strings.Compare(dgst(a), dgst(b)) })
	top := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == "amd64" || s == "arm64" })
	tests := []struct {
		name string
		q    ImageQuery
		want []string
	}{
		{"all", ImageQuery{}, all},
		{"hide children", ImageQuery{HideChildren: true}, top},
		{"digest prefix", ImageQuery{DigestPrefix: dgst("index")[:14]}, []string{"index"}},
		{"tagged", ImageQuery{Keep: func(img *Image) bool { return len(img.Tags) > 0 }}, []string{"index"}},
	}
	for _, tt := range tests {
		for _, limit := range []int{1, 100} {
			t.Run(fmt.Sprintf("%s/limit %d", tt.name, limit), func(t *testing.T) {
				q := tt.q
				q.Repository, q.Limit = "acme/app", limit
				var got []string
				for range 10 {
					page, err := f.ListImages(q)
					if err != nil {
						t.Fatal(err)
					}
					for _, img := range page.Images {
						got = append(got, img.Manifest.GetDigest())
					}
					if page.Next == "" {
						break
					}
					q.Token = page.Next
				}
				var want []string
				for _, w := range tt.want {
					want = append(want, dgst(w))
				}
				if !slices.Equal(got, want) {
					t.Fatalf("images = %q, want %q (%q)", got, want, tt.want)
				}
			})
		}
	}
	img, err := f.Image("acme/app", dgst("index"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(img.Tags, []string{"latest", "v1"}) || img.Child || len(img.Referrers) != 1 || img.Referrers[0].GetDigest() != dgst("sbom") {
		t.Fatalf("index = tags %q, child %v, referrers %v", img.Tags, img.Child, img.Referrers)
	}
	if img, err := f.Image("acme/app", dgst("amd64")); err != nil || !img.Child {
		t.Fatalf("amd64 = %+v, %v; want a child", img, err)
	}
	if _, err := f.Image("acme/app", dgst("none")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown image: %v", err)
	}
	if _, err := f.ListImages(ImageQuery{Repository: "acme/none"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("images of an unknown repository: %v", err)
	}
}

func TestRepositoryUsageAndSignatures(t *testing.T) {
	f := openTest(t)
	f.mustApply(
		linkBlob("acme/app", "base", 100), linkBlob("acme/app", "own", 10),
		linkBlob("acme/db", "base", 100),
		putManifest("acme/app", "m1", "v1"),
		putManifest("acme/db", "d1", "sha256-"+strings.TrimPrefix(dgst("d1"), "sha256:")+".sig"),
	)
	u, err := f.RepositoryUsage("acme/app")
	if err != nil || u != (RepositoryUsage{Bytes: 110, UniqueBytes: 10, Blobs: 2}) {
		t.Fatalf("usage of acme/app = %+v, %v", u, err)
	}
	for repo, want := range map[string]bool{"acme/app": false, "acme/db": true} {
		if got, err := f.Signed(repo); err != nil || got != want {
			t.Errorf("Signed(%q) = %v, %v; want %v", repo, got, err, want)
		}
	}
	sig := putReferrer("acme/app", "sig", "m1")
	sig.GetPutManifest().ArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	f.mustApply(sig)
	if got, err := f.Signed("acme/app"); err != nil || !got {
		t.Errorf("Signed(acme/app) with a signature referrer = %v, %v", got, err)
	}
}

func TestListNamespaces(t *testing.T) {
	f := openTest(t)
	f.mustApply(
		createUser("alice", false), claim("beta", "alice"), claim("acme", "alice"),
		putManifest("acme/app", "m"), putManifest("zeta/app", "m"), putManifest("flat", "m"),
	)
	want := []string{"acme", "beta", "flat", "zeta"}
	if got, err := f.ListNamespaces("", 0); err != nil || !slices.Equal(got, want) {
		t.Fatalf("ListNamespaces = %q, %v; want %q", got, err, want)
	}
	if got, err := f.ListNamespaces("acme", 2); err != nil || !slices.Equal(got, want[1:3]) {
		t.Fatalf("ListNamespaces after acme = %q, %v; want %q", got, err, want[1:3])
	}
}

// State written before the management records existed gets them when it
// is opened: the same tag and child indexes and counts as the commands
// keep.
func TestManagementRecordsAreBuiltForOlderState(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tf := &testFSM{FSM: f, t: t}
	tf.mustApply(
		at(1, putManifest("acme/app", "amd64")),
		at(2, putIndex("acme/app", "index", []string{"amd64"}, "v1", "latest")),
		at(3, putManifest("acme/db", "d1", "v1")),
	)
	want := dumpKeys(t, f, prefixManTag, prefixManChild, prefixRepoIdx+"c", prefixRepoIdx+"p", prefixRepoNsIx)
	h, err := f.acquire()
	if err != nil {
		t.Fatal(err)
	}
	b := h.db.NewBatch()
	for _, p := range []string{prefixManTag, prefixManChild, prefixRepoIdx, prefixRepoNsIx} {
		if err := b.DeleteRange([]byte(p), prefixEnd([]byte(p)), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, repo := range []string{"acme/app", "acme/db"} {
		var rec fsmpb.Repository
		if _, err := getProto(h.db, repositoryKey(repo), &rec); err != nil {
			t.Fatal(err)
		}
		rec.TagCount, rec.ManifestCount, rec.PushedUnixNanos = 0, 0, 0
		if err := setProto(b, repositoryKey(repo), &rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := deleteKeys(b, keyManagementIndexed, keyNamespaceOrderIndexed); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	h.release()
	f.Close()

	f, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := dumpKeys(t, f, prefixManTag, prefixManChild, prefixRepoIdx+"c", prefixRepoIdx+"p", prefixRepoNsIx); !slices.Equal(got, want) {
		t.Fatalf("rebuilt index keys =\n%q\nwant\n%q", got, want)
	}
	wantRecord(t, f, "acme/app", 2, 2)
	if rec := wantRecord(t, f, "acme/db", 1, 1); rec.GetPushedUnixNanos() != 3 {
		t.Fatalf("acme/db pushed at %d, want 3", rec.GetPushedUnixNanos())
	}
}

// State indexed before the namespace part of the repository index existed
// gets it when it is opened, and nothing else changes.
func TestNamespaceOrderIndexIsBuiltForOlderState(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tf := &testFSM{FSM: f, t: t}
	tf.mustApply(at(1, putManifest("acme/app", "a", "v1")), at(2, putManifest("beta/db", "d")), at(3, putManifest("flat", "f")))
	all := []string{prefixManTag, prefixManChild, prefixRepoIdx, prefixRepoNsIx, prefixRepository}
	want := dumpKeys(t, f, all...)
	if len(dumpKeys(t, f, prefixRepoNsIx)) != 9 {
		t.Fatalf("rixn/ keys = %q, want 3 orders of 3 repositories", dumpKeys(t, f, prefixRepoNsIx))
	}
	h, err := f.acquire()
	if err != nil {
		t.Fatal(err)
	}
	b := h.db.NewBatch()
	if err := b.DeleteRange([]byte(prefixRepoNsIx), prefixEnd([]byte(prefixRepoNsIx)), nil); err != nil {
		t.Fatal(err)
	}
	if err := deleteKeys(b, keyNamespaceOrderIndexed); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(nil); err != nil {
		t.Fatal(err)
	}
	h.release()
	f.Close()

	f, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := dumpKeys(t, f, all...); !slices.Equal(got, want) {
		t.Fatalf("keys after the rebuild =\n%q\nwant\n%q", got, want)
	}
}

func dumpKeys(t *testing.T, f *FSM, prefixes ...string) []string {
	t.Helper()
	var keys []string
	err := f.view(func(r pebble.Reader) error {
		for _, p := range prefixes {
			err := scanPrefix(r, []byte(p), func(k, _ []byte) (bool, error) {
				keys = append(keys, string(k))
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}
