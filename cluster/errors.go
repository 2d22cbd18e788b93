package cluster

import "errors"

// ErrNoQuorum: a write could not be committed because this node has no
// leader or the leader lost its quorum. Clients may retry.
var ErrNoQuorum = errors.New("cluster has no quorum")
