package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/wharf-registry/wharf/blobstore"
)

// Session handover. Behind a round-robin balancer an upload's POST and its
// PATCH land on different nodes: the session lives where the POST landed,
// and the PATCH's bytes, often the whole blob, would be proxied there,
// costing a TLS stream between nodes for every byte. Instead, the node the
// first bytes reach adopts the session: it opens a session of its own,
// asks the session's node to release the empty original, and serves the
// request against its own session. Its answer's Location names the new
// session, and clients send the next request there (the distribution spec
// has them follow each response's Location). A session that already holds
// bytes, or is in use, is not released, and its requests are proxied as
// before.

// SessionHandover is optionally implemented by a SessionRouter whose nodes
// can give up empty upload sessions to each other.
type SessionHandover interface {
	// Release asks node nodeID to end its upload session localID, which
	// must hold no bytes, be idle and belong to repository repo. It
	// returns nil only once the session is gone from that node.
	Release(ctx context.Context, nodeID, localID, repo string) error
}

// releasePath is where a node's internal listener takes release requests:
// POST releasePath + <local session ID>?repository=<name>.
const releasePath = "/internal/oci-uploads/release/"

// releaseLockWait bounds how long a release waits for a session in use.
const releaseLockWait = 100 * time.Millisecond

// errSessionInUse: the session holds bytes or a request is using it.
var errSessionInUse = errors.New("upload session holds data or is in use")

// adoptSession serves r, the first bytes of a session opened on another
// node, against a session of this node, if that node releases its own. It
// reports false, with nothing written, when the request should be proxied
// to the session's node instead.
func (h *Handler) adoptSession(w http.ResponseWriter, r *http.Request, rt route, ep endpoint) (bool, error) {
	node, local := splitSessionID(rt.arg)
	handover, ok := h.sessions.(SessionHandover)
	if !ok || node == "" || node == h.nodeID || !firstBytes(r) {
		return false, nil
	}
	ctx := r.Context()
	u, err := h.blobs.NewUpload(ctx, rt.name)
	if err != nil {
		h.log.DebugContext(ctx, "adopt upload session: new session", "upload", rt.arg, "err", err)
		return false, nil
	}
	if err := handover.Release(ctx, node, local, rt.name); err != nil {
		h.log.DebugContext(ctx, "adopt upload session: not released", "upload", rt.arg, "err", err)
		if cerr := u.Cancel(context.WithoutCancel(ctx)); cerr != nil {
			h.log.WarnContext(ctx, "drop unused upload session", "upload", u.ID(), "err", cerr)
		}
		return false, nil
	}
	adopted := h.sessionID(u)
	h.release(ctx, u)
	h.log.DebugContext(ctx, "adopted upload session", "from", rt.arg, "as", adopted)
	rt.arg = adopted
	return true, ep(w, r, rt)
}

// firstBytes reports whether r may carry the first bytes of a session: a
// PATCH, or a PUT with a body, whose Content-Range (if any) starts at 0.
func firstBytes(r *http.Request) bool {
	switch r.Method {
	case http.MethodPatch:
	case http.MethodPut:
		if r.ContentLength == 0 {
			return false
		}
	default:
		return false
	}
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, _, err := parseContentRange(cr)
		return err == nil && start == 0
	}
	return true
}

// ReleaseHandler serves other nodes' release requests (SessionHandover) on
// the internal listener: 204 once the session is gone, 404 for a session
// this node does not have or that belongs to another repository, 409 for
// one that holds bytes or is in use.
func (h *Handler) ReleaseHandler() (pattern string, handler http.Handler) {
	return "POST " + releasePath + "{id}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h.releaseSession(r.Context(), r.PathValue("id"), r.URL.Query().Get("repository"))
		switch {
		case err == nil:
			w.WriteHeader(http.StatusNoContent)
		case errors.Is(err, blobstore.ErrUploadUnknown):
			http.Error(w, err.Error(), http.StatusNotFound)
		case errors.Is(err, errSessionInUse):
			http.Error(w, err.Error(), http.StatusConflict)
		default:
			h.log.WarnContext(r.Context(), "release upload session", "upload", r.PathValue("id"), "err", err)
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}

// releaseSession ends local upload session id of repository repo if it
// holds no bytes and no request is using it.
func (h *Handler) releaseSession(ctx context.Context, id, repo string) error {
	lockCtx, cancel := context.WithTimeout(ctx, releaseLockWait)
	defer cancel()
	u, err := h.blobs.OpenUpload(lockCtx, repo, id)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		return errSessionInUse
	}
	if err != nil {
		return err
	}
	defer h.release(ctx, u)
	if !ownedBy(u, repo) {
		return fmt.Errorf("upload %s belongs to another repository: %w", id, blobstore.ErrUploadUnknown)
	}
	if u.Size() != 0 {
		return errSessionInUse
	}
	if err := u.Cancel(ctx); err != nil {
		return fmt.Errorf("cancel upload %s: %w", id, err)
	}
	return nil
}

// Release implements SessionHandover over the nodes' internal listeners.
func (p PeerSessions) Release(ctx context.Context, nodeID, localID, repo string) error {
	base, ok := p.Lookup(nodeID)
	if !ok {
		return fmt.Errorf("node %s is not reachable", nodeID)
	}
	target := base + releasePath + url.PathEscape(localID) + "?" + url.Values{"repository": {repo}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, http.NoBody)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: p.Transport}).Do(req)
	if err != nil {
		return fmt.Errorf("release upload session on node %s: %w", nodeID, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("release upload session on node %s: %s", nodeID, resp.Status)
	}
	return nil
}
