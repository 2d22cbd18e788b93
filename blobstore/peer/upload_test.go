package peer

import (
	"bytes"
	"context"
	"errors"
	"net/http"
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
