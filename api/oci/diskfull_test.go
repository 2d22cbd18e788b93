package oci

import (
	"bytes"
	"io/fs"
	"net/http"
	"sync"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/cluster"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

const mib = 1 << 20

// testDisk is a 1000 MiB filesystem, with a 100 MiB reserve and a 25 MiB
// floor, whose free space the test sets.
type testDisk struct {
	t       *testing.T
	watcher *diskspace.Watcher
	mu      sync.Mutex
	free    int64
}

func newTestDisk(t *testing.T) *testDisk {
	t.Helper()
	d := &testDisk{t: t, free: 500 * mib}
	w, err := diskspace.New(diskspace.Config{
		Dir:     t.TempDir(),
		Reserve: diskspace.Bytes(100 * mib),
		Floor:   diskspace.Bytes(25 * mib),
		Statfs: func(string) (diskspace.Usage, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			return diskspace.Usage{Free: d.free, Total: 1000 * mib}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	d.watcher = w
	return d
}

// set makes the disk have free bytes free, and the watcher measure it.
func (d *testDisk) set(free int64) {
	d.t.Helper()
	d.mu.Lock()
	d.free = free
	d.mu.Unlock()
	if err := d.watcher.Refresh(); err != nil {
		d.t.Fatal(err)
	}
}

// newDiskServer is a test server whose blob store and metadata node ask
// disk for room.
func newDiskServer(t *testing.T, disk *testDisk) *testServer {
	t.Helper()
	node := startNode(t, func(c *cluster.Config) { c.DiskSpace = disk.watcher })
	return newTestServerOn(t, blobstore.Config{Root: t.TempDir(), Space: disk.watcher}, node)
}

// TestPushBelowTheReserve is the regression test of issue 11, finding 6:
// with the disk below its reserve, every way of sending blob bytes answers
// 507 with the OCI error envelope, while deletions and small metadata
// writes keep working, and pushes work again once space is freed.
func TestPushBelowTheReserve(t *testing.T) {
	disk := newTestDisk(t)
	ts := newDiskServer(t, disk)
	manifest, md := ts.pushImage("repo", "v1")
	open := ts.startUpload("repo")
	chunk := []byte("some bytes of a layer")
	chunkDigest := digest.FromBytes(chunk)

	disk.set(80 * mib)
	refused := []request{
		{method: http.MethodPost, path: "/v2/repo/blobs/uploads/"},
		{method: http.MethodPost, path: "/v2/repo/blobs/uploads/?digest=" + chunkDigest.String(), body: chunk},
		{method: http.MethodPost, path: "/v2/repo/blobs/uploads/?digest=" + chunkDigest.String(), body: chunk, chunked: true},
		{method: http.MethodPatch, path: open, body: chunk},
	}
	for _, req := range refused {
		resp := ts.do(req)
		wantError(t, resp, http.StatusInsufficientStorage, CodeInsufficientStorage)
		if !bytes.Contains(resp.body, []byte("disk is full")) {
			t.Errorf("%s %s: message does not say the disk is full: %s", req.method, req.path, resp.body)
		}
	}
	// The session that was refused bytes was dropped: its space is freed,
	// and the client starts again.
	wantError(t, ts.get(open), http.StatusNotFound, CodeBlobUploadUnknown)

	// What was pushed before still pulls, small metadata writes work, and
	// so do deletions.
	if got := ts.get("/v2/repo/manifests/v1"); got.status != http.StatusOK || !bytes.Equal(got.body, manifest) {
		t.Fatalf("pull below the reserve: %d %s", got.status, got.body)
	}
	ts.pushManifest("repo", "v2", "application/vnd.oci.image.manifest.v1+json", manifest)
	wantStatus(t, ts.do(request{method: http.MethodDelete, path: "/v2/repo/manifests/v2"}), http.StatusAccepted)
	wantStatus(t, ts.do(request{method: http.MethodDelete, path: "/v2/repo/manifests/" + md.String()}), http.StatusAccepted)

	disk.set(500 * mib)
	ts.pushImage("repo", "v3")
}

// TestDeletesBelowTheFloor checks that below the floor the registry still
// serves pulls and deletions, so that an operator can free space, and
// refuses every other write with 507.
func TestDeletesBelowTheFloor(t *testing.T) {
	disk := newTestDisk(t)
	ts := newDiskServer(t, disk)
	manifest, md := ts.pushImage("repo", "v1")
	layer := ts.pushBlob("repo", []byte("a layer"))
	ts.pushManifest("repo", "v2", "application/vnd.oci.image.manifest.v1+json", manifest)

	disk.set(10 * mib)
	wantError(t, ts.putManifest("repo", "v3", "application/vnd.oci.image.manifest.v1+json", manifest),
		http.StatusInsufficientStorage, CodeInsufficientStorage)
	wantError(t, ts.do(request{method: http.MethodPost, path: "/v2/other/blobs/uploads/?mount=" + layer.String() + "&from=repo"}),
		http.StatusInsufficientStorage, CodeInsufficientStorage)
	if got := ts.get("/v2/repo/manifests/v1"); got.status != http.StatusOK || !bytes.Equal(got.body, manifest) {
		t.Fatalf("pull below the floor: %d %s", got.status, got.body)
	}
	wantStatus(t, ts.do(request{method: http.MethodDelete, path: "/v2/repo/manifests/v2"}), http.StatusAccepted)
	wantStatus(t, ts.do(request{method: http.MethodDelete, path: "/v2/repo/manifests/" + md.String()}), http.StatusAccepted)
	wantStatus(t, ts.do(request{method: http.MethodDelete, path: "/v2/repo/blobs/" + layer.String()}), http.StatusAccepted)
	wantStatus(t, ts.do(request{method: http.MethodHead, path: "/v2/repo/manifests/" + md.String()}), http.StatusNotFound)

	disk.set(500 * mib)
	ts.pushImage("repo", "v4")
}

// TestChunksStopAtTheReserve pushes one chunk after the other without a
// new measurement in between: the bytes allowed count against free space,
// and the chunk that would go below the reserve is refused.
func TestChunksStopAtTheReserve(t *testing.T) {
	disk := newTestDisk(t)
	disk.set(104 * mib)
	ts := newDiskServer(t, disk)
	loc := ts.startUpload("repo")
	chunk := bytes.Repeat([]byte{'x'}, mib)
	var resp response
	for i := range 10 {
		resp = ts.do(request{method: http.MethodPatch, path: loc, body: chunk})
		if resp.status != http.StatusAccepted {
			if i < 3 {
				t.Fatalf("chunk %d refused with room above the reserve: %d %s", i, resp.status, resp.body)
			}
			break
		}
		loc = resp.header.Get("Location")
	}
	wantError(t, resp, http.StatusInsufficientStorage, CodeInsufficientStorage)
}

// enospcSpace lets every write through and then fails it as the
// filesystem would, to check that a real ENOSPC answers as a refusal does.
type enospcSpace struct{}

func (enospcSpace) Allow(n int64) error {
	if n == 0 {
		return nil
	}
	return &fs.PathError{Op: "write", Path: "uploads/x.data", Err: syscall.ENOSPC}
}

func (enospcSpace) Notice(error) {}

func TestENOSPCAnswers507(t *testing.T) {
	ts := newTestServerOn(t, blobstore.Config{Root: t.TempDir(), Space: enospcSpace{}}, startNode(t))
	content := []byte("a blob")
	resp := ts.do(request{method: http.MethodPost, path: "/v2/repo/blobs/uploads/?digest=" + digest.FromBytes(content).String(), body: content})
	wantError(t, resp, http.StatusInsufficientStorage, CodeInsufficientStorage)
	wantStatus(t, ts.do(request{method: http.MethodHead, path: "/v2/repo/blobs/" + digest.FromBytes(content).String()}), http.StatusNotFound)
}
