package fsm

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Garbage collection of blobs. The FSM keeps a reverse index of what
// references each blob, and records when a held blob lost its last
// reference:
//
//	bref/<digest>\x00l\x00<repository>              empty; repository links the blob (LinkBlob)
//	bref/<digest>\x00m\x00<repository>\x00<manifest> empty; a stored manifest lists the blob in its blobs
//	gc/<digest>                                     unix nanos since when the blob is unreferenced, 8 bytes big endian
//	collected/<digest>                              fsmpb.CollectedBlob; tombstone of a collected blob
//	m/blobrefs                                      present once the reverse index covers the whole state
//
// The commands that add or remove references (LinkBlob, UnlinkBlob,
// PutManifest, DeleteManifest) update the index in the same batch. When the
// last reference of a blob some node holds goes, gc/<digest> is set to the
// command's unix_nanos; a new reference deletes it. AddBlobHolder (and
// LinkBlob's holder, recorded before the link) sets it afresh for an
// unreferenced blob, so a blob just uploaded (or copied) is
// never collected before the client had a whole grace period to link it.
//
// CollectBlob, proposed by the leader's collector, re-checks that the blob is
// unreferenced and has been for the grace period it carries, relative to its
// own unix_nanos; then it removes the holder record and writes a tombstone
// naming the former holders. Each of them deletes its file and reports it
// with CollectedBlobDeleted; the tombstone goes with the last one. While a
// tombstone exists and no node holds the blob again, LinkBlob and PutManifest
// referencing the blob are refused with RESULT_CODE_BLOB_COLLECTED, so that a
// mount or a manifest push that raced the collection fails instead of
// pointing at bytes that are being deleted. AddBlobHolder of a former holder
// takes it off the tombstone: it holds a new copy.
//
// Data written before the index existed is indexed by the first command
// applied after an upgrade (m/blobrefs absent); held blobs without references
// get gc records stamped with that command's time.
const (
	prefixBlobRef      = "bref/"
	prefixUnreferenced = "gc/"
	prefixCollected    = "collected/"
)

// keyBlobRefsIndexed marks state whose reference index (bref/ and gc/
// records) covers every link and manifest: every state this version
// creates. State written by a version before the index existed lacks it
// and is refused (checkFormat).
var keyBlobRefsIndexed = []byte("m/blobrefs")

func blobRefPrefix(dgst string) []byte    { return key(prefixBlobRef, dgst, "") }
func linkRefKey(dgst, repo string) []byte { return key(prefixBlobRef, dgst, "l", repo) }
func manifestRefKey(dgst, repo, manifest string) []byte {
	return key(prefixBlobRef, dgst, "m", repo, manifest)
}
func decodeUint64(v []byte) uint64 { return binary.BigEndian.Uint64(v) }

func unreferencedKey(dgst string) []byte { return key(prefixUnreferenced, dgst) }
func collectedKey(dgst string) []byte    { return key(prefixCollected, dgst) }

// referenced reports whether anything references blob dgst.
func referenced(r pebble.Reader, dgst string) (bool, error) {
	found := false
	err := scanPrefix(r, blobRefPrefix(dgst), func(_, _ []byte) (bool, error) {
		found = true
		return false, nil
	})
	return found, err
}

// addBlobRef records reference k of blob dgst; the blob is referenced again.
func addBlobRef(b *pebble.Batch, dgst string, k []byte) error {
	if err := b.Set(k, nil, nil); err != nil {
		return err
	}
	return b.Delete(unreferencedKey(dgst), nil)
}

// dropBlobRef removes reference k of blob dgst. If that was the last one and
// some node holds the blob, its grace period starts now.
func dropBlobRef(b *pebble.Batch, dgst string, k []byte, now int64) error {
	if err := b.Delete(k, nil); err != nil {
		return err
	}
	ref, err := referenced(b, dgst)
	if err != nil || ref {
		return err
	}
	held, err := has(b, holderKey(dgst))
	if err != nil || !held {
		return err
	}
	return b.Set(unreferencedKey(dgst), encodeUint64(uint64(now)), nil)
}

// uniqueBlobs returns ds without duplicates (a manifest may list a blob
// twice), sorted so every replica writes in the same order.
func uniqueBlobs(ds []string) []string {
	out := slices.Clone(ds)
	slices.Sort(out)
	return slices.Compact(out)
}

// addManifestRefs records that manifest dgst of repo references blobs.
func addManifestRefs(b *pebble.Batch, repo, dgst string, blobs []string) error {
	for _, d := range uniqueBlobs(blobs) {
		if err := addBlobRef(b, d, manifestRefKey(d, repo, dgst)); err != nil {
			return err
		}
	}
	return nil
}

// dropManifestRefs removes the references of a deleted manifest.
func dropManifestRefs(b *pebble.Batch, repo, dgst string, blobs []string, now int64) error {
	for _, d := range uniqueBlobs(blobs) {
		if err := dropBlobRef(b, d, manifestRefKey(d, repo, dgst), now); err != nil {
			return err
		}
	}
	return nil
}

// unlinkImageBlobs removes repo's links to those of blobs (the config and
// layers of a manifest whose image DeleteManifest just deleted) that no other
// manifest of repo lists. The push of the image linked them; without this a
// deleted image's own blobs stayed referenced by their links for as long as
// the repository held anything else, and garbage collection never freed
// them. A blob another manifest of repo lists keeps its link, and one linked
// elsewhere stays referenced by that repository. A push to repo that found
// such a blob linked a moment before, and has not put its manifest yet, has
// that manifest refused as naming a blob the repository lacks, and uploads
// the blob again when it retries.
func unlinkImageBlobs(b *pebble.Batch, repo string, blobs []string, now int64) error {
	for _, d := range uniqueBlobs(blobs) {
		listed, err := hasAny(b, manifestRefKey(d, repo, ""))
		if err != nil {
			return err
		}
		linked, err := has(b, blobKey(repo, d))
		if err != nil {
			return err
		}
		if listed || !linked {
			continue
		}
		if err := b.Delete(blobKey(repo, d), nil); err != nil {
			return err
		}
		if err := dropBlobRef(b, d, linkRefKey(d, repo), now); err != nil {
			return err
		}
	}
	return nil
}

// refuseCollected returns a BLOB_COLLECTED result if any of ds has been
// collected and no node holds it again.
func refuseCollected(r pebble.Reader, ds []string) (*fsmpb.Result, error) {
	for _, d := range ds {
		gone, err := has(r, collectedKey(d))
		if err != nil || !gone {
			if err != nil {
				return nil, err
			}
			continue
		}
		held, err := has(r, holderKey(d))
		if err != nil {
			return nil, err
		}
		if !held {
			return blobCollected("blob %s was garbage-collected after no manifest or repository referenced it; push the blob again", d), nil
		}
	}
	return nil, nil
}

// heldAgain is AddBlobHolder's part in collection: the node holds a new copy,
// so it has nothing to delete, and an unreferenced blob gets a fresh grace
// period.
func heldAgain(b *pebble.Batch, dgst, node string, now int64) error {
	var tomb fsmpb.CollectedBlob
	found, err := getProto(b, collectedKey(dgst), &tomb)
	if err != nil {
		return err
	}
	if found {
		if err := removeFromTombstone(b, &tomb, node); err != nil {
			return err
		}
	}
	ref, err := referenced(b, dgst)
	if err != nil || ref {
		return err
	}
	return b.Set(unreferencedKey(dgst), encodeUint64(uint64(now)), nil)
}

// removeFromTombstone takes node off tomb's list, deleting the tombstone
// with its last node. A node not on the list changes nothing.
func removeFromTombstone(b *pebble.Batch, tomb *fsmpb.CollectedBlob, node string) error {
	i, ok := slices.BinarySearch(tomb.NodeIds, node)
	if !ok {
		return nil
	}
	tomb.NodeIds = slices.Delete(tomb.NodeIds, i, i+1)
	if len(tomb.NodeIds) == 0 {
		return b.Delete(collectedKey(tomb.GetDigest()), nil)
	}
	return setProto(b, collectedKey(tomb.GetDigest()), tomb)
}

// applyCollectBlob collects a blob that has been unreferenced for the grace
// period, as of the command's time.
func applyCollectBlob(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetCollectBlob()
	dgst, now := op.GetDigest(), cmd.GetUnixNanos()
	if res := validateDigest(dgst); res != nil {
		return res, nil
	}
	if op.GetGraceNanos() < 0 {
		return invalid("negative grace period %d", op.GetGraceNanos()), nil
	}
	ref, err := referenced(b, dgst)
	if err != nil {
		return nil, err
	}
	if ref {
		return notCollectable("blob %s is referenced", dgst), nil
	}
	v, found, err := get(b, unreferencedKey(dgst))
	if err != nil {
		return nil, err
	}
	if !found || len(v) != 8 {
		return notCollectable("blob %s has no unreferenced record", dgst), nil
	}
	since := int64(decodeUint64(v))
	if now-since < op.GetGraceNanos() {
		return notCollectable("blob %s has been unreferenced for %dns, less than the grace period of %dns",
			dgst, now-since, op.GetGraceNanos()), nil
	}
	var holders fsmpb.BlobHolders
	held, err := getProto(b, holderKey(dgst), &holders)
	if err != nil {
		return nil, err
	}
	if err := b.Delete(unreferencedKey(dgst), nil); err != nil {
		return nil, err
	}
	if !held {
		return success(), nil
	}
	if err := b.Delete(holderKey(dgst), nil); err != nil {
		return nil, err
	}
	tomb := &fsmpb.CollectedBlob{Digest: dgst}
	if _, err := getProto(b, collectedKey(dgst), tomb); err != nil {
		return nil, err
	}
	tomb.Size = holders.GetSize()
	tomb.CollectedUnixNanos = now
	tomb.NodeIds = slices.Compact(slices.Sorted(slices.Values(append(tomb.NodeIds, holders.GetNodeIds()...))))
	if err := setProto(b, collectedKey(dgst), tomb); err != nil {
		return nil, err
	}
	return success(), nil
}

// applyCollectedBlobDeleted takes a node off a collected blob's tombstone.
func applyCollectedBlobDeleted(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetCollectedBlobDeleted()
	dgst, node := op.GetDigest(), op.GetNodeId()
	if res := validateHolder(dgst, node); res != nil {
		return res, nil
	}
	var tomb fsmpb.CollectedBlob
	found, err := getProto(b, collectedKey(dgst), &tomb)
	if err != nil {
		return nil, err
	}
	if _, listed := slices.BinarySearch(tomb.GetNodeIds(), node); !found || !listed {
		return notFound("node %q has no copy of collected blob %s to delete", node, dgst), nil
	}
	if err := removeFromTombstone(b, &tomb, node); err != nil {
		return nil, err
	}
	return success(), nil
}

// UnreferencedBlob is a held blob that nothing references.
type UnreferencedBlob struct {
	Digest digest.Digest
	// SinceUnixNanos is when it lost its last reference, or was last stored.
	SinceUnixNanos int64
}

// ListUnreferencedBlobs returns up to n unreferenced blobs whose digests sort
// after last ("" starts at the beginning), in digest order; n <= 0 means no
// limit.
func (f *FSM) ListUnreferencedBlobs(last string, n int) ([]UnreferencedBlob, error) {
	prefix := []byte(prefixUnreferenced)
	lower := prefix
	if last != "" {
		lower = after(unreferencedKey(last))
	}
	var out []UnreferencedBlob
	err := f.view(func(r pebble.Reader) error {
		return scan(r, lower, prefixEnd(prefix), func(k, v []byte) (bool, error) {
			if len(v) != 8 {
				return false, fmt.Errorf("read %q: value has %d bytes, want 8", k, len(v))
			}
			out = append(out, UnreferencedBlob{
				Digest:         digest.Digest(k[len(prefix):]),
				SinceUnixNanos: int64(decodeUint64(v)),
			})
			return n <= 0 || len(out) < n, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list unreferenced blobs after %q: %w", last, err)
	}
	return out, nil
}

// ListCollectedBlobs returns up to n tombstones of collected blobs after
// digest last, in digest order; n <= 0 means no limit.
func (f *FSM) ListCollectedBlobs(last string, n int) ([]*fsmpb.CollectedBlob, error) {
	prefix := []byte(prefixCollected)
	lower := prefix
	if last != "" {
		lower = after(collectedKey(last))
	}
	var out []*fsmpb.CollectedBlob
	err := f.view(func(r pebble.Reader) error {
		return scan(r, lower, prefixEnd(prefix), func(k, v []byte) (bool, error) {
			var rec fsmpb.CollectedBlob
			if err := proto.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode %q: %w", k, err)
			}
			out = append(out, &rec)
			return n <= 0 || len(out) < n, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list collected blobs after %q: %w", last, err)
	}
	return out, nil
}

// CollectedBlob returns the tombstone of collected blob d, or ErrNotFound.
func (f *FSM) CollectedBlob(d digest.Digest) (*fsmpb.CollectedBlob, error) {
	var rec fsmpb.CollectedBlob
	if err := f.getRecord(collectedKey(string(d)), &rec, "collected blob %s", d); err != nil {
		return nil, err
	}
	return &rec, nil
}

// BlobReferences counts what references blob d: repository links and
// stored manifests.
func (f *FSM) BlobReferences(d digest.Digest) (links, manifests int, err error) {
	err = f.view(func(r pebble.Reader) error {
		return scanPrefix(r, blobRefPrefix(string(d)), func(k, _ []byte) (bool, error) {
			if strings.HasPrefix(string(k[len(blobRefPrefix(string(d))):]), "l"+sep) {
				links++
			} else {
				manifests++
			}
			return true, nil
		})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("references of blob %s: %w", d, err)
	}
	return links, manifests, nil
}

// RepositoriesLinking returns up to n repositories blob d is linked into,
// after last in lexical order; n <= 0 means no limit.
func (f *FSM) RepositoriesLinking(d digest.Digest, last string, n int) ([]string, error) {
	var repos []string
	err := f.view(func(r pebble.Reader) error {
		var err error
		repos, err = listNames(r, linkRefKey(string(d), ""), last, n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("repositories linking blob %s: %w", d, err)
	}
	return repos, nil
}
