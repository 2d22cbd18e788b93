package fsm

import (
	"fmt"
	"reflect"

	"github.com/cockroachdb/pebble"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// A handler applies one kind of command to a batch. The Result is the
// command's deterministic outcome; an error is a storage fault.
type handler func(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error)

// handlers is the dispatch table, keyed by the type of Command.Op.
var handlers = map[reflect.Type]handler{
	reflect.TypeFor[*fsmpb.Command_PutManifest]():          applyPutManifest,
	reflect.TypeFor[*fsmpb.Command_DeleteManifest]():       applyDeleteManifest,
	reflect.TypeFor[*fsmpb.Command_DeleteTag]():            applyDeleteTag,
	reflect.TypeFor[*fsmpb.Command_LinkBlob]():             applyLinkBlob,
	reflect.TypeFor[*fsmpb.Command_UnlinkBlob]():           applyUnlinkBlob,
	reflect.TypeFor[*fsmpb.Command_AddBlobHolder]():        applyAddBlobHolder,
	reflect.TypeFor[*fsmpb.Command_RemoveBlobHolder]():     applyRemoveBlobHolder,
	reflect.TypeFor[*fsmpb.Command_RegisterNode]():         applyRegisterNode,
	reflect.TypeFor[*fsmpb.Command_DeregisterNode]():       applyDeregisterNode,
	reflect.TypeFor[*fsmpb.Command_CollectBlob]():          applyCollectBlob,
	reflect.TypeFor[*fsmpb.Command_CollectedBlobDeleted](): applyCollectedBlobDeleted,
	// Repositories a push left empty: emptyrepo.go.
	reflect.TypeFor[*fsmpb.Command_RemoveEmptyRepository](): applyRemoveEmptyRepository,
	// Summaries of collection runs and sweeps: gcstatus.go.
	reflect.TypeFor[*fsmpb.Command_RecordGcRun](): applyRecordGCRun,
	reflect.TypeFor[*fsmpb.Command_RecordSweep](): applyRecordSweep,
	// Management of repositories, images and tags: manage.go.
	reflect.TypeFor[*fsmpb.Command_TagManifest]():       applyTagManifest,
	reflect.TypeFor[*fsmpb.Command_DeleteRepository]():  applyDeleteRepository,
	reflect.TypeFor[*fsmpb.Command_SetRepositoryInfo](): applySetRepositoryInfo,
	reflect.TypeFor[*fsmpb.Command_DeleteNamespace]():   applyDeleteNamespace,
	// Access control: access.go.
	reflect.TypeFor[*fsmpb.Command_CreateUser]():        applyCreateUser,
	reflect.TypeFor[*fsmpb.Command_SetUserPassword]():   applySetUserPassword,
	reflect.TypeFor[*fsmpb.Command_SetUserSuperuser]():  applySetUserSuperuser,
	reflect.TypeFor[*fsmpb.Command_DeleteUser]():        applyDeleteUser,
	reflect.TypeFor[*fsmpb.Command_CreateGroup]():       applyCreateGroup,
	reflect.TypeFor[*fsmpb.Command_DeleteGroup]():       applyDeleteGroup,
	reflect.TypeFor[*fsmpb.Command_AddGroupMember]():    applyAddGroupMember,
	reflect.TypeFor[*fsmpb.Command_RemoveGroupMember](): applyRemoveGroupMember,
	reflect.TypeFor[*fsmpb.Command_GrantRole]():         applyGrantRole,
	reflect.TypeFor[*fsmpb.Command_RevokeRole]():        applyRevokeRole,
	reflect.TypeFor[*fsmpb.Command_ClaimNamespace]():    applyClaimNamespace,
	reflect.TypeFor[*fsmpb.Command_SetVisibility]():     applySetVisibility,
	reflect.TypeFor[*fsmpb.Command_CreateApiToken]():    applyCreateAPIToken,
	reflect.TypeFor[*fsmpb.Command_DeleteApiToken]():    applyDeleteAPIToken,
	reflect.TypeFor[*fsmpb.Command_RotateSigningKey]():  applyRotateSigningKey,
	// Remote registries: remote.go.
	reflect.TypeFor[*fsmpb.Command_CreateRemote](): applyCreateRemote,
	reflect.TypeFor[*fsmpb.Command_UpdateRemote](): applyUpdateRemote,
	reflect.TypeFor[*fsmpb.Command_DeleteRemote](): applyDeleteRemote,
	// Mirrored repositories and sync jobs: mirror.go.
	reflect.TypeFor[*fsmpb.Command_CreateMirror]():    applyCreateMirror,
	reflect.TypeFor[*fsmpb.Command_UpdateMirror]():    applyUpdateMirror,
	reflect.TypeFor[*fsmpb.Command_DeleteMirror]():    applyDeleteMirror,
	reflect.TypeFor[*fsmpb.Command_RequestSync]():     applyRequestSync,
	reflect.TypeFor[*fsmpb.Command_AssignSyncJob]():   applyAssignSyncJob,
	reflect.TypeFor[*fsmpb.Command_SyncJobProgress](): applySyncJobProgress,
	reflect.TypeFor[*fsmpb.Command_FinishSyncJob]():   applyFinishSyncJob,
	reflect.TypeFor[*fsmpb.Command_CancelSyncJob]():   applyCancelSyncJob,
	// Pull-through caches: pullthrough.go.
	reflect.TypeFor[*fsmpb.Command_CreatePullThroughCache](): applyCreatePullThroughCache,
	reflect.TypeFor[*fsmpb.Command_UpdatePullThroughCache](): applyUpdatePullThroughCache,
	reflect.TypeFor[*fsmpb.Command_DeletePullThroughCache](): applyDeletePullThroughCache,
}

func dispatch(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	if cmd.GetOp() == nil {
		return invalid("command has no operation"), nil
	}
	h, ok := handlers[reflect.TypeOf(cmd.GetOp())]
	if !ok {
		return invalid("unknown operation %s", opName(cmd)), nil
	}
	return h(b, cmd)
}

// opName names the operation of cmd, e.g. "put_manifest".
func opName(cmd *fsmpb.Command) string {
	m := cmd.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().ByName("op"))
	if fd == nil {
		return "none"
	}
	return string(fd.Name())
}

func applyPutManifest(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetPutManifest()
	if res := validatePutManifest(op); res != nil {
		return res, nil
	}
	if res, err := refuseMirrored(b, op.GetRepository(), op.GetSynced()); res != nil || err != nil {
		return res, err
	}
	if res, err := refuseCollected(b, op.GetBlobs()); res != nil || err != nil {
		return res, err
	}
	repo, now := op.GetRepository(), cmd.GetUnixNanos()
	if res, err := ensureRepository(b, repo, now); res != nil || err != nil {
		return res, err
	}
	stored, err := storeManifest(b, op, now)
	if err != nil {
		return nil, err
	}
	if err := b.Delete(emptyRepositoryKey(repo), nil); err != nil {
		return nil, err
	}
	c := repoChange{pushed: true, pushedBy: cmd.GetActor()}
	if stored {
		c.manifests = 1
		err := recordActivity(b, cmd, &fsmpb.Activity{Repository: repo, Digest: op.GetDigest(), Kind: fsmpb.ActivityKind_ACTIVITY_KIND_MANIFEST_ADDED})
		if err != nil {
			return nil, err
		}
	}
	for _, tag := range op.GetTags() {
		added, err := setTag(b, cmd, repo, tag, op.GetDigest())
		if err != nil {
			return nil, err
		}
		if added {
			c.tags++
		}
	}
	return success(), updateRepository(b, repo, now, c)
}

// storeManifest writes the manifest record, its referrers and children
// index entries and its blob references, and reports whether it did. A
// manifest already stored keeps its record: the same digest is the same
// content, and the first push's creation time stays.
func storeManifest(b *pebble.Batch, op *fsmpb.PutManifest, now int64) (bool, error) {
	repo, dgst := op.GetRepository(), op.GetDigest()
	exists, err := has(b, manifestKey(repo, dgst))
	if err != nil || exists {
		return false, err
	}
	m := &fsmpb.Manifest{
		Digest:           dgst,
		MediaType:        op.GetMediaType(),
		Content:          op.GetContent(),
		Subject:          op.GetSubject(),
		ArtifactType:     op.GetArtifactType(),
		Annotations:      op.GetAnnotations(),
		Blobs:            op.GetBlobs(),
		Manifests:        op.GetManifests(),
		CreatedUnixNanos: now,
	}
	if err := setProto(b, manifestKey(repo, dgst), m); err != nil {
		return false, err
	}
	if err := addManifestRefs(b, repo, dgst, m.GetBlobs()); err != nil {
		return false, err
	}
	for _, child := range uniqueBlobs(m.GetManifests()) {
		if err := b.Set(manChildKey(repo, child, dgst), nil, nil); err != nil {
			return false, err
		}
	}
	if m.GetSubject() == "" {
		return true, nil
	}
	return true, b.Set(referrerKey(repo, m.GetSubject(), dgst), nil, nil)
}

func applyDeleteManifest(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetDeleteManifest()
	repo, dgst := op.GetRepository(), op.GetDigest()
	if res := validateRepositoryAndDigest(repo, dgst); res != nil {
		return res, nil
	}
	manifests, tags, res, err := removeManifest(b, cmd, repo, dgst, op.GetImage())
	if res != nil || err != nil {
		return res, err
	}
	now := cmd.GetUnixNanos()
	if err := updateRepository(b, repo, now, repoChange{manifests: -manifests, tags: -tags}); err != nil {
		return nil, err
	}
	return success(), markIfEmpty(b, repo, now)
}

func applyDeleteTag(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetDeleteTag()
	repo, tag := op.GetRepository(), op.GetTag()
	if res := validateRepository(repo); res != nil {
		return res, nil
	}
	if res := validateTag(tag); res != nil {
		return res, nil
	}
	dgst, found, err := get(b, tagKey(repo, tag))
	if err != nil {
		return nil, err
	}
	if !found {
		return notFound("tag %q not found in repository %q", tag, repo), nil
	}
	if err := removeTag(b, cmd, repo, tag, string(dgst)); err != nil {
		return nil, err
	}
	return success(), updateRepository(b, repo, cmd.GetUnixNanos(), repoChange{tags: -1})
}

func applyLinkBlob(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetLinkBlob()
	repo, dgst := op.GetRepository(), op.GetDigest()
	if res := validateRepositoryAndDigest(repo, dgst); res != nil {
		return res, nil
	}
	if op.GetSize() < 0 {
		return invalid("blob %s has negative size %d", dgst, op.GetSize()), nil
	}
	holders := linkHolders(op)
	for _, holder := range holders { // all valid before any is recorded
		if res := validateHolder(dgst, holder); res != nil {
			return res, nil
		}
	}
	for _, holder := range holders {
		res, err := recordHolder(b, dgst, op.GetSize(), holder, cmd.GetUnixNanos())
		if err != nil || res.GetCode() != fsmpb.ResultCode_RESULT_CODE_OK {
			return res, err
		}
	}
	if res, err := refuseCollected(b, []string{dgst}); res != nil || err != nil {
		return res, err
	}
	if res, err := ensureRepository(b, repo, cmd.GetUnixNanos()); res != nil || err != nil {
		return res, err
	}
	if err := b.Set(blobKey(repo, dgst), encodeUint64(uint64(op.GetSize())), nil); err != nil {
		return nil, err
	}
	if err := addBlobRef(b, dgst, linkRefKey(dgst, repo)); err != nil {
		return nil, err
	}
	if err := markIfEmpty(b, repo, cmd.GetUnixNanos()); err != nil {
		return nil, err
	}
	return success(), nil
}

// linkHolders returns the nodes a LinkBlob records as holders.
func linkHolders(op *fsmpb.LinkBlob) []string {
	var out []string
	if h := op.GetHolderNodeId(); h != "" {
		out = append(out, h)
	}
	return append(out, op.GetMoreHolderNodeIds()...)
}

func applyUnlinkBlob(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetUnlinkBlob()
	repo, dgst := op.GetRepository(), op.GetDigest()
	if res := validateRepositoryAndDigest(repo, dgst); res != nil {
		return res, nil
	}
	res, err := deleteIfExists(b, blobKey(repo, dgst), func() *fsmpb.Result {
		return notFound("blob %s is not linked to repository %q", dgst, repo)
	})
	if err != nil || res.GetCode() != fsmpb.ResultCode_RESULT_CODE_OK {
		return res, err
	}
	return res, dropBlobRef(b, dgst, linkRefKey(dgst, repo), cmd.GetUnixNanos())
}

// deleteIfExists deletes k, or returns the result missing builds if k is absent.
func deleteIfExists(b *pebble.Batch, k []byte, missing func() *fsmpb.Result) (*fsmpb.Result, error) {
	exists, err := has(b, k)
	if err != nil {
		return nil, err
	}
	if !exists {
		return missing(), nil
	}
	if err := b.Delete(k, nil); err != nil {
		return nil, fmt.Errorf("delete %q: %w", k, err)
	}
	return success(), nil
}
