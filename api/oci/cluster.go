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

// BlobStore holds blob content and upload sessions. *blobstore.Store is the
// single-node implementation; in a cluster, Stat and Open also find blobs
// held only by peers.
type BlobStore interface {
	// Stat returns the size of a blob, or blobstore.ErrBlobUnknown.
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	// Open returns the blob's content as a file, for sendfile and Range.
	Open(ctx context.Context, d digest.Digest) (*os.File, error)
	// Put stores a whole blob, verified against d.
	Put(ctx context.Context, d digest.Digest, r io.Reader) (int64, error)
	// NewUpload starts an upload session on this node.
	NewUpload(ctx context.Context) (*blobstore.Upload, error)
	// NewUploadFor starts an upload session that belongs to owner (here a
	// repository), which the session's Owner reports.
	NewUploadFor(ctx context.Context, owner string) (*blobstore.Upload, error)
	// OpenUpload finds an upload session of this node, or returns
	// blobstore.ErrUploadUnknown.
	OpenUpload(ctx context.Context, id string) (*blobstore.Upload, error)
}

// SessionRouter sends requests for upload sessions that another node holds
// to that node. An upload session lives on the node that started it; behind
// a load balancer its PATCH and PUT may arrive anywhere.
type SessionRouter interface {
	// Proxy returns a handler that streams a request to node nodeID and its
	// answer back, or false if no such node is reachable.
	Proxy(nodeID string) (http.Handler, bool)
}

// Replication copies blobs to the nodes that should hold them. In a
// cluster, a manifest is accepted only once every blob it references is
// durable on enough nodes.
//
// A blob a client stores on this node is recorded as held by the node in
// the same write that links it into the repository (LinkBlob's holder);
// when that write fails, the handler records the holder with Hold.
type Replication interface {
	// Stored reports a blob a client has just stored on this node, so that
	// copies to its owners can start.
	Stored(ctx context.Context, d digest.Digest, size int64)
	// Hold records this node as a holder of blob d, which it stores.
	Hold(ctx context.Context, d digest.Digest, size int64) error
	// Held reports whether some node is recorded as holding blob d, and
	// its size: whether the registry has it, whatever this node's disk
	// holds (a file nobody recorded is garbage on its way out).
	Held(ctx context.Context, d digest.Digest) (size int64, ok bool, err error)
	// WaitDurable blocks until every blob in ds is durable, or fails with an
	// error that says which blob is not and why. It must return when ctx ends.
	WaitDurable(ctx context.Context, ds []digest.Digest) error
}

// UploadMirror is optionally implemented by a Replication that copies an
// upload session's bytes to other nodes while the client still sends them,
// so that the copies are done, or nearly, when the upload commits. None of
// its methods may fail the client's request, nor block on other nodes but
// for the bounded wait of MirroredCopies.
type UploadMirror interface {
	// Appending is called, while the caller holds upload u, before bytes
	// are appended to it; the returned function is called whenever more
	// bytes may have arrived.
	Appending(ctx context.Context, u *blobstore.Upload) (progress func())
	// Committing is called just before upload session id commits as blob
	// d of size bytes, so that its mirrors commit their copies at the same
	// time. Committed follows if the commit succeeds, else Cancelled.
	Committing(id string, d digest.Digest, size int64)
	// Committed replaces Replication.Stored for a blob committed from
	// upload session id: the session's mirrors finish, and copies to the
	// owners still missing follow. The caller then takes the mirrored
	// copies to record with its link; nil if there are none to wait for.
	Committed(ctx context.Context, id string, d digest.Digest, size int64) MirroredCopies
	// Cancelled reports that upload session id ended without a blob.
	Cancelled(id string)
}

// MirroredCopies waits, for a bounded time, until the mirrors of a
// committed upload have committed their copies, and returns the nodes
// that did: the caller records them as holders in the write that links
// the blob, so that the blob is durable on the write quorum as soon as
// the client is told it is stored. settle reports whether that write
// committed; if not, the replication records them itself.
type MirroredCopies = func(ctx context.Context) (nodes []string, settle func(recorded bool))

// sessionSeparator joins a node ID and a local upload ID into the session ID
// clients see. Neither part contains it.
const sessionSeparator = "."

// sessionID is the ID clients see for a local upload session: it names this
// node when the handler runs in a cluster.
func (h *Handler) sessionID(u *blobstore.Upload) string {
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

// stored reports a newly stored blob to the replication, if any.
func (h *Handler) stored(ctx context.Context, d digest.Digest, size int64) {
	if h.replication != nil {
		h.replication.Stored(ctx, d, size)
	}
}

// holder is the node to record as the holder of a blob a client stores
// here, in the write that links it: none without replication.
func (h *Handler) holder() string {
	if h.replication == nil {
		return ""
	}
	return h.nodeID
}

// hold records this node as a holder of blob d after the link that should
// have did not commit. A failure only costs the manifest push its wait for
// this copy (it then fails and the client retries); nothing is lost.
func (h *Handler) hold(ctx context.Context, d digest.Digest, size int64) {
	if h.replication == nil {
		return
	}
	if err := h.replication.Hold(ctx, d, size); err != nil {
		h.log.WarnContext(ctx, "record blob holder", "digest", d, "err", err)
	}
}

// mirror returns the replication's UploadMirror, or nil.
func (h *Handler) mirror() UploadMirror {
	m, _ := h.replication.(UploadMirror)
	return m
}

// appendMirrored appends r to u, mirroring the bytes if the replication can.
func (h *Handler) appendMirrored(ctx context.Context, u *blobstore.Upload, r io.Reader) (int64, error) {
	m := h.mirror()
	if m == nil {
		return u.Append(ctx, r)
	}
	progress := m.Appending(ctx, u)
	n, err := u.Append(ctx, blobstore.ProgressReader(r, progress))
	progress()
	return n, err
}

// committing reports that upload u is about to commit as blob d: its
// mirrors, if any, commit their copies meanwhile.
func (h *Handler) committing(u *blobstore.Upload, d digest.Digest) {
	if m := h.mirror(); m != nil {
		m.Committing(u.ID(), d, u.Size())
	}
}

// storedUpload reports a blob committed from upload session id, and
// returns its mirrored copies for the link to record, if any.
func (h *Handler) storedUpload(ctx context.Context, id string, d digest.Digest, size int64) MirroredCopies {
	if m := h.mirror(); m != nil {
		return m.Committed(ctx, id, d, size)
	}
	h.stored(ctx, d, size)
	return nil
}

// uploadEnded reports an upload session that ended without a blob.
func (h *Handler) uploadEnded(id string) {
	if m := h.mirror(); m != nil {
		m.Cancelled(id)
	}
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
	if h.replication == nil || len(ds) == 0 {
		return nil
	}
	err := h.replication.WaitDurable(ctx, ds)
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
