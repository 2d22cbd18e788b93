package peer

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

// PathPrefix is the URL path under which a Server answers.
const PathPrefix = "/internal/blobs/"

// Server serves the local store's blobs to peers and stores the blobs peers
// push to it.
type Server struct {
	store  *blobstore.Store
	logger *slog.Logger
	relay  Relay // nil: sessions are not passed on

	mu      sync.Mutex
	ingests map[digest.Digest]chan struct{} // PUTs storing a blob; closed when done
}

// NewServer returns a Server for store. A nil logger discards messages.
func NewServer(store *blobstore.Store, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{store: store, logger: logger, ingests: map[digest.Digest]chan struct{}{}}
}

// RelayTo makes the Server pass the bytes of mirror streams on down the
// chains they name, through r; without it the chains are ignored. Call it
// before Register.
func (s *Server) RelayTo(r Relay) { s.relay = r }

// Register mounts the Server's routes on mux, under PathPrefix and at
// MirrorPath.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("PUT "+PathPrefix+"{digest}", s.put)
	mux.HandleFunc("GET "+PathPrefix+"{digest}", s.get) // GET patterns match HEAD too
	mux.HandleFunc("POST "+MirrorPath, s.receiveMirror)
}

// put stores the request body as a blob, verified and fsynced before it
// answers 201. A blob already held is acknowledged without reading the body,
// which saves the transfer for clients that send Expect: 100-continue; it
// counts as stored again (Touch), since the pusher is about to record this
// node as holding it and a node's sweep of copies it no longer holds spares
// recently stored ones.
//
// Only one PUT of a digest is stored at a time: another one that arrives
// meanwhile (the uploading node's copy and the leader's repair of the same
// fresh blob, say) waits without reading its body, then answers 200 if the
// first stored the blob, or stores it itself if the first failed.
func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	d := digest.Digest(r.PathValue("digest"))
	for {
		if held, err := s.store.Touch(r.Context(), d); err == nil && held {
			w.WriteHeader(http.StatusOK)
			return
		}
		done, first := s.beginIngest(d)
		if first {
			s.ingest(w, r, d, done)
			return
		}
		select {
		case <-done:
		case <-r.Context().Done():
			return
		}
	}
}

// beginIngest returns the channel of the ingest of d in progress and false,
// or, if there is none, registers a new one and returns it with true.
func (s *Server) beginIngest(d digest.Digest) (chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if done, ok := s.ingests[d]; ok {
		return done, false
	}
	done := make(chan struct{})
	s.ingests[d] = done
	return done, true
}

// ingest stores the body of r as blob d and ends the ingest done.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request, d digest.Digest, done chan struct{}) {
	defer func() {
		s.mu.Lock()
		delete(s.ingests, d)
		s.mu.Unlock()
		close(done)
	}()
	if _, err := s.store.Put(r.Context(), d, r.Body); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// get serves a stored blob with Range support; ServeContent uses sendfile
// where the connection allows it.
func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	d := digest.Digest(r.PathValue("digest"))
	f, err := s.store.Open(r.Context(), d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("ETag", `"`+string(d)+`"`)
	http.ServeContent(w, r, "", time.Time{}, f)
}

// fail answers a request that failed with err.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	level := slog.LevelDebug
	// Not a full disk either: the disk watcher logs that once.
	if code >= http.StatusInternalServerError && code != http.StatusInsufficientStorage && r.Context().Err() == nil { // not just a client gone
		level = slog.LevelError
	}
	s.logger.Log(r.Context(), level, "peer blob request failed",
		"method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	http.Error(w, err.Error(), code)
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, blobstore.ErrBlobUnknown):
		return http.StatusNotFound
	case errors.Is(err, blobstore.ErrDigestMismatch), errors.Is(err, blobstore.ErrUnsupportedDigest):
		return http.StatusBadRequest
	case diskspace.IsFull(err):
		return http.StatusInsufficientStorage
	default:
		return http.StatusInternalServerError
	}
}
