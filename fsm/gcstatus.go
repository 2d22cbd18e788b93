package fsm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// What garbage collection did, as replicated state, so that every node
// reports the same (GCService.GetStatus):
//
//	gcrun/last                               fsmpb.GCRun; the last collection run (RecordGCRun)
//	sweep/<node id>                          fsmpb.SweepSummary; the node's last sweep (RecordSweep)
//
// Each command replaces its record, so the state holds one run and one
// sweep per registered node whatever the number of runs; DeregisterNode
// removes the node's sweep. The time a run or sweep ended is the command's
// unix_nanos, stamped by the proposer: Apply reads no clock.
const (
	prefixSweep = "sweep/"
)

var keyLastGCRun = []byte("gcrun/last")

func sweepKey(node string) []byte { return key(prefixSweep, node) }

// applyRecordGCRun stores the summary of a collection run.
func applyRecordGCRun(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	run := cmd.GetRecordGcRun().GetRun()
	if run == nil {
		return invalid("record gc run: no run"), nil
	}
	if res := validateNodeID(run.GetNodeId()); res != nil {
		return res, nil
	}
	if res := validateSpan("gc run", run.GetStartedUnixNanos(), cmd.GetUnixNanos()); res != nil {
		return res, nil
	}
	counts := []int64{run.GetExamined(), run.GetCollected(), run.GetBytesCollected(), run.GetKept(),
		run.GetRepositoriesRemoved(), run.GetErrors(), run.GetGraceNanos(), run.GetIntervalNanos()}
	if slices.ContainsFunc(counts, func(n int64) bool { return n < 0 }) {
		return invalid("gc run of node %q has a negative count", run.GetNodeId()), nil
	}
	rec := proto.CloneOf(run)
	rec.EndedUnixNanos = cmd.GetUnixNanos()
	if err := setProto(b, keyLastGCRun, rec); err != nil {
		return nil, err
	}
	return success(), nil
}

// applyRecordSweep stores the summary of a node's sweep, replacing its
// previous one.
func applyRecordSweep(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	sw := cmd.GetRecordSweep().GetSweep()
	if sw == nil {
		return invalid("record sweep: no sweep"), nil
	}
	if res := validateNodeID(sw.GetNodeId()); res != nil {
		return res, nil
	}
	if res := validateSpan("sweep", sw.GetStartedUnixNanos(), cmd.GetUnixNanos()); res != nil {
		return res, nil
	}
	counts := []int64{sw.GetCollectedFiles(), sw.GetCollectedBytes(), sw.GetTrimmedFiles(), sw.GetTrimmedBytes(),
		sw.GetOrphanFiles(), sw.GetOrphanBytes(), sw.GetOrphansReferenced(), sw.GetOrphansYoung(),
		sw.GetSettling(), sw.GetTrimmedKept(), sw.GetErrors(), sw.GetUploadsPurged(),
		sw.GetUploadsPurgedUnixNanos(), sw.GetUploadMaxAgeNanos()}
	if slices.ContainsFunc(counts, func(n int64) bool { return n < 0 }) {
		return invalid("sweep of node %q has a negative count", sw.GetNodeId()), nil
	}
	registered, err := has(b, nodeKey(sw.GetNodeId()))
	if err != nil {
		return nil, err
	}
	if !registered {
		// A node removed while its sweep was on its way keeps no record.
		return notFound("node %q is not registered", sw.GetNodeId()), nil
	}
	rec := proto.CloneOf(sw)
	rec.EndedUnixNanos = cmd.GetUnixNanos()
	if err := setProto(b, sweepKey(sw.GetNodeId()), rec); err != nil {
		return nil, err
	}
	return success(), nil
}

// validateSpan refuses a start that is unset or after the end.
func validateSpan(what string, start, end int64) *fsmpb.Result {
	if start <= 0 || start > end {
		return invalid("%s started at %d, not between 1 and its end %d", what, start, end)
	}
	return nil
}

// LastGCRun returns the last collection run recorded, or ErrNotFound.
func (f *FSM) LastGCRun() (*fsmpb.GCRun, error) {
	var rec fsmpb.GCRun
	if err := f.getRecord(keyLastGCRun, &rec, "last gc run"); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Sweeps returns the last sweep of every node that recorded one, by node
// ID: at most one per registered node.
func (f *FSM) Sweeps() ([]*fsmpb.SweepSummary, error) {
	var out []*fsmpb.SweepSummary
	err := f.view(func(r pebble.Reader) error {
		return scanPrefix(r, []byte(prefixSweep), func(k, v []byte) (bool, error) {
			var rec fsmpb.SweepSummary
			if err := proto.Unmarshal(v, &rec); err != nil {
				return false, fmt.Errorf("decode %q: %w", k, err)
			}
			out = append(out, &rec)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list sweeps: %w", err)
	}
	return out, nil
}

// ManifestRef is a stored manifest that lists a blob.
type ManifestRef struct {
	Repository string
	Digest     digest.Digest
	// Tags are up to maxTags of the manifest's tags.
	Tags []string
}

// BlobKeepers is what keeps a blob: the repositories that link it and the
// manifests that list it.
type BlobKeepers struct {
	Repositories []string
	Manifests    []ManifestRef
	// Truncated says there are more than the limit of either kind.
	Truncated bool
	// UnreferencedSince is set (unix nanos) for a held blob nothing
	// references: it waits for its grace period to end.
	UnreferencedSince int64
}

// BlobKeepers returns up to n repositories and n manifests that reference
// blob d, each manifest with up to tags of its tags, read on one snapshot.
func (f *FSM) BlobKeepers(d digest.Digest, n, tags int) (BlobKeepers, error) {
	var out BlobKeepers
	err := f.snapshot(func(r pebble.Reader) error {
		links := key(prefixBlobRef, d.String(), "l", "")
		err := scanPrefix(r, links, func(k, _ []byte) (bool, error) {
			if len(out.Repositories) == n {
				out.Truncated = true
				return false, nil
			}
			out.Repositories = append(out.Repositories, string(k[len(links):]))
			return true, nil
		})
		if err != nil {
			return err
		}
		manifests := key(prefixBlobRef, d.String(), "m", "")
		err = scanPrefix(r, manifests, func(k, _ []byte) (bool, error) {
			if len(out.Manifests) == n {
				out.Truncated = true
				return false, nil
			}
			repo, man, _ := strings.Cut(string(k[len(manifests):]), sep)
			out.Manifests = append(out.Manifests, ManifestRef{Repository: repo, Digest: digest.Digest(man)})
			return true, nil
		})
		if err != nil {
			return err
		}
		for i := range out.Manifests {
			m := &out.Manifests[i]
			all, err := tagsOf(r, m.Repository, m.Digest.String())
			if err != nil {
				return err
			}
			m.Tags = all[:min(len(all), tags)]
		}
		v, found, err := get(r, unreferencedKey(d.String()))
		if err != nil || !found || len(v) != 8 {
			return err
		}
		out.UnreferencedSince = int64(decodeUint64(v))
		return nil
	})
	if err != nil {
		return BlobKeepers{}, fmt.Errorf("what keeps blob %s: %w", d, err)
	}
	return out, nil
}

// Storage is how many bytes the registry stores (FSM.Storage).
type Storage struct {
	// Namespaces maps each namespace to the blobs its repositories link or
	// its manifests list, each blob counted once per namespace.
	Namespaces map[string]Usage
	// Referenced counts every referenced blob once.
	Referenced Usage
	// Held counts every blob with a holder record once.
	Held Usage
	// Nodes maps each node to the blobs its holder records list.
	Nodes map[string]Usage
}

// Usage is a count of blobs and their bytes.
type Usage struct {
	Blobs, Bytes int64
}

func (u *Usage) add(size int64) { u.Blobs++; u.Bytes += size }

// Storage adds up the stored bytes on one snapshot. It reads every blob
// reference (bref/) and every holder record (holder/) once, so its time
// grows with the number of blobs and references; its memory with the
// number of namespaces and nodes, and of namespaces referencing one blob.
// The size of a referenced blob is that of its holder record, else that
// of a repository link.
func (f *FSM) Storage() (Storage, error) {
	out := Storage{Namespaces: map[string]Usage{}, Nodes: map[string]Usage{}}
	err := f.snapshot(func(r pebble.Reader) error {
		var cur string          // the blob whose references are being read
		var namespaces []string // of cur, sorted
		var size int64
		flush := func() {
			if cur == "" {
				return
			}
			out.Referenced.add(size)
			for _, ns := range namespaces {
				u := out.Namespaces[ns]
				u.add(size)
				out.Namespaces[ns] = u
			}
		}
		err := scanPrefix(r, []byte(prefixBlobRef), func(k, _ []byte) (bool, error) {
			dgst, rest, _ := strings.Cut(string(k[len(prefixBlobRef):]), sep)
			kind, ref, _ := strings.Cut(rest, sep)
			repo, _, _ := strings.Cut(ref, sep)
			if dgst != cur {
				flush()
				cur, namespaces = dgst, namespaces[:0]
				var err error
				if size, err = blobSize(r, dgst, kind, repo); err != nil {
					return false, err
				}
			}
			ns, _ := splitNamespace(repo)
			if i, found := slices.BinarySearch(namespaces, ns); !found {
				namespaces = slices.Insert(namespaces, i, ns)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
		flush()
		return scanPrefix(r, []byte(prefixHolder), func(k, v []byte) (bool, error) {
			rec, err := decodeHolders(k, v)
			if err != nil {
				return false, err
			}
			out.Held.add(rec.GetSize())
			for _, id := range rec.GetNodeIds() {
				u := out.Nodes[id]
				u.add(rec.GetSize())
				out.Nodes[id] = u
			}
			return true, nil
		})
	})
	if err != nil {
		return Storage{}, fmt.Errorf("add up storage: %w", err)
	}
	return out, nil
}

// blobSize returns the size of blob dgst: its holder record's, else its
// link's in repo (kind "l"), else 0.
func blobSize(r pebble.Reader, dgst, kind, repo string) (int64, error) {
	var rec fsmpb.BlobHolders
	found, err := getProto(r, holderKey(dgst), &rec)
	if err != nil || found {
		return rec.GetSize(), err
	}
	if kind != "l" {
		return 0, nil
	}
	v, found, err := get(r, blobKey(repo, dgst))
	if err != nil || !found || len(v) != 8 {
		return 0, err
	}
	return int64(decodeUint64(v)), nil
}
