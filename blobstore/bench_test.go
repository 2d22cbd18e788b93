package blobstore

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// BenchmarkIngest measures pushing a blob through NewUpload, Append and
// Commit against a baseline that only writes the bytes to a file in the same
// directory, hashing them with sha256, and fsyncs it. The reported MB/s is
// the store's; base-MB/s is the baseline's and ratio is store/baseline
// throughput. The 1GiB size runs only when -bench names it or when
// WHARF_BENCH_LARGE=1.
func BenchmarkIngest(b *testing.B) {
	for _, size := range []int64{1 << 20, 10 << 20, 100 << 20, 1 << 30} {
		name := sizeName(size)
		if size >= 1<<30 && !largeBenchmarks(name) {
			continue
		}
		b.Run(name, func(b *testing.B) { benchIngest(b, size) })
	}
}

func sizeName(size int64) string {
	if size >= 1<<30 {
		return fmt.Sprintf("%dGiB", size>>30)
	}
	return fmt.Sprintf("%dMiB", size>>20)
}

func largeBenchmarks(name string) bool {
	if os.Getenv("WHARF_BENCH_LARGE") == "1" {
		return true
	}
	f := flag.Lookup("test.bench")
	return f != nil && strings.Contains(f.Value.String(), name)
}

func benchIngest(b *testing.B, size int64) {
	ctx := b.Context()
	dir := b.TempDir()
	s := openStore(b, dir)
	pattern := randomBytes(b, 4<<20)
	want, err := digest.SHA256.FromReader(newPatternReader(pattern, size))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, chunkSize)
	basePath := filepath.Join(dir, "baseline")

	// Warm up: the first commit creates the blob's prefix directory and
	// fills the buffer pool, which later pushes of other blobs mostly find.
	ingestStore(b, s, newPatternReader(pattern, size), want)
	if err := s.Delete(ctx, want); err != nil {
		b.Fatal(err)
	}

	var baseTime, storeTime time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		// Alternate which one goes first so neither inherits the other's
		// writeback.
		for j := range 2 {
			if (i+j)%2 == 0 {
				b.StopTimer()
				start := time.Now()
				if got := writeBaseline(b, basePath, newPatternReader(pattern, size), buf); got != want {
					b.Fatalf("baseline digest %s, want %s", got, want)
				}
				baseTime += time.Since(start)
				b.StartTimer()
				continue
			}
			start := time.Now()
			ingestStore(b, s, newPatternReader(pattern, size), want)
			storeTime += time.Since(start)
		}
		b.StopTimer()
		if err := s.Delete(ctx, want); err != nil {
			b.Fatal(err)
		}
		os.Remove(basePath)
		b.StartTimer()
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/baseTime.Seconds(), "base-MB/s")
	b.ReportMetric(baseTime.Seconds()/storeTime.Seconds(), "ratio")
}

// writeBaseline is the plain program the store is measured against.
func writeBaseline(b *testing.B, path string, r io.Reader, buf []byte) digest.Digest {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyBuffer(io.MultiWriter(f, h), r, buf); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return digest.NewDigest(digest.SHA256, h)
}

func ingestStore(b *testing.B, s *Store, r io.Reader, d digest.Digest) {
	ctx := b.Context()
	u, err := s.NewUpload(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Append(ctx, r); err != nil {
		b.Fatal(err)
	}
	if _, err := u.Commit(ctx, d); err != nil {
		b.Fatal(err)
	}
}

// patternReader yields n bytes by repeating a pattern; it is cheap enough not
// to dominate the benchmark and, unlike bytes.Reader, has no WriteTo, so
// both contenders copy through their own buffers.
type patternReader struct {
	pattern []byte
	off     int
	left    int64
}

func newPatternReader(pattern []byte, n int64) *patternReader {
	return &patternReader{pattern: pattern, left: n}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n := 0
	for n < len(p) {
		m := copy(p[n:], r.pattern[r.off:])
		n += m
		r.off = (r.off + m) % len(r.pattern)
	}
	r.left -= int64(n)
	return n, nil
}

// BenchmarkIngestPageCache pushes distinct 100 MiB blobs and keeps them, as
// a registry does, against the baseline program keeping its files too: each
// write then lands in page cache the machine has not reused yet, which the
// store avoids by dropping an upload's pages once they are on disk (see
// dropWritten). BenchmarkIngest deletes its blobs between iterations and so
// does not see the difference. Reports MB/s, base-MB/s, ratio, and the
// process CPU per byte of both.
func BenchmarkIngestPageCache(b *testing.B) {
	const size = 100 << 20
	dir := b.TempDir()
	s := openStore(b, dir)
	pattern := randomBytes(b, 4<<20)
	buf := make([]byte, chunkSize)
	var baseTime, storeTime, baseCPU, storeCPU time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		// A distinct blob each time: the pattern read from another offset.
		src := func() io.Reader {
			r := newPatternReader(pattern, size)
			r.off = (i * 4099) % len(pattern)
			return r
		}
		want, err := digest.SHA256.FromReader(src())
		if err != nil {
			b.Fatal(err)
		}
		c0, start := processCPU(b), time.Now()
		if got := writeBaseline(b, filepath.Join(dir, fmt.Sprint("baseline", i)), src(), buf); got != want {
			b.Fatalf("baseline digest %s, want %s", got, want)
		}
		baseTime += time.Since(start)
		baseCPU += processCPU(b) - c0
		b.StartTimer()
		c0, start = processCPU(b), time.Now()
		ingestStore(b, s, src(), want)
		storeTime += time.Since(start)
		storeCPU += processCPU(b) - c0
	}
	bytes := float64(size) * float64(b.N)
	b.ReportMetric(bytes/1e6/baseTime.Seconds(), "base-MB/s")
	b.ReportMetric(baseTime.Seconds()/storeTime.Seconds(), "ratio")
	b.ReportMetric(float64(storeCPU.Nanoseconds())/bytes, "cpu-ns/B")
	b.ReportMetric(float64(baseCPU.Nanoseconds())/bytes, "base-cpu-ns/B")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSmallUpload: the whole life of an upload session for a 4 KiB
// blob (NewUploadFor, Append, Commit), where the fixed cost of a session's
// files and the fsyncs dominates. Reports kernel CPU time per upload too,
// which metadata operations spend.
func BenchmarkSmallUpload(b *testing.B) {
	ctx := b.Context()
	s := openStore(b, b.TempDir())
	data := randomBytes(b, 4<<10)
	var before syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &before); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		data[0], data[1], data[2], data[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		u, err := s.NewUploadFor(ctx, "bench/repo")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := u.Append(ctx, strings.NewReader(string(data))); err != nil {
			b.Fatal(err)
		}
		if _, err := u.Commit(ctx, digest.FromBytes(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var after syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &after); err != nil {
		b.Fatal(err)
	}
	sys := time.Duration(syscall.TimevalToNsec(after.Stime) - syscall.TimevalToNsec(before.Stime))
	b.ReportMetric(float64(sys.Microseconds())/float64(b.N), "sys-µs/op")
}
