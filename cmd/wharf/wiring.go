package main

import (
	"github.com/wharf-registry/wharf/cluster"
)

// peerURL returns the internal base URL of a live member, for proxying
// upload sessions.
func peerURL(node *cluster.Node) func(id string) (string, bool) {
	return func(id string) (string, bool) {
		for _, m := range node.Members() {
			if m.ID == id && m.Alive() && m.ClusterAddr != "" {
				return "https://" + m.ClusterAddr, true
			}
		}
		return "", false
	}
}
