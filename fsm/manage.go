package fsm

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/pebble"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Management of repositories, images and tags: the records and indexes
// the admin API lists, kept by the commands that change what they
// describe, in the same batch.
//
//	readme/<repository>                      the repository's readme, as given
//	mtag/<repository>\x00<digest>\x00<tag>   empty; the tags of a manifest
//	mchild/<repository>\x00<child>\x00<index> empty; an index that lists a child manifest
//	rix/<order><8-byte time><repository>     empty; repositories by time, order c (created), u (updated) or p (pushed)
//	act/a/<8-byte seq>                       fsmpb.Activity
//	act/r/<repository>\x00<8-byte seq>       empty; a repository's activity
//	act/n/<namespace>\x00<8-byte seq>        empty; a namespace's activity
//	m/actseq                                 the last activity seq, 8 bytes big endian
//
// Activity is written by the command that causes it, with the command's
// time, actor and node: apply reads no clock.

const (
	prefixReadme   = "readme/"
	prefixManTag   = "mtag/"
	prefixManChild = "mchild/"
	prefixRepoIdx  = "rix/"
	prefixRepoNsIx = "rixn/"
	prefixActAll   = "act/a/"
	prefixActRepo  = "act/r/"
	prefixActNs    = "act/n/"
)

var keyActSeq = []byte("m/actseq")

// Limits of repository information.
const (
	// MaxDescriptionBytes bounds a repository's description.
	MaxDescriptionBytes = 2 << 10
	// MaxReadmeBytes bounds a repository's readme.
	MaxReadmeBytes = 1 << 20
)

// Repository orders of the rix/ index.
const (
	orderCreated = 'c'
	orderUpdated = 'u'
	orderPushed  = 'p'
)

func readmeKey(repo string) []byte { return key(prefixReadme, repo) }

func manTagKey(repo, dgst, tag string) []byte      { return key(prefixManTag, repo, dgst, tag) }
func manTagPrefix(repo, dgst string) []byte        { return key(prefixManTag, repo, dgst, "") }
func manChildKey(repo, child, index string) []byte { return key(prefixManChild, repo, child, index) }
func manChildPrefix(repo, child string) []byte     { return key(prefixManChild, repo, child, "") }

func repoIndexKey(order byte, nanos int64, repo string) []byte {
	k := append([]byte(prefixRepoIdx), order)
	k = binary.BigEndian.AppendUint64(k, uint64(nanos))
	return append(k, repo...)
}

func repoIndexPrefix(order byte) []byte { return append([]byte(prefixRepoIdx), order) }

// repoNsIndexKey is repo's key in its namespace's part of the index, so
// that a listing of one namespace in time order reads only its keys.
func repoNsIndexKey(ns string, order byte, nanos int64, repo string) []byte {
	k := repoNsIndexPrefix(ns, order)
	k = binary.BigEndian.AppendUint64(k, uint64(nanos))
	return append(k, repo...)
}

func repoNsIndexPrefix(ns string, order byte) []byte {
	return append(key(prefixRepoNsIx, ns, ""), order)
}

// repoIndexKeys are a repository's keys of one order: registry-wide and in
// its namespace.
func repoIndexKeys(rec *fsmpb.Repository, order byte, nanos int64) [][]byte {
	return [][]byte{
		repoIndexKey(order, nanos, rec.GetName()),
		repoNsIndexKey(rec.GetNamespace(), order, nanos, rec.GetName()),
	}
}

func activityKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefixActAll), seq)
}

func repoActivityPrefix(repo string) []byte { return key(prefixActRepo, repo, "") }
func nsActivityPrefix(ns string) []byte     { return key(prefixActNs, ns, "") }

// repoTimes are a repository's times in the rix/ index.
func repoTimes(r *fsmpb.Repository) map[byte]int64 {
	return map[byte]int64{
		orderCreated: r.GetCreatedUnixNanos(),
		orderUpdated: r.GetUpdatedUnixNanos(),
		orderPushed:  r.GetPushedUnixNanos(),
	}
}

// indexRepository replaces old's rix/ and rixn/ keys (nil: none) with
// rec's.
func indexRepository(b *pebble.Batch, old, rec *fsmpb.Repository) error {
	now := repoTimes(rec)
	for order, nanos := range now {
		if old != nil {
			before := repoTimes(old)[order]
			if before == nanos {
				continue
			}
			if err := deleteKeys(b, repoIndexKeys(old, order, before)...); err != nil {
				return err
			}
		}
		for _, k := range repoIndexKeys(rec, order, nanos) {
			if err := b.Set(k, nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// repoChange is what a command changes of a repository's record.
type repoChange struct {
	tags, manifests int64 // added (negative: removed)
	pushedBy        string
	pushed          bool // a manifest was pushed
	description     *string
	readmeBytes     *int64
}

// updateRepository applies c to repo's record at now, bumping its update
// time and re-indexing it. A repository that does not exist is left be.
func updateRepository(b *pebble.Batch, repo string, now int64, c repoChange) error {
	var rec fsmpb.Repository
	found, err := getProto(b, repositoryKey(repo), &rec)
	if err != nil || !found {
		return err
	}
	old := cloneRepository(&rec)
	rec.TagCount = max(rec.TagCount+c.tags, 0)
	rec.ManifestCount = max(rec.ManifestCount+c.manifests, 0)
	if c.pushed {
		rec.PushedUnixNanos, rec.PushedBy = now, c.pushedBy
	}
	if c.description != nil {
		rec.Description = *c.description
	}
	if c.readmeBytes != nil {
		rec.ReadmeBytes = *c.readmeBytes
	}
	rec.UpdatedUnixNanos = max(now, rec.UpdatedUnixNanos)
	if err := indexRepository(b, old, &rec); err != nil {
		return err
	}
	return setProto(b, repositoryKey(repo), &rec)
}

// cloneRepository copies what the rix/ keys of r are made of.
func cloneRepository(r *fsmpb.Repository) *fsmpb.Repository {
	return &fsmpb.Repository{
		Name: r.GetName(), Namespace: r.GetNamespace(), CreatedUnixNanos: r.GetCreatedUnixNanos(),
		UpdatedUnixNanos: r.GetUpdatedUnixNanos(), PushedUnixNanos: r.GetPushedUnixNanos(),
	}
}

// recordActivity writes one activity record of cmd, on repo.
func recordActivity(b *pebble.Batch, cmd *fsmpb.Command, a *fsmpb.Activity) error {
	seq, err := getUint64(b, keyActSeq)
	if err != nil {
		return err
	}
	seq++
	a.Seq, a.UnixNanos, a.Actor, a.NodeId = seq, cmd.GetUnixNanos(), cmd.GetActor(), cmd.GetNodeId()
	ns, _ := splitNamespace(a.GetRepository())
	if err := b.Set(keyActSeq, encodeUint64(seq), nil); err != nil {
		return err
	}
	if err := setProto(b, activityKey(seq), a); err != nil {
		return err
	}
	suffix := binary.BigEndian.AppendUint64(nil, seq)
	if err := b.Set(append(repoActivityPrefix(a.GetRepository()), suffix...), nil, nil); err != nil {
		return err
	}
	return b.Set(append(nsActivityPrefix(ns), suffix...), nil, nil)
}

// setTag points tag of repo at dgst and records the change; added
// reports a tag that did not exist. A tag that points there already is
// left as it is.
func setTag(b *pebble.Batch, cmd *fsmpb.Command, repo, tag, dgst string) (added bool, err error) {
	old, found, err := get(b, tagKey(repo, tag))
	if err != nil || (found && string(old) == dgst) {
		return false, err
	}
	a := &fsmpb.Activity{Repository: repo, Tag: tag, Digest: dgst, Kind: fsmpb.ActivityKind_ACTIVITY_KIND_TAG_ADDED}
	if found {
		a.Kind, a.PreviousDigest = fsmpb.ActivityKind_ACTIVITY_KIND_TAG_MOVED, string(old)
		if err := b.Delete(manTagKey(repo, string(old), tag), nil); err != nil {
			return false, err
		}
	}
	if err := b.Set(tagKey(repo, tag), []byte(dgst), nil); err != nil {
		return false, err
	}
	if err := b.Set(manTagKey(repo, dgst, tag), nil, nil); err != nil {
		return false, err
	}
	return !found, recordActivity(b, cmd, a)
}

// removeTag deletes tag of repo, which points at dgst, and records it.
func removeTag(b *pebble.Batch, cmd *fsmpb.Command, repo, tag, dgst string) error {
	if err := deleteKeys(b, tagKey(repo, tag), manTagKey(repo, dgst, tag)); err != nil {
		return err
	}
	return recordActivity(b, cmd, &fsmpb.Activity{
		Repository: repo, Tag: tag, Digest: dgst, Kind: fsmpb.ActivityKind_ACTIVITY_KIND_TAG_REMOVED,
	})
}

// tagsOf returns the tags of repo that point at dgst.
func tagsOf(r pebble.Reader, repo, dgst string) ([]string, error) {
	return suffixes(r, manTagPrefix(repo, dgst))
}

func applyTagManifest(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetTagManifest()
	repo, tag, dgst := op.GetRepository(), op.GetTag(), op.GetDigest()
	if res := validateRepositoryAndDigest(repo, dgst); res != nil {
		return res, nil
	}
	if res := validateTag(tag); res != nil {
		return res, nil
	}
	if res, err := refuseMirrored(b, repo, op.GetSynced()); res != nil || err != nil {
		return res, err
	}
	ok, err := has(b, manifestKey(repo, dgst))
	if err != nil {
		return nil, err
	}
	if !ok {
		return notFound("manifest %s not found in repository %q: tag a manifest the repository holds", dgst, repo), nil
	}
	added, err := setTag(b, cmd, repo, tag, dgst)
	if err != nil {
		return nil, err
	}
	c := repoChange{}
	if added {
		c.tags = 1
	}
	return success(), updateRepository(b, repo, cmd.GetUnixNanos(), c)
}

func applySetRepositoryInfo(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetSetRepositoryInfo()
	repo := op.GetRepository()
	if res := validateRepository(repo); res != nil {
		return res, nil
	}
	if res := validateInfo(op); res != nil {
		return res, nil
	}
	ok, err := has(b, repositoryKey(repo))
	if err != nil {
		return nil, err
	}
	if !ok {
		return notFound("repository %q does not exist", repo), nil
	}
	var c repoChange
	if op.Description != nil {
		c.description = op.Description
		if err := recordActivity(b, cmd, &fsmpb.Activity{Repository: repo, Kind: fsmpb.ActivityKind_ACTIVITY_KIND_DESCRIPTION_SET}); err != nil {
			return nil, err
		}
	}
	if op.Readme != nil {
		n := int64(len(op.GetReadme()))
		c.readmeBytes = &n
		if err := setReadme(b, repo, op.GetReadme()); err != nil {
			return nil, err
		}
		if err := recordActivity(b, cmd, &fsmpb.Activity{Repository: repo, Kind: fsmpb.ActivityKind_ACTIVITY_KIND_README_SET}); err != nil {
			return nil, err
		}
	}
	return success(), updateRepository(b, repo, cmd.GetUnixNanos(), c)
}

func setReadme(b *pebble.Batch, repo, readme string) error {
	if readme == "" {
		return b.Delete(readmeKey(repo), nil)
	}
	return b.Set(readmeKey(repo), []byte(readme), nil)
}

func validateInfo(op *fsmpb.SetRepositoryInfo) *fsmpb.Result {
	if op.Description == nil && op.Readme == nil {
		return invalid("set a description, a readme or both")
	}
	if d := op.GetDescription(); len(d) > MaxDescriptionBytes || !utf8.ValidString(d) {
		return invalid("description: must be UTF-8 text of at most %d bytes, got %d bytes", MaxDescriptionBytes, len(d))
	}
	if r := op.GetReadme(); len(r) > MaxReadmeBytes || !utf8.ValidString(r) {
		return invalid("readme: must be UTF-8 text of at most %d bytes, got %d bytes", MaxReadmeBytes, len(r))
	}
	return nil
}

func applyDeleteRepository(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	repo := cmd.GetDeleteRepository().GetRepository()
	if res := validateRepository(repo); res != nil {
		return res, nil
	}
	ok, err := has(b, repositoryKey(repo))
	if err != nil {
		return nil, err
	}
	if !ok {
		return notFound("repository %q does not exist", repo), nil
	}
	now := cmd.GetUnixNanos()
	if err := dropAllManifestRefs(b, repo, now); err != nil {
		return nil, err
	}
	for _, prefix := range [][]byte{
		tagPrefix(repo), manifestPrefix(repo), key(prefixReferrer, repo, ""),
		key(prefixManTag, repo, ""), key(prefixManChild, repo, ""),
	} {
		if err := b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
			return nil, err
		}
	}
	if err := unlinkAll(b, repo, now); err != nil {
		return nil, err
	}
	if err := dropRepositoryRecord(b, repo); err != nil {
		return nil, err
	}
	if _, err := dropMirror(b, cmd, repo); err != nil {
		return nil, err
	}
	return success(), recordActivity(b, cmd, &fsmpb.Activity{Repository: repo, Kind: fsmpb.ActivityKind_ACTIVITY_KIND_REPOSITORY_DELETED})
}

// dropAllManifestRefs drops the blob references of every manifest of repo,
// a page at a time: the manifests are read before the batch changes what
// the page holds.
func dropAllManifestRefs(b *pebble.Batch, repo string, now int64) error {
	const page = 1000
	prefix := manifestPrefix(repo)
	lower := prefix
	for {
		var ms []*fsmpb.Manifest
		var last []byte
		err := scan(b, lower, prefixEnd(prefix), func(k, v []byte) (bool, error) {
			var m fsmpb.Manifest
			if err := unmarshalRecord(k, v, &m); err != nil {
				return false, err
			}
			ms, last = append(ms, &m), append(last[:0], k...)
			return len(ms) < page, nil
		})
		if err != nil {
			return err
		}
		for _, m := range ms {
			if err := dropManifestRefs(b, repo, m.GetDigest(), m.GetBlobs(), now); err != nil {
				return err
			}
		}
		if len(ms) < page {
			return nil
		}
		lower = after(last)
	}
}

// dropRepositoryRecord deletes repo's record and what hangs on it: its
// rix/ and rixn/ keys, readme, visibility and empty-repository record.
func dropRepositoryRecord(b *pebble.Batch, repo string) error {
	var rec fsmpb.Repository
	found, err := getProto(b, repositoryKey(repo), &rec)
	if err != nil {
		return err
	}
	if found {
		for order, nanos := range repoTimes(&rec) {
			if err := deleteKeys(b, repoIndexKeys(&rec, order, nanos)...); err != nil {
				return err
			}
		}
	}
	return deleteKeys(b, repositoryKey(repo), readmeKey(repo), repositoryPublicKey(repo), emptyRepositoryKey(repo))
}

func applyDeleteNamespace(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	ns := cmd.GetDeleteNamespace().GetNamespace()
	if res := validateNamespace(ns); res != nil {
		return res, nil
	}
	known, err := namespaceKnown(b, ns)
	if err != nil {
		return nil, err
	}
	if !known {
		return notFound("namespace %q does not exist", ns), nil
	}
	example, err := firstRepository(b, ns+"/")
	if err != nil {
		return nil, err
	}
	if flat, err := has(b, repositoryKey(ns)); err != nil {
		return nil, err
	} else if flat {
		example = ns
	}
	if example != "" {
		return failedPrecondition("namespace %q still holds repositories, such as %q: delete them first", ns, example), nil
	}
	var grants []*fsmpb.Grant
	err = scanPrefix(b, grantPrefix(ns), func(k, v []byte) (bool, error) {
		var g fsmpb.Grant
		if err := unmarshalRecord(k, v, &g); err != nil {
			return false, err
		}
		grants = append(grants, &g)
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for _, g := range grants {
		if err := deleteKeys(b, grantKey(g), subjectGrantKey(g)); err != nil {
			return nil, err
		}
	}
	if _, err := dropCache(b, ns); err != nil {
		return nil, err
	}
	return success(), deleteKeys(b, namespaceKey(ns), namespaceOwnerKey(ns), namespacePublicKey(ns))
}

// removeManifest removes manifest dgst of repo with its tags, referrer
// entry, child entries and blob references, and records it; with image,
// also the manifests whose subject it is and the children of an index
// that no other index of repo lists, the same way. It returns how many
// manifests and tags went, or notFound.
func removeManifest(b *pebble.Batch, cmd *fsmpb.Command, repo, dgst string, image bool) (manifests, tags int64, res *fsmpb.Result, err error) {
	var m fsmpb.Manifest
	found, err := getProto(b, manifestKey(repo, dgst), &m)
	if err != nil || !found {
		if !found && err == nil {
			res = notFound("manifest %s not found in repository %q", dgst, repo)
		}
		return 0, 0, res, err
	}
	if err := b.Delete(manifestKey(repo, dgst), nil); err != nil {
		return 0, 0, nil, err
	}
	if m.GetSubject() != "" {
		if err := b.Delete(referrerKey(repo, m.GetSubject(), dgst), nil); err != nil {
			return 0, 0, nil, err
		}
	}
	for _, child := range uniqueBlobs(m.GetManifests()) {
		if err := b.Delete(manChildKey(repo, child, dgst), nil); err != nil {
			return 0, 0, nil, err
		}
	}
	tagNames, err := tagsOf(b, repo, dgst)
	if err != nil {
		return 0, 0, nil, err
	}
	for _, tag := range tagNames {
		if err := removeTag(b, cmd, repo, tag, dgst); err != nil {
			return 0, 0, nil, err
		}
	}
	if err := dropManifestRefs(b, repo, dgst, m.GetBlobs(), cmd.GetUnixNanos()); err != nil {
		return 0, 0, nil, err
	}
	if image {
		if err := unlinkImageBlobs(b, repo, m.GetBlobs(), cmd.GetUnixNanos()); err != nil {
			return 0, 0, nil, err
		}
	}
	err = recordActivity(b, cmd, &fsmpb.Activity{Repository: repo, Digest: dgst, Kind: fsmpb.ActivityKind_ACTIVITY_KIND_MANIFEST_REMOVED})
	if err != nil {
		return 0, 0, nil, err
	}
	manifests, tags = 1, int64(len(tagNames))
	if !image {
		return manifests, tags, nil, nil
	}
	dependents, err := imageParts(b, repo, dgst, &m)
	if err != nil {
		return 0, 0, nil, err
	}
	for _, d := range dependents {
		mm, tt, _, err := removeManifest(b, cmd, repo, d, true)
		if err != nil {
			return 0, 0, nil, err
		}
		manifests, tags = manifests+mm, tags+tt
	}
	return manifests, tags, nil, nil
}

// cosignTags are the tags under which cosign stores the signatures,
// attestations and SBOMs of manifest dgst when the registry has no
// referrers API in use: sha256-<hex>.sig, .att and .sbom.
func cosignTags(dgst string) []string {
	alg, hex, ok := strings.Cut(dgst, ":")
	if !ok {
		return nil
	}
	base := alg + "-" + hex
	return []string{base + ".sig", base + ".att", base + ".sbom"}
}

// imageParts returns what goes with manifest dgst of repo (just deleted)
// when its image is deleted: the manifests whose subject it is, those its
// cosign tags name, and its children that no other index of repo lists
// and no tag names.
func imageParts(b *pebble.Batch, repo, dgst string, m *fsmpb.Manifest) ([]string, error) {
	parts, err := suffixes(b, referrerPrefix(repo, dgst))
	if err != nil {
		return nil, err
	}
	for _, tag := range cosignTags(dgst) {
		d, found, err := get(b, tagKey(repo, tag))
		if err != nil {
			return nil, err
		}
		if found {
			parts = append(parts, string(d))
		}
	}
	for _, child := range uniqueBlobs(m.GetManifests()) {
		if child == dgst {
			continue
		}
		listed, err := hasAny(b, manChildPrefix(repo, child))
		if err != nil {
			return nil, err
		}
		tagged, err := hasAny(b, manTagPrefix(repo, child))
		if err != nil {
			return nil, err
		}
		if !listed && !tagged {
			parts = append(parts, child)
		}
	}
	var present []string
	for _, d := range uniqueBlobs(parts) {
		ok, err := has(b, manifestKey(repo, d))
		if err != nil {
			return nil, err
		}
		if ok {
			present = append(present, d)
		}
	}
	return present, nil
}
