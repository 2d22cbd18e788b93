package blobstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func openStore(t testing.TB, root string) *Store {
	t.Helper()
	s, err := Open(Config{Root: root})
	if err != nil {
		t.Fatalf("Open(%s): %v", root, err)
	}
	return s
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	rand.Read(p)
	return p
}

// readBlob returns the content of a stored blob, failing the test if it is missing.
func readBlob(t *testing.T, s *Store, d digest.Digest) []byte {
	t.Helper()
	f, err := s.Open(t.Context(), d)
	if err != nil {
		t.Fatalf("Open(%s): %v", d, err)
	}
	defer f.Close()
	p, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func wantStats(t *testing.T, s *Store, count, size int64) {
	t.Helper()
	gotCount, gotSize, err := s.Stats(t.Context())
	if err != nil || gotCount != count || gotSize != size {
		t.Fatalf("Stats() = %d, %d, %v; want %d, %d", gotCount, gotSize, err, count, size)
	}
}

func TestUploadCommit(t *testing.T) {
	blob := randomBytes(t, 3*chunkSize+123)
	sha256Of := func(p []byte) digest.Digest { return digest.SHA256.FromBytes(p) }
	tests := []struct {
		name    string
		data    []byte
		chunks  int  // Append calls the data is split into
		reopen  bool // reopen the Store (losing the running hash) before each Append and the Commit
		digest  func(data []byte) digest.Digest
		wantErr error
	}{
		{name: "sha256", data: blob, chunks: 1, digest: sha256Of},
		{name: "sha512", data: blob, chunks: 2, digest: digest.SHA512.FromBytes},
		{name: "empty", data: nil, chunks: 1, digest: sha256Of},
		{name: "empty sha512", data: nil, chunks: 0, digest: digest.SHA512.FromBytes},
		{name: "multi append", data: blob, chunks: 7, digest: sha256Of},
		{name: "resume after restart", data: blob, chunks: 3, reopen: true, digest: sha256Of},
		{name: "resume after restart sha512", data: blob, chunks: 2, reopen: true, digest: digest.SHA512.FromBytes},
		{name: "wrong digest", data: blob, chunks: 2, wantErr: ErrDigestMismatch,
			digest: func([]byte) digest.Digest { return sha256Of([]byte("other")) }},
		{name: "wrong digest sha512", data: blob, chunks: 1, wantErr: ErrDigestMismatch,
			digest: func([]byte) digest.Digest { return digest.SHA512.FromString("other") }},
		{name: "unsupported algorithm", data: blob, chunks: 1, wantErr: ErrUnsupportedDigest,
			digest: digest.SHA384.FromBytes},
		{name: "uppercase hex", data: blob, chunks: 1, wantErr: ErrUnsupportedDigest,
			digest: func(p []byte) digest.Digest { return digest.Digest(strings.ToUpper(string(sha256Of(p)))) }},
		{name: "malformed", data: blob, chunks: 1, wantErr: ErrUnsupportedDigest,
			digest: func([]byte) digest.Digest { return "sha256:abc" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			root := t.TempDir()
			s := openStore(t, root)
			u, err := s.NewUpload(ctx)
			if err != nil {
				t.Fatal(err)
			}
			id := u.ID()
			for i := range tt.chunks {
				if tt.reopen {
					u.Close()
					s = openStore(t, root)
					if u, err = s.OpenUpload(ctx, id); err != nil {
						t.Fatalf("OpenUpload after reopen: %v", err)
					}
				}
				part := tt.data[len(tt.data)*i/tt.chunks : len(tt.data)*(i+1)/tt.chunks]
				if n, err := u.Append(ctx, bytes.NewReader(part)); err != nil || n != int64(len(part)) {
					t.Fatalf("Append = %d, %v; want %d", n, err, len(part))
				}
			}
			if tt.reopen {
				u.Close()
				s = openStore(t, root)
				if u, err = s.OpenUpload(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			defer u.Close()
			if got := u.Size(); got != int64(len(tt.data)) {
				t.Fatalf("Size() = %d, want %d", got, len(tt.data))
			}

			d := tt.digest(tt.data)
			n, err := u.Commit(ctx, d)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Commit(%s) error = %v, want %v", d, err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if count, _, _ := s.Stats(ctx); count != 0 {
					t.Fatalf("failed commit stored %d blobs", count)
				}
				assertNoBlobFiles(t, root)
				return
			}
			if n != int64(len(tt.data)) {
				t.Fatalf("Commit = %d, want %d", n, len(tt.data))
			}
			if got := readBlob(t, s, d); !bytes.Equal(got, tt.data) {
				t.Fatalf("stored blob differs (%d bytes, want %d)", len(got), len(tt.data))
			}
			if size, err := s.Stat(ctx, d); err != nil || size != int64(len(tt.data)) {
				t.Fatalf("Stat = %d, %v", size, err)
			}
			wantStats(t, s, 1, int64(len(tt.data)))
			if _, err := s.OpenUpload(ctx, id); !errors.Is(err, ErrUploadUnknown) {
				t.Fatalf("OpenUpload after commit: %v, want ErrUploadUnknown", err)
			}
			assertDirEmpty(t, filepath.Join(root, "uploads"))
		})
	}
}

func assertNoBlobFiles(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(filepath.Join(root, "blobs"), func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			t.Errorf("unexpected file %s", path)
		}
		return err
	})
}

func assertDirEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("unexpected %s in %s", e.Name(), dir)
	}
}

func TestDigestMismatchKeepsSession(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, t.TempDir())
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	data := []byte("hello, wharf")
	if _, err := u.Append(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(ctx, digest.FromString("nope")); !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Commit(wrong) = %v, want ErrDigestMismatch", err)
	}
	if n, err := u.Commit(ctx, digest.FromBytes(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("Commit(right) = %d, %v", n, err)
	}
}

func TestCommitExistingBlob(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := openStore(t, root)
	data := randomBytes(t, 1000)
	d := digest.FromBytes(data)
	for range 2 {
		u, err := s.NewUpload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Append(ctx, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if n, err := u.Commit(ctx, d); err != nil || n != 1000 {
			t.Fatalf("Commit = %d, %v", n, err)
		}
	}
	wantStats(t, s, 1, 1000)
	if got := s.OpenUploads(); got != 0 {
		t.Fatalf("OpenUploads() = %d, want 0", got)
	}
	assertDirEmpty(t, filepath.Join(root, "uploads"))
}

func TestCancel(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := openStore(t, root)
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, strings.NewReader("partial")); err != nil {
		t.Fatal(err)
	}
	if got := s.OpenUploads(); got != 1 {
		t.Fatalf("OpenUploads() = %d, want 1", got)
	}
	if err := u.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatalf("Close after Cancel: %v", err)
	}
	if _, err := u.Append(ctx, strings.NewReader("x")); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("Append after Cancel = %v, want ErrUploadUnknown", err)
	}
	if _, err := s.OpenUpload(ctx, u.ID()); !errors.Is(err, ErrUploadUnknown) {
		t.Fatalf("OpenUpload after Cancel = %v, want ErrUploadUnknown", err)
	}
	if got := s.OpenUploads(); got != 0 {
		t.Fatalf("OpenUploads() = %d, want 0", got)
	}
	assertDirEmpty(t, filepath.Join(root, "uploads"))
}

func TestOpenUploadBadID(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	// A directory a crafted ID could reach if IDs were not validated.
	if err := os.MkdirAll(filepath.Join(root, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "x.data"), nil, 0o644)
	os.WriteFile(filepath.Join(root, "x", "data"), nil, 0o644)
	for _, id := range []string{
		"",
		"../x",
		"../../etc/passwd",
		"/etc",
		".",
		strings.Repeat("a", idLen-1),
		strings.Repeat("a", idLen+1),
		strings.Repeat("A", idLen),
		strings.Repeat("a", idLen-3) + "/..",
		strings.Repeat("a", idLen), // well-formed but never issued
	} {
		if _, err := s.OpenUpload(t.Context(), id); !errors.Is(err, ErrUploadUnknown) {
			t.Errorf("OpenUpload(%q) = %v, want ErrUploadUnknown", id, err)
		}
	}
}

func TestUnsupportedDigest(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := t.Context()
	sha := digest.FromString("x")
	for _, d := range []digest.Digest{
		"",
		"sha256",
		"sha256:",
		":" + digest.Digest(sha.Encoded()),
		sha[:len(sha)-1],
		sha + "0",
		digest.Digest(strings.ToUpper(string(sha))),
		"sha256:" + digest.Digest(strings.Repeat("g", 64)),
		"sha256:../../../../etc/passwd" + digest.Digest(strings.Repeat("0", 36)),
		"md5:" + digest.Digest(strings.Repeat("0", 32)),
		digest.SHA384.FromString("x"),
		"sha512:" + digest.Digest(sha.Encoded()),
	} {
		ops := map[string]func() error{
			"Stat":   func() error { _, err := s.Stat(ctx, d); return err },
			"Open":   func() error { _, err := s.Open(ctx, d); return err },
			"Delete": func() error { return s.Delete(ctx, d) },
			"Put":    func() error { _, err := s.Put(ctx, d, strings.NewReader("x")); return err },
		}
		for name, op := range ops {
			if err := op(); !errors.Is(err, ErrUnsupportedDigest) {
				t.Errorf("%s(%q) = %v, want ErrUnsupportedDigest", name, d, err)
			}
		}
	}
}

func TestBlobUnknown(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := t.Context()
	d := digest.FromString("absent")
	if _, err := s.Stat(ctx, d); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("Stat = %v, want ErrBlobUnknown", err)
	}
	if _, err := s.Open(ctx, d); !errors.Is(err, ErrBlobUnknown) {
		t.Errorf("Open = %v, want ErrBlobUnknown", err)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Errorf("Delete = %v, want nil", err)
	}
}

func TestPut(t *testing.T) {
	data := randomBytes(t, 2*chunkSize+7)
	tests := []struct {
		name    string
		digest  digest.Digest
		wantErr error
	}{
		{"sha256", digest.SHA256.FromBytes(data), nil},
		{"sha512", digest.SHA512.FromBytes(data), nil},
		{"wrong digest", digest.FromString("other"), ErrDigestMismatch},
		{"wrong digest sha512", digest.SHA512.FromString("other"), ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			s := openStore(t, root)
			n, err := s.Put(t.Context(), tt.digest, bytes.NewReader(data))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put = %v, want %v", err, tt.wantErr)
			}
			assertDirEmpty(t, filepath.Join(root, "uploads"))
			if got := s.OpenUploads(); got != 0 {
				t.Errorf("OpenUploads() = %d, want 0", got)
			}
			if tt.wantErr != nil {
				assertNoBlobFiles(t, root)
				wantStats(t, s, 0, 0)
				return
			}
			if n != int64(len(data)) || !bytes.Equal(readBlob(t, s, tt.digest), data) {
				t.Fatalf("Put stored %d bytes, want %d", n, len(data))
			}
		})
	}
}

func TestStats(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := openStore(t, root)
	wantStats(t, s, 0, 0)

	a, b := []byte("aaaa"), randomBytes(t, 5000)
	da, db := digest.FromBytes(a), digest.SHA512.FromBytes(b)
	steps := []struct {
		name       string
		do         func() error
		count, len int64
	}{
		{"put a", func() error { _, err := s.Put(ctx, da, bytes.NewReader(a)); return err }, 1, 4},
		{"put b", func() error { _, err := s.Put(ctx, db, bytes.NewReader(b)); return err }, 2, 5004},
		{"put a again", func() error { _, err := s.Put(ctx, da, bytes.NewReader(a)); return err }, 2, 5004},
		{"failed put", func() error {
			if _, err := s.Put(ctx, da, bytes.NewReader(b)); !errors.Is(err, ErrDigestMismatch) {
				return err
			}
			return nil
		}, 2, 5004},
		{"reopen", func() error { s = openStore(t, root); return nil }, 2, 5004},
		{"delete a", func() error { return s.Delete(ctx, da) }, 1, 5000},
		{"delete a again", func() error { return s.Delete(ctx, da) }, 1, 5000},
		{"delete b", func() error { return s.Delete(ctx, db) }, 0, 0},
		{"reopen empty", func() error { s = openStore(t, root); return nil }, 0, 0},
	}
	for _, step := range steps {
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		count, size, _ := s.Stats(ctx)
		if count != step.count || size != step.len {
			t.Fatalf("after %s: Stats() = %d, %d; want %d, %d", step.name, count, size, step.count, step.len)
		}
	}
}

// TestConcurrentAppends appends from many goroutines, through separate handles
// and through one shared handle, and checks that every Append landed whole.
func TestConcurrentAppends(t *testing.T) {
	const writers, partLen = 6, chunkSize + chunkSize/2 // parts span chunk boundaries
	ctx := t.Context()
	for _, shared := range []bool{false, true} {
		s := openStore(t, t.TempDir())
		u, err := s.NewUpload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i := range writers {
			part := bytes.Repeat([]byte{byte('a' + i)}, partLen)
			wg.Go(func() {
				h := u
				if !shared {
					if h, err = s.OpenUpload(ctx, u.ID()); err != nil {
						t.Error(err)
						return
					}
					defer h.Close()
				}
				// A reader that returns small pieces, to invite interleaving.
				if _, err := h.Append(ctx, io.MultiReader(bytes.NewReader(part[:100]), bytes.NewReader(part[100:]))); err != nil {
					t.Error(err)
				}
			})
		}
		if !shared {
			u.Close() // let the other handles in
		}
		wg.Wait()
		if !shared {
			if u, err = s.OpenUpload(ctx, u.ID()); err != nil {
				t.Fatal(err)
			}
		}
		data, err := os.ReadFile(filepath.Join(s.uploadsDir, u.ID()+dataSuffix))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != writers*partLen || u.Size() != int64(len(data)) {
			t.Fatalf("shared=%v: %d bytes, Size() = %d; want %d", shared, len(data), u.Size(), writers*partLen)
		}
		seen := map[byte]bool{}
		for off := 0; off < len(data); off += partLen {
			c := data[off]
			if seen[c] || !bytes.Equal(data[off:off+partLen], bytes.Repeat([]byte{c}, partLen)) {
				t.Fatalf("shared=%v: appends interleaved at offset %d", shared, off)
			}
			seen[c] = true
		}
		if _, err := u.Commit(ctx, digest.FromBytes(data)); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
}

func TestOpenUploadWaitsForOwner(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, t.TempDir())
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.OpenUpload(short, u.ID()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("OpenUpload of an owned session = %v, want DeadlineExceeded", err)
	}
	u.Close()
	u2, err := s.OpenUpload(ctx, u.ID())
	if err != nil {
		t.Fatalf("OpenUpload after Close: %v", err)
	}
	u2.Close()
}

func TestPurgeUploads(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := openStore(t, root)
	newSession := func(age time.Duration, keepOpen bool) *Upload {
		u, err := s.NewUpload(ctx)
		if err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Join(root, "uploads", u.ID()+dataSuffix), old, old); err != nil {
			t.Fatal(err)
		}
		if !keepOpen {
			u.Close()
		}
		return u
	}
	stale := newSession(2*time.Hour, false)
	fresh := newSession(0, false)
	busy := newSession(2*time.Hour, true)
	defer busy.Close()

	n, err := s.PurgeUploads(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("PurgeUploads = %d, %v; want 1", n, err)
	}
	if _, err := s.OpenUpload(ctx, stale.ID()); !errors.Is(err, ErrUploadUnknown) {
		t.Errorf("stale session survived: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "uploads", stale.ID())); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale session directory survived: %v", err)
	}
	u, err := s.OpenUpload(ctx, fresh.ID())
	if err != nil {
		t.Fatalf("fresh session purged: %v", err)
	}
	u.Close()
	if got := s.OpenUploads(); got != 2 {
		t.Fatalf("OpenUploads() = %d, want 2", got)
	}
}

func TestOpenRecoversUploads(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := openStore(t, root)
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Append(ctx, strings.NewReader("resumable")); err != nil {
		t.Fatal(err)
	}
	u.Close()
	owned, err := s.NewUploadFor(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	owned.Close()
	// What a crash can leave behind: the owner file of a session whose data
	// file is gone (the process died after a commit's rename, or while
	// cancelling), session directories of an early layout, and junk.
	uploads := filepath.Join(root, "uploads")
	for _, dir := range []string{newID(), "not-an-id"} {
		if err := os.Mkdir(filepath.Join(uploads, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(uploads, newID()+ownerSuffix), []byte("team/other"), 0o644)
	os.WriteFile(filepath.Join(uploads, "stray"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(uploads, "not-an-id"+dataSuffix), []byte("x"), 0o644)

	s = openStore(t, root)
	var names []string
	entries, _ := os.ReadDir(uploads)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{u.ID() + dataSuffix, owned.ID() + dataSuffix, owned.ID() + ownerSuffix}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("uploads/ after Open holds %v, want only %v", names, want)
	}
	if got := s.OpenUploads(); got != 2 {
		t.Fatalf("OpenUploads() = %d, want 2", got)
	}
	u, err = s.OpenUpload(ctx, u.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if u.Size() != int64(len("resumable")) {
		t.Fatalf("Size() = %d", u.Size())
	}
}

func TestUploadOwnerSurvivesRestart(t *testing.T) {
	ctx := t.Context()
	root := t.TempDir()
	s := openStore(t, root)
	owned, err := s.NewUploadFor(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	anyone, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if owned.Owner() != "team/app" || anyone.Owner() != "" {
		t.Fatalf("owners %q and %q, want team/app and none", owned.Owner(), anyone.Owner())
	}
	owned.Close()
	anyone.Close()
	if _, err := s.NewUploadFor(ctx, strings.Repeat("x", maxOwnerLength+1)); err == nil {
		t.Fatal("an owner over the limit was accepted")
	}

	s = openStore(t, root)
	for id, want := range map[string]string{owned.ID(): "team/app", anyone.ID(): ""} {
		u, err := s.OpenUpload(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if u.Owner() != want {
			t.Errorf("after a restart session %s has owner %q, want %q", id, u.Owner(), want)
		}
		u.Close()
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func TestAppendFailures(t *testing.T) {
	data := randomBytes(t, 3*chunkSize)
	half := len(data) / 2
	tests := []struct {
		name string
		// appendFirst appends data[:half] and fails; it returns the bytes
		// the session keeps.
		appendFirst func(t *testing.T, u *Upload) int
	}{
		{"client disconnects", func(t *testing.T, u *Upload) int {
			lost := errors.New("connection reset")
			n, err := u.Append(t.Context(), &failingReader{bytes.NewReader(data[:half]), lost})
			if !errors.Is(err, lost) || n != int64(half) {
				t.Fatalf("Append = %d, %v; want %d, %v", n, err, half, lost)
			}
			return half
		}},
		{"write fails", func(t *testing.T, u *Upload) int {
			// Swap in a read-only descriptor: the chunk is hashed but not written.
			rw := u.f
			ro, err := os.Open(rw.Name())
			if err != nil {
				t.Fatal(err)
			}
			u.f = ro
			defer func() { u.f = rw; ro.Close() }()
			if _, err := u.Append(t.Context(), bytes.NewReader(data[:half])); err == nil {
				t.Fatal("Append to a read-only file succeeded")
			}
			return 0
		}},
		{"context cancelled", func(t *testing.T, u *Upload) int {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if _, err := u.Append(ctx, bytes.NewReader(data[:half])); !errors.Is(err, context.Canceled) {
				t.Fatalf("Append = %v, want context.Canceled", err)
			}
			return 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			s := openStore(t, t.TempDir())
			u, err := s.NewUpload(ctx)
			if err != nil {
				t.Fatal(err)
			}
			kept := tt.appendFirst(t, u)
			if u.Size() != int64(kept) {
				t.Fatalf("Size() = %d after failed Append, want %d", u.Size(), kept)
			}
			// The client resumes from Size(), in a new request.
			u.Close()
			if u, err = s.OpenUpload(ctx, u.ID()); err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			if _, err := u.Append(ctx, bytes.NewReader(data[kept:])); err != nil {
				t.Fatal(err)
			}
			if _, err := u.Commit(ctx, digest.FromBytes(data)); err != nil {
				t.Fatalf("Commit after a failed Append: %v", err)
			}
		})
	}
}

func TestOpenEmptyRoot(t *testing.T) {
	if _, err := Open(Config{}); err == nil {
		t.Fatal("Open with an empty root succeeded")
	}
}
