// Package cluster runs wharf's metadata FSM under Raft (hashicorp/raft).
//
// A Node owns a data directory:
//
//	<data-dir>/node-id          the Raft server ID, generated on first start
//	<data-dir>/fsm/             the FSM's Pebble database generations
//	<data-dir>/raft/log/        Pebble: the Raft log and stable store
//	<data-dir>/raft/snapshots/  Raft's file snapshot store
//
// Writes are Raft commands (Node.Apply), committed by a quorum and then
// applied by the FSM; the FSM's verdict comes back as an error wrapping
// fsm.ErrNotFound, fsm.ErrNamespaceConflict or fsm.ErrInvalid, and a write
// that could not be committed returns an error wrapping ErrNoQuorum. Reads
// come from the local FSM.
//
// This package runs one voter today; it is shaped for peers (a TCP
// transport with an advertised address, a stable node ID separate from the
// node name, a single propose path to forward from).
package cluster
