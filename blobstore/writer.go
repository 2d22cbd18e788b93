package blobstore

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"
)

// Writer is an upload session as the registry's handlers use it: bytes
// appended in order, then committed as one blob or cancelled. *Upload
// writes to this node's disk alone; a cluster's writer
// (cluster/replication.Upload) also mirrors the bytes to other nodes, and
// its Commit makes the blob part of the session's repository.
type Writer interface {
	// ID names the session on this node.
	ID() string
	// Owner is the repository the session was started in; empty for a
	// session that does not record one.
	Owner() string
	// Size is how many bytes the session holds.
	Size() int64
	// Append appends r and returns how many bytes it took.
	Append(ctx context.Context, r io.Reader) (int64, error)
	// Commit verifies the bytes as blob d and stores it; it returns the
	// blob's size.
	Commit(ctx context.Context, d digest.Digest) (int64, error)
	// Cancel ends the session and drops its bytes.
	Cancel(ctx context.Context) error
	// Close releases the session; it lives on unless committed or
	// cancelled.
	Close() error
}

var _ Writer = (*Upload)(nil)
