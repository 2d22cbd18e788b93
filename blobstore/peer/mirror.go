package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// MirrorPath is where a Server takes mirrored uploads: another node streams
// a client's upload here while the client is still sending it, as one
// request: POST MirrorPath with the bytes as its body and the digest in a
// DigestTrailer once they have all been sent. The Server stores them in an
// upload session of its own, verifies them against the digest, fsyncs them
// and answers 201; a stream that breaks, or whose digest is missing or does
// not match, stores nothing and leaves no session behind.
//
// One request per copy, rather than a session started, appended to and
// committed in three: the stream starts as soon as the client's first bytes
// arrive, without waiting for a session to be created, and the commit
// follows the last byte without another round trip.
const MirrorPath = "/internal/mirror"

// DigestTrailer is the trailer of a mirror stream that names the digest of
// the bytes it carried. It is a trailer because the sender learns the digest
// only when its client commits the upload, after the last byte.
const DigestTrailer = "Wharf-Digest"

// RelayHeader on a mirror stream names the nodes, by ID and
// comma-separated, that the receiving node passes the bytes on to while
// they arrive: the first gets them from it, with the rest in its own
// RelayHeader (chain replication).
const RelayHeader = "Wharf-Relay"

// maxRelay bounds the chain a stream may name: a cluster keeps at most this
// many copies more than the first.
const maxRelay = 15

// Relay passes the bytes of mirror streams that peers send here on to
// further nodes while they arrive. None of its methods may fail or block
// the stream.
type Relay interface {
	// Relaying is called, while the caller holds upload u, before bytes
	// are appended to it; chain lists the IDs of the nodes to pass them
	// to, in order. The returned function is called whenever more bytes
	// may have arrived.
	Relaying(ctx context.Context, u *blobstore.Upload, chain []string) (progress func())
	// RelayCommitting is called just before session id commits here as
	// blob d of size bytes, so that the relay's next node can commit its
	// copy at the same time; RelayCommitted or RelayCancelled follows.
	RelayCommitting(id string, d digest.Digest, size int64)
	// RelayCommitted is called once session id is stored here as blob d
	// of size bytes: the relay commits down the chain, in the background.
	RelayCommitted(id string, d digest.Digest, size int64)
	// RelayCancelled reports that session id ended without a blob.
	RelayCancelled(id string)
}

// parseNodeList parses a RelayHeader value: node IDs (ASCII letters,
// digits, '-' and '_', as wharf's are), comma-separated.
func parseNodeList(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	ids := strings.Split(v, ",")
	if len(ids) > maxRelay {
		return nil, fmt.Errorf("%d node IDs, at most %d", len(ids), maxRelay)
	}
	for _, id := range ids {
		if !validNodeID(id) {
			return nil, fmt.Errorf("%q is not a node ID", id)
		}
	}
	return ids, nil
}

func validNodeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !ok {
			return false
		}
	}
	return true
}

// receiveMirror stores a mirror stream (see MirrorPath) as a blob.
func (s *Server) receiveMirror(w http.ResponseWriter, r *http.Request) {
	chain, err := parseNodeList(r.Header.Get(RelayHeader))
	if err != nil {
		http.Error(w, "bad "+RelayHeader+" header: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	u, err := s.store.NewUpload(ctx)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer s.release(r, u)
	stored := false
	defer func() {
		if !stored {
			s.dropMirror(r, u)
		}
	}()
	var body io.Reader = r.Body
	if len(chain) > 0 && s.relay != nil {
		progress := s.relay.Relaying(ctx, u, chain)
		defer progress()
		body = blobstore.ProgressReader(body, progress)
	}
	if _, err := u.Append(ctx, body); err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := digest.Parse(r.Trailer.Get(DigestTrailer))
	if err != nil {
		http.Error(w, "a mirror stream must end with a "+DigestTrailer+" trailer naming its digest: "+err.Error(),
			http.StatusBadRequest)
		return
	}
	size := u.Size()
	if s.relay != nil {
		s.relay.RelayCommitting(u.ID(), d, size)
	}
	if _, err := u.Commit(ctx, d); err != nil {
		s.fail(w, r, err)
		return
	}
	stored = true
	if s.relay != nil {
		s.relay.RelayCommitted(u.ID(), d, size)
	}
	w.WriteHeader(http.StatusCreated)
}

// dropMirror ends the session of a mirror stream that stored nothing, and
// its relay.
func (s *Server) dropMirror(r *http.Request, u *blobstore.Upload) {
	if s.relay != nil {
		s.relay.RelayCancelled(u.ID())
	}
	if err := u.Cancel(context.WithoutCancel(r.Context())); err != nil {
		s.logger.DebugContext(r.Context(), "drop mirror session", "upload", u.ID(), "err", err)
	}
}

func (s *Server) release(r *http.Request, u *blobstore.Upload) {
	if err := u.Close(); err != nil {
		s.logger.DebugContext(r.Context(), "release peer upload", "upload", u.ID(), "err", err)
	}
}

// Mirror streams r to the peer at baseURL as a new blob (see MirrorPath),
// and returns once the peer has verified it against the digest that digest
// returns, which it calls when r has ended, and stored it. relay names the
// nodes the peer passes the bytes on to, in order (RelayHeader). Cancelling
// ctx breaks the stream, and the peer stores nothing.
func Mirror(ctx context.Context, client *http.Client, baseURL string, relay []string, r io.Reader, digestOf func() digest.Digest) error {
	target := strings.TrimSuffix(baseURL, "/") + MirrorPath
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	if err != nil {
		return fmt.Errorf("mirror to %s: %w", baseURL, err)
	}
	req.Trailer = http.Header{DigestTrailer: nil}
	req.Body = io.NopCloser(&trailingReader{r: r, trailer: req.Trailer, digestOf: digestOf})
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	if len(relay) > 0 {
		req.Header.Set(RelayHeader, strings.Join(relay, ","))
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("mirror to %s: %w", baseURL, err)
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("mirror to %s: %w", baseURL, statusError(resp))
	}
	return nil
}

// trailingReader reads r and, once r has ended, sets the digest trailer.
type trailingReader struct {
	r        io.Reader
	trailer  http.Header
	digestOf func() digest.Digest
}

func (t *trailingReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if errors.Is(err, io.EOF) {
		t.trailer.Set(DigestTrailer, t.digestOf().String())
	}
	return n, err
}
