package fsm

import (
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Registered cluster members, one record per node:
//
//	node/<node id>                           fsmpb.Node
//
// The leader's membership reconciler registers members gossip reports alive
// and deregisters those that left or stayed dead too long; blob placement
// reads the registered nodes.
const prefixNode = "node/"

// Limits on node records, so keys and records stay small.
const (
	maxRegisteredIDLength = 255
	maxNodeFieldLength    = 1024
)

func nodeKey(id string) []byte { return key(prefixNode, id) }

// applyRegisterNode stores a node record, keeping the registration time of
// an earlier registration of the same ID.
func applyRegisterNode(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	n := cmd.GetRegisterNode().GetNode()
	if res := validateNode(n); res != nil {
		return res, nil
	}
	rec := &fsmpb.Node{
		Id:                  n.GetId(),
		Name:                n.GetName(),
		ClusterAddress:      n.GetClusterAddress(),
		GossipAddress:       n.GetGossipAddress(),
		Weight:              n.GetWeight(),
		RegisteredUnixNanos: cmd.GetUnixNanos(),
	}
	var old fsmpb.Node
	found, err := getProto(b, nodeKey(n.GetId()), &old)
	if err != nil {
		return nil, err
	}
	if found {
		rec.RegisteredUnixNanos = old.GetRegisteredUnixNanos()
	}
	if err := setProto(b, nodeKey(rec.GetId()), rec); err != nil {
		return nil, err
	}
	return success(), nil
}

// applyDeregisterNode removes a node record, or reports it missing.
func applyDeregisterNode(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	id := cmd.GetDeregisterNode().GetNodeId()
	if res := validateNodeID(id); res != nil {
		return res, nil
	}
	res, err := deleteIfExists(b, nodeKey(id), func() *fsmpb.Result {
		return notFound("node %q is not registered", id)
	})
	if err != nil || res.GetCode() != fsmpb.ResultCode_RESULT_CODE_OK {
		return res, err
	}
	// Its last sweep goes with it (gcstatus.go).
	return res, b.Delete(sweepKey(id), nil)
}

func validateNode(n *fsmpb.Node) *fsmpb.Result {
	if n == nil {
		return invalid("register node: no node")
	}
	if res := validateNodeID(n.GetId()); res != nil {
		return res
	}
	if n.GetClusterAddress() == "" {
		return invalid("node %q has no cluster address", n.GetId())
	}
	for _, f := range []string{n.GetName(), n.GetClusterAddress(), n.GetGossipAddress()} {
		if len(f) > maxNodeFieldLength {
			return invalid("node %q: a field is longer than %d bytes", n.GetId(), maxNodeFieldLength)
		}
	}
	if n.GetWeight() < 0 {
		return invalid("node %q has negative weight %v", n.GetId(), n.GetWeight())
	}
	return nil
}

func validateNodeID(id string) *fsmpb.Result {
	if id == "" || len(id) > maxRegisteredIDLength || strings.Contains(id, sep) {
		return invalid("invalid node ID %q", id)
	}
	return nil
}

// Nodes returns the registered nodes ordered by ID.
func (f *FSM) Nodes() ([]*fsmpb.Node, error) {
	var nodes []*fsmpb.Node
	err := f.view(func(r pebble.Reader) error {
		return scanPrefix(r, []byte(prefixNode), func(k, v []byte) (bool, error) {
			var n fsmpb.Node
			if err := proto.Unmarshal(v, &n); err != nil {
				return false, fmt.Errorf("decode %q: %w", k, err)
			}
			nodes = append(nodes, &n)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return nodes, nil
}

// Node returns the record of node id, or ErrNotFound.
func (f *FSM) Node(id string) (*fsmpb.Node, error) {
	var n fsmpb.Node
	if err := f.getRecord(nodeKey(id), &n, "node %q", id); err != nil {
		return nil, err
	}
	return &n, nil
}
