package cluster

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Apply commits cmd through Raft and returns the FSM's result. On a
// follower the command is forwarded to the leader; across leader changes it
// is retried until ctx or ApplyTimeout ends. It fills in cmd.RequestId (if
// empty) and cmd.UnixNanos (if zero) before the first try, so every retry
// is idempotent, and cmd.Actor (from WithActor) and cmd.NodeId (this node)
// if empty, which the activity the command causes records.
//
// Errors wrap ErrNoQuorum when the command could not be committed (no
// leader for QuorumTimeout, shut down, timed out; the command may still be
// committed later), or fsm.ErrNotFound, fsm.ErrNamespaceConflict or
// fsm.ErrInvalid when the FSM refused it; the Result is returned as well.
// A write refused because this node's or the leader's disk is below its
// floor matches diskspace.ErrInsufficientStorage.
func (n *Node) Apply(ctx context.Context, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	if err := n.allowWrite(cmd); err != nil {
		return nil, err
	}
	if cmd.GetRequestId() == "" {
		cmd.RequestId = rand.Text()
	}
	if cmd.GetUnixNanos() == 0 {
		cmd.UnixNanos = time.Now().UnixNano()
	}
	if cmd.GetActor() == "" {
		cmd.Actor = actorOf(ctx)
	}
	if cmd.GetNodeId() == "" {
		cmd.NodeId = n.id
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	// Whatever the outcome, the command may have been committed: reads in
	// this scope must look again.
	defer readScopeOf(ctx).wrote()
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	res, err := n.applyAnywhere(ctx, data)
	if err != nil {
		return nil, err
	}
	return res, fsm.ResultError(res)
}

// allowWrite refuses cmd while the disk is below its floor, unless the
// write frees space or keeps the membership (fsm.AcceptedOnFullDisk).
func (n *Node) allowWrite(cmd *fsmpb.Command) error {
	if n.cfg.DiskSpace == nil || fsm.AcceptedOnFullDisk(cmd) {
		return nil
	}
	if err := n.cfg.DiskSpace.AllowMetadata(); err != nil {
		return fmt.Errorf("node %s: %w", n.id, err)
	}
	return nil
}

// allowForwarded is allowWrite, on the leader, for an encoded command
// another node forwarded.
func (n *Node) allowForwarded(data []byte) error {
	if n.cfg.DiskSpace == nil {
		return nil
	}
	var cmd fsmpb.Command
	if err := proto.Unmarshal(data, &cmd); err != nil {
		return nil // the FSM answers it as invalid
	}
	return n.allowWrite(&cmd)
}

// propose appends an encoded command to the local Raft log, which only the
// leader can do, and waits for it to be applied.
func (n *Node) propose(ctx context.Context, data []byte) (*fsmpb.Result, error) {
	if n.closed.Load() {
		return nil, fmt.Errorf("%w: node is shut down", ErrNoQuorum)
	}
	deadline, _ := ctx.Deadline() // Apply always sets one
	future := n.raft.Apply(data, time.Until(deadline))
	if err := wait(ctx, future); err != nil {
		return nil, err
	}
	res, ok := future.Response().(*fsmpb.Result)
	if !ok {
		return nil, fmt.Errorf("apply log entry %d: fsm returned %T, want a result", future.Index(), future.Response())
	}
	return res, nil
}

// wait waits for a Raft future, or for ctx to end.
func wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return raftError(err)
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNoQuorum, ctx.Err())
	}
}

// raftError classifies an error from Raft: failures to commit wrap
// ErrNoQuorum.
func raftError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrRaftShutdown),
		errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %w", ErrNoQuorum, err)
	}
	return fmt.Errorf("raft: %w", err)
}

type actorKey struct{}

// WithActor returns ctx naming the user a request acts for: the commands
// Apply proposes in ctx record it as their actor.
func WithActor(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, actorKey{}, user)
}

func actorOf(ctx context.Context) string {
	user, _ := ctx.Value(actorKey{}).(string)
	return user
}
