package admin

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/cluster"
)

// peerStatusTimeout bounds how long Members waits for one node's status.
const peerStatusTimeout = 2 * time.Second

// Members lists every known node and asks each live one for its status,
// in parallel, over the cluster port.
func (s *clusterService) Members(ctx context.Context, _ *connect.Request[wharfv1.MembersRequest]) (*connect.Response[wharfv1.MembersResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	members := s.cfg.Node.Members()
	out := make([]*wharfv1.Member, len(members))
	var wg sync.WaitGroup
	for i, m := range members {
		out[i] = memberInfo(m)
		if !m.Alive() || m.ClusterAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i].Status, out[i].Error = s.peerStatus(ctx, m)
		}()
	}
	wg.Wait()
	useLeaderContacts(out)
	resp := &wharfv1.MembersResponse{Members: out}
	if s.cfg.Replicas != nil {
		resp.UnderReplicatedBlobs = s.cfg.Replicas.UnderReplicated()
	}
	return connect.NewResponse(resp), nil
}

func memberInfo(m cluster.Member) *wharfv1.Member {
	info := &wharfv1.Member{
		NodeId:         m.ID,
		NodeName:       m.Name,
		State:          m.Gossip,
		RaftRole:       m.Suffrage,
		ClusterAddress: m.ClusterAddr,
		GossipAddress:  m.GossipAddr,
	}
	if m.Leader {
		info.RaftRole = "leader"
	}
	if m.LastContact > 0 {
		info.LastContactUnixNanos = time.Now().Add(-m.LastContact).UnixNano()
	}
	return info
}

// useLeaderContacts replaces each member's last contact with the leader's
// view of it, as the leader's status reported it, when the answering node
// is not the leader itself (the leader's own view is already in place).
func useLeaderContacts(members []*wharfv1.Member) {
	var leader *wharfv1.Member
	for _, m := range members {
		if m.RaftRole == "leader" {
			leader = m
		}
	}
	if leader == nil || leader.Status == nil || leader.Status.LeaderId != leader.Status.NodeId {
		return
	}
	now := time.Now()
	ages := map[string]int64{}
	for _, c := range leader.Status.MemberContacts {
		ages[c.NodeId] = c.AgeNanos
	}
	for _, m := range members {
		m.LastContactUnixNanos = 0
		if age, ok := ages[m.NodeId]; ok {
			m.LastContactUnixNanos = now.Add(-time.Duration(age)).UnixNano()
		}
	}
}

// peerStatus asks member m for its own status, on its cluster port.
func (s *clusterService) peerStatus(ctx context.Context, m cluster.Member) (*wharfv1.StatusResponse, string) {
	if s.cfg.PeerClient == nil {
		return nil, "no client for the cluster port"
	}
	ctx, cancel := context.WithTimeout(ctx, peerStatusTimeout)
	defer cancel()
	client := wharfv1connect.NewClusterServiceClient(s.cfg.PeerClient, "https://"+m.ClusterAddr)
	resp, err := client.Status(ctx, connect.NewRequest(&wharfv1.StatusRequest{}))
	if err != nil {
		return nil, err.Error()
	}
	return resp.Msg, ""
}

// Leave starts this node's graceful departure; the process exits once it
// has left.
func (s *clusterService) Leave(ctx context.Context, _ *connect.Request[wharfv1.LeaveRequest]) (*connect.Response[wharfv1.LeaveResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	if s.cfg.Leave == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this node cannot be asked to leave"))
	}
	s.cfg.Leave()
	return connect.NewResponse(&wharfv1.LeaveResponse{}), nil
}

// TransferLeadership hands leadership to another voter, when the
// answering node is the leader.
func (s *clusterService) TransferLeadership(ctx context.Context, _ *connect.Request[wharfv1.TransferLeadershipRequest]) (*connect.Response[wharfv1.TransferLeadershipResponse], error) {
	if err := s.cfg.requireAdmin(ctx); err != nil {
		return nil, err
	}
	st := s.cfg.Node.Status()
	if !s.cfg.Node.IsLeader() {
		return nil, connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("this node is not the leader; ask the leader %s (%s)", st.LeaderID, st.LeaderAddress))
	}
	if err := s.cfg.Node.TransferLeadership(ctx); err != nil {
		return nil, connect.NewError(connect.CodeUnavailable, err)
	}
	return connect.NewResponse(&wharfv1.TransferLeadershipResponse{NewLeaderId: s.cfg.Node.Status().LeaderID}), nil
}
