// Package peer copies blobs between wharf nodes over HTTP.
//
// # Protocol
//
// A node's Server answers, under PathPrefix on the cluster listener:
//
//	PUT  /internal/blobs/<digest>   store the body as blob <digest>: 201 once it is verified and
//	                                fsynced, 200 if the blob was already stored (the body is then
//	                                not read), 400 if the bytes do not hash to <digest> (nothing
//	                                is stored), 507 if this node's disk has no room for it
//	GET  /internal/blobs/<digest>   the blob, with Range and If-Range support (ETag is the quoted
//	                                digest); 404 if this node does not hold it
//	HEAD /internal/blobs/<digest>   as GET, without the body
//
// and, for mirroring a client's upload to other nodes while it arrives:
//
//	POST /internal/mirror           store the body as a new blob, streamed and hashed as it
//	                                arrives; the body ends with a Wharf-Digest trailer naming
//	                                its digest: 201 once verified and fsynced, 400 if the
//	                                trailer is missing or the bytes do not match it, 507 if
//	                                this node's disk has no room for it. A stream
//	                                that breaks stores nothing. Wharf-Relay, if set, names the
//	                                nodes (IDs, comma-separated) to pass the bytes on to while
//	                                they arrive (see Relay).
//
// The package knows nothing about TLS or authentication: callers pass an
// *http.Client, and mount the Server on an *http.ServeMux, that already
// provide them (wharf's cluster listener uses mutual TLS).
//
// # Verification
//
// Content is verified at every hop. The receiving Server hashes a PUT while
// it streams to disk. Fetch hashes a full blob while it streams to its
// writer, so by the time it can report a mismatch every byte has already
// been written: a caller that streams into an HTTP response must then abort
// that response instead of finishing it, by panicking with
// http.ErrAbortHandler, so that its client sees a broken transfer rather than
// a complete wrong blob. Callers that need verified ranges use a Fetcher,
// which verifies the whole blob before anyone reads from it.
//
// # Sharing fetches
//
// A Fetcher fetches blobs this node does not hold from the nodes that do,
// one download per digest however many requests want it at once, into
// files under a directory of its own, optionally kept in a bounded LRU
// cache. A Replicator pushes a local blob to several nodes at once and
// reports each durable copy, so the caller can record it in the FSM.
//
// Memory use does not depend on blob size: bodies stream through fixed
// buffers between the network and files.
package peer
