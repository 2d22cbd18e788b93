package blobstore

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

var errNoRoom = errors.New("no room")

// budgetSpace allows a fixed number of bytes, and records what it is told.
type budgetSpace struct {
	mu      sync.Mutex
	left    int64
	asked   []int64
	noticed []error
}

func (b *budgetSpace) Allow(n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked = append(b.asked, n)
	if n > b.left || b.left == 0 {
		return errNoRoom
	}
	b.left -= n
	return nil
}

func (b *budgetSpace) Notice(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.noticed = append(b.noticed, err)
}

func openStoreWithSpace(t *testing.T, left int64) (*Store, *budgetSpace) {
	t.Helper()
	space := &budgetSpace{left: left}
	s, err := Open(Config{Root: t.TempDir(), Space: space})
	if err != nil {
		t.Fatal(err)
	}
	return s, space
}

// TestSpaceRefusesUploads checks that every way bytes enter the store asks
// first, and that a refusal stores nothing and writes no refused byte.
func TestSpaceRefusesUploads(t *testing.T) {
	blob := randomBytes(t, 3*chunkSize)
	d := digest.FromBytes(blob)

	t.Run("new session", func(t *testing.T) {
		s, _ := openStoreWithSpace(t, 0)
		if _, err := s.NewUploadFor(t.Context(), "repo"); !errors.Is(err, errNoRoom) {
			t.Fatalf("NewUploadFor = %v, want the refusal", err)
		}
		assertDirEmpty(t, s.uploadsDir)
	})
	t.Run("put", func(t *testing.T) {
		s, _ := openStoreWithSpace(t, chunkSize)
		if _, err := s.Put(t.Context(), d, bytes.NewReader(blob)); !errors.Is(err, errNoRoom) {
			t.Fatalf("Put = %v, want the refusal", err)
		}
		assertNoBlobFiles(t, s.blobsDir)
		assertDirEmpty(t, s.uploadsDir)
		wantStats(t, s, 0, 0)
	})
	t.Run("append stops at the refused chunk", func(t *testing.T) {
		s, space := openStoreWithSpace(t, 2*chunkSize)
		u, err := s.NewUpload(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		n, err := u.Append(t.Context(), bytes.NewReader(blob))
		if !errors.Is(err, errNoRoom) {
			t.Fatalf("Append = %d, %v; want the refusal", n, err)
		}
		if n != 2*chunkSize || u.Size() != n {
			t.Errorf("Append wrote %d bytes (session %d), want the %d allowed", n, u.Size(), 2*chunkSize)
		}
		if info, err := os.Stat(u.sess.dataPath()); err != nil || info.Size() != n {
			t.Errorf("data file %v, %v; want %d bytes", info, err, n)
		}
		if len(space.noticed) != 1 || !errors.Is(space.noticed[0], errNoRoom) {
			t.Errorf("noticed %v, want the refusal", space.noticed)
		}
		// The session still commits what it holds once there is room.
		space.left = chunkSize
		if _, err := u.Append(t.Context(), bytes.NewReader(blob[n:])); err != nil {
			t.Fatalf("Append after room was freed: %v", err)
		}
		if _, err := u.Commit(t.Context(), d); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		if !bytes.Equal(readBlob(t, s, d), blob) {
			t.Error("committed blob differs")
		}
	})
	t.Run("append asks before it reads", func(t *testing.T) {
		s, space := openStoreWithSpace(t, 1)
		u, err := s.NewUpload(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		space.left = 0
		body := bytes.NewReader(blob)
		if _, err := u.Append(t.Context(), body); !errors.Is(err, errNoRoom) {
			t.Fatalf("Append = %v, want the refusal", err)
		}
		if body.Len() != len(blob) {
			t.Errorf("Append read %d bytes of a body it refused", len(blob)-body.Len())
		}
	})
}
