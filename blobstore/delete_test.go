package blobstore

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestDeleteIfStoredBefore(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	content := randomBytes(t, 1000)
	d := digest.FromBytes(content)
	put := func() {
		t.Helper()
		if _, err := s.Put(ctx, d, bytes.NewReader(content)); err != nil {
			t.Fatal(err)
		}
	}
	put()
	before := time.Now().Add(-time.Hour)
	if freed, kept, err := s.DeleteIfStoredBefore(ctx, d, before); err != nil || !kept || freed != 0 {
		t.Fatalf("blob stored after the cutoff: freed %d, kept %v, %v; want kept", freed, kept, err)
	}

	// Age the file, then store it again: the commit finds it present and
	// stores it again, which protects it from an older cutoff.
	old := time.Now().Add(-2 * time.Hour)
	if err := setStoredTime(s, d, old); err != nil {
		t.Fatal(err)
	}
	put()
	if _, kept, _ := s.DeleteIfStoredBefore(ctx, d, before); !kept {
		t.Fatal("a blob stored again after the cutoff was deleted")
	}

	if err := setStoredTime(s, d, old); err != nil {
		t.Fatal(err)
	}
	freed, kept, err := s.DeleteIfStoredBefore(ctx, d, before)
	if err != nil || kept || freed != int64(len(content)) {
		t.Fatalf("old blob: freed %d, kept %v, %v; want %d freed", freed, kept, err, len(content))
	}
	wantStats(t, s, 0, 0)
	if freed, kept, err := s.DeleteIfStoredBefore(ctx, d, time.Now()); err != nil || kept || freed != 0 {
		t.Fatalf("missing blob: freed %d, kept %v, %v; want nothing", freed, kept, err)
	}
}

func setStoredTime(s *Store, d digest.Digest, at time.Time) error {
	return osChtimes(blobPath(s.blobsDir, d), at)
}

func osChtimes(path string, at time.Time) error { return os.Chtimes(path, at, at) }
