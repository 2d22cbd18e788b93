package admin

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/fsm"
	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// activityService implements wharf.v1.ActivityService.
type activityService struct {
	wharfv1connect.UnimplementedActivityServiceHandler
	cfg Config
}

// ListActivity pages through activity, newest first: a repository's for
// those who may pull it (anonymous callers: a public one), a namespace's
// or the registry's for admins.
func (s *activityService) ListActivity(ctx context.Context, req *connect.Request[wharfv1.ListActivityRequest]) (*connect.Response[wharfv1.ListActivityResponse], error) {
	m := req.Msg
	q, err := activityQuery(m)
	if err != nil {
		return nil, err
	}
	if m.Repository != "" {
		_, err = s.cfg.requirePull(ctx, m.Repository)
	} else {
		err = s.cfg.requireAdmin(ctx)
	}
	if err != nil {
		return nil, err
	}
	f, err := s.cfg.state(ctx)
	if err != nil {
		return nil, err
	}
	page, err := f.ListActivity(q)
	if err != nil {
		return nil, stateError(err)
	}
	resp := &wharfv1.ListActivityResponse{}
	if page.Next != 0 {
		resp.NextPageToken = strconv.FormatUint(page.Next, 10)
	}
	for _, a := range page.Activity {
		resp.Activity = append(resp.Activity, activityMessage(a))
	}
	return connect.NewResponse(resp), nil
}

func activityQuery(m *wharfv1.ListActivityRequest) (fsm.ActivityQuery, error) {
	size, err := pageSize(m.PageSize)
	if err != nil {
		return fsm.ActivityQuery{}, err
	}
	q := fsm.ActivityQuery{Repository: m.Repository, Namespace: m.Namespace, Limit: size}
	switch {
	case m.Repository != "" && m.Namespace != "":
		return q, invalidArgument("namespace", errors.New("ask for a repository's or a namespace's activity, not both"))
	case m.Repository != "":
		err = checkRepository("repository", m.Repository)
	case m.Namespace != "":
		err = checkNamespace("namespace", m.Namespace)
	}
	if err != nil {
		return q, err
	}
	if m.PageToken != "" {
		seq, err := strconv.ParseUint(m.PageToken, 10, 64)
		if err != nil || seq == 0 {
			return q, invalidArgument("page_token", fmt.Errorf("%q is not a token this listing gave", m.PageToken))
		}
		q.Before = seq
	}
	return q, nil
}

func activityMessage(a *fsmpb.Activity) *wharfv1.Activity {
	return &wharfv1.Activity{
		Seq:            a.GetSeq(),
		UnixNanos:      a.GetUnixNanos(),
		Actor:          a.GetActor(),
		NodeId:         a.GetNodeId(),
		Repository:     a.GetRepository(),
		Kind:           wharfv1.ActivityKind(wharfv1.ActivityKind_value[a.GetKind().String()]),
		Tag:            a.GetTag(),
		Digest:         a.GetDigest(),
		PreviousDigest: a.GetPreviousDigest(),
	}
}
