package blobstore

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// algorithms are the digest algorithms the store accepts.
var algorithms = [...]digest.Algorithm{digest.SHA256, digest.SHA512}

// checkDigest returns d's algorithm if d is a well-formed sha256 or sha512
// digest with a lowercase hex encoding, and ErrUnsupportedDigest otherwise.
func checkDigest(d digest.Digest) (digest.Algorithm, error) {
	s := string(d)
	for _, alg := range algorithms {
		prefix := string(alg) + ":"
		if len(s) == len(prefix)+alg.Size()*2 && s[:len(prefix)] == prefix && isLowerHex(s[len(prefix):]) {
			return alg, nil
		}
	}
	return "", fmt.Errorf("%w: %q", ErrUnsupportedDigest, truncate(s, 80))
}

// newHash returns a fresh hash for one of the supported algorithms.
func newHash(alg digest.Algorithm) hash.Hash {
	if alg == digest.SHA512 {
		return sha512.New()
	}
	return sha256.New()
}

// blobPath returns the path of the blob with digest d under blobsDir; d must
// have passed checkDigest.
func blobPath(blobsDir string, d digest.Digest) string {
	hex := d.Encoded()
	return filepath.Join(blobsDir, string(d.Algorithm()), hex[:2], hex)
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// truncate shortens client-supplied strings before they go into errors.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
