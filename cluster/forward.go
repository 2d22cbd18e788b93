package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/cluster/clusterpb"
	"github.com/wharf-registry/wharf/cluster/clusterpb/clusterpbconnect"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
	"github.com/wharf-registry/wharf/internal/diskspace"
)

// Retry backoff for requests that need the leader.
const (
	retryMinBackoff = 10 * time.Millisecond
	retryMaxBackoff = 250 * time.Millisecond
)

// errRetry marks a failure worth retrying once a leader is (re)found: no
// leader known, the leader changed, or it could not be reached.
var errRetry = errors.New("leader unavailable")

// leader returns the leader's ID and cluster address, or errRetry when none
// is known yet. A node that does not lead and has heard from no leader for
// longer than QuorumTimeout (it is probably in a minority partition) gets
// ErrNoQuorum at once: every request would otherwise wait another
// QuorumTimeout, one after the other (a manifest push makes several).
func (n *Node) leader() (raft.ServerID, raft.ServerAddress, error) {
	if n.closed.Load() {
		return "", "", fmt.Errorf("%w: node is shut down", ErrNoQuorum)
	}
	addr, id := n.raft.LeaderWithID()
	if id == raft.ServerID(n.id) {
		return id, addr, nil
	}
	// Raft sets LastContact on hearing from a leader, granting a vote and
	// stepping down; a node just opened has not had the chance.
	last := n.raft.LastContact()
	if last.Before(n.opened) {
		last = n.opened
	}
	if silent := time.Since(last); silent > n.cfg.QuorumTimeout {
		who := "no leader"
		if id != "" {
			who = "leader " + string(id)
		}
		return "", "", fmt.Errorf("%w: %s heard from for %s", ErrNoQuorum, who, silent.Round(time.Millisecond))
	}
	if id == "" {
		return "", "", fmt.Errorf("%w: no leader known", errRetry)
	}
	return id, addr, nil
}

// withLeader calls fn until it succeeds or fails for a reason other than
// errRetry, backing off between tries. It gives up with ErrNoQuorum when ctx
// ends or no leader has been usable for QuorumTimeout.
func (n *Node) withLeader(ctx context.Context, fn func(ctx context.Context) error) error {
	backoff := retryMinBackoff
	start := time.Now()
	for {
		err := fn(ctx)
		if err == nil || !errors.Is(err, errRetry) {
			return err
		}
		if time.Since(start) > n.cfg.QuorumTimeout {
			return fmt.Errorf("%w: %w", ErrNoQuorum, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w (last: %w)", ErrNoQuorum, ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, retryMaxBackoff)
	}
}

// applyAnywhere commits an encoded command on the leader: locally when this
// node leads, else through the leader's PeerService.Apply.
func (n *Node) applyAnywhere(ctx context.Context, data []byte) (*fsmpb.Result, error) {
	var res *fsmpb.Result
	err := n.withLeader(ctx, func(ctx context.Context) error {
		id, addr, err := n.leader()
		if err != nil {
			return err
		}
		if id == raft.ServerID(n.id) {
			res, err = n.propose(ctx, data)
			return retryable(err)
		}
		res, err = n.forwardApply(ctx, addr, data)
		return err
	})
	return res, err
}

// retryable marks the local Raft failures after which another try (perhaps
// on a new leader) may succeed. The command's request ID makes the retry of
// an entry that did commit a no-op.
func retryable(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %w", errRetry, err)
	}
	return err
}

// peer returns the PeerService client of the node at addr.
func (n *Node) peer(addr raft.ServerAddress) clusterpbconnect.PeerServiceClient {
	return n.peers.get(n.peerClient, addr)
}

// peerClients keeps one PeerService client per address, so that every
// forwarded write or read index does not build a client of its own.
type peerClients struct {
	mu      sync.Mutex
	clients map[raft.ServerAddress]clusterpbconnect.PeerServiceClient
}

// maxPeerClients bounds the clients kept: addresses change as nodes move,
// and the oldest are simply rebuilt when needed.
const maxPeerClients = 64

func (p *peerClients) get(hc *http.Client, addr raft.ServerAddress) clusterpbconnect.PeerServiceClient {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.clients[addr]; ok {
		return c
	}
	if p.clients == nil || len(p.clients) >= maxPeerClients {
		p.clients = make(map[raft.ServerAddress]clusterpbconnect.PeerServiceClient)
	}
	// The messages are small and the links fast: compressing the answers
	// costs more CPU and time than the bytes it saves.
	c := clusterpbconnect.NewPeerServiceClient(hc, "https://"+string(addr),
		connect.WithAcceptCompression("gzip", nil, nil))
	p.clients[addr] = c
	return c
}

func (n *Node) forwardApply(ctx context.Context, addr raft.ServerAddress, data []byte) (*fsmpb.Result, error) {
	resp, err := n.peer(addr).Apply(ctx, connect.NewRequest(&clusterpb.ApplyRequest{Command: data}))
	if err != nil {
		return nil, peerError(ctx, "forward write to leader "+string(addr), err)
	}
	var res fsmpb.Result
	if err := proto.Unmarshal(resp.Msg.GetResult(), &res); err != nil {
		return nil, fmt.Errorf("decode result from leader %s: %w", addr, err)
	}
	return &res, nil
}

// peerError classifies an error from a peer RPC: the leader refusing as a
// non-leader, being unreachable or without quorum means try again. So does
// a stream the peer cancelled (a leader dying mid-request resets it) while
// our own ctx is still live; once ctx is done, the cluster did not answer
// in time.
func peerError(ctx context.Context, what string, err error) error {
	switch connect.CodeOf(err) {
	case connect.CodeFailedPrecondition, connect.CodeUnavailable, connect.CodeUnknown:
		return fmt.Errorf("%s: %w: %w", what, errRetry, err)
	case connect.CodeResourceExhausted: // the leader's disk is full
		return fmt.Errorf("%s: %w: %v", what, diskspace.ErrInsufficientStorage, err)
	case connect.CodeDeadlineExceeded, connect.CodeCanceled:
		if ctx.Err() == nil {
			return fmt.Errorf("%s: %w: %w", what, errRetry, err)
		}
		return fmt.Errorf("%s: %w: %w", what, ErrNoQuorum, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// peerService answers other nodes on the cluster port.
type peerService struct{ n *Node }

var _ clusterpbconnect.PeerServiceHandler = peerService{}

// Apply commits a forwarded command if this node leads.
func (p peerService) Apply(ctx context.Context, req *connect.Request[clusterpb.ApplyRequest]) (*connect.Response[clusterpb.ApplyResponse], error) {
	n := p.n
	if n.raft.State() != raft.Leader {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("not the leader"))
	}
	if err := n.allowForwarded(req.Msg.GetCommand()); err != nil {
		return nil, toConnect(err)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	res, err := n.propose(ctx, req.Msg.GetCommand())
	if err != nil {
		return nil, toConnect(err)
	}
	out, err := proto.Marshal(res)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("encode result: %w", err))
	}
	return connect.NewResponse(&clusterpb.ApplyResponse{Result: out}), nil
}

// ReadIndex answers a follower's read index request if this node leads.
func (p peerService) ReadIndex(ctx context.Context, req *connect.Request[clusterpb.ReadIndexRequest]) (*connect.Response[clusterpb.ReadIndexResponse], error) {
	idx, err := p.n.leaderReadIndex(ctx)
	if err != nil {
		return nil, toConnect(err)
	}
	idx = p.n.followerReadIndex(idx, req.Msg.GetCommitIndex())
	return connect.NewResponse(&clusterpb.ReadIndexResponse{Index: idx}), nil
}

// toConnect maps a local failure to the code a caller retries on.
func toConnect(err error) error {
	switch {
	case errors.Is(err, errNotLeader), errors.Is(err, raft.ErrNotLeader),
		errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, ErrNoQuorum):
		return connect.NewError(connect.CodeUnavailable, err)
	case diskspace.IsFull(err):
		return connect.NewError(connect.CodeResourceExhausted, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}
