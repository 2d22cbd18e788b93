package blobstore

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"
)

// TestSpaceHearsOfENOSPC writes an upload into /dev/full, which fails every
// write with ENOSPC, and checks that the store tells its Space.
func TestSpaceHearsOfENOSPC(t *testing.T) {
	s, space := openStoreWithSpace(t, 1<<40)
	u, err := s.NewUpload(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	full, err := os.OpenFile("/dev/full", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	u.f.Close()
	u.f = full
	_, err = u.Append(t.Context(), bytes.NewReader(randomBytes(t, 1000)))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append into /dev/full = %v, want ENOSPC", err)
	}
	if len(space.noticed) != 1 || !errors.Is(space.noticed[0], syscall.ENOSPC) {
		t.Errorf("noticed %v, want the ENOSPC", space.noticed)
	}
}
