package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	wharfv1 "github.com/wharf-registry/wharf/api/gen/wharf/v1"
	"github.com/wharf-registry/wharf/api/gen/wharf/v1/wharfv1connect"
	"github.com/wharf-registry/wharf/cluster"
)

// cliEnv runs wharf CLI commands in this process against an isolated
// credentials file.
type cliEnv struct{ t *testing.T }

// newCLIEnv gives the test a credentials directory of its own and clears
// the environment variables the CLI reads (t.Setenv: not in parallel).
func newCLIEnv(t *testing.T) cliEnv {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	for _, v := range []string{"WHARF_SERVER", "WHARF_URL", "WHARF_USERNAME", "WHARF_PASSWORD", "WHARF_TOKEN"} {
		t.Setenv(v, "")
	}
	return cliEnv{t}
}

// run executes one command line with stdin and returns its output.
func (e cliEnv) run(stdin string, args ...string) (string, error) {
	e.t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetIn(strings.NewReader(stdin))
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// must runs a command line that must succeed and print want.
func (e cliEnv) must(want string, args ...string) string {
	e.t.Helper()
	out, err := e.run("", args...)
	if err != nil || !strings.Contains(out, want) {
		e.t.Fatalf("wharf %s: %v\n%s\nwant it to print %q", strings.Join(args, " "), err, out, want)
	}
	return out
}

// refused runs a command line that must fail saying want.
func (e cliEnv) refused(want string, args ...string) {
	e.t.Helper()
	out, err := e.run("", args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		e.t.Fatalf("wharf %s: err = %v, want one saying %q\n%s", strings.Join(args, " "), err, want, out)
	}
}

// One login through the balancer serves every node of the cluster, and no
// other registry; logout removes it for all of them.
func TestLoginServesEveryNodeOfTheCluster(t *testing.T) {
	h := startHarness(t, harnessOpts{lbPublicURL: true})
	other := startAccessNodes(t, 1)[0]
	cli := newCLIEnv(t)

	out, err := cli.run(harnessAdminPassword+"\n", "login", h.lbURL(), "-u", adminUser)
	if err != nil || !strings.Contains(out, "Login Succeeded") || !strings.Contains(out, "serves every node of the cluster at http://localhost:") {
		t.Fatalf("login: %v\n%s", err, out)
	}
	for _, n := range h.nodes {
		cli.must("Raft state:", "status", "--server", n.baseURL)
	}
	cli.must("NAME", "cluster", "members", "--server", h.nodes[2].baseURL)
	cli.must("Raft state:", "status") // the server of the login
	cli.refused("log in first", "status", "--server", other.url)

	cli.must("removed the login of admin", "logout", "--server", h.nodes[1].baseURL)
	for _, server := range []string{h.lbURL(), h.nodes[0].baseURL} {
		cli.refused("log in first", "status", "--server", server)
	}
	cli.must("not logged in to", "logout", h.lbURL())
}

func TestLogoutAll(t *testing.T) {
	nodes := startAccessNodes(t, 1)
	cli := newCLIEnv(t)
	if out, err := cli.run(accAdminPassword+"\n", "login", nodes[0].url, "-u", adminUser); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	cli.must("Raft state:", "status")
	cli.refused("give a server or --all", "logout", "--all", nodes[0].url)
	cli.must("removed 1 stored login(s)", "logout", "--all")
	cli.refused("log in first", "status", "--server", nodes[0].url)
	cli.must("not logged in", "logout")
}

// adminCluster is node n's ClusterService, called as admin.
func adminCluster(n *testNode) wharfv1connect.ClusterServiceClient {
	return wharfv1connect.NewClusterServiceClient(&http.Client{Transport: basicTransport{adminUser, harnessAdminPassword}}, n.baseURL)
}

// lastContacts asks node n for the members and returns each one's last
// contact as an age (-1 for unknown).
func lastContacts(t *testing.T, n *testNode) map[string]time.Duration {
	t.Helper()
	resp, err := adminCluster(n).Members(context.Background(), connect.NewRequest(&wharfv1.MembersRequest{}))
	if err != nil {
		t.Fatalf("members of node %d: %v", n.idx, err)
	}
	out := map[string]time.Duration{}
	for _, m := range resp.Msg.Members {
		out[m.NodeId] = -1
		if m.LastContactUnixNanos > 0 {
			out[m.NodeId] = time.Since(time.Unix(0, m.LastContactUnixNanos))
		}
	}
	return out
}

// Whichever node answers, the members' last contacts are the leader's:
// recent for live followers, growing for a dead one, none for the leader.
func TestMembersShowTheLeadersLastContact(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	leader := h.nodes[h.leader()]
	var followers []*testNode
	for _, n := range h.nodes {
		if n != leader {
			followers = append(followers, n)
		}
	}
	asker, dead := followers[0], followers[1]
	waitUntil(t, 5*time.Second, func() error {
		for _, via := range []*testNode{asker, leader} {
			got := lastContacts(t, via)
			if got[leader.id] != -1 {
				return fmt.Errorf("via node %d: the leader has a last contact of %v, want none", via.idx, got[leader.id])
			}
			for _, f := range followers {
				if age := got[f.id]; age < 0 || age > time.Second {
					return fmt.Errorf("via node %d: follower %d last contacted %v ago, want within 1s", via.idx, f.idx, age)
				}
			}
		}
		return nil
	})

	h.crash(dead.idx)
	time.Sleep(1500 * time.Millisecond)
	waitUntil(t, 5*time.Second, func() error {
		got := lastContacts(t, asker)
		if age := got[dead.id]; age < time.Second {
			return fmt.Errorf("the crashed follower last contacted %v ago, want over 1s", age)
		}
		if age := got[asker.id]; age < 0 || age > time.Second {
			return fmt.Errorf("the live follower last contacted %v ago, want within 1s", age)
		}
		return nil
	})
}

// member returns node id's entry in node via's member list.
func member(via *testNode, id string) (cluster.Member, bool) {
	for _, m := range via.registry().node.Members() {
		if m.ID == id {
			return m, true
		}
	}
	return cluster.Member{}, false
}

// wharf cluster remove, asked of a follower: refuses unknown and live
// nodes, the leader and a removal below quorum, and removes a dead node
// from Raft and from the registered nodes at once.
func TestClusterRemove(t *testing.T) {
	h := startHarness(t, harnessOpts{})
	cli := newCLIEnv(t)
	t.Setenv("WHARF_USERNAME", adminUser)
	t.Setenv("WHARF_PASSWORD", harnessAdminPassword)
	leader := h.nodes[h.leader()]
	var asker, victim *testNode
	for _, n := range h.nodes {
		switch {
		case n == leader:
		case asker == nil:
			asker = n
		default:
			victim = n
		}
	}
	via := []string{"--server", asker.baseURL}
	remove := func(args ...string) []string { return append(append([]string{"cluster", "remove"}, args...), via...) }

	cli.refused("no such member", remove("no-such-node")...)
	cli.refused("gossip sees "+victim.opts.nodeName, remove(victim.opts.nodeName)...)
	cli.refused("is the leader answering", remove("--force", leader.id)...)

	h.crash(victim.idx)
	waitUntil(t, 10*time.Second, func() error {
		if m, _ := member(leader, victim.id); m.Gossip == "alive" {
			return fmt.Errorf("the leader still sees node %d alive", victim.idx)
		}
		return nil
	})
	cli.refused("without a quorum", remove("--force", asker.id)...)
	cli.must("removed node "+victim.opts.nodeName+" ("+victim.id+")", remove(victim.opts.nodeName)...)
	for _, n := range []*testNode{leader, asker} {
		waitUntil(t, 5*time.Second, func() error {
			if m, ok := member(n, victim.id); ok && (m.Suffrage != "none" || m.Registered) {
				return fmt.Errorf("node %d still has the removed node as %s, registered %v", n.idx, m.Suffrage, m.Registered)
			}
			return nil
		})
	}
	cli.refused("no such member", remove(victim.id)...)
	cli.must("Raft state:", "status", "--server", asker.baseURL)
}
