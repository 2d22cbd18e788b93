package peer

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// TestConcurrentPushesOfOneBlob: a PUT of a blob another PUT is storing
// waits for it instead of storing a second copy alongside, and then
// succeeds without storing anything; if the first fails, the waiting one
// stores the blob itself.
func TestConcurrentPushesOfOneBlob(t *testing.T) {
	const content = "a layer that two nodes push at once"
	d := digest.FromString(content)
	for _, tt := range []struct {
		name      string
		firstBody string // what the first PUT sends
		firstErr  bool
	}{
		{name: "first succeeds", firstBody: content},
		{name: "first fails", firstBody: "corrupt bytes of the same length!!!", firstErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store, err := blobstore.Open(blobstore.Config{Root: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			var arrived atomic.Int32
			mux := http.NewServeMux()
			NewServer(store, nil).Register(mux)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				arrived.Add(1)
				mux.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			ctx := context.Background()

			// The first PUT sends half its body and stalls.
			pr, pw := io.Pipe()
			first := make(chan error, 1)
			go func() { first <- Push(ctx, http.DefaultClient, srv.URL, d, int64(len(tt.firstBody)), pr) }()
			half := len(tt.firstBody) / 2
			if _, err := io.WriteString(pw, tt.firstBody[:half]); err != nil {
				t.Fatal(err)
			}
			second := make(chan error, 1)
			go func() {
				second <- Push(ctx, http.DefaultClient, srv.URL, d, int64(len(content)), strings.NewReader(content))
			}()
			for arrived.Load() < 2 {
				time.Sleep(time.Millisecond)
			}
			select {
			case err := <-second:
				t.Fatalf("second PUT finished (%v) while the first was still storing", err)
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := io.WriteString(pw, tt.firstBody[half:]); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			if err := <-first; (err != nil) != tt.firstErr {
				t.Fatalf("first PUT: %v, want error %v", err, tt.firstErr)
			}
			if err := <-second; err != nil {
				t.Fatalf("second PUT: %v", err)
			}
			f, err := store.Open(ctx, d)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := readAll(t, f); got != content {
				t.Fatalf("stored %q, want %q", got, content)
			}
			if n, _, _ := store.Stats(ctx); n != 1 {
				t.Fatalf("store holds %d blobs, want 1", n)
			}
		})
	}
}
