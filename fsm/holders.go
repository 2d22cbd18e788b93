package fsm

import (
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Blob holders record which nodes keep a durable copy of each blob, one
// record per digest:
//
//	holder/<digest>                          fsmpb.BlobHolders; node IDs sorted, no duplicates
//
// A record exists only while at least one node holds the blob. Holders are
// cluster-wide, unlike blob links, which are per repository.
const prefixHolder = "holder/"

// maxNodeIDLength bounds node IDs so holder records stay small.
const maxNodeIDLength = 255

func holderKey(dgst string) []byte { return key(prefixHolder, dgst) }

// applyAddBlobHolder adds a node to a blob's holders. Adding a node that is
// already a holder succeeds and changes no holder record. Either way the
// node is taken off the blob's tombstone, if collected, and an unreferenced
// blob's grace period starts again (see gc.go). The first holder records the
// blob's size; a later holder must report the same size, since a digest
// names one content.
func applyAddBlobHolder(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetAddBlobHolder()
	return recordHolder(b, op.GetDigest(), op.GetSize(), op.GetNodeId(), cmd.GetUnixNanos())
}

// recordHolder records node as a holder of blob dgst of the given size, at
// time now; AddBlobHolder and LinkBlob with a holder share it.
func recordHolder(b *pebble.Batch, dgst string, size int64, node string, now int64) (*fsmpb.Result, error) {
	if res := validateHolder(dgst, node); res != nil {
		return res, nil
	}
	if size < 0 {
		return invalid("blob %s has negative size %d", dgst, size), nil
	}
	// A stored record replaces this new one entirely (Unmarshal resets it).
	rec := &fsmpb.BlobHolders{Digest: dgst, Size: size}
	if _, err := getProto(b, holderKey(dgst), rec); err != nil {
		return nil, err
	}
	if rec.GetSize() != size {
		return invalid("blob %s is recorded with size %d, not %d", dgst, rec.GetSize(), size), nil
	}
	// Even a node already recorded has just stored (or copied) the blob.
	if err := heldAgain(b, dgst, node, now); err != nil {
		return nil, err
	}
	i, found := slices.BinarySearch(rec.NodeIds, node)
	if found {
		return success(), nil
	}
	rec.NodeIds = slices.Insert(rec.NodeIds, i, node)
	if err := setProto(b, holderKey(dgst), rec); err != nil {
		return nil, err
	}
	return success(), nil
}

// applyRemoveBlobHolder removes a node from a blob's holders, and the record
// with its last holder. Removing a node that is not a holder is NOT_FOUND.
func applyRemoveBlobHolder(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetRemoveBlobHolder()
	dgst, node := op.GetDigest(), op.GetNodeId()
	if res := validateHolder(dgst, node); res != nil {
		return res, nil
	}
	var rec fsmpb.BlobHolders
	found, err := getProto(b, holderKey(dgst), &rec)
	if err != nil {
		return nil, err
	}
	i, held := slices.BinarySearch(rec.NodeIds, node)
	if !found || !held {
		return notFound("node %q does not hold blob %s", node, dgst), nil
	}
	rec.NodeIds = slices.Delete(rec.NodeIds, i, i+1)
	if len(rec.NodeIds) == 0 {
		if err := b.Delete(holderKey(dgst), nil); err != nil {
			return nil, fmt.Errorf("delete %q: %w", holderKey(dgst), err)
		}
		return success(), nil
	}
	if err := setProto(b, holderKey(dgst), &rec); err != nil {
		return nil, err
	}
	return success(), nil
}

func validateHolder(dgst, node string) *fsmpb.Result {
	if res := validateDigest(dgst); res != nil {
		return res
	}
	if node == "" || len(node) > maxNodeIDLength {
		return invalid("invalid node ID %q", node)
	}
	return nil
}

// BlobHolders returns the nodes that hold blob d, or ErrNotFound if none does.
func (f *FSM) BlobHolders(d digest.Digest) (*fsmpb.BlobHolders, error) {
	var rec fsmpb.BlobHolders
	if err := f.getRecord(holderKey(string(d)), &rec, "holders of blob %s", d); err != nil {
		return nil, err
	}
	return &rec, nil
}

// ListBlobHolders returns up to n holder records whose digests sort after
// last ("" starts at the beginning), in digest order; n <= 0 means no limit.
// The repair scan pages through every blob with it, passing the last digest
// of one page to get the next.
func (f *FSM) ListBlobHolders(last string, n int) ([]*fsmpb.BlobHolders, error) {
	prefix := []byte(prefixHolder)
	lower := prefix
	if last != "" {
		lower = after(holderKey(last))
	}
	var recs []*fsmpb.BlobHolders
	err := f.view(func(r pebble.Reader) error {
		return scan(r, lower, prefixEnd(prefix), func(k, v []byte) (bool, error) {
			rec, err := decodeHolders(k, v)
			if err != nil {
				return false, err
			}
			recs = append(recs, rec)
			return n <= 0 || len(recs) < n, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list blob holders after %q: %w", last, err)
	}
	return recs, nil
}

func decodeHolders(k, v []byte) (*fsmpb.BlobHolders, error) {
	var rec fsmpb.BlobHolders
	if err := proto.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode %q: %w", k, err)
	}
	return &rec, nil
}
