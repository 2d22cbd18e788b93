// Package cluster runs wharf's metadata FSM under Raft (hashicorp/raft),
// with membership from gossip (hashicorp/memberlist).
//
// A Node owns a data directory:
//
//	<data-dir>/node-id          the Raft server ID, generated on first start
//	<data-dir>/fsm/             the FSM's Pebble database generations
//	<data-dir>/raft/log/        Pebble: the Raft log and stable store
//	<data-dir>/raft/snapshots/  Raft's file snapshot store
//
// # Security
//
// The cluster key (GenerateKey) is expanded with HKDF-SHA256 into the
// memberlist encryption key and the seed of an Ed25519 cluster CA, whose
// self-signed certificate every node derives identically. Each node issues
// itself a fresh leaf certificate under it at start. The cluster port
// (ClusterListen) accepts only mutual TLS 1.3 with a certificate chaining to
// the CA and routes each connection by ALPN: "wharf-raft" to the Raft
// transport, "h2"/"http/1.1" to the internal HTTP server (InternalMux: the
// PeerService, and peer handlers other packages mount). Operator-supplied
// certificates may replace the derived CA. A lone node without a key uses
// a random one and runs no gossip.
//
// # Membership
//
// Nodes gossip their ID, name, cluster address and whether they have Raft
// state. With BootstrapExpect N > 1, a node without Raft state waits until
// gossip shows N alive members none of which has Raft state, and bootstraps
// all of them, sorted by ID; every node computes the same configuration. If
// a member has state, a cluster exists and the node waits to be added.
//
// The leader reconciles on gossip events and every ReconcileInterval: it
// registers alive members in the FSM (RegisterNode) and adds them to Raft,
// as voters up to 3 (5 once 5 members are alive) and as non-voters beyond,
// promoting non-voters when voters are missing; it removes members that left
// gracefully at once, and dead ones after DeadNodeTimeout unless the
// remaining alive voters would lack a quorum (canRemoveVoter).
//
// Every other leader-only job is a leader task (RunOnLeader): blob repair,
// garbage collection, the access bootstrap. The leader loop starts them
// once the new leader's barrier is committed and cancels them, waiting for
// each, when the node steps down; no code polls for leadership.
//
// # Writes and reads
//
// Writes are Raft commands (Node.Apply); a follower forwards them to the
// leader with PeerService.Apply, retrying across leader changes with the
// same request ID, which the FSM deduplicates. Reads of mutable state take
// a read index (the leader's commit index once it has committed an entry in
// its term and confirmed its leadership; followers ask the leader, batching
// concurrent readers into one round trip) and wait until the FSM has
// applied it. Without a leader heard from within QuorumTimeout, writes and
// such reads fail with ErrNoQuorum.
package cluster
