package fsm

import fsmv1 "github.com/wharf-registry/wharf/api/gen/wharf/fsm/v1"

// AcceptedOnFullDisk reports whether cmd is a write that a node accepts
// even when its disk is below its floor: one that removes state (deletions,
// revocations, garbage collection), so that an operator can free space, or
// that keeps the cluster's membership up to date. Each needs only a Raft
// log entry and a small Pebble batch.
func AcceptedOnFullDisk(cmd *fsmv1.Command) bool {
	switch cmd.GetOp().(type) {
	case *fsmv1.Command_DeleteManifest, *fsmv1.Command_DeleteTag, *fsmv1.Command_UnlinkBlob,
		*fsmv1.Command_RemoveBlobHolder, *fsmv1.Command_CollectBlob, *fsmv1.Command_CollectedBlobDeleted,
		*fsmv1.Command_RegisterNode, *fsmv1.Command_DeregisterNode,
		*fsmv1.Command_DeleteUser, *fsmv1.Command_DeleteGroup, *fsmv1.Command_RemoveGroupMember,
		*fsmv1.Command_RevokeRole, *fsmv1.Command_DeleteApiToken:
		return true
	}
	return false
}
