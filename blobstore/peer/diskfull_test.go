package peer

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

// fullDisk refuses every write, as a node's disk watcher does below the
// reserve.
type fullDisk struct{}

func (fullDisk) Allow(int64) error { return &diskspace.RefusedError{Write: "upload"} }
func (fullDisk) Notice(error)      {}

// TestCopiesToAFullNodeAnswer507 checks that a node below its reserve
// refuses the copies and mirrors its peers send with 507, and stores
// nothing.
func TestCopiesToAFullNodeAnswer507(t *testing.T) {
	store, err := blobstore.Open(blobstore.Config{Root: t.TempDir(), Space: fullDisk{}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	NewServer(store, nil).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	blob := []byte("a layer for a full node")
	d := digest.FromBytes(blob)

	copies := map[string]func() error{
		"push": func() error {
			return Push(ctx, srv.Client(), srv.URL, d, int64(len(blob)), bytes.NewReader(blob))
		},
		"mirror": func() error {
			return Mirror(ctx, srv.Client(), srv.URL, nil, bytes.NewReader(blob), func() digest.Digest { return d })
		},
	}
	for name, copyBlob := range copies {
		var status *StatusError
		if err := copyBlob(); !errors.As(err, &status) || status.StatusCode != http.StatusInsufficientStorage {
			t.Errorf("%s to a full node: %v, want a 507", name, err)
		}
	}
	if _, err := store.Stat(ctx, d); !errors.Is(err, blobstore.ErrBlobUnknown) {
		t.Errorf("the full node stored the blob: %v", err)
	}
	if n := store.OpenUploads(); n != 0 {
		t.Errorf("%d upload sessions left on the full node", n)
	}
}
