package fsm

import (
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

const codeNotEmpty = fsmpb.ResultCode_RESULT_CODE_REPOSITORY_NOT_EMPTY

func removeEmpty(repo string, grace int64) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_RemoveEmptyRepository{RemoveEmptyRepository: &fsmpb.RemoveEmptyRepository{
		Repository: repo, GraceNanos: grace,
	}}}
}

// wantEmpty checks the empty-repository records: repo -> since.
func wantEmpty(t *testing.T, f *FSM, want map[string]int64) {
	t.Helper()
	got, err := f.ListEmptyRepositories("", 0)
	if err != nil {
		t.Fatal(err)
	}
	gotMap := map[string]int64{}
	for _, r := range got {
		gotMap[r.Name] = r.SinceUnixNanos
	}
	if len(gotMap) != len(want) {
		t.Fatalf("empty repositories %v, want %v", gotMap, want)
	}
	for name, since := range want {
		if gotMap[name] != since {
			t.Errorf("empty repositories %v, want %v", gotMap, want)
		}
	}
}

func wantRepositories(t *testing.T, f *FSM, want ...string) {
	t.Helper()
	got, err := f.ListRepositories("", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("repositories %v, want %v", got, want)
	}
}

func TestEmptyRepositories(t *testing.T) {
	failedPush := []*fsmpb.Command{at(hour, addHolder("b", 1, "n1")), at(hour+1, linkBlob("acme/app", "b", 1))}
	tests := []struct {
		name     string
		setup    []*fsmpb.Command
		cmd      *fsmpb.Command
		want     fsmpb.ResultCode
		contains string
		check    func(t *testing.T, f *FSM)
	}{
		{
			name:  "a link into a repository without manifests starts its empty period",
			setup: failedPush,
			cmd:   at(hour+5, linkBlob("acme/app", "c", 1)),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantEmpty(t, f, map[string]int64{"acme/app": hour + 5}) },
		},
		{
			name:  "a manifest ends it",
			setup: failedPush,
			cmd:   at(hour+2, putImage("acme/app", "m", "b")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantEmpty(t, f, map[string]int64{}) },
		},
		{
			name:  "a link into a repository with a manifest starts nothing",
			setup: append(slices.Clone(failedPush), at(hour+2, putImage("acme/app", "m", "b"))),
			cmd:   at(hour+3, linkBlob("acme/app", "c", 1)),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantEmpty(t, f, map[string]int64{}) },
		},
		{
			name:  "deleting a manifest while another remains starts nothing",
			setup: append(slices.Clone(failedPush), at(hour+2, putImage("acme/app", "m", "b", "b")), at(hour+2, putImage("acme/app", "m2"))),
			cmd:   at(hour+4, deleteManifest("acme/app", "m")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantEmpty(t, f, map[string]int64{}) },
		},
		{
			name: "deleting the very last manifest starts it again",
			setup: append(slices.Clone(failedPush), at(hour+2, putImage("acme/app", "m", "b")),
				at(hour+2, putImage("acme/app", "m2")), at(hour+3, deleteManifest("acme/app", "m2"))),
			cmd:   at(hour+4, deleteManifest("acme/app", "m")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantEmpty(t, f, map[string]int64{"acme/app": hour + 4}) },
		},
		{
			name:     "removal within the grace period is refused",
			setup:    failedPush,
			cmd:      at(2*hour, removeEmpty("acme/app", hour)),
			want:     codeNotEmpty,
			contains: "less than the grace period",
			check: func(t *testing.T, f *FSM) {
				wantRepositories(t, f, "acme/app")
				wantEmpty(t, f, map[string]int64{"acme/app": hour + 1})
			},
		},
		{
			name:     "removal of a repository with a manifest is refused",
			setup:    append(slices.Clone(failedPush), at(hour+2, putImage("acme/app", "m", "b"))),
			cmd:      at(5*hour, removeEmpty("acme/app", hour)),
			want:     codeNotEmpty,
			contains: "holds manifests or tags",
			check:    func(t *testing.T, f *FSM) { wantRepositories(t, f, "acme/app") },
		},
		{
			name:  "removal of an unknown repository",
			cmd:   at(5*hour, removeEmpty("acme/none", hour)),
			want:  fsmpb.ResultCode_RESULT_CODE_NOT_FOUND,
			check: func(t *testing.T, f *FSM) { wantRepositories(t, f) },
		},
		{
			name:  "a negative grace period is invalid",
			setup: failedPush,
			cmd:   at(5*hour, removeEmpty("acme/app", -1)),
			want:  fsmpb.ResultCode_RESULT_CODE_INVALID,
		},
		{
			name: "removal after the grace period takes the links and the public flag, keeps the namespace",
			setup: append(slices.Clone(failedPush), at(hour+1, linkBlob("acme/db", "b", 1)),
				at(hour+1, putImage("acme/db", "m", "b")), setPublic("", "acme/app", true)),
			cmd:  at(2*hour+1, removeEmpty("acme/app", hour)),
			want: codeOK,
			check: func(t *testing.T, f *FSM) {
				wantRepositories(t, f, "acme/db")
				wantEmpty(t, f, map[string]int64{})
				if _, ok, _ := f.BlobLinked("acme/app", digest.Digest(dgst("b"))); ok {
					t.Error("the blob is still linked to the removed repository")
				}
				if l, m, _ := f.BlobReferences(digest.Digest(dgst("b"))); l != 1 || m != 1 {
					t.Errorf("references of b = %d links, %d manifests; want acme/db's 1, 1", l, m)
				}
				if _, err := f.Namespace("acme"); err != nil {
					t.Errorf("namespace: %v", err)
				}
				if a, err := f.Access("", "acme/app"); err != nil || a.Public || a.RepositoryExists {
					t.Errorf("access of the removed repository: %+v, %v; want it private", a, err)
				}
			},
		},
		{
			name:  "its blobs become unreferenced, for blob collection",
			setup: failedPush,
			cmd:   at(2*hour+1, removeEmpty("acme/app", hour)),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantUnreferenced(t, f, "b", 2*hour+1) },
		},
		{
			name:  "a push to the same name creates it again",
			setup: append(slices.Clone(failedPush), at(2*hour+1, removeEmpty("acme/app", hour))),
			cmd:   at(3*hour, putImage("acme/app", "m", "b")),
			want:  codeOK,
			check: func(t *testing.T, f *FSM) { wantRepositories(t, f, "acme/app") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openTest(t)
			f.mustApply(tt.setup...)
			res := f.apply(tt.cmd)
			if res.GetCode() != tt.want || !strings.Contains(res.GetMessage(), tt.contains) {
				t.Fatalf("result %v, want %v containing %q", res, tt.want, tt.contains)
			}
			if tt.check != nil {
				tt.check(t, f.FSM)
			}
		})
	}
}

// Repositories without manifests from before the record existed are
// recorded by the next command, as empty since its time.
func TestEmptyRepositoryRecordIsBuiltForOlderState(t *testing.T) {
	f := openTest(t)
	f.mustApply(
		at(hour, linkBlob("acme/app", "b", 1)),
		at(hour, putImage("acme/db", "m")),
	)
	h, err := f.acquire()
	if err != nil {
		t.Fatal(err)
	}
	b := h.db.NewBatch()
	if err := b.DeleteRange([]byte(prefixEmptyRepository), prefixEnd([]byte(prefixEmptyRepository)), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(keyEmptyReposIndexed, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	h.release()
	wantEmpty(t, f.FSM, map[string]int64{})

	f.mustApply(at(3*hour, linkBlob("acme/db", "c", 1)))
	wantEmpty(t, f.FSM, map[string]int64{"acme/app": 3 * hour})
}
