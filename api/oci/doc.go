// Package oci serves the OCI Distribution API v1.1 (the "/v2/" registry
// API) on top of wharf's replicated metadata and local blob store.
//
// The Handler returned by New routes every request under /v2/ itself: names
// may contain slashes, so the route is found from the right end of the path
// (the last "/manifests/", "/blobs/uploads/", "/blobs/", "/referrers/" or
// "/tags/list"). Metadata (repositories, tags, manifests, blob links) goes
// through the Metadata interface, whose writes are Raft commands; blob bytes
// stream, never buffered whole, to a BlobStore (cluster/replication in a
// node), whose upload sessions (blobstore.Writer) commit a blob and link it
// into its repository in one step. Manifests are read into memory, bounded
// by Config.MaxManifestBytes.
//
// Errors are answered with the OCI error envelope
//
//	{"errors":[{"code":"...","message":"...","detail":...}]}
//
// using the codes of the distribution specification, plus UNAVAILABLE (503)
// when the cluster has no quorum, TAG_INVALID and PAGINATION_NUMBER_INVALID
// (400, as in the Docker registry), INSUFFICIENT_STORAGE (507) when the
// node's disk has no room for a write (see internal/diskspace), and UNKNOWN
// (500) for internal failures.
// A push that breaks a namespace rule is refused with NAME_INVALID (400),
// before any bytes are uploaded, with a message naming the rule.
package oci
