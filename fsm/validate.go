package fsm

import (
	_ "crypto/sha256" // digest algorithms must be available for validation
	_ "crypto/sha512"
	"regexp"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Names follow the OCI distribution specification. Neither pattern admits the
// key separator.
var (
	repositoryPattern = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagPattern        = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// maxRepositoryLength bounds names so keys stay small.
const maxRepositoryLength = 255

func validateRepository(repo string) *fsmpb.Result {
	if len(repo) > maxRepositoryLength || !repositoryPattern.MatchString(repo) {
		return invalid("invalid repository name %q", repo)
	}
	return nil
}

func validateTag(tag string) *fsmpb.Result {
	if !tagPattern.MatchString(tag) {
		return invalid("invalid tag %q", tag)
	}
	return nil
}

func validateDigest(d string) *fsmpb.Result {
	if err := digest.Digest(d).Validate(); err != nil {
		return invalid("invalid digest %q: %v", d, err)
	}
	return nil
}

func validateRepositoryAndDigest(repo, d string) *fsmpb.Result {
	if res := validateRepository(repo); res != nil {
		return res
	}
	return validateDigest(d)
}

func validatePutManifest(op *fsmpb.PutManifest) *fsmpb.Result {
	if res := validateRepositoryAndDigest(op.GetRepository(), op.GetDigest()); res != nil {
		return res
	}
	for _, tag := range op.GetTags() {
		if res := validateTag(tag); res != nil {
			return res
		}
	}
	if s := op.GetSubject(); s != "" {
		if res := validateDigest(s); res != nil {
			return res
		}
	}
	for _, d := range slices.Concat(op.GetBlobs(), op.GetManifests()) {
		if res := validateDigest(d); res != nil {
			return res
		}
	}
	return nil
}
