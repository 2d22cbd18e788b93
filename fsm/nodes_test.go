package fsm

import (
	"errors"
	"strings"
	"testing"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

func registerNode(id, addr string, at int64) *fsmpb.Command {
	return &fsmpb.Command{UnixNanos: at, Op: &fsmpb.Command_RegisterNode{RegisterNode: &fsmpb.RegisterNode{
		Node: &fsmpb.Node{Id: id, Name: "name-" + id, ClusterAddress: addr, GossipAddress: "g-" + addr},
	}}}
}

func deregisterNode(id string) *fsmpb.Command {
	return &fsmpb.Command{Op: &fsmpb.Command_DeregisterNode{DeregisterNode: &fsmpb.DeregisterNode{NodeId: id}}}
}

func TestNodeRegistration(t *testing.T) {
	tests := []struct {
		name  string
		cmds  []*fsmpb.Command
		want  fsmpb.ResultCode // of the last command
		nodes map[string]string
	}{
		{"register", []*fsmpb.Command{registerNode("a", "10.0.0.1:5002", 1)}, codeOK, map[string]string{"a": "10.0.0.1:5002"}},
		{"re-register updates address", []*fsmpb.Command{registerNode("a", "x:1", 1), registerNode("a", "y:1", 2)}, codeOK, map[string]string{"a": "y:1"}},
		{"deregister", []*fsmpb.Command{registerNode("a", "x:1", 1), registerNode("b", "z:1", 1), deregisterNode("a")}, codeOK, map[string]string{"b": "z:1"}},
		{"deregister unknown", []*fsmpb.Command{deregisterNode("a")}, fsmpb.ResultCode_RESULT_CODE_NOT_FOUND, map[string]string{}},
		{"empty id", []*fsmpb.Command{registerNode("", "x:1", 1)}, fsmpb.ResultCode_RESULT_CODE_INVALID, map[string]string{}},
		{"id with separator", []*fsmpb.Command{registerNode("a"+sep, "x:1", 1)}, fsmpb.ResultCode_RESULT_CODE_INVALID, map[string]string{}},
		{"no address", []*fsmpb.Command{registerNode("a", "", 1)}, fsmpb.ResultCode_RESULT_CODE_INVALID, map[string]string{}},
		{"long name", []*fsmpb.Command{registerNode("a", strings.Repeat("x", 2000), 1)}, fsmpb.ResultCode_RESULT_CODE_INVALID, map[string]string{}},
		{"no node", []*fsmpb.Command{{Op: &fsmpb.Command_RegisterNode{RegisterNode: &fsmpb.RegisterNode{}}}}, fsmpb.ResultCode_RESULT_CODE_INVALID, map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := openTest(t)
			var res *fsmpb.Result
			for _, cmd := range tt.cmds {
				res = tf.apply(cmd)
			}
			if res.GetCode() != tt.want {
				t.Fatalf("result = %v, want %v", res, tt.want)
			}
			nodes, err := tf.Nodes()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, n := range nodes {
				got[n.GetId()] = n.GetClusterAddress()
			}
			if len(got) != len(tt.nodes) {
				t.Fatalf("nodes = %v, want %v", got, tt.nodes)
			}
			for id, addr := range tt.nodes {
				if got[id] != addr {
					t.Fatalf("nodes = %v, want %v", got, tt.nodes)
				}
			}
		})
	}
}

func TestNodeKeepsRegistrationTime(t *testing.T) {
	tf := openTest(t)
	tf.mustApply(registerNode("a", "x:1", 100), registerNode("a", "y:1", 200))
	n, err := tf.Node("a")
	if err != nil {
		t.Fatal(err)
	}
	if n.GetRegisteredUnixNanos() != 100 || n.GetClusterAddress() != "y:1" || n.GetName() != "name-a" {
		t.Fatalf("node = %v", n)
	}
	if _, err := tf.Node("b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Node(b) = %v, want ErrNotFound", err)
	}
}
