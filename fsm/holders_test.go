package fsm

import (
	"errors"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

func addHolder(content string, size int64, node string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_AddBlobHolder{AddBlobHolder: &fsmpb.AddBlobHolder{
		Digest: dgst(content), Size: size, NodeId: node,
	}}}
}

// linkHeld links a blob the way an upload does: recording the node that
// stored it, and the nodes its mirrors copied it to, in the same command.
func linkHeld(repo, content string, size int64, node string, mirrored ...string) *fsmpb.Command {
	cmd := linkBlob(repo, content, size)
	cmd.GetLinkBlob().HolderNodeId = node
	cmd.GetLinkBlob().MoreHolderNodeIds = mirrored
	return cmd
}

func removeHolder(content, node string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_RemoveBlobHolder{RemoveBlobHolder: &fsmpb.RemoveBlobHolder{
		Digest: dgst(content), NodeId: node,
	}}}
}

func TestBlobHolders(t *testing.T) {
	tests := []struct {
		name  string
		setup []*fsmpb.Command
		cmd   *fsmpb.Command
		want  fsmpb.ResultCode
		// holders of blob "b1" afterwards; nil means no record
		holders []string
	}{
		{
			name:    "first holder creates the record",
			cmd:     addHolder("b1", 7, "n2"),
			want:    codeOK,
			holders: []string{"n2"},
		},
		{
			name:    "holders stay sorted",
			setup:   []*fsmpb.Command{addHolder("b1", 7, "n3"), addHolder("b1", 7, "n1")},
			cmd:     addHolder("b1", 7, "n2"),
			want:    codeOK,
			holders: []string{"n1", "n2", "n3"},
		},
		{
			name:    "adding a holder again is idempotent",
			setup:   []*fsmpb.Command{addHolder("b1", 7, "n1"), addHolder("b1", 7, "n2")},
			cmd:     addHolder("b1", 7, "n1"),
			want:    codeOK,
			holders: []string{"n1", "n2"},
		},
		{
			name:    "a different size is refused",
			setup:   []*fsmpb.Command{addHolder("b1", 7, "n1")},
			cmd:     addHolder("b1", 8, "n2"),
			want:    codeInvalid,
			holders: []string{"n1"},
		},
		{
			name: "negative size is refused",
			cmd:  addHolder("b1", -1, "n1"),
			want: codeInvalid,
		},
		{
			name: "empty node ID is refused",
			cmd:  addHolder("b1", 7, ""),
			want: codeInvalid,
		},
		{
			name: "bad digest is refused",
			cmd: &fsmpb.Command{Op: &fsmpb.Command_AddBlobHolder{AddBlobHolder: &fsmpb.AddBlobHolder{
				Digest: "sha256:nope", Size: 1, NodeId: "n1",
			}}},
			want: codeInvalid,
		},
		{
			name:    "a link with a holder records it",
			cmd:     linkHeld("team/app", "b1", 7, "n1"),
			want:    codeOK,
			holders: []string{"n1"},
		},
		{
			name:    "a link with a holder adds to the holders",
			setup:   []*fsmpb.Command{addHolder("b1", 7, "n2")},
			cmd:     linkHeld("team/app", "b1", 7, "n1"),
			want:    codeOK,
			holders: []string{"n1", "n2"},
		},
		{
			name:    "a link records its mirrored copies too",
			setup:   []*fsmpb.Command{addHolder("b1", 7, "n2")},
			cmd:     linkHeld("team/app", "b1", 7, "n1", "n4", "n3"),
			want:    codeOK,
			holders: []string{"n1", "n2", "n3", "n4"},
		},
		{
			name: "a link with an empty mirrored holder is refused whole",
			cmd:  linkHeld("team/app", "b1", 7, "n1", ""),
			want: codeInvalid,
		},
		{
			name:    "a refused link keeps its holder: the node has the bytes",
			setup:   []*fsmpb.Command{linkBlob("foo", "b0", 1)},
			cmd:     linkHeld("foo/bar", "b1", 7, "n1"),
			want:    codeConflict,
			holders: []string{"n1"},
		},
		{
			name:    "a link whose holder has another size is refused whole",
			setup:   []*fsmpb.Command{addHolder("b1", 7, "n2")},
			cmd:     linkHeld("team/app", "b1", 8, "n1"),
			want:    codeInvalid,
			holders: []string{"n2"},
		},
		{
			name: "a link to an invalid repository records no holder",
			cmd:  linkHeld("Team/App", "b1", 7, "n1"),
			want: codeInvalid,
		},
		{
			name:    "remove keeps the other holders",
			setup:   []*fsmpb.Command{addHolder("b1", 7, "n1"), addHolder("b1", 7, "n2")},
			cmd:     removeHolder("b1", "n1"),
			want:    codeOK,
			holders: []string{"n2"},
		},
		{
			name:  "removing the last holder deletes the record",
			setup: []*fsmpb.Command{addHolder("b1", 7, "n1")},
			cmd:   removeHolder("b1", "n1"),
			want:  codeOK,
		},
		{
			name:    "removing a node that is not a holder is not found",
			setup:   []*fsmpb.Command{addHolder("b1", 7, "n1")},
			cmd:     removeHolder("b1", "n2"),
			want:    codeNotFound,
			holders: []string{"n1"},
		},
		{
			name: "removing from an unknown blob is not found",
			cmd:  removeHolder("b1", "n1"),
			want: codeNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := openTest(t)
			f.mustApply(tt.setup...)
			if res := f.apply(tt.cmd); res.GetCode() != tt.want {
				t.Fatalf("apply = %v, want %v", res, tt.want)
			}
			wantHolders(t, f.FSM, dgst("b1"), 7, tt.holders)
		})
	}
}

func wantHolders(t *testing.T, f *FSM, d string, size int64, nodes []string) {
	t.Helper()
	rec, err := f.BlobHolders(digest.Digest(d))
	if nodes == nil {
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("BlobHolders = %v, %v; want ErrNotFound", rec, err)
		}
		return
	}
	want := &fsmpb.BlobHolders{Digest: d, Size: size, NodeIds: nodes}
	if err != nil || !proto.Equal(rec, want) {
		t.Fatalf("BlobHolders = %v, %v; want %v", rec, err, want)
	}
}

func TestListBlobHolders(t *testing.T) {
	f := openTest(t)
	contents := []string{"a", "b", "c", "d"}
	for _, c := range contents {
		f.mustApply(addHolder(c, 1, "n1"))
	}
	all := make([]string, len(contents))
	for i, c := range contents {
		all[i] = dgst(c)
	}
	slices.Sort(all)
	tests := []struct {
		name string
		last string
		n    int
		want []string
	}{
		{"all", "", 0, all},
		{"first page", "", 2, all[:2]},
		{"next page", all[1], 2, all[2:]},
		{"after the last", all[3], 2, nil},
		{"after a digest that is not stored", dgst("zz"), 0, digestsAfter(all, dgst("zz"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := f.ListBlobHolders(tt.last, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, r.GetDigest())
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ListBlobHolders(%q, %d) = %q, want %q", tt.last, tt.n, got, tt.want)
			}
		})
	}
}

func digestsAfter(sorted []string, last string) []string {
	i, found := slices.BinarySearch(sorted, last)
	if found {
		i++
	}
	if i == len(sorted) {
		return nil
	}
	return sorted[i:]
}
