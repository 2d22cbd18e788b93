package oci

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// DefaultMaxManifestBytes is the manifest size limit when Config leaves it 0.
const DefaultMaxManifestBytes = 4 << 20

// Config configures a Handler. Metadata and Blobs are required.
type Config struct {
	// Metadata stores repositories, manifests, tags and blob links.
	Metadata Metadata
	// Blobs stores blob content and upload sessions.
	Blobs BlobStore
	// Logger receives request failures; nil discards them.
	Logger *slog.Logger
	// MaxManifestBytes is the largest manifest accepted, in bytes (default
	// DefaultMaxManifestBytes). Larger manifests are refused with 413.
	MaxManifestBytes int64
	// SparseManifests accepts manifests whose blobs or child manifests are
	// not in the repository. When false, every distributable blob and child
	// manifest must be present before the manifest is pushed.
	SparseManifests bool
	// PublicURL, if set, is the base (scheme and host, e.g.
	// "https://registry.example.com") of the Location headers; otherwise
	// they are relative.
	PublicURL string

	// NodeID, in a cluster, names this node in the upload session IDs it
	// hands out; empty on a single node.
	NodeID string
	// Sessions forwards requests for other nodes' upload sessions; nil on
	// a single node.
	Sessions SessionRouter

	// Authorizer authenticates callers and checks their permissions; nil
	// leaves the registry open to anyone (tests only).
	Authorizer Authorizer
	// AppliedAuthorizer, in a cluster, authorizes callers on this node's
	// applied state, without a read index; Applied is that state. The
	// requests of a blob upload are authorized with them first, and with
	// Authorizer, on linearizable state, only if they refuse: see
	// authorize.
	AppliedAuthorizer Authorizer
	Applied           AppliedState

	// Cache, if set, fills the repositories of pull-through caches as
	// they are pulled.
	Cache PullThrough
}

// Handler serves the OCI distribution API under /v2/.
type Handler struct {
	meta             Metadata
	blobs            BlobStore
	nodeID           string
	sessions         SessionRouter
	log              *slog.Logger
	maxManifestBytes int64
	sparse           bool
	publicURL        string
	authz            Authorizer
	appliedAuthz     Authorizer
	applied          AppliedState
	cache            PullThrough
	routes           map[routeKind]methodTable
}

// endpoint handles one method of one route. It either writes a successful
// response and returns nil, or returns an error for the caller to write.
type endpoint func(w http.ResponseWriter, r *http.Request, rt route) error

// methodTable maps HTTP methods to endpoints.
type methodTable map[string]endpoint

// New returns a Handler for cfg.
func New(cfg Config) *Handler {
	h := &Handler{
		meta:             cfg.Metadata,
		blobs:            cfg.Blobs,
		nodeID:           cfg.NodeID,
		sessions:         cfg.Sessions,
		log:              cfg.Logger,
		maxManifestBytes: cfg.MaxManifestBytes,
		sparse:           cfg.SparseManifests,
		publicURL:        strings.TrimSuffix(cfg.PublicURL, "/"),
		authz:            cfg.Authorizer,
		appliedAuthz:     cfg.AppliedAuthorizer,
		applied:          cfg.Applied,
		cache:            cfg.Cache,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.maxManifestBytes <= 0 {
		h.maxManifestBytes = DefaultMaxManifestBytes
	}
	h.routes = map[routeKind]methodTable{
		routeBase:     {http.MethodGet: h.getBase, http.MethodHead: h.getBase},
		routeCatalog:  {http.MethodGet: h.getCatalog},
		routeTagsList: {http.MethodGet: h.getTags},
		routeManifest: {
			http.MethodGet:    h.getManifest,
			http.MethodHead:   h.getManifest,
			http.MethodPut:    h.putManifest,
			http.MethodDelete: h.deleteManifest,
		},
		routeBlob: {
			http.MethodGet:    h.getBlob,
			http.MethodHead:   h.headBlob,
			http.MethodDelete: h.deleteBlob,
		},
		routeUploadStart: {http.MethodPost: h.startUpload},
		routeUploadSession: {
			http.MethodGet:    h.getUpload,
			http.MethodPatch:  h.patchUpload,
			http.MethodPut:    h.putUpload,
			http.MethodDelete: h.deleteUpload,
		},
		routeReferrers: {http.MethodGet: h.getReferrers},
	}
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if err := h.dispatch(w, r); err != nil {
		h.writeError(w, r, err)
	}
}

// dispatch finds the endpoint for r, validates the repository name and
// runs the endpoint.
func (h *Handler) dispatch(w http.ResponseWriter, r *http.Request) error {
	if err := checkPath(r.URL.Path); err != nil {
		return err
	}
	rt := parseRoute(r.URL.Path)
	methods, ok := h.routes[rt.kind]
	if !ok {
		return newError(http.StatusNotFound, CodeUnsupported,
			"no OCI distribution API endpoint at %s", r.URL.Path)
	}
	ep, ok := methods[r.Method]
	if !ok {
		allowed := slices.Sorted(maps.Keys(methods))
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return newError(http.StatusMethodNotAllowed, CodeUnsupported,
			"method %s is not supported on this endpoint; use %s", r.Method, strings.Join(allowed, ", "))
	}
	if rt.kind != routeBase && rt.kind != routeCatalog {
		if err := validateName(rt.name); err != nil {
			return err
		}
	}
	r, err := h.authorize(r, rt)
	if err != nil {
		return err
	}
	if rt.kind == routeUploadSession {
		if adopted, err := h.adoptSession(w, r, rt, ep); adopted || err != nil {
			return err
		}
		if proxied, err := h.proxySession(w, r, rt); proxied || err != nil {
			return err
		}
	}
	return ep(w, r, rt)
}

// getBase answers the API version check.
func (h *Handler) getBase(w http.ResponseWriter, r *http.Request, _ route) error {
	return writeJSON(w, r, http.StatusOK, "application/json", struct{}{})
}

// location returns the URL of path for a Location header.
func (h *Handler) location(path string) string {
	return h.publicURL + path
}

// writeJSON answers with v encoded as JSON. It writes nothing if v cannot
// be encoded, so the caller can still answer with the error.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, contentType string, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s response: %w", contentType, err)
	}
	writeBody(w, r, status, contentType, body)
	return nil
}

// writeBody answers with body, omitting it for HEAD requests.
func writeBody(w http.ResponseWriter, r *http.Request, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
