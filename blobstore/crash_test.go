package blobstore

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// crashRootEnv names the store root of a TestCrashChild process.
const crashRootEnv = "WHARF_BLOBSTORE_CRASH_ROOT"

// TestCrash SIGKILLs a process that is busy writing blobs, again and again,
// and checks after each kill that the store holds only whole, verified blobs.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	for round := range 8 {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashRootEnv+"="+root)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(30+rng.IntN(271)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil && strings.Contains(stderr.String(), "FAIL") {
			t.Fatalf("round %d: child failed before it was killed:\n%s", round, stderr.String())
		}
		verifyStore(t, root)
	}

	s := openStore(t, root)
	if count, _, _ := s.Stats(t.Context()); count == 0 {
		t.Fatal("the child processes stored no blob at all")
	}
	data := []byte("after the crashes")
	if _, err := s.Put(t.Context(), digest.FromBytes(data), bytes.NewReader(data)); err != nil {
		t.Fatalf("Put after crashes: %v", err)
	}
	t.Logf("%d blobs, %d open uploads after 8 kills", mustCount(t, s), s.OpenUploads())
}

func mustCount(t *testing.T, s *Store) int64 {
	count, _, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return count
}

// verifyStore opens the store at root, as a restarted process would, and
// checks that every file under blobs/ is a blob that hashes to its name, that
// Stats agrees, and that every upload session left over can be resumed.
func verifyStore(t *testing.T, root string) {
	t.Helper()
	s := openStore(t, root)
	var count, size int64
	err := filepath.WalkDir(filepath.Join(root, "blobs"), func(path string, e os.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(root, "blobs"), path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 || !isBlobName(digest.Algorithm(parts[0]), parts[1], parts[2]) {
			t.Errorf("file %s is not a blob", rel)
			return nil
		}
		want := digest.NewDigestFromEncoded(digest.Algorithm(parts[0]), parts[2])
		got, n := hashPath(t, path, want.Algorithm())
		if got != want {
			t.Errorf("blob %s hashes to %s (%d bytes)", want, got, n)
		}
		count++
		size += n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantStats(t, s, count, size)

	entries, err := os.ReadDir(filepath.Join(root, "uploads"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), ownerSuffix); ok {
			if _, err := os.Stat(filepath.Join(root, "uploads", id+dataSuffix)); err != nil {
				t.Errorf("%s in uploads/ after Open, without its session: %v", e.Name(), err)
			}
			continue
		}
		id, ok := strings.CutSuffix(e.Name(), dataSuffix)
		if !ok {
			t.Errorf("%s in uploads/ after Open: only sessions' files should be left", e.Name())
			continue
		}
		ids = append(ids, id)
	}
	if len(ids) != s.OpenUploads() {
		t.Errorf("%d sessions in uploads/, but OpenUploads() = %d", len(ids), s.OpenUploads())
	}
	for _, id := range ids {
		u, err := s.OpenUpload(t.Context(), id)
		if err != nil {
			t.Errorf("leftover session %s cannot be resumed: %v", id, err)
			continue
		}
		u.Close()
	}
}

func hashPath(t *testing.T, path string, alg digest.Algorithm) (digest.Digest, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var h hash.Hash = sha256.New()
	if alg == digest.SHA512 {
		h = sha512.New()
	}
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return digest.NewDigest(alg, h), n
}

// TestCrashChild is the process TestCrash kills: it writes random blobs until
// it is killed, mixing Put, multi-Append uploads, failed commits, cancelled
// and abandoned uploads, and deletes.
func TestCrashChild(t *testing.T) {
	root := os.Getenv(crashRootEnv)
	if root == "" {
		t.Skip("run by TestCrash")
	}
	s := openStore(t, root)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	var stored []digest.Digest
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		data := make([]byte, randomSize(rng))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		alg := digest.SHA256
		if rng.IntN(4) == 0 {
			alg = digest.SHA512
		}
		d := alg.FromBytes(data)
		switch op := rng.IntN(10); {
		case op < 4:
			if _, err := s.Put(t.Context(), d, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
		case op < 9:
			if !crashChildUpload(t, s, rng, data, d, op == 8) {
				continue
			}
		default:
			if len(stored) > 0 {
				if err := s.Delete(t.Context(), stored[rng.IntN(len(stored))]); err != nil {
					t.Fatal(err)
				}
			}
			continue
		}
		stored = append(stored, d)
	}
}

// crashChildUpload uploads data in several Appends and commits it, unless it
// abandons or cancels the upload; a wrong digest is tried first when
// mismatch is set. It reports whether d was stored.
func crashChildUpload(t *testing.T, s *Store, rng *rand.Rand, data []byte, d digest.Digest, mismatch bool) bool {
	ctx := t.Context()
	u, err := s.NewUpload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for rest := data; ; {
		n := rng.IntN(len(rest) + 1)
		if _, err := u.Append(ctx, bytes.NewReader(rest[:n])); err != nil {
			t.Fatal(err)
		}
		if rest = rest[n:]; len(rest) == 0 {
			break
		}
	}
	switch rng.IntN(20) {
	case 0:
		return false // abandoned: PurgeUploads would remove it
	case 1:
		if err := u.Cancel(ctx); err != nil {
			t.Fatal(err)
		}
		return false
	}
	if mismatch {
		if _, err := u.Commit(ctx, digest.FromString("wrong")); err == nil {
			t.Fatal("commit with a wrong digest succeeded")
		}
	}
	if _, err := u.Commit(ctx, d); err != nil {
		t.Fatal(err)
	}
	return true
}

// randomSize returns a blob size: mostly small, sometimes several chunks.
func randomSize(rng *rand.Rand) int {
	switch rng.IntN(4) {
	case 0:
		return rng.IntN(64)
	case 1, 2:
		return rng.IntN(256 << 10)
	default:
		return rng.IntN(3 * chunkSize)
	}
}
