package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm"
)

// The linearizability test: clients bound to the nodes of a three-node
// cluster move and read tags while a chaos goroutine crashes (Shutdown
// without Leave) and restarts one node at a time; porcupine then checks the
// recorded history against a register per tag.

// regInput is an operation on one tag's register.
type regInput struct {
	Tag   string
	Write bool
	Value string // the digest written; empty for a read
}

// regOutput is a read's result: the digest the tag resolved to, "" when
// the tag did not exist. Writes have no output.
type regOutput struct {
	Value string
}

// registerModel is a register per tag, initially unset ("").
var registerModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byTag := map[string][]porcupine.Operation{}
		var order []string
		for _, op := range history {
			tag := op.Input.(regInput).Tag
			if _, ok := byTag[tag]; !ok {
				order = append(order, tag)
			}
			byTag[tag] = append(byTag[tag], op)
		}
		out := make([][]porcupine.Operation, 0, len(order))
		for _, tag := range order {
			out = append(out, byTag[tag])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.Write {
			return true, in.Value
		}
		return output.(regOutput).Value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.Write {
			return fmt.Sprintf("put %s -> %s", in.Tag, short(in.Value))
		}
		return fmt.Sprintf("get %s = %s", in.Tag, short(output.(regOutput).Value))
	},
	DescribeState: func(state any) string { return short(state.(string)) },
}

func short(d string) string {
	if len(d) > 19 {
		return d[7:19] // past "sha256:"
	}
	if d == "" {
		return "<none>"
	}
	return d
}

// chaosCluster holds the current incarnation of each node of a testCluster,
// swapped by the chaos goroutine under mu.
type chaosCluster struct {
	t     *testing.T
	mu    sync.Mutex
	nodes []*Node // nil while a node is down
}

func (c *chaosCluster) node(i int) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// crash shuts node i down without leaving the cluster, as a crash would
// (the data directory keeps whatever was fsync'ed).
func (c *chaosCluster) crash(i int) *Node {
	c.mu.Lock()
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		c.t.Errorf("crash node %s: %v", n.id, err)
	}
	return n
}

// restart reopens a crashed node from its data directory, on the same
// cluster and gossip ports, and waits until it is ready.
func (c *chaosCluster) restart(i int, old *Node) error {
	cfg := old.cfg
	cfg.ClusterListen = old.ClusterAddress() // the port peers know it by
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var n *Node
	var err error
	// The ports were just released; retry briefly if the OS disagrees.
	for range 20 {
		if n, err = Open(ctx, cfg); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("reopen node %s: %w", old.id, err)
	}
	c.t.Cleanup(func() { n.Shutdown(context.Background()) })
	if n.id != old.id {
		return fmt.Errorf("node reopened as %s, was %s", n.id, old.id)
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
	if err := n.WaitReady(ctx); err != nil {
		return fmt.Errorf("node %s after restart: %w", n.id, err)
	}
	return nil
}

// history is the operations recorded by every client.
type history struct {
	mu      sync.Mutex
	ops     []porcupine.Operation
	unknown []int // indexes in ops of writes whose outcome is unknown
}

func (h *history) add(op porcupine.Operation, unknown bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if unknown {
		h.unknown = append(h.unknown, len(h.ops))
	}
	h.ops = append(h.ops, op)
}

func TestLinearizableTagsUnderCrashes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster with crashes for ~10s")
	}
	const (
		repo     = "acme/lin"
		clients  = 6
		duration = 9 * time.Second
		opTime   = 5 * time.Second
	)
	tags := []string{"a", "b", "c", "d"}
	tc := startCluster(t, 3, clusterOpts{deadNodeTimeout: time.Hour})
	cc := &chaosCluster{t: t, nodes: append([]*Node(nil), tc.nodes...)}

	start := time.Now() // monotonic
	now := func() int64 { return int64(time.Since(start)) }
	stop := make(chan struct{})
	h := &history{}
	var writes, reads, failedWrites, failedReads, restarts atomic.Int64

	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			nodeIdx := c % len(cc.nodes)
			clientID := c
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				n := cc.node(nodeIdx)
				if n == nil { // crashed: wait for it to come back
					time.Sleep(20 * time.Millisecond)
					continue
				}
				tag := tags[rng.IntN(len(tags))]
				ctx, cancel := context.WithTimeout(context.Background(), opTime)
				if rng.IntN(2) == 0 {
					content := fmt.Sprintf(`{"client":%d,"seq":%d}`, c, seq)
					value := digest.FromString(content).String()
					call := now()
					err := n.PutManifest(ctx, manifestOp(repo, content, tag))
					ret := now()
					op := porcupine.Operation{ClientId: clientID, Input: regInput{Tag: tag, Write: true, Value: value}, Call: call, Output: regOutput{}, Return: ret}
					if err != nil {
						// Maybe committed, maybe not: it may take effect at
						// any time after its call. A client with an
						// operation still pending continues as a new
						// client, as in Jepsen.
						failedWrites.Add(1)
						h.add(op, true)
						clientID += clients
					} else {
						writes.Add(1)
						h.add(op, false)
					}
				} else {
					call := now()
					d, err := n.ResolveTag(ctx, repo, tag)
					ret := now()
					switch {
					case err == nil:
					case errors.Is(err, fsm.ErrNotFound):
						d = ""
					default: // a failed read has no effect; drop it
						failedReads.Add(1)
						cancel()
						continue
					}
					reads.Add(1)
					h.add(porcupine.Operation{ClientId: clientID, Input: regInput{Tag: tag}, Call: call, Output: regOutput{Value: d.String()}, Return: ret}, false)
				}
				cancel()
			}
		})
	}

	// Chaos: crash a random node, keep it down for a while, restart it,
	// wait until it is ready; one node down at a time.
	var chaosErr error
	chaosDone := make(chan struct{})
	go func() {
		defer close(chaosDone)
		rng := rand.New(rand.NewPCG(7, uint64(start.UnixNano())))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(500+rng.IntN(700)) * time.Millisecond):
			}
			i := rng.IntN(len(cc.nodes))
			old := cc.crash(i)
			time.Sleep(time.Duration(200+rng.IntN(600)) * time.Millisecond)
			if err := cc.restart(i, old); err != nil {
				chaosErr = err
				return
			}
			restarts.Add(1)
		}
	}()

	time.Sleep(duration)
	close(stop)
	wg.Wait()
	<-chaosDone
	if chaosErr != nil {
		t.Fatal(chaosErr)
	}

	// Pending writes could take effect until the end of the history.
	var end int64
	for _, op := range h.ops {
		end = max(end, op.Return)
	}
	for _, i := range h.unknown {
		h.ops[i].Return = end + 1
	}
	t.Logf("%d restarts; %d writes and %d reads succeeded; %d writes failed (outcome unknown), %d reads failed (dropped); %d operations checked",
		restarts.Load(), writes.Load(), reads.Load(), failedWrites.Load(), failedReads.Load(), len(h.ops))
	if writes.Load() < 200 || reads.Load() < 200 {
		t.Fatalf("too few successful operations for a meaningful check: %d writes, %d reads", writes.Load(), reads.Load())
	}
	if restarts.Load() < 3 {
		t.Fatalf("only %d crash/restart cycles", restarts.Load())
	}

	checkStart := time.Now()
	res, info := porcupine.CheckOperationsVerbose(registerModel, h.ops, 30*time.Second)
	t.Logf("porcupine: %s in %s", res, time.Since(checkStart).Round(time.Millisecond))
	switch res {
	case porcupine.Illegal:
		path := filepath.Join(os.TempDir(), fmt.Sprintf("wharf-linearizability-%d.html", time.Now().UnixNano()))
		if err := porcupine.VisualizePath(registerModel, info, path); err != nil {
			t.Logf("write visualization: %v", err)
		}
		t.Fatalf("history of %d operations is not linearizable; visualization: %s", len(h.ops), path)
	case porcupine.Unknown:
		t.Fatalf("porcupine timed out on %d operations", len(h.ops))
	}
}

// TestLinearizabilityCheckerNotVacuous feeds the model hand-made histories:
// a stale read must be Illegal, and a legal history with a pending write
// must be Ok.
func TestLinearizabilityCheckerNotVacuous(t *testing.T) {
	w := func(client int, tag, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: regInput{Tag: tag, Write: true, Value: v}, Output: regOutput{}, Call: call, Return: ret}
	}
	r := func(client int, tag, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: regInput{Tag: tag}, Output: regOutput{Value: v}, Call: call, Return: ret}
	}
	// "a" is overwritten by "b" before the read begins, yet the read sees
	// "a". Another tag's legal operations must not hide it.
	stale := []porcupine.Operation{
		w(0, "x", "a", 0, 10),
		w(1, "y", "q", 5, 15),
		w(0, "x", "b", 20, 30),
		r(1, "y", "q", 35, 45),
		r(2, "x", "a", 40, 50),
	}
	if res := porcupine.CheckOperationsTimeout(registerModel, stale, 5*time.Second); res != porcupine.Illegal {
		t.Fatalf("stale read: porcupine says %s, want Illegal", res)
	}
	// A read of an unset tag after a completed write is stale too.
	lost := []porcupine.Operation{w(0, "x", "a", 0, 10), r(1, "x", "", 20, 30)}
	if res := porcupine.CheckOperationsTimeout(registerModel, lost, 5*time.Second); res != porcupine.Illegal {
		t.Fatalf("lost write: porcupine says %s, want Illegal", res)
	}
	// A pending write (outcome unknown, open until the end) may take effect
	// late, and reads may see it or not, in one order.
	legal := []porcupine.Operation{
		w(0, "x", "a", 0, 10),
		w(1, "x", "b", 15, 100), // pending
		r(2, "x", "a", 20, 30),
		r(2, "x", "b", 40, 50),
		r(3, "x", "b", 60, 70),
	}
	if res := porcupine.CheckOperationsTimeout(registerModel, legal, 5*time.Second); res != porcupine.Ok {
		t.Fatalf("legal history: porcupine says %s, want Ok", res)
	}
	// ...but once a read saw it, a later read may not go back.
	flicker := append(legal[:len(legal):len(legal)], r(3, "x", "a", 80, 90))
	if res := porcupine.CheckOperationsTimeout(registerModel, flicker, 5*time.Second); res != porcupine.Illegal {
		t.Fatalf("flickering read: porcupine says %s, want Illegal", res)
	}
}

// TestCutOffNodeFailsFast: once a node has heard from no leader for
// QuorumTimeout, every request fails at once instead of each waiting out
// another QuorumTimeout (a manifest push makes several reads and a write),
// and reads by digest fall back to local state at once.
func TestCutOffNodeFailsFast(t *testing.T) {
	tc := startCluster(t, 3, clusterOpts{deadNodeTimeout: time.Hour})
	ctx := ctxTimeout(t, 30*time.Second)
	survivor := tc.follower()
	if err := survivor.PutManifest(ctx, manifestOp("acme/app", "m1", "v1")); err != nil {
		t.Fatal(err)
	}
	// A linearizable read makes the survivor apply it before it is cut off.
	if _, err := survivor.ResolveTag(ctx, "acme/app", "v1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range tc.nodes {
		if n != survivor {
			shutdown(t, n)
		}
	}
	quorumTimeout := survivor.cfg.QuorumTimeout
	// The first request may wait out QuorumTimeout.
	start := time.Now()
	if err := survivor.PutManifest(ctx, manifestOp("acme/app", "m2", "v2")); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("write without quorum = %v, want ErrNoQuorum", err)
	}
	if took := time.Since(start); took > quorumTimeout+2*time.Second {
		t.Fatalf("first refusal took %s (QuorumTimeout %s)", took, quorumTimeout)
	}
	waitFor(t, 2*quorumTimeout, func() error {
		if s := time.Since(survivor.raft.LastContact()); s <= quorumTimeout {
			return fmt.Errorf("last contact %s ago", s)
		}
		return nil
	})
	// Now the node knows it is cut off: each request fails at once.
	for i := range 3 {
		start := time.Now()
		err := survivor.PutManifest(ctx, manifestOp("acme/app", fmt.Sprint("m", 3+i), "v3"))
		if !errors.Is(err, ErrNoQuorum) {
			t.Fatalf("write %d = %v, want ErrNoQuorum", i, err)
		}
		if _, err := survivor.ResolveTag(ctx, "acme/app", "v1"); !errors.Is(err, ErrNoQuorum) {
			t.Fatalf("read %d = %v, want ErrNoQuorum", i, err)
		}
		if _, err := survivor.Manifest(ctx, "acme/app", digest.FromString("m1")); err != nil {
			t.Fatalf("manifest by digest %d: %v", i, err)
		}
		if took := time.Since(start); took > quorumTimeout/2 {
			t.Fatalf("round %d of refusals took %s; QuorumTimeout is %s", i, took, quorumTimeout)
		} else {
			t.Logf("round %d: write, read and read by digest answered in %s", i, took.Round(time.Millisecond))
		}
	}
}
