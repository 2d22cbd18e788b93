package cluster

import (
	"context"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Access control reads (auth.Store and the token signing keys) see every
// acknowledged write, like the registry reads: a password changed, a role
// revoked or a key rotated through any node holds on this one at once.
// When this node cannot reach a quorum they fall back to its local state,
// as reads by digest do, so that a node cut off from the leader still
// serves the content it holds to the callers it knew; writes fail there
// anyway.

// AccessState returns the local FSM for an access-control read.
func (n *Node) AccessState(ctx context.Context) (*fsm.FSM, error) { return n.immutable(ctx) }

// User returns a user's record, or an error wrapping fsm.ErrNotFound.
func (n *Node) User(ctx context.Context, name string) (*fsmpb.User, error) {
	f, err := n.immutable(ctx)
	if err != nil {
		return nil, err
	}
	return f.User(name)
}

// APIToken returns an API token's record, or an error wrapping
// fsm.ErrNotFound.
func (n *Node) APIToken(ctx context.Context, id string) (*fsmpb.ApiToken, error) {
	f, err := n.immutable(ctx)
	if err != nil {
		return nil, err
	}
	return f.APIToken(id)
}

// Access returns what access control knows about user and repo.
func (n *Node) Access(ctx context.Context, user, repo string) (fsm.Access, error) {
	f, err := n.immutable(ctx)
	if err != nil {
		return fsm.Access{}, err
	}
	return f.Access(user, repo)
}

// Principal returns a user's account and every role it holds.
func (n *Node) Principal(ctx context.Context, user string) (fsm.Principal, error) {
	f, err := n.immutable(ctx)
	if err != nil {
		return fsm.Principal{}, err
	}
	return f.Principal(user)
}

// SigningKeys returns the registry token signing keys, or an error
// wrapping fsm.ErrNotFound before the first one is stored.
func (n *Node) SigningKeys(ctx context.Context) (*fsmpb.SigningKeySet, error) {
	f, err := n.immutable(ctx)
	if err != nil {
		return nil, err
	}
	return f.SigningKeys()
}
