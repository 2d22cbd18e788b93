package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"connectrpc.com/connect"

	"github.com/wharf-registry/wharf/api/auth"
	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/cluster"
)

// RemoveMember removes a node from the cluster now. The leader does it; a
// follower reached on the public listener asks the leader over the cluster
// port, where these services are mounted too.
func (s *clusterService) RemoveMember(ctx context.Context, req *connect.Request[wharfv1.RemoveMemberRequest]) (*connect.Response[wharfv1.RemoveMemberResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	if req.Msg.Node == "" {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("name the node to remove by its ID or name"))
	}
	var resp *wharfv1.RemoveMemberResponse
	var err error
	if st := s.cfg.Node.Status(); s.cfg.Node.IsLeader() {
		resp, err = s.removeHere(ctx, req.Msg)
	} else {
		resp, err = s.removeOnLeader(ctx, st, req.Msg)
	}
	if err != nil {
		return nil, err
	}
	if c, on := caller(ctx); on {
		auth.Audit(s.log(), "member_removed", c.User, resp.NodeId, "name", resp.NodeName, "force", req.Msg.Force)
	}
	return connect.NewResponse(resp), nil
}

func (s *clusterService) removeHere(ctx context.Context, req *wharfv1.RemoveMemberRequest) (*wharfv1.RemoveMemberResponse, error) {
	m, err := s.cfg.Node.RemoveMember(ctx, req.Node, req.Force)
	if err != nil {
		return nil, connect.NewError(removeCode(err), err)
	}
	return &wharfv1.RemoveMemberResponse{NodeId: m.ID, NodeName: m.Name}, nil
}

// removeOnLeader forwards the removal to the leader. Only requests from
// the public listener are forwarded, so a request never bounces between
// nodes while leadership moves.
func (s *clusterService) removeOnLeader(ctx context.Context, st cluster.Status, req *wharfv1.RemoveMemberRequest) (*wharfv1.RemoveMemberResponse, error) {
	if _, public := caller(ctx); !public || s.cfg.PeerClient == nil {
		return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("remove member: %w", cluster.ErrNotLeader))
	}
	if st.LeaderAddress == "" {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("remove member: the cluster has no leader now; try again once it has one"))
	}
	client := wharfv1connect.NewClusterServiceClient(s.cfg.PeerClient, "https://"+st.LeaderAddress)
	resp, err := client.RemoveMember(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, fmt.Errorf("ask the leader %s to remove %s: %w", st.LeaderID, req.Node, err)
	}
	return resp.Msg, nil
}

// removeCode is the Connect code of a RemoveMember failure.
func removeCode(err error) connect.Code {
	switch {
	case errors.Is(err, cluster.ErrUnknownMember):
		return connect.CodeNotFound
	case errors.Is(err, cluster.ErrMemberAlive), errors.Is(err, cluster.ErrRemovalLosesQuorum):
		return connect.CodeFailedPrecondition
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, cluster.ErrNoQuorum):
		return connect.CodeUnavailable
	}
	return connect.CodeInternal
}

func (s *clusterService) log() *slog.Logger {
	if s.cfg.Logger != nil {
		return s.cfg.Logger
	}
	return slog.New(slog.DiscardHandler)
}
