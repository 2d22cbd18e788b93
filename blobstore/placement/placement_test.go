package placement

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

const numDigests = 10_000

func testDigests(n int) []digest.Digest {
	ds := make([]digest.Digest, n)
	for i := range ds {
		ds[i] = digest.FromString(fmt.Sprint("blob-", i))
	}
	return ds
}

func equalNodes(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = Node{ID: fmt.Sprintf("node-%02d", i), Weight: 1}
	}
	return nodes
}

func ids(nodes []Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.ID
	}
	return out
}

func TestRankIsDeterministicAndOrderIndependent(t *testing.T) {
	nodes := equalNodes(7)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range testDigests(200) {
		want := ids(Rank(d, nodes))
		if got := ids(Rank(d, nodes)); !slices.Equal(got, want) {
			t.Fatalf("Rank(%s) changed between calls: %v, then %v", d, want, got)
		}
		shuffled := slices.Clone(nodes)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := ids(Rank(d, shuffled)); !slices.Equal(got, want) {
			t.Fatalf("Rank(%s) depends on node order: %v, shuffled %v", d, want, got)
		}
	}
}

// TestRankIsStable pins a few rankings: every node must rank the same way,
// so the hash may never change unnoticed.
func TestRankIsStable(t *testing.T) {
	nodes := equalNodes(4)
	tests := []struct {
		d    digest.Digest
		want []string
	}{
		{digest.FromString("a"), []string{"node-03", "node-01", "node-00", "node-02"}},
		{digest.FromString("b"), []string{"node-03", "node-00", "node-01", "node-02"}},
	}
	for _, tt := range tests {
		if got := ids(Rank(tt.d, nodes)); !slices.Equal(got, tt.want) {
			t.Errorf("Rank(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestOwners(t *testing.T) {
	nodes := equalNodes(5)
	d := digest.FromString("x")
	ranked := ids(Rank(d, nodes))
	tests := []struct {
		r    int
		want []string
	}{
		{-1, nil},
		{0, nil},
		{1, ranked[:1]},
		{3, ranked[:3]},
		{5, ranked},
		{9, ranked},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("r=", tt.r), func(t *testing.T) {
			got := Owners(d, nodes, tt.r)
			if !slices.Equal(ids(got), tt.want) {
				t.Fatalf("Owners(r=%d) = %q, want %q", tt.r, ids(got), tt.want)
			}
		})
	}
	if got := Owners(d, nil, 3); len(got) != 0 {
		t.Fatalf("Owners of no nodes = %v", got)
	}
}

// TestMembershipChangeMovesFewBlobs checks the defining property of
// rendezvous hashing: a node joining takes about 1/(n+1) of the blobs from
// the others and moves nothing else; a node leaving moves only its own.
func TestMembershipChangeMovesFewBlobs(t *testing.T) {
	const n = 10
	before := equalNodes(n)
	joined := append(slices.Clone(before), Node{ID: "node-new", Weight: 1})
	left := slices.Delete(slices.Clone(before), 3, 4)
	tests := []struct {
		name      string
		after     []Node
		wantMoved float64
		// every moved blob must go to (join) or come from (leave) this node
		changed string
		join    bool
	}{
		{"join", joined, 1.0 / (n + 1), "node-new", true},
		{"leave", left, 1.0 / n, before[3].ID, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			moved := 0
			for _, d := range testDigests(numDigests) {
				from, to := Owners(d, before, 1)[0].ID, Owners(d, tt.after, 1)[0].ID
				if from == to {
					continue
				}
				moved++
				if (tt.join && to != tt.changed) || (!tt.join && from != tt.changed) {
					t.Fatalf("blob %s moved from %s to %s", d, from, to)
				}
			}
			frac := float64(moved) / numDigests
			if math.Abs(frac-tt.wantMoved) > 0.02 {
				t.Fatalf("%.3f of the blobs moved, want about %.3f", frac, tt.wantMoved)
			}
		})
	}
}

// TestReplicaSetsChangeMinimally checks that with r owners a join changes a
// blob's owner set only by letting the new node in.
func TestReplicaSetsChangeMinimally(t *testing.T) {
	const r = 3
	before := equalNodes(8)
	after := append(slices.Clone(before), Node{ID: "node-new"})
	for _, d := range testDigests(2000) {
		old, cur := ids(Owners(d, before, r)), ids(Owners(d, after, r))
		for _, id := range cur {
			if id != "node-new" && !slices.Contains(old, id) {
				t.Fatalf("blob %s: owners %q became %q", d, old, cur)
			}
		}
	}
}

func TestWeightsSetShares(t *testing.T) {
	tests := []struct {
		name    string
		weights []float64
	}{
		{"equal", []float64{1, 1, 1, 1, 1}},
		{"one double", []float64{2, 1, 1, 1}},
		{"mixed", []float64{3, 1, 0.5, 1.5}},
		{"zero counts as one", []float64{0, 1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := make([]Node, len(tt.weights))
			var total float64
			for i, w := range tt.weights {
				nodes[i] = Node{ID: fmt.Sprint("n", i), Weight: w}
				total += effectiveWeight(w)
			}
			counts := map[string]int{}
			for _, d := range testDigests(numDigests) {
				counts[Owners(d, nodes, 1)[0].ID]++
			}
			for i, n := range nodes {
				want := effectiveWeight(tt.weights[i]) / total
				got := float64(counts[n.ID]) / numDigests
				if math.Abs(got-want) > 0.1*want+0.005 {
					t.Errorf("node %s with weight %g owns %.3f of the blobs, want about %.3f", n.ID, tt.weights[i], got, want)
				}
			}
		})
	}
}

func effectiveWeight(w float64) float64 {
	if w <= 0 {
		return 1
	}
	return w
}

func BenchmarkRank(b *testing.B) {
	ds := testDigests(1024)
	for _, n := range []int{5, 50} {
		nodes := equalNodes(n)
		b.Run(fmt.Sprint("nodes=", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				Rank(ds[i%len(ds)], nodes)
				i++
			}
		})
	}
}
