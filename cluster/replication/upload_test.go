package replication

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/fsm"
)

// TestUploadCommitLinksDurably: one Commit stores the blob, links it into
// the session's repository, and records this node and the mirrors'
// copies in that write, so the blob is durable on the write quorum at
// once; a monolithic Put does the same, above and below the size from
// which it is mirrored.
func TestUploadCommitLinksDurably(t *testing.T) {
	tc := newTestCluster(t, 3)
	s := tc.store("node0", 3, 2)
	tc.store("node1", 3, 2)
	tc.store("node2", 3, 2)
	large, _ := randomBlob(t, 2<<20)
	small, _ := randomBlob(t, 64<<10)
	chunked, _ := clientUploads(t, s, large)
	ctx := context.Background()
	mono := digest.FromBytes(large[:mirrorMonolithicBytes+1])
	if _, err := s.Put(ctx, "test/app", mono, bytes.NewReader(large[:mirrorMonolithicBytes+1]), -1); err != nil {
		t.Fatal(err)
	}
	tiny := digest.FromBytes(small)
	if _, err := s.Put(ctx, "test/app", tiny, bytes.NewReader(small), int64(len(small))); err != nil {
		t.Fatal(err)
	}
	for what, d := range map[string]digest.Digest{"chunked": chunked, "monolithic, mirrored": mono, "monolithic, small": tiny} {
		if _, ok, err := tc.fsm.fsm.BlobLinked("test/app", d); err != nil || !ok {
			t.Errorf("%s: not linked into test/app: %v", what, err)
		}
		if !slices.Contains(tc.holders(d), "node0") {
			t.Errorf("%s: holders %v lack the uploading node", what, tc.holders(d))
		}
		if err := s.WaitDurable(ctx, []digest.Digest{d}); err != nil {
			t.Errorf("%s: not durable: %v", what, err)
		}
	}
	// The mirrored ones were durable on two nodes by the link itself.
	for _, d := range []digest.Digest{chunked, mono} {
		if n := len(tc.holders(d)); n < 2 {
			t.Errorf("%s: the link recorded %d holders, want the mirror's copy too", d, n)
		}
	}
}

// refusingLinks is a node whose links the FSM refuses.
type refusingLinks struct {
	view
	err error
}

func (r refusingLinks) LinkBlob(context.Context, string, digest.Digest, int64, ...string) error {
	return r.err
}

// TestRefusedLinkStillRecordsTheHolder: when the link of a committed blob
// is refused, Commit says why, and this node is still recorded as holding
// the blob, so that it is not collected while the client retries.
func TestRefusedLinkStillRecordsTheHolder(t *testing.T) {
	tc := newTestCluster(t, 1)
	refusal := errors.Join(fsm.ErrNamespaceConflict, errors.New("flat namespace"))
	s, err := New(Config{Local: tc.local["node0"], Cluster: refusingLinks{view{tc, "node0"}, refusal},
		Client: http.DefaultClient, FetchDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	content, d := randomBlob(t, 4096)
	ctx := context.Background()
	w, err := s.NewUpload(ctx, "flat/child")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Append(ctx, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx, d); !errors.Is(err, fsm.ErrNamespaceConflict) {
		t.Fatalf("Commit = %v, want the FSM's refusal", err)
	}
	if got := tc.holders(d); !slices.Equal(got, []string{"node0"}) {
		t.Errorf("holders %v, want [node0]", got)
	}
	if _, err := tc.local["node0"].Stat(ctx, d); err != nil {
		t.Errorf("the blob is not stored: %v", err)
	}
}

// TestWrongDigestKeepsTheSession: a Commit with a digest the bytes do not
// match stores and links nothing, and the session takes more bytes and
// commits with the right digest.
func TestWrongDigestKeepsTheSession(t *testing.T) {
	tc := newTestCluster(t, 2)
	s := tc.store("node0", 2, 2)
	tc.store("node1", 2, 2)
	content, d := randomBlob(t, 128<<10)
	ctx := context.Background()
	w, err := s.NewUpload(ctx, "test/app")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Append(ctx, bytes.NewReader(content[:1000])); err != nil {
		t.Fatal(err)
	}
	wrong := digest.FromBytes(content[:999])
	if _, err := w.Commit(ctx, wrong); !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Fatalf("Commit with a wrong digest = %v", err)
	}
	if _, ok, _ := tc.fsm.fsm.BlobLinked("test/app", wrong); ok {
		t.Fatal("a blob of the wrong digest was linked")
	}
	if _, err := w.Append(ctx, bytes.NewReader(content[1000:])); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDurable(ctx, []digest.Digest{d}); err != nil {
		t.Fatal(err)
	}
}

// TestStreamThroughANonHolder: a node that lacks a blob streams it from a
// holder; a node that holds it gives its file. When the holder's copy is
// corrupt, the stream fails instead of ending, so that a response
// carrying it is aborted.
func TestStreamThroughANonHolder(t *testing.T) {
	tc := newTestCluster(t, 2)
	reader, holder := tc.store("node0", 1, 1), tc.store("node1", 1, 1)
	content, d := randomBlob(t, 256<<10)
	ctx := context.Background()
	// The one copy is node1's.
	if _, err := tc.local["node1"].Put(ctx, d, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if err := (view{tc, "node1"}).AddBlobHolder(ctx, d, int64(len(content)), "node1"); err != nil {
		t.Fatal(err)
	}
	rc, size, err := holder.Stream(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	f, local := rc.(*os.File)
	rc.Close()
	if !local || size != int64(len(content)) {
		t.Fatalf("Stream on the holder: %T, size %d; want its file and %d", rc, size, len(content))
	}
	rc, size, err = reader.Stream(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, local := rc.(*os.File); local {
		t.Fatal("Stream on a node that lacks the blob gave a local file")
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, content) || size != int64(len(content)) {
		t.Fatalf("Stream through a non-holder: %d bytes (size %d), %v", len(got), size, err)
	}

	// Corrupt the copy, same length.
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Name(), bytes.Repeat([]byte{'x'}, len(content)), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, _, err = reader.Stream(ctx, d)
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Fatalf("Stream of a corrupt copy: %v, want a digest mismatch", err)
	}
}
