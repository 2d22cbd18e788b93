// Package replication keeps every blob on the nodes that should hold it.
//
// It wraps a node's local blobstore.Store for the OCI API:
//
//   - a blob a client stores is recorded as held by this node and copied,
//     in the background, to its owners: the first R nodes of its weighted
//     rendezvous ranking among the live registered nodes;
//   - a manifest push waits until each blob it references has
//     min(W, cluster size) durable copies recorded in the FSM;
//   - a blob this node does not hold is fetched from a holder, verified,
//     and served from a file (one fetch shared by concurrent requests);
//   - on the Raft leader, a repair loop finds blobs with fewer than R live
//     holders (after a node died or was removed) and copies them to new
//     owners; a blob whose owners all hold it loses its other live holders
//     from the record (a node that is not an owner keeps no permanent copy;
//     each node's gc sweep deletes the file).
//
// Which nodes hold a blob is replicated state (fsm holder records);
// everything here is a reconciler that acts on it through the Cluster
// interface. It lives under cluster/ because it is the cluster's view of
// the blobs: blobstore/ below it knows one node's disk and how bytes
// travel between two nodes, nothing of Raft or of who should hold what.
package replication
