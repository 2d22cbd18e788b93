package oci

import (
	"context"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Errors from a Metadata implementation are matched with errors.Is against
// fsm.ErrNotFound (no such repository, tag, manifest or blob link),
// fsm.ErrNamespaceConflict (the name breaks a namespace rule; the message names
// it) and cluster.ErrNoQuorum (the write could not be committed).

// Metadata is the replicated registry metadata the OCI API reads and writes.
// cluster.Node implements it: writes are Raft commands, reads come from the
// local FSM after any consistency check the node needs.
type Metadata interface {
	// CheckRepositoryName reports ErrNamespaceConflict if pushing to repo
	// would break a namespace rule, before any bytes are uploaded.
	CheckRepositoryName(ctx context.Context, repo string) error
	// CheckPushable reports fsm.ErrMirroredRepository for a repository
	// that mirrors a remote one and takes no pushes.
	CheckPushable(ctx context.Context, repo string) error
	// RepositoryExists reports whether the repository has been created.
	RepositoryExists(ctx context.Context, repo string) (bool, error)
	// ListRepositories returns up to n repository names after last, in lexical order.
	ListRepositories(ctx context.Context, last string, n int) ([]string, error)
	// ListTags returns up to n tags of repo after last, in lexical order;
	// ErrNotFound if the repository does not exist.
	ListTags(ctx context.Context, repo, last string, n int) ([]string, error)
	// ResolveTag returns the digest a tag points at, or ErrNotFound.
	ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error)
	// Manifest returns a manifest of repo by digest, or ErrNotFound.
	Manifest(ctx context.Context, repo string, d digest.Digest) (*fsmpb.Manifest, error)
	// Referrers returns the manifests of repo whose subject is d.
	Referrers(ctx context.Context, repo string, subject digest.Digest) ([]*fsmpb.Manifest, error)
	// BlobLinked reports whether blob d is part of repo, and its size.
	BlobLinked(ctx context.Context, repo string, d digest.Digest) (size int64, ok bool, err error)
	// RepositoriesLinking returns up to n repositories blob d is linked
	// into, after last in lexical order.
	RepositoriesLinking(ctx context.Context, d digest.Digest, last string, n int) ([]string, error)

	// PutManifest commits a manifest and its tags.
	PutManifest(ctx context.Context, cmd *fsmpb.PutManifest) error
	// DeleteManifest removes a manifest and the tags pointing at it, or ErrNotFound.
	DeleteManifest(ctx context.Context, repo string, d digest.Digest) error
	// DeleteTag removes a tag, or ErrNotFound.
	DeleteTag(ctx context.Context, repo, tag string) error
	// UnlinkBlob removes a blob from repo, or ErrNotFound.
	UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error
}
