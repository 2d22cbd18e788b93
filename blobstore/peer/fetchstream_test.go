package peer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// halfwayServer serves body as every blob: its first half at once, the
// rest once gate is closed (with cut, the connection drops then instead).
func halfwayServer(t *testing.T, body []byte, gate <-chan struct{}, cut bool) (string, *atomic.Int32) {
	t.Helper()
	var gets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gets.Add(1)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		half := len(body) / 2
		w.Write(body[:half])
		w.(http.Flusher).Flush()
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		if cut {
			panic(http.ErrAbortHandler)
		}
		w.Write(body[half:])
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &gets
}

// TestStreamGivesBytesBeforeTheDownloadEnds: a stream reads the bytes the
// holder has sent while the rest is still on its way, shares the download
// with a Fetch of the same blob, and ends (io.EOF) only once the whole
// blob is verified.
func TestStreamGivesBytesBeforeTheDownloadEnds(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	d := digest.FromBytes(body)
	gate := make(chan struct{})
	holder, gets := halfwayServer(t, body, gate, false)
	f, dir := newTestFetcher(t, 0)
	ctx := context.Background()
	s, err := f.Stream(ctx, d, []string{holder})
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len(body)/2)
	if _, err := io.ReadFull(s, first); err != nil {
		t.Fatalf("reading the first half while the rest has not been sent: %v", err)
	}
	fetched := make(chan error, 1)
	go func() {
		b, err := f.Fetch(ctx, d, []string{holder})
		if err == nil {
			err = b.Close()
		}
		fetched <- err
	}()
	waitFor(t, func() bool { return f.refs(d) == 2 })
	close(gate)
	rest, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("reading the rest: %v", err)
	}
	if !bytes.Equal(append(first, rest...), body) {
		t.Fatal("the stream's bytes are not the blob's")
	}
	if err := <-fetched; err != nil {
		t.Fatalf("a Fetch sharing the download: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := gets.Load(); n != 1 {
		t.Errorf("%d upstream GETs, want 1", n)
	}
	if files := fetchFiles(t, dir); len(files) != 0 {
		t.Errorf("files left behind: %q", files)
	}
}

// TestStreamOfCorruptBytesFails: the bytes a corrupt holder sends reach the
// stream, but its last Read fails instead of ending, so the caller aborts.
func TestStreamOfCorruptBytesFails(t *testing.T) {
	body := []byte("what the blob should hold")
	d := digest.FromBytes(body)
	f, _ := newTestFetcher(t, 0)
	s, err := f.Stream(context.Background(), d, []string{staticServer(t, http.StatusOK, "what the blob must not hold")})
	if err == nil { // else the download failed before the stream began
		defer s.Close()
		_, err = io.ReadAll(s)
	}
	if !errors.Is(err, ErrStreamBroken) || !errors.Is(err, blobstore.ErrDigestMismatch) {
		t.Fatalf("reading a corrupt blob: %v, want a broken stream and a digest mismatch", err)
	}
}

// TestStreamBreaksWhenTheDownloadStartsOver: a stream that got bytes from a
// holder that then failed breaks, while the download goes on from the
// next holder and a Fetch gets the blob intact.
func TestStreamBreaksWhenTheDownloadStartsOver(t *testing.T) {
	good := newTestPeer(t)
	body := bytes.Repeat([]byte("layer "), 10000)
	d := good.put(t, string(body))
	gate := make(chan struct{})
	failing, _ := halfwayServer(t, body, gate, true)
	f, _ := newTestFetcher(t, 0)
	ctx := context.Background()
	s, err := f.Stream(ctx, d, []string{failing, good.url})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := io.ReadFull(s, make([]byte, len(body)/2)); err != nil {
		t.Fatalf("the first half, from the first holder: %v", err)
	}
	close(gate) // it fails now
	if _, err := io.ReadAll(s); !errors.Is(err, ErrStreamBroken) {
		t.Fatalf("a stream whose holder failed: %v, want ErrStreamBroken", err)
	}
	b, err := f.Fetch(ctx, d, []string{failing, good.url})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := readAll(t, b.File()); got != string(body) {
		t.Fatal("the blob fetched after the restart is not intact")
	}
}
