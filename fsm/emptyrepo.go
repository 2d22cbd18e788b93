package fsm

import (
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Repositories left empty. The first LinkBlob or PutManifest naming a
// repository creates it, so a push that fails before its manifest leaves a
// repository that holds blob links and nothing else, listed forever. The
// FSM records since when each repository has held no manifest:
//
//	emptyrepo/<repository>   unix nanos, 8 bytes big endian
//	m/emptyrepos             present once the record covers the whole state
//
// LinkBlob into a repository without manifests sets the record to the
// command's time (a push in progress links its blobs before its manifest,
// so each link starts the wait afresh), PutManifest deletes it, and a
// DeleteManifest that removes the last manifest sets it. The leader's
// collector proposes RemoveEmptyRepository for records older than its grace
// period; the FSM re-checks that the repository holds no manifest and no
// tag and that the record is that old, relative to the command's own time,
// then removes the repository with its blob links (which may leave their
// blobs unreferenced, to be collected in turn) and its public flag. The
// namespace stays, with its owner and grants.
//
// Data written before the record existed is indexed by the first command
// applied after an upgrade (m/emptyrepos absent): each repository without
// manifests gets that command's time.
const prefixEmptyRepository = "emptyrepo/"

var keyEmptyReposIndexed = []byte("m/emptyrepos")

func emptyRepositoryKey(repo string) []byte { return key(prefixEmptyRepository, repo) }

// hasAny reports whether some key starts with prefix.
func hasAny(r pebble.Reader, prefix []byte) (bool, error) {
	found := false
	err := scanPrefix(r, prefix, func(_, _ []byte) (bool, error) {
		found = true
		return false, nil
	})
	return found, err
}

// markIfEmpty starts repo's empty period at now if it holds no manifest.
func markIfEmpty(b *pebble.Batch, repo string, now int64) error {
	full, err := hasAny(b, manifestPrefix(repo))
	if err != nil || full {
		return err
	}
	return b.Set(emptyRepositoryKey(repo), encodeUint64(uint64(now)), nil)
}

// applyRemoveEmptyRepository removes a repository that has been empty for
// the grace period, as of the command's time.
func applyRemoveEmptyRepository(b *pebble.Batch, cmd *fsmpb.Command) (*fsmpb.Result, error) {
	op := cmd.GetRemoveEmptyRepository()
	repo, now := op.GetRepository(), cmd.GetUnixNanos()
	if res := validateRepository(repo); res != nil {
		return res, nil
	}
	if op.GetGraceNanos() < 0 {
		return invalid("negative grace period %d", op.GetGraceNanos()), nil
	}
	exists, err := has(b, repositoryKey(repo))
	if err != nil {
		return nil, err
	}
	if !exists {
		return notFound("repository %q does not exist", repo), nil
	}
	if isMirror, err := has(b, mirrorKey(repo)); err != nil {
		return nil, err
	} else if isMirror {
		return notEmpty("repository %q is mirrored: it stays while empty, until its sync fills it", repo), nil
	}
	if res, err := checkEmpty(b, repo, now, op.GetGraceNanos()); res != nil || err != nil {
		return res, err
	}
	if err := unlinkAll(b, repo, now); err != nil {
		return nil, err
	}
	return success(), dropRepositoryRecord(b, repo)
}

// checkEmpty returns a REPOSITORY_NOT_EMPTY result unless repo holds no
// manifest and no tag and has been empty for grace nanoseconds before now.
func checkEmpty(r pebble.Reader, repo string, now, grace int64) (*fsmpb.Result, error) {
	for _, prefix := range [][]byte{manifestPrefix(repo), tagPrefix(repo)} {
		full, err := hasAny(r, prefix)
		if err != nil {
			return nil, err
		}
		if full {
			return notEmpty("repository %q holds manifests or tags", repo), nil
		}
	}
	v, found, err := get(r, emptyRepositoryKey(repo))
	if err != nil {
		return nil, err
	}
	if !found || len(v) != 8 {
		return notEmpty("repository %q has no record of being empty", repo), nil
	}
	if since := int64(decodeUint64(v)); now-since < grace {
		return notEmpty("repository %q has been empty for %dns, less than the grace period of %dns", repo, now-since, grace), nil
	}
	return nil, nil
}

// unlinkAll removes every blob link of repo and its blob references.
func unlinkAll(b *pebble.Batch, repo string, now int64) error {
	prefix := blobPrefix(repo)
	var digests []string
	err := scanPrefix(b, prefix, func(k, _ []byte) (bool, error) {
		digests = append(digests, string(k[len(prefix):]))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, d := range digests {
		if err := b.Delete(blobKey(repo, d), nil); err != nil {
			return err
		}
		if err := dropBlobRef(b, d, linkRefKey(d, repo), now); err != nil {
			return err
		}
	}
	return nil
}

// indexEmptyRepositories records the repositories without manifests once,
// for state written before the record existed. It depends on the state and
// the command's time only, so every replica writes the same records.
func indexEmptyRepositories(b *pebble.Batch, now int64) error {
	done, err := has(b, keyEmptyReposIndexed)
	if err != nil || done {
		return err
	}
	var repos []string
	err = scanPrefix(b, []byte(prefixRepository), func(k, _ []byte) (bool, error) {
		repos = append(repos, strings.TrimPrefix(string(k), prefixRepository))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, repo := range repos {
		if err := markIfEmpty(b, repo, now); err != nil {
			return err
		}
	}
	return b.Set(keyEmptyReposIndexed, []byte{1}, nil)
}

// EmptyRepository is a repository that holds no manifest.
type EmptyRepository struct {
	Name string
	// SinceUnixNanos is when it last had a manifest removed or a blob
	// linked, or was created.
	SinceUnixNanos int64
}

// ListEmptyRepositories returns up to n repositories without manifests
// whose names sort after last ("" starts at the beginning), in name order;
// n <= 0 means no limit.
func (f *FSM) ListEmptyRepositories(last string, n int) ([]EmptyRepository, error) {
	prefix := []byte(prefixEmptyRepository)
	lower := prefix
	if last != "" {
		lower = after(emptyRepositoryKey(last))
	}
	var out []EmptyRepository
	err := f.view(func(r pebble.Reader) error {
		return scan(r, lower, prefixEnd(prefix), func(k, v []byte) (bool, error) {
			if len(v) != 8 {
				return false, fmt.Errorf("read %q: value has %d bytes, want 8", k, len(v))
			}
			name := string(k[len(prefix):])
			if isMirror, err := has(r, mirrorKey(name)); err != nil || isMirror {
				return err == nil, err // a mirror stays while empty
			}
			out = append(out, EmptyRepository{Name: name, SinceUnixNanos: int64(decodeUint64(v))})
			return n <= 0 || len(out) < n, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list empty repositories after %q: %w", last, err)
	}
	return out, nil
}
