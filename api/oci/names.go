package oci

import (
	_ "crypto/sha256" // digest algorithms go-digest needs registered
	_ "crypto/sha512"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/wharf-registry/wharf/fsm"
)

// reference is what a manifest URL names: a tag or a digest, never both.
type reference struct {
	name   string
	tag    string
	digest digest.Digest
}

// String returns the reference as it appears in a URL.
func (r reference) String() string {
	if r.tag != "" {
		return r.tag
	}
	return r.digest.String()
}

// parseReference validates a repository name and a manifest reference. A
// reference containing a colon is a digest; anything else must be a tag.
func parseReference(name, ref string) (reference, error) {
	if err := validateName(name); err != nil {
		return reference{}, err
	}
	if strings.Contains(ref, ":") {
		d, err := parseDigest(ref)
		if err != nil {
			return reference{}, err
		}
		return reference{name: name, digest: d}, nil
	}
	if err := validateTag(ref); err != nil {
		return reference{}, err
	}
	return reference{name: name, tag: ref}, nil
}

// validateName reports NAME_INVALID unless name is a valid repository name.
func validateName(name string) error {
	if err := fsm.ValidateRepositoryName(name); err != nil {
		return newError(http.StatusBadRequest, CodeNameInvalid, "%s", ruleText(err)).
			withDetail(map[string]string{"name": name})
	}
	return nil
}

// validateTag reports TAG_INVALID unless tag is a valid tag.
func validateTag(tag string) error {
	if err := fsm.ValidateTag(tag); err != nil {
		return newError(http.StatusBadRequest, CodeTagInvalid, "%s", ruleText(err)).
			withDetail(map[string]string{"tag": tag})
	}
	return nil
}

// ruleText is a validation error's message without the fsm.ErrInvalid
// prefix, which the OCI error code says already.
func ruleText(err error) string {
	return strings.TrimPrefix(err.Error(), fsm.ErrInvalid.Error()+": ")
}

// parseDigest parses a digest this registry can store: sha256 or sha512.
func parseDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", newError(http.StatusBadRequest, CodeDigestInvalid,
			"invalid digest %q: expected <algorithm>:<hex>, e.g. sha256:<64 hex digits>", s).
			withDetail(map[string]string{"digest": s}).withCause(err)
	}
	if alg := d.Algorithm(); alg != digest.SHA256 && alg != digest.SHA512 {
		return "", newError(http.StatusBadRequest, CodeDigestInvalid,
			"unsupported digest algorithm %q: use sha256 or sha512", alg).
			withDetail(map[string]string{"digest": s})
	}
	return d, nil
}

// errNamespaceConflict reports that a push to repo breaks a namespace rule;
// err, from Metadata, names the rule.
func errNamespaceConflict(repo string, err error) error {
	return newError(http.StatusBadRequest, CodeNameInvalid, "cannot push to repository %s: %v", repo, err).
		withDetail(map[string]string{"name": repo}).withCause(err)
}

// checkPath refuses a request path with a "." or ".." segment or an empty
// one (a doubled slash): no repository name holds them, and a registry
// must neither resolve them to another path nor redirect the client there.
func checkPath(p string) error {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return nil
	}
	rest = strings.TrimSuffix(rest, "/")
	if rest == "" {
		return nil
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return newError(http.StatusBadRequest, CodeNameInvalid,
				"the path %q has an empty, \".\" or \"..\" segment; repository names cannot hold them", p)
		}
	}
	return nil
}
