package peer

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
)

// PathPrefix is the URL path under which a Server answers.
const PathPrefix = "/internal/blobs/"

// Server serves the local store's blobs to peers and stores the blobs peers
// push to it.
type Server struct {
	store  *blobstore.Store
	logger *slog.Logger
}

// NewServer returns a Server for store. A nil logger discards messages.
func NewServer(store *blobstore.Store, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Server{store: store, logger: logger}
}

// Register mounts the Server's routes on mux, under PathPrefix.
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("PUT "+PathPrefix+"{digest}", s.put)
	mux.HandleFunc("GET "+PathPrefix+"{digest}", s.get) // GET patterns match HEAD too
}

// put stores the request body as a blob, verified and fsynced before it
// answers 201. A blob already held is acknowledged without reading the body,
// which saves the transfer for clients that send Expect: 100-continue.
func (s *Server) put(w http.ResponseWriter, r *http.Request) {
	d := digest.Digest(r.PathValue("digest"))
	if _, err := s.store.Stat(r.Context(), d); err == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
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
	if code >= http.StatusInternalServerError && r.Context().Err() == nil { // not just a client gone
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
	default:
		return http.StatusInternalServerError
	}
}
