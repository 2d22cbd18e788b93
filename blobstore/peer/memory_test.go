package peer

import (
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestFetchMemoryDoesNotGrowWithBlobSize fetches a 64 MiB blob through a
// Fetcher and checks that the process allocated far less than that.
func TestFetchMemoryDoesNotGrowWithBlobSize(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 128 MiB to disk")
	}
	const size = 64 << 20
	p := newTestPeer(t)
	d := putRandom(t, p, size)
	f, _ := newTestFetcher(t, 0)

	before := memStats()
	b, err := f.Fetch(context.Background(), d, []string{p.url})
	if err != nil {
		t.Fatal(err)
	}
	if b.Size() != size {
		t.Fatalf("fetched %d bytes, want %d", b.Size(), size)
	}
	b.Close()
	after := memStats()

	const limit = 16 << 20
	t.Logf("heap %d -> %d bytes; %d bytes allocated", before.HeapAlloc, after.HeapAlloc, after.TotalAlloc-before.TotalAlloc)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > limit {
		t.Errorf("heap grew by %d bytes fetching a %d-byte blob", grew, size)
	}
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > limit {
		t.Errorf("allocated %d bytes fetching a %d-byte blob", allocated, size)
	}
}

// putRandom stores size pseudo-random bytes in p without holding them in
// memory, and returns their digest.
func putRandom(t *testing.T, p *testPeer, size int64) digest.Digest {
	t.Helper()
	random := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{7}), size) }
	h := sha256.New()
	if _, err := io.Copy(h, random()); err != nil {
		t.Fatal(err)
	}
	d := digest.NewDigest(digest.SHA256, h)
	if _, err := p.store.Put(context.Background(), d, random()); err != nil {
		t.Fatal(err)
	}
	return d
}

func memStats() runtime.MemStats {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}
