package peer

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

func TestUploadSessionAppendAndCommit(t *testing.T) {
	p := newTestPeer(t)
	ctx := context.Background()
	blob := bytes.Repeat([]byte("wharf mirror "), 100_000)
	d := digest.FromBytes(blob)
	sess, err := StartUpload(ctx, http.DefaultClient, p.url)
	if err != nil {
		t.Fatal(err)
	}
	half := int64(len(blob) / 2)
	if got, err := sess.Append(ctx, 0, bytes.NewReader(blob[:half])); err != nil || got != half {
		t.Fatalf("first append: size %d, %v; want %d", got, err, half)
	}
	// A chunk at the wrong offset is refused and changes nothing.
	var se *StatusError
	if _, err := sess.Append(ctx, half+1, bytes.NewReader(blob[half:])); !errors.As(err, &se) || se.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("append at a wrong offset: %v, want 416", err)
	}
	if _, err := sess.Append(ctx, 0, bytes.NewReader(blob)); !errors.As(err, &se) || se.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("append at offset 0 again: %v, want 416", err)
	}
	// Committing before every byte arrived is refused: the size does not match.
	if err := sess.Commit(ctx, d, int64(len(blob))); !errors.As(err, &se) || se.StatusCode != http.StatusBadRequest {
		t.Fatalf("commit of a short session: %v, want 400", err)
	}
	if got, err := sess.Append(ctx, half, bytes.NewReader(blob[half:])); err != nil || got != int64(len(blob)) {
		t.Fatalf("second append: size %d, %v", got, err)
	}
	// A wrong digest is refused and stores nothing; the session stays.
	wrong := digest.FromString("something else")
	if err := sess.Commit(ctx, wrong, int64(len(blob))); !errors.As(err, &se) || se.StatusCode != http.StatusBadRequest {
		t.Fatalf("commit with a wrong digest: %v, want 400", err)
	}
	if _, err := p.store.Stat(ctx, wrong); !errors.Is(err, blobstore.ErrBlobUnknown) {
		t.Fatalf("a mismatched commit stored something: %v", err)
	}
	if err := sess.Commit(ctx, d, int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	if size, err := p.store.Stat(ctx, d); err != nil || size != int64(len(blob)) {
		t.Fatalf("stored blob: size %d, %v", size, err)
	}
	// The session has ended.
	if _, err := sess.Append(ctx, int64(len(blob)), bytes.NewReader([]byte("x"))); !errors.As(err, &se) || se.StatusCode != http.StatusNotFound {
		t.Fatalf("append after commit: %v, want 404", err)
	}
	if n := p.store.OpenUploads(); n != 0 {
		t.Fatalf("%d sessions open after commit", n)
	}
}

func TestUploadSessionCancel(t *testing.T) {
	p := newTestPeer(t)
	ctx := context.Background()
	sess, err := StartUpload(ctx, http.DefaultClient, p.url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.Append(ctx, 0, bytes.NewReader([]byte("partial"))); err != nil {
		t.Fatal(err)
	}
	if n := p.store.OpenUploads(); n != 1 {
		t.Fatalf("%d sessions open, want 1", n)
	}
	if err := sess.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if n := p.store.OpenUploads(); n != 0 {
		t.Fatalf("%d sessions open after cancel", n)
	}
	if err := sess.Cancel(ctx); err != nil { // unknown now: still cancelled
		t.Fatalf("second cancel: %v", err)
	}
	var se *StatusError
	if err := sess.Commit(ctx, digest.FromBytes([]byte("partial")), 7); !errors.As(err, &se) || se.StatusCode != http.StatusNotFound {
		t.Fatalf("commit after cancel: %v, want 404", err)
	}
}

func TestUploadSessionRejectsBadRequests(t *testing.T) {
	p := newTestPeer(t)
	for _, tc := range []struct {
		method, path string
		hdr          map[string]string
		want         int
	}{
		{http.MethodPatch, UploadPathPrefix + "abcdefghijklmnopqrstuvwxyz", map[string]string{OffsetHeader: "0"}, http.StatusNotFound},
		{http.MethodPatch, UploadPathPrefix + "..%2F..%2Fx", map[string]string{OffsetHeader: "0"}, http.StatusNotFound},
		{http.MethodPatch, UploadPathPrefix + "abcdefghijklmnopqrstuvwxyz", nil, http.StatusBadRequest},
		{http.MethodPut, UploadPathPrefix + "abcdefghijklmnopqrstuvwxyz?digest=sha256:nope&size=1", nil, http.StatusBadRequest},
		{http.MethodDelete, UploadPathPrefix + "abcdefghijklmnopqrstuvwxyz", nil, http.StatusNotFound},
		// A relay chain is checked before the session is looked up.
		{http.MethodPatch, UploadPathPrefix + "abcdefghijklmnopqrstuvwxyz", map[string]string{OffsetHeader: "0", RelayHeader: "a,,b"}, http.StatusBadRequest},
		{http.MethodPatch, UploadPathPrefix + "abcdefghijklmnopqrstuvwxyz", map[string]string{OffsetHeader: "0", RelayHeader: "node/../x"}, http.StatusBadRequest},
		{http.MethodPatch, UploadPathPrefix + "abcdefghijklmnopqrstuvwxyz", map[string]string{OffsetHeader: "0", RelayHeader: strings.Repeat("n,", maxRelay) + "n"}, http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(tc.method, p.url+tc.path, http.NoBody)
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
}

// recordingRelay is a Relay that records what the Server tells it.
type recordingRelay struct {
	mu         sync.Mutex
	chains     [][]string
	progress   int
	committing []digest.Digest
	committed  []digest.Digest
	cancelled  []string
}

func (r *recordingRelay) Relaying(_ context.Context, _ *blobstore.Upload, chain []string) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.chains = append(r.chains, chain)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.progress++
	}
}

func (r *recordingRelay) RelayCommitting(_ string, d digest.Digest, _ int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.committing = append(r.committing, d)
}

func (r *recordingRelay) RelayCommitted(_ string, d digest.Digest, _ int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.committed = append(r.committed, d)
}

func (r *recordingRelay) RelayCancelled(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancelled = append(r.cancelled, id)
}

// A PATCH naming a relay chain hands it to the Server's Relay, which hears
// of the bytes as they arrive and of the commit; a PATCH without one does
// not involve the Relay.
func TestUploadSessionRelay(t *testing.T) {
	store, err := blobstore.Open(blobstore.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	relay := &recordingRelay{}
	mux := http.NewServeMux()
	srv := NewServer(store, nil)
	srv.RelayTo(relay)
	srv.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	ctx := context.Background()

	blob := bytes.Repeat([]byte("relayed "), 64<<10)
	d := digest.FromBytes(blob)
	sess, err := StartUpload(ctx, http.DefaultClient, hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	sess.Relay = []string{"NODEB", "node-c_2"}
	if _, err := sess.Append(ctx, 0, bytes.NewReader(blob)); err != nil {
		t.Fatal(err)
	}
	if err := sess.Commit(ctx, d, int64(len(blob))); err != nil {
		t.Fatal(err)
	}
	relay.mu.Lock()
	if len(relay.chains) != 1 || !slices.Equal(relay.chains[0], sess.Relay) {
		t.Errorf("chains %v, want one: %v", relay.chains, sess.Relay)
	}
	if relay.progress < 2 {
		t.Errorf("progress called %d times, want at least 2 (before a read, after the body)", relay.progress)
	}
	if !slices.Equal(relay.committing, []digest.Digest{d}) {
		t.Errorf("commits started %v, want %s", relay.committing, d)
	}
	if !slices.Equal(relay.committed, []digest.Digest{d}) {
		t.Errorf("commits %v, want %s", relay.committed, d)
	}
	relay.mu.Unlock()

	plain, err := StartUpload(ctx, http.DefaultClient, hs.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Append(ctx, 0, bytes.NewReader([]byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := plain.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	relay.mu.Lock()
	defer relay.mu.Unlock()
	if len(relay.chains) != 1 {
		t.Errorf("a PATCH without a chain reached the relay: %v", relay.chains)
	}
	if len(relay.cancelled) != 1 {
		t.Errorf("cancels %v, want the cancelled session", relay.cancelled)
	}
}
