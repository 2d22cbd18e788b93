package fsm

import "github.com/wharf-registry/wharf/fsm/fsmpb"

// AcceptedOnFullDisk reports whether cmd is a write that a node accepts
// even when its disk is below its floor: one that removes state (deletions,
// revocations, garbage collection), so that an operator can free space, or
// that keeps the cluster's membership up to date. Each needs only a Raft
// log entry and a small Pebble batch.
func AcceptedOnFullDisk(cmd *fsmpb.Command) bool {
	switch cmd.GetOp().(type) {
	case *fsmpb.Command_DeleteManifest, *fsmpb.Command_DeleteTag, *fsmpb.Command_UnlinkBlob,
		*fsmpb.Command_RemoveBlobHolder, *fsmpb.Command_CollectBlob, *fsmpb.Command_CollectedBlobDeleted,
		*fsmpb.Command_RegisterNode, *fsmpb.Command_DeregisterNode,
		*fsmpb.Command_DeleteUser, *fsmpb.Command_DeleteGroup, *fsmpb.Command_RemoveGroupMember,
		*fsmpb.Command_RevokeRole, *fsmpb.Command_DeleteApiToken, *fsmpb.Command_DeleteRemote,
		// One small record each, replaced: the status of the collection
		// that frees the disk.
		*fsmpb.Command_RecordGcRun, *fsmpb.Command_RecordSweep:
		return true
	}
	return false
}
