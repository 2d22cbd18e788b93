package fsm

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const (
	codeOK       = fsmpb.ResultCode_RESULT_CODE_OK
	codeConflict = fsmpb.ResultCode_RESULT_CODE_NAMESPACE_CONFLICT
	codeNotFound = fsmpb.ResultCode_RESULT_CODE_NOT_FOUND
	codeInvalid  = fsmpb.ResultCode_RESULT_CODE_INVALID
)

func dgst(s string) string { return digest.FromString(s).String() }

func putManifest(repo, content string, tags ...string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_PutManifest{PutManifest: &fsmpb.PutManifest{
		Repository: repo, Digest: dgst(content), Content: []byte(content), Tags: tags,
		MediaType: "application/vnd.oci.image.manifest.v1+json",
	}}}
}

func putReferrer(repo, content, subject string) *fsmpb.Command {
	cmd := putManifest(repo, content)
	cmd.GetPutManifest().Subject = dgst(subject)
	cmd.GetPutManifest().ArtifactType = "application/vnd.example.sbom"
	return cmd
}

func deleteManifest(repo, content string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_DeleteManifest{DeleteManifest: &fsmpb.DeleteManifest{
		Repository: repo, Digest: dgst(content),
	}}}
}

func deleteTag(repo, tag string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_DeleteTag{DeleteTag: &fsmpb.DeleteTag{Repository: repo, Tag: tag}}}
}

func linkBlob(repo, content string, size int64) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_LinkBlob{LinkBlob: &fsmpb.LinkBlob{
		Repository: repo, Digest: dgst(content), Size: size,
	}}}
}

func unlinkBlob(repo, content string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_UnlinkBlob{UnlinkBlob: &fsmpb.UnlinkBlob{
		Repository: repo, Digest: dgst(content),
	}}}
}

func withRequestID(id string, cmd *fsmpb.Command) *fsmpb.Command {
	cmd.RequestId = id
	return cmd
}

// testFSM is an FSM with a log index counter.
type testFSM struct {
	*FSM
	t     *testing.T
	index uint64
}

func openTest(t *testing.T) *testFSM {
	t.Helper()
	f, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &testFSM{FSM: f, t: t}
}

// apply applies cmd as the next log entry.
func (tf *testFSM) apply(cmd *fsmpb.Command) *fsmpb.Result {
	tf.t.Helper()
	tf.index++
	return tf.applyAt(tf.index, cmd)
}

func (tf *testFSM) applyAt(index uint64, cmd *fsmpb.Command) *fsmpb.Result {
	tf.t.Helper()
	data, err := proto.Marshal(cmd)
	if err != nil {
		tf.t.Fatal(err)
	}
	res, _ := tf.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(*fsmpb.Result)
	return res
}

func (tf *testFSM) mustApply(cmds ...*fsmpb.Command) {
	tf.t.Helper()
	for _, cmd := range cmds {
		if res := tf.apply(cmd); res.GetCode() != codeOK {
			tf.t.Fatalf("apply %v: %v", cmd, res)
		}
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name     string
		setup    []*fsmpb.Command
		cmd      *fsmpb.Command
		want     fsmpb.ResultCode
		contains string // in the result message
		check    func(t *testing.T, f *FSM)
	}{
		{
			name: "put creates namespace and repository",
			cmd:  putManifest("acme/app", "m1", "latest"),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				ns, err := f.Namespace("acme")
				if err != nil || ns.GetFlat() {
					t.Fatalf("namespace = %v, %v; want nested", ns, err)
				}
				wantTag(t, f, "acme/app", "latest", dgst("m1"))
			},
		},
		{
			name: "flat repository makes a flat namespace",
			cmd:  putManifest("foo", "m1", "v1"),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				if ns, err := f.Namespace("foo"); err != nil || !ns.GetFlat() {
					t.Fatalf("namespace = %v, %v; want flat", ns, err)
				}
			},
		},
		{
			name:     "flat namespace refuses nested repository",
			setup:    []*fsmpb.Command{putManifest("foo", "m1")},
			cmd:      putManifest("foo/bar", "m2"),
			want:     codeConflict,
			contains: `namespace "foo" was created by the single-name repository "foo" and can hold no other repository; push to a name like "foo-bar" or "otherns/bar" instead`,
			check:    wantNoRepository("foo/bar"),
		},
		{
			name:     "flat namespace refuses nested blob link",
			setup:    []*fsmpb.Command{linkBlob("foo", "b1", 1)},
			cmd:      linkBlob("foo/bar", "b1", 1),
			want:     codeConflict,
			contains: `single-name repository "foo"`,
			check:    wantNoRepository("foo/bar"),
		},
		{
			name:     "nested namespace refuses single-name repository",
			setup:    []*fsmpb.Command{linkBlob("foo/x", "b1", 1)},
			cmd:      putManifest("foo", "m1"),
			want:     codeConflict,
			contains: `namespace "foo" already holds repositories such as "foo/x"`,
			check:    wantNoRepository("foo"),
		},
		{
			name:  "nested namespace holds many repositories",
			setup: []*fsmpb.Command{putManifest("foo/x", "m1")},
			cmd:   putManifest("foo/y/z", "m2"),
			want:  codeOK,
		},
		{
			name:  "similar names are separate namespaces",
			setup: []*fsmpb.Command{putManifest("foo", "m1")},
			cmd:   putManifest("foo-bar/x", "m2"),
			want:  codeOK,
		},
		{
			name:  "tag moves to the new digest",
			setup: []*fsmpb.Command{putManifest("a/b", "m1", "latest", "v1")},
			cmd:   putManifest("a/b", "m2", "latest"),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				wantTag(t, f, "a/b", "latest", dgst("m2"))
				wantTag(t, f, "a/b", "v1", dgst("m1"))
			},
		},
		{
			name:  "same digest again is idempotent and adds tags",
			setup: []*fsmpb.Command{putManifest("a/b", "m1", "v1")},
			cmd:   putManifest("a/b", "m1", "v2"),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				wantTag(t, f, "a/b", "v1", dgst("m1"))
				wantTag(t, f, "a/b", "v2", dgst("m1"))
			},
		},
		{
			name: "delete manifest cascades to tags and referrers",
			setup: []*fsmpb.Command{
				putManifest("a/b", "m1", "v1", "latest"),
				putManifest("a/b", "m2", "v2"),
				putReferrer("a/b", "sig", "m1"),
			},
			cmd:  deleteManifest("a/b", "m1"),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantTags(t, f, "a/b", "v2")
				if _, err := f.Manifest("a/b", digest.Digest(dgst("m1"))); !errors.Is(err, ErrNotFound) {
					t.Errorf("Manifest after delete: %v, want ErrNotFound", err)
				}
				refs, err := f.Referrers("a/b", digest.Digest(dgst("m1")))
				if err != nil || len(refs) != 1 {
					t.Fatalf("referrers of deleted subject = %v, %v; want the signature", refs, err)
				}
			},
		},
		{
			name: "delete referrer removes it from the index",
			setup: []*fsmpb.Command{
				putManifest("a/b", "m1"),
				putReferrer("a/b", "sig", "m1"),
			},
			cmd:  deleteManifest("a/b", "sig"),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				if refs, _ := f.Referrers("a/b", digest.Digest(dgst("m1"))); len(refs) != 0 {
					t.Fatalf("referrers = %v, want none", refs)
				}
			},
		},
		{
			name: "referrers are per subject and repository",
			setup: []*fsmpb.Command{
				putReferrer("a/b", "sig1", "m1"),
				putReferrer("a/b", "sig2", "m1"),
				putReferrer("a/b", "sig3", "m2"),
				putReferrer("a/c", "sig4", "m1"),
			},
			cmd:  putReferrer("a/b", "sbom", "m1"),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				refs, err := f.Referrers("a/b", digest.Digest(dgst("m1")))
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, m := range refs {
					got = append(got, m.GetDigest())
				}
				want := []string{dgst("sig1"), dgst("sig2"), dgst("sbom")}
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("referrers = %v, want %v", got, want)
				}
			},
		},
		{
			name: "delete absent manifest",
			cmd:  deleteManifest("a/b", "m1"),
			want: codeNotFound,
		},
		{
			name:  "delete tag keeps the manifest",
			setup: []*fsmpb.Command{putManifest("a/b", "m1", "v1", "v2")},
			cmd:   deleteTag("a/b", "v1"),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				wantTags(t, f, "a/b", "v2")
				if _, err := f.Manifest("a/b", digest.Digest(dgst("m1"))); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:  "delete absent tag",
			setup: []*fsmpb.Command{putManifest("a/b", "m1", "v1")},
			cmd:   deleteTag("a/b", "v2"),
			want:  codeNotFound,
		},
		{
			name: "link blob records its size",
			cmd:  linkBlob("a/b", "b1", 42),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				size, ok, err := f.BlobLinked("a/b", digest.Digest(dgst("b1")))
				if err != nil || !ok || size != 42 {
					t.Fatalf("BlobLinked = %d, %v, %v; want 42, true", size, ok, err)
				}
			},
		},
		{
			name:  "unlink blob",
			setup: []*fsmpb.Command{linkBlob("a/b", "b1", 42)},
			cmd:   unlinkBlob("a/b", "b1"),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				if _, ok, _ := f.BlobLinked("a/b", digest.Digest(dgst("b1"))); ok {
					t.Fatal("blob still linked")
				}
			},
		},
		{
			name: "unlink absent blob",
			cmd:  unlinkBlob("a/b", "b1"),
			want: codeNotFound,
		},
		{
			name: "invalid repository name",
			cmd:  putManifest("Bad/Name", "m1"),
			want: codeInvalid,
		},
		{
			name: "invalid tag",
			cmd:  putManifest("a/b", "m1", "bad tag"),
			want: codeInvalid,
		},
		{
			name: "invalid digest",
			cmd: &fsmpb.Command{Op: &fsmpb.Command_LinkBlob{LinkBlob: &fsmpb.LinkBlob{
				Repository: "a/b", Digest: "sha256:nothex",
			}}},
			want: codeInvalid,
		},
		{
			name: "negative blob size",
			cmd:  linkBlob("a/b", "b1", -1),
			want: codeInvalid,
		},
		{
			name: "command without operation",
			cmd:  &fsmpb.Command{RequestId: "r1"},
			want: codeInvalid,
		},
		{
			name:  "repeated request ID returns the stored result",
			setup: []*fsmpb.Command{withRequestID("r1", putManifest("a/b", "m1", "v1")), deleteTag("a/b", "v1")},
			cmd:   withRequestID("r1", putManifest("a/b", "m1", "v1")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) {
				if _, err := f.ResolveTag("a/b", "v1"); !errors.Is(err, ErrNotFound) {
					t.Fatalf("retried command was applied again: ResolveTag = %v", err)
				}
			},
		},
		{
			name:  "repeated request ID repeats a failure",
			setup: []*fsmpb.Command{withRequestID("r1", deleteTag("a/b", "v1")), putManifest("a/b", "m1", "v1")},
			cmd:   withRequestID("r1", deleteTag("a/b", "v1")),
			want:  codeNotFound,
			check: func(t *testing.T, f *FSM) { wantTag(t, f, "a/b", "v1", dgst("m1")) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openTest(t)
			for _, cmd := range tt.setup {
				f.apply(cmd)
			}
			res := f.apply(tt.cmd)
			if res.GetCode() != tt.want || !strings.Contains(res.GetMessage(), tt.contains) {
				t.Fatalf("result = %v, want code %v with message containing %q", res, tt.want, tt.contains)
			}
			if got := f.AppliedIndex(); got != f.index {
				t.Errorf("AppliedIndex = %d, want %d", got, f.index)
			}
			if tt.check != nil {
				tt.check(t, f.FSM)
			}
		})
	}
}

func wantTag(t *testing.T, f *FSM, repo, tag, want string) {
	t.Helper()
	got, err := f.ResolveTag(repo, tag)
	if err != nil || got.String() != want {
		t.Fatalf("ResolveTag(%q, %q) = %q, %v; want %q", repo, tag, got, err, want)
	}
}

func wantTags(t *testing.T, f *FSM, repo string, want ...string) {
	t.Helper()
	got, err := f.ListTags(repo, "", 0)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("ListTags(%q) = %q, %v; want %q", repo, got, err, want)
	}
}

func wantNoRepository(repo string) func(t *testing.T, f *FSM) {
	return func(t *testing.T, f *FSM) {
		if exists, err := f.RepositoryExists(repo); err != nil || exists {
			t.Fatalf("RepositoryExists(%q) = %v, %v; want false", repo, exists, err)
		}
	}
}

func TestDispatchTableCoversEveryOperation(t *testing.T) {
	oneof := (&fsmpb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("op")
	for i := range oneof.Fields().Len() {
		fd := oneof.Fields().Get(i)
		cmd := &fsmpb.Command{}
		m := cmd.ProtoReflect()
		m.Set(fd, m.NewField(fd))
		if _, ok := handlers[reflect.TypeOf(cmd.GetOp())]; !ok {
			t.Errorf("no handler for %s", fd.Name())
		}
	}
}

func TestApplySkipsReplayedEntries(t *testing.T) {
	f := openTest(t)
	f.mustApply(putManifest("a/b", "m1", "v1"), deleteTag("a/b", "v1"))

	// Raft replays entry 1 after a restart: it must not bring the tag back.
	if res := f.applyAt(1, putManifest("a/b", "m1", "v1")); res != nil {
		t.Fatalf("replayed entry returned %v, want nil", res)
	}
	if _, err := f.ResolveTag("a/b", "v1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("replayed entry was applied: ResolveTag = %v", err)
	}
	if got := f.AppliedIndex(); got != 2 {
		t.Fatalf("AppliedIndex = %d, want 2", got)
	}
}

func TestAppliedIndexSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	f, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tf := &testFSM{FSM: f, t: t}
	tf.mustApply(putManifest("a/b", "m1", "v1"))
	tf.Apply(&raft.Log{Index: 7, Type: raft.LogNoop})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if got := f.AppliedIndex(); got != 1 {
		t.Fatalf("AppliedIndex after reopen = %d, want 1", got)
	}
	wantTag(t, f, "a/b", "v1", dgst("m1"))
}

func TestRequestHistoryIsPruned(t *testing.T) {
	f := openTest(t)
	f.requestHistory = 3
	for _, id := range []string{"r1", "r2", "r3", "r4", "r5"} {
		f.mustApply(withRequestID(id, linkBlob("a/b", id, 1)))
	}
	f.apply(deleteTag("a/b", "nope")) // no request ID: nothing remembered
	f.mustApply(putManifest("a/b", "m", "v"))

	err := f.view(func(r pebble.Reader) error {
		for id, want := range map[string]bool{"r1": false, "r2": false, "r3": true, "r4": true, "r5": true} {
			if _, ok, err := lookupRequest(r, id); err != nil || ok != want {
				t.Errorf("request %s remembered = %v, %v; want %v", id, ok, err, want)
			}
		}
		n, err := count(r, []byte(prefixRequestLog))
		if err != nil || n != 3 {
			t.Errorf("request log holds %d entries, %v; want 3", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
