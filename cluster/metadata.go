package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Node implements the OCI API's Metadata interface: writes are Raft
// commands (forwarded to the leader from a follower), reads come from the
// local FSM.
//
// Reads of mutable state (CheckRepositoryName, RepositoryExists,
// ListRepositories, ListTags, ResolveTag, Referrers) first obtain a read
// index from the leader and wait until the local FSM has applied it, so
// they see every write acknowledged before they began, through any node;
// without quorum they fail with ErrNoQuorum. Manifest (by digest) and
// BlobLinked take the same path, since a manifest or a blob link can be
// deleted; but when the node cannot reach a quorum they fall back to the
// local FSM, so that a node cut off from the leader still serves the
// immutable content it holds. Config.StaleReads makes every read local.

// state returns the local FSM without a read index.
func (n *Node) state(ctx context.Context) (*fsm.FSM, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n.closed.Load() {
		return nil, fmt.Errorf("%w: node is shut down", ErrNoQuorum)
	}
	return n.fsm, nil
}

// current returns the local FSM once it reflects every acknowledged write.
func (n *Node) current(ctx context.Context) (*fsm.FSM, error) {
	f, err := n.state(ctx)
	if err != nil {
		return nil, err
	}
	if err := n.linearize(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// Current returns the local FSM once it reflects every write acknowledged
// before the call, through any node, for the admin API's reads; without a
// quorum it fails with ErrNoQuorum.
func (n *Node) Current(ctx context.Context) (*fsm.FSM, error) { return n.current(ctx) }

// CheckRepositoryName reports fsm.ErrNamespaceConflict if pushing to repo
// would break a namespace rule.
func (n *Node) CheckRepositoryName(ctx context.Context, repo string) error {
	f, err := n.current(ctx)
	if err != nil {
		return err
	}
	return f.CheckRepositoryName(repo)
}

// CheckPushable reports fsm.ErrMirroredRepository if repo mirrors a remote
// repository and takes no pushes.
func (n *Node) CheckPushable(ctx context.Context, repo string) error {
	f, err := n.current(ctx)
	if err != nil {
		return err
	}
	return f.CheckPushable(repo)
}

// RepositoryExists reports whether repo has been created.
func (n *Node) RepositoryExists(ctx context.Context, repo string) (bool, error) {
	f, err := n.current(ctx)
	if err != nil {
		return false, err
	}
	return f.RepositoryExists(repo)
}

// ListRepositories returns up to n repository names after last.
func (n *Node) ListRepositories(ctx context.Context, last string, limit int) ([]string, error) {
	f, err := n.current(ctx)
	if err != nil {
		return nil, err
	}
	return f.ListRepositories(last, limit)
}

// ListTags returns up to n tags of repo after last, or fsm.ErrNotFound.
func (n *Node) ListTags(ctx context.Context, repo, last string, limit int) ([]string, error) {
	f, err := n.current(ctx)
	if err != nil {
		return nil, err
	}
	return f.ListTags(repo, last, limit)
}

// ResolveTag returns the digest tag points at, or fsm.ErrNotFound.
func (n *Node) ResolveTag(ctx context.Context, repo, tag string) (digest.Digest, error) {
	f, err := n.current(ctx)
	if err != nil {
		return "", err
	}
	return f.ResolveTag(repo, tag)
}

// immutable returns the local FSM for a read by digest: current when a
// quorum answers, else as it is (see above).
func (n *Node) immutable(ctx context.Context) (*fsm.FSM, error) {
	f, err := n.current(ctx)
	if errors.Is(err, ErrNoQuorum) && ctx.Err() == nil && !n.closed.Load() {
		return n.state(ctx)
	}
	return f, err
}

// Manifest returns manifest d of repo, or fsm.ErrNotFound.
func (n *Node) Manifest(ctx context.Context, repo string, d digest.Digest) (*fsmpb.Manifest, error) {
	f, err := n.immutable(ctx)
	if err != nil {
		return nil, err
	}
	return f.Manifest(repo, d)
}

// Referrers returns the manifests of repo whose subject is subject.
func (n *Node) Referrers(ctx context.Context, repo string, subject digest.Digest) ([]*fsmpb.Manifest, error) {
	f, err := n.current(ctx)
	if err != nil {
		return nil, err
	}
	return f.Referrers(repo, subject)
}

// BlobLinked reports whether blob d is part of repo, and its size.
func (n *Node) BlobLinked(ctx context.Context, repo string, d digest.Digest) (int64, bool, error) {
	f, err := n.immutable(ctx)
	if err != nil {
		return 0, false, err
	}
	return f.BlobLinked(repo, d)
}

// RepositoriesLinking returns up to n repositories blob d is linked into,
// after last in lexical order.
func (n *Node) RepositoriesLinking(ctx context.Context, d digest.Digest, last string, limit int) ([]string, error) {
	f, err := n.current(ctx)
	if err != nil {
		return nil, err
	}
	return f.RepositoriesLinking(d, last, limit)
}

// PutManifest commits a manifest and its tags.
func (n *Node) PutManifest(ctx context.Context, op *fsmpb.PutManifest) error {
	return n.do(ctx, fsm.NewCommand(op))
}

// DeleteManifest removes a manifest and its tags, or returns fsm.ErrNotFound.
func (n *Node) DeleteManifest(ctx context.Context, repo string, d digest.Digest) error {
	op := &fsmpb.DeleteManifest{Repository: repo, Digest: d.String()}
	return n.do(ctx, fsm.NewCommand(op))
}

// DeleteTag removes a tag, or returns fsm.ErrNotFound.
func (n *Node) DeleteTag(ctx context.Context, repo, tag string) error {
	op := &fsmpb.DeleteTag{Repository: repo, Tag: tag}
	return n.do(ctx, fsm.NewCommand(op))
}

// LinkBlob makes a stored blob part of repo. The holders are the nodes
// that have just stored the blob, recorded as its holders by the same
// command.
func (n *Node) LinkBlob(ctx context.Context, repo string, d digest.Digest, size int64, holders ...string) error {
	return n.do(ctx, fsm.NewCommand(fsm.LinkBlobOp(repo, d, size, holders...)))
}

// UnlinkBlob removes a blob from repo, or returns fsm.ErrNotFound.
func (n *Node) UnlinkBlob(ctx context.Context, repo string, d digest.Digest) error {
	op := &fsmpb.UnlinkBlob{Repository: repo, Digest: d.String()}
	return n.do(ctx, fsm.NewCommand(op))
}

// do applies cmd for its error alone.
func (n *Node) do(ctx context.Context, cmd *fsmpb.Command) error {
	_, err := n.Apply(ctx, cmd)
	return err
}

// FSM returns the node's state machine, for the admin API's reads.
func (n *Node) FSM() *fsm.FSM { return n.fsm }
