package fsm

import (
	_ "crypto/sha256" // digest algorithms must be available for validation
	_ "crypto/sha512"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm/fsmpb"
)

// Names follow the OCI distribution specification. Neither pattern admits the
// key separator.
var (
	repositoryPattern = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagPattern        = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// MaxRepositoryLength is the longest repository name the distribution
// specification allows; it keeps keys small.
const MaxRepositoryLength = 255

// ValidateRepositoryName returns an error wrapping ErrInvalid that says
// which rule name breaks, or nil for a valid repository name.
func ValidateRepositoryName(name string) error {
	if len(name) > MaxRepositoryLength {
		return fmt.Errorf("%w: repository name is %d characters long; the limit is %d", ErrInvalid, len(name), MaxRepositoryLength)
	}
	if !repositoryPattern.MatchString(name) {
		return fmt.Errorf("%w: invalid repository name %q: use lowercase path components of letters and digits, "+
			"separated inside by '.', '_', '__' or dashes, joined by '/'", ErrInvalid, name)
	}
	return nil
}

// ValidateTag returns an error wrapping ErrInvalid that says which rule
// tag breaks, or nil for a valid tag.
func ValidateTag(tag string) error {
	if !tagPattern.MatchString(tag) {
		return fmt.Errorf("%w: invalid tag %q: a tag is 1 to 128 letters, digits, '_', '.' or '-', "+
			"and does not start with '.' or '-'", ErrInvalid, tag)
	}
	return nil
}

func validateRepository(repo string) *fsmpb.Result {
	if err := ValidateRepositoryName(repo); err != nil {
		return invalid("%s", ruleOf(err))
	}
	return nil
}

func validateTag(tag string) *fsmpb.Result {
	if err := ValidateTag(tag); err != nil {
		return invalid("%s", ruleOf(err))
	}
	return nil
}

// ruleOf is a validation error's message without the ErrInvalid prefix,
// which the result's code says already.
func ruleOf(err error) string {
	return strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
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
