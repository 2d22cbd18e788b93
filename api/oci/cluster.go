package oci

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/blobstore"
	"github.com/wharf-registry/wharf/cluster"
)

// BlobStore holds blob content and upload sessions, and makes stored
// blobs part of repositories; in a cluster (cluster/replication.Store) it
// also finds blobs that only peers hold, copies new ones to the nodes that
// should hold them, and makes a manifest wait until its blobs are durable
// on enough nodes. The handlers only stream bytes and answer.
type BlobStore interface {
	// Stat returns the size of a blob, or blobstore.ErrBlobUnknown.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open returns the blob's content as a file, for sendfile and Range.
	Open(ctx context.Context, d digest.Digest) (*os.File, error)
	// Stream returns the blob's content to read once from the start, and
	// its size: an *os.File when this node holds it, else bytes that are
	// verified as a whole, whose reader fails instead of ending when they
	// are not the blob's.
	Stream(ctx context.Context, d digest.Digest) (io.ReadCloser, int64, error)
	// Held reports whether the registry holds blob d, and its size,
	// whatever this node's disk holds: what a mount may link.
	Held(ctx context.Context, d digest.Digest) (size int64, ok bool, err error)
	// NewUpload starts an upload session on this node for repo; its
	// Commit links the blob into repo.
	NewUpload(ctx context.Context, repo string) (blobstore.Writer, error)
	// OpenUpload opens upload session id of this node, to commit into
	// repo, or returns blobstore.ErrUploadUnknown.
	OpenUpload(ctx context.Context, repo, id string) (blobstore.Writer, error)
	// Put stores r, of length bytes (negative: unknown), as blob d and
	// links it into repo.
	Put(ctx context.Context, repo string, d digest.Digest, r io.Reader, length int64) (int64, error)
	// Link links blob d, which the registry holds, into repo.
	Link(ctx context.Context, repo string, d digest.Digest, size int64) error
	// WaitDurable blocks until every blob in ds is durable on enough
	// nodes, or fails with an error that says which blob is not and why.
	// It must return when ctx ends.
	WaitDurable(ctx context.Context, ds []digest.Digest) error
}

// SessionRouter sends requests for upload sessions that another node holds
// to that node. An upload session lives on the node that started it; behind
// a load balancer its PATCH and PUT may arrive anywhere.
type SessionRouter interface {
	// Proxy returns a handler that streams a request to node nodeID and its
	// answer back, or false if no such node is reachable.
	Proxy(nodeID string) (http.Handler, bool)
}

// sessionSeparator joins a node ID and a local upload ID into the session ID
// clients see. Neither part contains it.
const sessionSeparator = "."

// sessionID is the ID clients see for a local upload session: it names this
// node when the handler runs in a cluster.
func (h *Handler) sessionID(u blobstore.Writer) string {
	if h.nodeID == "" {
		return u.ID()
	}
	return h.nodeID + sessionSeparator + u.ID()
}

// splitSessionID returns the node and local parts of a session ID. A
// single node's IDs have no node part.
func splitSessionID(id string) (node, local string) {
	if i := strings.LastIndex(id, sessionSeparator); i >= 0 {
		return id[:i], id[i+1:]
	}
	return "", id
}

// proxySession forwards r to the node holding the session it names, and
// reports whether it did. A session of an unknown or unreachable node is
// reported unknown, so that the client starts the blob again.
func (h *Handler) proxySession(w http.ResponseWriter, r *http.Request, rt route) (bool, error) {
	node, _ := splitSessionID(rt.arg)
	if node == "" || node == h.nodeID {
		return false, nil
	}
	if h.sessions == nil {
		return false, errUploadUnknown(rt.arg)
	}
	proxy, ok := h.sessions.Proxy(node)
	if !ok {
		return false, errUploadUnknown(rt.arg)
	}
	proxy.ServeHTTP(w, r)
	return true, nil
}

// errUploadUnknown answers a request for a session that does not exist.
func errUploadUnknown(id string) error {
	return errUploadUnknownAPI(id)
}

func errUploadUnknownAPI(id string) *apiError {
	return newError(http.StatusNotFound, CodeBlobUploadUnknown,
		"upload session %s not found: it was completed, cancelled or has expired; start a new upload", id).
		withDetail(map[string]string{"uuid": id})
}

// waitDurable waits until the blobs a manifest references are durable.
func (h *Handler) waitDurable(ctx context.Context, ds []digest.Digest) error {
	if len(ds) == 0 {
		return nil
	}
	err := h.blobs.WaitDurable(ctx, ds)
	if errors.Is(err, cluster.ErrNoQuorum) {
		return err // answered as "no quorum", which is what happened
	}
	if err != nil {
		return newError(http.StatusServiceUnavailable, CodeUnavailable,
			"the manifest's blobs are not yet stored on enough nodes (%v); retry the push", err).
			withCause(err)
	}
	return nil
}

// PeerSessions is a SessionRouter that reverse-proxies a session's
// requests to the node holding it, streaming both ways without buffering.
type PeerSessions struct {
	// Lookup returns the base URL of node nodeID's internal listener (which
	// serves this API under /v2/ too), or false if the node is not alive.
	Lookup func(nodeID string) (baseURL string, ok bool)
	// Transport reaches the nodes (mutual TLS in a cluster).
	Transport http.RoundTripper
}

// Proxy implements SessionRouter.
func (p PeerSessions) Proxy(nodeID string) (http.Handler, bool) {
	base, ok := p.Lookup(nodeID)
	if !ok {
		return nil, false
	}
	target, err := url.Parse(base)
	if err != nil {
		return nil, false
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // Location headers keep the client's view
		},
		Transport:     p.Transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// The node holding the session is gone or unreachable: the
			// session is lost, and the client restarts the blob.
			_, id := path.Split(r.URL.Path)
			writeProxyError(w, r, id, err)
		},
	}, true
}

func writeProxyError(w http.ResponseWriter, r *http.Request, id string, cause error) {
	e := errUploadUnknownAPI(id)
	e.message += " (the node holding it is unreachable)"
	writeEnvelope(w, r, []*apiError{e.withCause(cause)})
}
