package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// UploadPathPrefix is the URL path under which a Server answers upload
// sessions: another node mirrors a client's upload here while the client
// is still sending it.
const UploadPathPrefix = "/internal/uploads/"

// OffsetHeader carries the byte offset at which a PATCH's body starts, and
// in answers the session's size.
const OffsetHeader = "Upload-Offset"

// RelayHeader on a PATCH names the nodes, by ID and comma-separated, that
// the receiving node passes the session's bytes on to while they arrive:
// the first gets them from it, with the rest in its own RelayHeader (chain
// replication).
const RelayHeader = "Wharf-Relay"

// maxRelay bounds the chain a PATCH may name: a cluster keeps at most this
// many copies more than the first.
const maxRelay = 15

// Relay passes the bytes of upload sessions that peers send here on to
// further nodes while they arrive. None of its methods may fail or block
// the session.
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

// registerUploads mounts the upload session routes on mux.
func (s *Server) registerUploads(mux *http.ServeMux) {
	mux.HandleFunc("POST "+UploadPathPrefix, s.startUpload)
	mux.HandleFunc("PATCH "+UploadPathPrefix+"{id}", s.patchUpload)
	mux.HandleFunc("PUT "+UploadPathPrefix+"{id}", s.commitUpload)
	mux.HandleFunc("DELETE "+UploadPathPrefix+"{id}", s.cancelUpload)
}

// startUpload starts a session in the local store: 201 with its path in
// Location. Sessions nobody finishes are purged like clients' abandoned ones.
func (s *Server) startUpload(w http.ResponseWriter, r *http.Request) {
	u, err := s.store.NewUpload(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer s.release(r, u)
	w.Header().Set("Location", UploadPathPrefix+u.ID())
	w.Header().Set(OffsetHeader, "0")
	w.WriteHeader(http.StatusCreated)
}

// patchUpload appends the body to a session; OffsetHeader must equal the
// session's size (else 416, with the size in OffsetHeader). The body is
// hashed as it streams to disk, and passed on to the nodes RelayHeader
// names. 204 with the new size.
func (s *Server) patchUpload(w http.ResponseWriter, r *http.Request) {
	off, err := strconv.ParseInt(r.Header.Get(OffsetHeader), 10, 64)
	if err != nil || off < 0 {
		http.Error(w, "a PATCH needs a non-negative "+OffsetHeader+" header", http.StatusBadRequest)
		return
	}
	chain, err := parseNodeList(r.Header.Get(RelayHeader))
	if err != nil {
		http.Error(w, "bad "+RelayHeader+" header: "+err.Error(), http.StatusBadRequest)
		return
	}
	u, ok := s.openUpload(w, r)
	if !ok {
		return
	}
	defer s.release(r, u)
	if off != u.Size() {
		w.Header().Set(OffsetHeader, strconv.FormatInt(u.Size(), 10))
		http.Error(w, fmt.Sprintf("chunk starts at %d but the session has %d bytes", off, u.Size()),
			http.StatusRequestedRangeNotSatisfiable)
		return
	}
	var body io.Reader = r.Body
	if len(chain) > 0 && s.relay != nil {
		progress := s.relay.Relaying(r.Context(), u, chain)
		defer progress()
		body = blobstore.ProgressReader(body, progress)
	}
	if _, err := u.Append(r.Context(), body); err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set(OffsetHeader, strconv.FormatInt(u.Size(), 10))
	w.WriteHeader(http.StatusNoContent)
}

// commitUpload commits a session as blob ?digest= of ?size= bytes:
// verified, fsynced and renamed into the store (201); the relay, if any,
// commits down its chain at the same time, and records it after the answer. A size or digest that does not
// match answers 400 and stores nothing.
func (s *Server) commitUpload(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	d, err := digest.Parse(q.Get("digest"))
	if err != nil {
		http.Error(w, "invalid digest: "+err.Error(), http.StatusBadRequest)
		return
	}
	size, err := strconv.ParseInt(q.Get("size"), 10, 64)
	if err != nil || size < 0 {
		http.Error(w, "a commit needs ?size=", http.StatusBadRequest)
		return
	}
	u, ok := s.openUpload(w, r)
	if !ok {
		return
	}
	defer s.release(r, u)
	if u.Size() != size {
		http.Error(w, fmt.Sprintf("%v: the session has %d bytes, not %d", blobstore.ErrDigestMismatch, u.Size(), size),
			http.StatusBadRequest)
		return
	}
	if s.relay != nil {
		s.relay.RelayCommitting(u.ID(), d, size)
	}
	if _, err := u.Commit(r.Context(), d); err != nil {
		if s.relay != nil {
			s.relay.RelayCancelled(u.ID())
		}
		s.fail(w, r, err)
		return
	}
	if s.relay != nil {
		s.relay.RelayCommitted(u.ID(), d, size)
	}
	w.WriteHeader(http.StatusCreated)
}

// cancelUpload ends a session and removes its data: 204.
func (s *Server) cancelUpload(w http.ResponseWriter, r *http.Request) {
	u, ok := s.openUpload(w, r)
	if !ok {
		return
	}
	defer s.release(r, u)
	if s.relay != nil {
		s.relay.RelayCancelled(u.ID())
	}
	if err := u.Cancel(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// openUpload opens the session named by the path, or answers 404.
func (s *Server) openUpload(w http.ResponseWriter, r *http.Request) (*blobstore.Upload, bool) {
	u, err := s.store.OpenUpload(r.Context(), r.PathValue("id"))
	if errors.Is(err, blobstore.ErrUploadUnknown) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return nil, false
	}
	if err != nil {
		s.fail(w, r, err)
		return nil, false
	}
	return u, true
}

func (s *Server) release(r *http.Request, u *blobstore.Upload) {
	if err := u.Close(); err != nil {
		s.logger.DebugContext(r.Context(), "release peer upload", "upload", u.ID(), "err", err)
	}
}

// UploadSession is an upload session on a peer, as its client sees it.
type UploadSession struct {
	client *http.Client
	url    string // of the session
	// Relay lists the IDs of the nodes the peer passes the bytes of
	// Append on to (RelayHeader); empty for none.
	Relay []string
}

// StartUpload starts an upload session on the peer at baseURL.
func StartUpload(ctx context.Context, client *http.Client, baseURL string) (*UploadSession, error) {
	base := strings.TrimSuffix(baseURL, "/")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+UploadPathPrefix, http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("start upload on %s: %w", baseURL, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("start upload on %s: %w", baseURL, err)
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("start upload on %s: %w", baseURL, statusError(resp))
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, UploadPathPrefix) || len(loc) == len(UploadPathPrefix) {
		return nil, fmt.Errorf("start upload on %s: bad Location %q", baseURL, loc)
	}
	return &UploadSession{client: client, url: base + loc}, nil
}

// Append streams r to the session, starting at byte offset, until r ends,
// and returns the session's size the peer reports.
func (u *UploadSession) Append(ctx context.Context, offset int64, r io.Reader) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u.url, io.NopCloser(r))
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", u.url, err)
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(OffsetHeader, strconv.FormatInt(offset, 10))
	if len(u.Relay) > 0 {
		req.Header.Set(RelayHeader, strings.Join(u.Relay, ","))
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("append to %s: %w", u.url, err)
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return 0, fmt.Errorf("append to %s: %w", u.url, statusError(resp))
	}
	size, err := strconv.ParseInt(resp.Header.Get(OffsetHeader), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("append to %s: bad %s in answer: %w", u.url, OffsetHeader, err)
	}
	return size, nil
}

// Commit asks the peer to verify the session's bytes as blob d of size
// bytes and store them; it returns once the blob is fsynced there.
func (u *UploadSession) Commit(ctx context.Context, d digest.Digest, size int64) error {
	q := url.Values{"digest": {d.String()}, "size": {strconv.FormatInt(size, 10)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.url+"?"+q.Encode(), http.NoBody)
	if err != nil {
		return fmt.Errorf("commit %s at %s: %w", d, u.url, err)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return fmt.Errorf("commit %s at %s: %w", d, u.url, err)
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("commit %s at %s: %w", d, u.url, statusError(resp))
	}
	return nil
}

// Cancel ends the session on the peer; a session the peer no longer knows
// counts as cancelled.
func (u *UploadSession) Cancel(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, u.url, http.NoBody)
	if err != nil {
		return fmt.Errorf("cancel %s: %w", u.url, err)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return fmt.Errorf("cancel %s: %w", u.url, err)
	}
	defer drainAndClose(resp.Body)
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("cancel %s: %w", u.url, statusError(resp))
	}
	return nil
}
