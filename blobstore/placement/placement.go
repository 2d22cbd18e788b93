// Package placement decides which nodes own a blob, by weighted rendezvous
// (highest random weight) hashing.
//
// Every node gets a score for a digest; the nodes ranked by descending score
// are the blob's preferred holders, and the first r of them are its owners.
// The score of node n for digest d is
//
//	score = -weight(n) / ln(u(n, d))
//
// where u(n, d) is a 64-bit hash of (d, n.ID) mapped to a uniform float in
// the open interval (0, 1). This is the weighted form of rendezvous hashing
// (Schindelhauer and Schomaker, "Weighted distributed hash tables", 2005):
// the probability that a node ranks first is its weight divided by the sum of
// the weights, and adding or removing a node only moves the blobs whose
// ranking that node enters or leaves, about 1/n of them.
//
// The hash is FNV-1a (64 bit) over the digest string, a zero byte and the
// node ID, followed by the splitmix64 finalizer so that IDs and digests that
// differ in a few bytes still give independent scores. It is part of the
// cluster's on-disk contract: every node must rank the same way, so it must
// never change without a migration.
package placement

import (
	"cmp"
	"math"
	"slices"

	"github.com/opencontainers/go-digest"
)

// Node is a placement candidate.
type Node struct {
	// ID identifies the node; IDs in one ranking must be unique.
	ID string
	// Weight scales the node's share of blobs; a weight <= 0 counts as 1.
	Weight float64
}

// Rank returns nodes ordered by preference for blob d, most preferred
// first, in a new slice. The order depends only on d and the set of nodes,
// not on their order in the argument.
func Rank(d digest.Digest, nodes []Node) []Node {
	scored := make([]scoredNode, len(nodes))
	base := fnvString(fnvOffset, string(d))
	base = fnvByte(base, 0)
	for i, n := range nodes {
		scored[i] = scoredNode{node: n, score: score(base, n)}
	}
	slices.SortFunc(scored, func(a, b scoredNode) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.node.ID, b.node.ID) // equal scores are all but impossible; stay deterministic
	})
	ranked := make([]Node, len(scored))
	for i, s := range scored {
		ranked[i] = s.node
	}
	return ranked
}

// Owners returns the r most preferred nodes for blob d: the nodes that
// should hold its copies. It returns every node if r exceeds their number,
// and none if r <= 0.
func Owners(d digest.Digest, nodes []Node, r int) []Node {
	if r <= 0 {
		return nil
	}
	ranked := Rank(d, nodes)
	return ranked[:min(r, len(ranked))]
}

type scoredNode struct {
	node  Node
	score float64
}

// score returns the weighted score of n, given the FNV-1a state after the
// digest and its separator.
func score(base uint64, n Node) float64 {
	w := n.Weight
	if w <= 0 {
		w = 1
	}
	return -w / math.Log(unitFloat(mix(fnvString(base, n.ID))))
}

// unitFloat maps h to a float64 in the open interval (0, 1), using its top
// 53 bits: (k + 0.5) / 2^53 for k in [0, 2^53).
func unitFloat(h uint64) float64 {
	return (float64(h>>11) + 0.5) / (1 << 53)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = fnvByte(h, s[i])
	}
	return h
}

func fnvByte(h uint64, c byte) uint64 { return (h ^ uint64(c)) * fnvPrime }

// mix is the splitmix64 finalizer, a bijection with full avalanche.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
