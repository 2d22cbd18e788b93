package fsm

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/proto"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// RepositoryStats counts what a repository holds.
type RepositoryStats struct {
	Tags      int
	Manifests int
	Blobs     int
}

// RepositoryExists reports whether repo has been created.
func (f *FSM) RepositoryExists(repo string) (bool, error) {
	var exists bool
	err := f.view(func(r pebble.Reader) (err error) {
		exists, err = has(r, repositoryKey(repo))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("repository %q: %w", repo, err)
	}
	return exists, nil
}

// Repository returns the record of repo, or ErrNotFound.
func (f *FSM) Repository(repo string) (*fsmpb.Repository, error) {
	var rec fsmpb.Repository
	if err := f.getRecord(repositoryKey(repo), &rec, "repository %q", repo); err != nil {
		return nil, err
	}
	return &rec, nil
}

// Namespace returns the record of namespace ns, or ErrNotFound.
func (f *FSM) Namespace(ns string) (*fsmpb.Namespace, error) {
	var rec fsmpb.Namespace
	if err := f.getRecord(namespaceKey(ns), &rec, "namespace %q", ns); err != nil {
		return nil, err
	}
	return &rec, nil
}

// ListRepositories returns up to n repository names after last in lexical
// order; n <= 0 means no limit.
func (f *FSM) ListRepositories(last string, n int) ([]string, error) {
	var names []string
	err := f.view(func(r pebble.Reader) error {
		var err error
		names, err = listNames(r, []byte(prefixRepository), last, n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	return names, nil
}

// ListTags returns up to n tags of repo after last in lexical order; n <= 0
// means no limit. It returns ErrNotFound if the repository does not exist.
func (f *FSM) ListTags(repo, last string, n int) ([]string, error) {
	var tags []string
	err := f.view(func(r pebble.Reader) error {
		if err := mustExist(r, repositoryKey(repo)); err != nil {
			return err
		}
		var err error
		tags, err = listNames(r, tagPrefix(repo), last, n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list tags of %q: %w", repo, err)
	}
	return tags, nil
}

// listNames returns up to n key suffixes after prefix+last.
func listNames(r pebble.Reader, prefix []byte, last string, n int) ([]string, error) {
	lower := prefix
	if last != "" {
		lower = after(append(append([]byte(nil), prefix...), last...))
	}
	var names []string
	err := scan(r, lower, prefixEnd(prefix), func(k, _ []byte) (bool, error) {
		names = append(names, string(k[len(prefix):]))
		return n <= 0 || len(names) < n, nil
	})
	return names, err
}

// ResolveTag returns the digest tag points at in repo, or ErrNotFound.
func (f *FSM) ResolveTag(repo, tag string) (digest.Digest, error) {
	var d []byte
	err := f.view(func(r pebble.Reader) error {
		var found bool
		var err error
		d, found, err = get(r, tagKey(repo, tag))
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("tag %q of %q: %w", tag, repo, err)
	}
	return digest.Digest(d), nil
}

// Manifest returns manifest d of repo, or ErrNotFound.
func (f *FSM) Manifest(repo string, d digest.Digest) (*fsmpb.Manifest, error) {
	var m fsmpb.Manifest
	if err := f.getRecord(manifestKey(repo, string(d)), &m, "manifest %s of %q", d, repo); err != nil {
		return nil, err
	}
	return &m, nil
}

// Referrers returns the manifests of repo whose subject is subject, ordered
// by digest.
func (f *FSM) Referrers(repo string, subject digest.Digest) ([]*fsmpb.Manifest, error) {
	var refs []*fsmpb.Manifest
	err := f.view(func(r pebble.Reader) error {
		prefix := referrerPrefix(repo, string(subject))
		return scanPrefix(r, prefix, func(k, _ []byte) (bool, error) {
			var m fsmpb.Manifest
			found, err := getProto(r, manifestKey(repo, string(k[len(prefix):])), &m)
			if err != nil || !found {
				return err == nil, err // an index entry always has its manifest
			}
			refs = append(refs, &m)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("referrers of %s in %q: %w", subject, repo, err)
	}
	return refs, nil
}

// BlobLinked reports whether blob d is linked to repo, and its size.
func (f *FSM) BlobLinked(repo string, d digest.Digest) (size int64, ok bool, err error) {
	var v []byte
	err = f.view(func(r pebble.Reader) (err error) {
		v, ok, err = get(r, blobKey(repo, string(d)))
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("blob %s of %q: %w", d, repo, err)
	}
	if !ok {
		return 0, false, nil
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("blob %s of %q: size has %d bytes, want 8", d, repo, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), true, nil
}

// RepositoryStats counts the tags, manifests and blob links of repo, or
// returns ErrNotFound.
func (f *FSM) RepositoryStats(repo string) (RepositoryStats, error) {
	var s RepositoryStats
	err := f.view(func(r pebble.Reader) error {
		if err := mustExist(r, repositoryKey(repo)); err != nil {
			return err
		}
		var err error
		if s.Tags, err = count(r, tagPrefix(repo)); err != nil {
			return err
		}
		if s.Manifests, err = count(r, manifestPrefix(repo)); err != nil {
			return err
		}
		s.Blobs, err = count(r, blobPrefix(repo))
		return err
	})
	if err != nil {
		return RepositoryStats{}, fmt.Errorf("stats of %q: %w", repo, err)
	}
	return s, nil
}

// getRecord decodes the record at k into m. Errors, ErrNotFound included,
// are wrapped with a description built from format and args.
func (f *FSM) getRecord(k []byte, m proto.Message, format string, args ...any) error {
	err := f.view(func(r pebble.Reader) error {
		found, err := getProto(r, k, m)
		if err == nil && !found {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
	}
	return nil
}

func mustExist(r pebble.Reader, k []byte) error {
	exists, err := has(r, k)
	if err == nil && !exists {
		err = ErrNotFound
	}
	return err
}
