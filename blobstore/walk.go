package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// walkBatch is how many directory entries Blobs reads at a time, so that
// memory does not grow with the number of blobs.
const walkBatch = 1024

// Blobs calls fn with the digest of every stored blob, one directory at a
// time, until fn returns an error (which Blobs returns) or ctx ends. A blob
// stored or deleted during the walk may or may not be seen. No lock is held
// while fn runs, so fn may call the Store.
func (s *Store) Blobs(ctx context.Context, fn func(digest.Digest) error) error {
	for _, alg := range algorithms {
		prefixes, err := os.ReadDir(s.algDir(alg))
		if err != nil {
			return fmt.Errorf("list %s blobs: %w", alg, err)
		}
		for _, p := range prefixes {
			if !p.IsDir() || len(p.Name()) != 2 || !isLowerHex(p.Name()) {
				continue
			}
			if err := s.walkPrefix(ctx, alg, p.Name(), fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) walkPrefix(ctx context.Context, alg digest.Algorithm, prefix string, fn func(digest.Digest) error) error {
	dir, err := os.Open(filepath.Join(s.algDir(alg), prefix))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s blobs: %w", alg, err)
	}
	defer dir.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := dir.ReadDir(walkBatch)
		for _, e := range entries {
			if !e.Type().IsRegular() || !isBlobName(alg, prefix, e.Name()) {
				continue
			}
			if err := fn(digest.NewDigestFromEncoded(alg, e.Name())); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s blobs: %w", alg, err)
		}
	}
}

// Touch records that blob d was stored again, as a commit that finds it
// present does (see DeleteIfStoredBefore), and reports whether it is
// stored. A peer acknowledging a copy it already holds calls it, so that
// the copy it is about to be recorded as holding is not deleted as one it
// no longer holds.
func (s *Store) Touch(ctx context.Context, d digest.Digest) (bool, error) {
	if _, err := checkDigest(d); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	held, err := s.touch(d)
	if err != nil {
		return false, fmt.Errorf("touch blob %s: %w", d, err)
	}
	return held, nil
}
