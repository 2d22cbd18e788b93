package peer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// mirrorPeer is a Server on a test listener: over HTTP/1.1 (chunked bodies,
// trailers after the last chunk) or over HTTP/2 with TLS, as the cluster
// listener serves it.
type mirrorPeer struct {
	store  *blobstore.Store
	url    string
	client *http.Client
}

func newMirrorPeer(t *testing.T, http2 bool, relay Relay) *mirrorPeer {
	t.Helper()
	store, err := blobstore.Open(blobstore.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv := NewServer(store, nil)
	if relay != nil {
		srv.RelayTo(relay)
	}
	srv.Register(mux)
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if http2 && r.ProtoMajor != 2 {
			http.Error(w, "the test expects HTTP/2, got "+r.Proto, http.StatusHTTPVersionNotSupported)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	if http2 {
		hs.EnableHTTP2 = true
		hs.StartTLS()
	} else {
		hs.Start()
	}
	t.Cleanup(hs.Close)
	return &mirrorPeer{store: store, url: hs.URL, client: hs.Client()}
}

// waitNoSessions waits until the peer has no upload session open.
func (p *mirrorPeer) waitNoSessions(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.store.OpenUploads() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d upload sessions still open", p.store.OpenUploads())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func forEachProtocol(t *testing.T, f func(t *testing.T, http2 bool)) {
	for _, http2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if http2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) { f(t, http2) })
	}
}

// A mirror stream stores its bytes as the blob its trailer names, and
// leaves no session behind.
func TestMirrorStoresTheBlob(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, http2 bool) {
		p := newMirrorPeer(t, http2, nil)
		ctx := context.Background()
		blob := bytes.Repeat([]byte("wharf mirror "), 100_000)
		d := digest.FromBytes(blob)
		// The digest is asked for only once the body has ended.
		var asked bool
		r := &endReader{r: bytes.NewReader(blob)}
		err := Mirror(ctx, p.client, p.url, nil, r, func() digest.Digest {
			asked = true
			if !r.ended {
				t.Error("the digest was asked for before the body ended")
			}
			return d
		})
		if err != nil {
			t.Fatal(err)
		}
		if !asked {
			t.Fatal("the digest was never asked for")
		}
		if size, err := p.store.Stat(ctx, d); err != nil || size != int64(len(blob)) {
			t.Fatalf("stored blob: size %d, %v", size, err)
		}
		p.waitNoSessions(t)
	})
}

// endReader records that its reader has ended.
type endReader struct {
	r     io.Reader
	ended bool
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.ended = true
	}
	return n, err
}

// A stream whose bytes do not match its digest, or that ends without one,
// stores nothing and leaves no session behind.
func TestMirrorRefusesWrongOrMissingDigest(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, http2 bool) {
		p := newMirrorPeer(t, http2, nil)
		ctx := context.Background()
		blob := []byte("the bytes sent")
		wrong := digest.FromString("other bytes")
		err := Mirror(ctx, p.client, p.url, nil, bytes.NewReader(blob), func() digest.Digest { return wrong })
		if se, ok := errors.AsType[*StatusError](err); !ok || se.StatusCode != http.StatusBadRequest {
			t.Fatalf("wrong digest: %v, want 400", err)
		}
		for _, d := range []digest.Digest{wrong, digest.FromBytes(blob)} {
			if _, err := p.store.Stat(ctx, d); !errors.Is(err, blobstore.ErrBlobUnknown) {
				t.Errorf("a refused stream stored %s: %v", d, err)
			}
		}
		// A plain POST: no trailer.
		resp, err := p.client.Post(p.url+MirrorPath, "application/octet-stream", bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), DigestTrailer) {
			t.Fatalf("stream without a digest: %d %q, want 400 naming %s", resp.StatusCode, msg, DigestTrailer)
		}
		p.waitNoSessions(t)
	})
}

// A stream that breaks (the sender cancels, or its reader fails) stores
// nothing and leaves no session behind.
func TestMirrorBrokenStreamStoresNothing(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, http2 bool) {
		p := newMirrorPeer(t, http2, nil)
		d := digest.FromString("never complete")

		ctx, cancel := context.WithCancel(context.Background())
		stalled := &stallingReader{first: bytes.Repeat([]byte("x"), 64<<10), sent: make(chan struct{}), stop: ctx.Done()}
		done := make(chan error, 1)
		go func() {
			done <- Mirror(ctx, p.client, p.url, nil, stalled, func() digest.Digest { return d })
		}()
		<-stalled.sent
		deadline := time.Now().Add(5 * time.Second)
		for p.store.OpenUploads() == 0 { // the peer is receiving
			if time.Now().After(deadline) {
				t.Fatal("the peer never opened a session")
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; err == nil {
			t.Fatal("a cancelled stream reported success")
		}
		p.waitNoSessions(t)

		failing := io.MultiReader(bytes.NewReader([]byte("some bytes")), errReader{errors.New("disk read failed")})
		if err := Mirror(context.Background(), p.client, p.url, nil, failing, func() digest.Digest { return d }); err == nil {
			t.Fatal("a stream whose reader failed reported success")
		}
		p.waitNoSessions(t)
		if _, err := p.store.Stat(context.Background(), d); !errors.Is(err, blobstore.ErrBlobUnknown) {
			t.Fatalf("a broken stream stored something: %v", err)
		}
	})
}

// stallingReader returns first, then blocks until stop is closed (the
// sender's context ends), as a mirror waiting for its client's next bytes.
type stallingReader struct {
	first []byte
	sent  chan struct{}
	stop  <-chan struct{}
	once  sync.Once
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if len(s.first) > 0 {
		n := copy(p, s.first)
		s.first = s.first[n:]
		return n, nil
	}
	s.once.Do(func() { close(s.sent) })
	<-s.stop
	return 0, context.Canceled
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestMirrorRejectsBadRequests(t *testing.T) {
	p := newMirrorPeer(t, false, nil)
	for _, tc := range []struct {
		method string
		hdr    map[string]string
		want   int
	}{
		{http.MethodGet, nil, http.StatusMethodNotAllowed},
		{http.MethodPut, nil, http.StatusMethodNotAllowed},
		{http.MethodPost, map[string]string{RelayHeader: "a,,b"}, http.StatusBadRequest},
		{http.MethodPost, map[string]string{RelayHeader: "node/../x"}, http.StatusBadRequest},
		{http.MethodPost, map[string]string{RelayHeader: strings.Repeat("n,", maxRelay) + "n"}, http.StatusBadRequest},
	} {
		req, _ := http.NewRequest(tc.method, p.url+MirrorPath, strings.NewReader("data"))
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %v: %d, want %d", tc.method, tc.hdr, resp.StatusCode, tc.want)
		}
	}
	p.waitNoSessions(t)
}

// recordingRelay is a Relay that records what the Server tells it.
type recordingRelay struct {
	mu         sync.Mutex
	chains     [][]string
	progress   int
	committing []digest.Digest
	committed  []digest.Digest
	cancelled  []string
}

func (r *recordingRelay) Relaying(_ context.Context, _ *blobstore.Upload, chain []string) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.chains = append(r.chains, chain)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.progress++
	}
}

func (r *recordingRelay) RelayCommitting(_ string, d digest.Digest, _ int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.committing = append(r.committing, d)
}

func (r *recordingRelay) RelayCommitted(_ string, d digest.Digest, _ int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.committed = append(r.committed, d)
}

func (r *recordingRelay) RelayCancelled(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancelled = append(r.cancelled, id)
}

// A stream naming a relay chain hands it to the Server's Relay, which hears
// of the bytes as they arrive, of the commit before and after it, and of a
// stream that stored nothing; a stream without one does not involve the
// Relay.
func TestMirrorRelay(t *testing.T) {
	forEachProtocol(t, func(t *testing.T, http2 bool) {
		relay := &recordingRelay{}
		p := newMirrorPeer(t, http2, relay)
		ctx := context.Background()
		blob := bytes.Repeat([]byte("relayed "), 64<<10)
		d := digest.FromBytes(blob)
		chain := []string{"NODEB", "node-c_2"}
		if err := Mirror(ctx, p.client, p.url, chain, bytes.NewReader(blob), func() digest.Digest { return d }); err != nil {
			t.Fatal(err)
		}
		relay.mu.Lock()
		if len(relay.chains) != 1 || !slices.Equal(relay.chains[0], chain) {
			t.Errorf("chains %v, want one: %v", relay.chains, chain)
		}
		if relay.progress < 2 {
			t.Errorf("progress called %d times, want at least 2 (before a read, after the body)", relay.progress)
		}
		if !slices.Equal(relay.committing, []digest.Digest{d}) {
			t.Errorf("commits started %v, want %s", relay.committing, d)
		}
		if !slices.Equal(relay.committed, []digest.Digest{d}) {
			t.Errorf("commits %v, want %s", relay.committed, d)
		}
		relay.mu.Unlock()

		// A relayed stream with a wrong digest: the relay hears it ended.
		wrong := digest.FromString("not these bytes")
		if err := Mirror(ctx, p.client, p.url, chain, bytes.NewReader(blob), func() digest.Digest { return wrong }); err == nil {
			t.Fatal("a wrong digest was stored")
		}
		if err := Mirror(ctx, p.client, p.url, nil, bytes.NewReader([]byte("x")), func() digest.Digest { return digest.FromString("x") }); err != nil {
			t.Fatal(err)
		}
		relay.mu.Lock()
		defer relay.mu.Unlock()
		if len(relay.chains) != 2 {
			t.Errorf("chains %v: want the two relayed streams only", relay.chains)
		}
		if len(relay.cancelled) != 1 {
			t.Errorf("cancels %v, want the refused stream's", relay.cancelled)
		}
		// The Server reports every commit; the relay knows which it relays.
		if want := []digest.Digest{d, digest.FromString("x")}; !slices.Equal(relay.committed, want) {
			t.Errorf("commits %v, want %v: not the refused stream's", relay.committed, want)
		}
	})
}

// FuzzParseNodeList: a relay chain parses only into valid node IDs, at most
// maxRelay of them, that join back into the header it came from.
func FuzzParseNodeList(f *testing.F) {
	for _, seed := range []string{"", "a", "node-1,node_2", "a,,b", "../x", strings.Repeat("n,", maxRelay) + "n", "é,ü"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ids, err := parseNodeList(v)
		if err != nil {
			if ids != nil {
				t.Fatalf("%q: error %v with IDs %q", v, err, ids)
			}
			return
		}
		if len(ids) > maxRelay {
			t.Fatalf("%q: %d IDs, at most %d allowed", v, len(ids), maxRelay)
		}
		for _, id := range ids {
			if !validNodeID(id) {
				t.Fatalf("%q: invalid node ID %q accepted", v, id)
			}
		}
		if strings.Join(ids, ",") != v {
			t.Fatalf("%q parsed as %q", v, ids)
		}
	})
}
